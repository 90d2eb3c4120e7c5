"""Windows sends the agent no SIGTERM at shutdown: its console control handler (winstop.py) stops
the agent and holds the process until the buffered events had their last attempt."""

from __future__ import annotations

import threading
import time

from dcvfleet_agent import winstop


def test_a_shutdown_stops_the_agent_and_waits_for_the_last_flush() -> None:
    stop, flushed = threading.Event(), threading.Event()
    handle = winstop.console_handler(stop, flushed, wait=5)
    answer: list[bool] = []
    worker = threading.Thread(target=lambda: answer.append(handle(winstop.CTRL_SHUTDOWN_EVENT)))
    worker.start()
    assert stop.wait(2)  # the monitor's wait() ends: run() flushes the buffer
    time.sleep(0.1)
    assert worker.is_alive()  # the process is held while it does
    flushed.set()  # main() sets it when the agent has stopped
    worker.join(2)
    assert answer == [True]


def test_the_hold_is_bounded() -> None:
    stop, flushed = threading.Event(), threading.Event()
    started = time.monotonic()
    assert winstop.console_handler(stop, flushed, wait=0.2)(winstop.CTRL_CLOSE_EVENT) is True
    assert stop.is_set()
    assert time.monotonic() - started < 2


def test_a_user_signing_out_does_not_stop_the_agent() -> None:
    stop, flushed = threading.Event(), threading.Event()
    ctrl_logoff_event, ctrl_c_event = 5, 0
    handle = winstop.console_handler(stop, flushed, wait=0.1)
    assert handle(ctrl_logoff_event) is False
    assert handle(ctrl_c_event) is False  # Ctrl+C stays Python's SIGINT
    assert not stop.is_set()


def test_off_windows_nothing_is_registered() -> None:
    assert winstop.install(threading.Event(), threading.Event()) is None
