"""Windows sends the agent no SIGTERM at shutdown: its console control handler (winstop.py) stops
the agent and holds the process until the buffered events had their last attempt."""

from __future__ import annotations

import threading

from dcvfleet_agent import winstop


class WatchedEvent(threading.Event):
    """The agent's "flushed" event, telling when (and for how long) the handler waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        self.waiting.set()
        return super().wait(5 if timeout is None else min(timeout, 5))  # a test never hangs


def test_a_shutdown_stops_the_agent_and_waits_for_the_last_flush() -> None:
    stop, flushed = threading.Event(), WatchedEvent()
    handle = winstop.console_handler(stop, flushed, wait=5)
    answer: list[bool] = []
    worker = threading.Thread(target=lambda: answer.append(handle(winstop.CTRL_SHUTDOWN_EVENT)))
    worker.start()
    assert stop.wait(2)  # the monitor's wait() ends: run() flushes the buffer
    assert flushed.waiting.wait(2)  # the process is held while it does
    assert answer == []
    flushed.set()  # main() sets it when the agent has stopped
    worker.join(2)
    assert answer == [True]


def test_the_hold_is_bounded() -> None:
    stop, flushed = threading.Event(), WatchedEvent()
    assert winstop.console_handler(stop, flushed, wait=0.2)(winstop.CTRL_CLOSE_EVENT) is True
    assert stop.is_set()
    # held no longer than its bound, though the flush never came
    assert flushed.timeouts == [0.2]
    assert not flushed.is_set()


def test_a_user_signing_out_does_not_stop_the_agent() -> None:
    stop, flushed = threading.Event(), threading.Event()
    ctrl_logoff_event, ctrl_c_event = 5, 0
    handle = winstop.console_handler(stop, flushed, wait=0.1)
    assert handle(ctrl_logoff_event) is False
    assert handle(ctrl_c_event) is False  # Ctrl+C stays Python's SIGINT
    assert not stop.is_set()


def test_off_windows_nothing_is_registered() -> None:
    assert winstop.install(threading.Event(), threading.Event()) is None
