"""Windows: how the agent learns that the host shuts down, so that it flushes its buffered events.

Windows sends a console process no SIGTERM. The agent runs from a scheduled task as SYSTEM
(`cmd.exe /c python -m dcvfleet_agent`), a non-interactive console process, and the system tells
such a process of a shutdown through its console control handler: CTRL_SHUTDOWN_EVENT, and
CTRL_CLOSE_EVENT when its console goes away
(https://learn.microsoft.com/en-us/windows/console/handlerroutine; SetConsoleCtrlHandler,
https://learn.microsoft.com/en-us/windows/console/setconsolectrlhandler). The handler runs on a
thread of its own; "when HandlerRoutine returns TRUE or the time-out period elapses, the system
terminates the process". So it sets the agent's stop event and waits, bounded, until the
agent says it has made its last attempt at the buffer. CTRL_LOGOFF_EVENT is left alone: a user
signing out of the desktop does not end the host.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

CTRL_CLOSE_EVENT = 2
CTRL_SHUTDOWN_EVENT = 6
STOP_EVENTS = {CTRL_CLOSE_EVENT: "console closed", CTRL_SHUTDOWN_EVENT: "system shutdown"}
#: How long the handler holds the process for the last flush (one attempt, CALL_TIMEOUT_SECONDS
#: per call); the system's own time-out ends it anyway.
FLUSH_WAIT_SECONDS = 15.0

log = logging.getLogger(__name__)


def console_handler(
    stop: threading.Event, flushed: threading.Event, wait: float = FLUSH_WAIT_SECONDS
) -> Callable[[int], bool]:
    """The handler routine: for a shutdown or close, stop the agent and hold the process until
    `flushed` is set (or `wait` passes); any other control event goes to the next handler."""

    def handle(ctrl_type: int) -> bool:
        reason = STOP_EVENTS.get(ctrl_type)
        if reason is None:
            return False
        log.info("stopping: Windows %s", reason, extra={"fields": {"ctrlType": ctrl_type}})
        stop.set()
        flushed.wait(wait)
        return True

    return handle


def install(stop: threading.Event, flushed: threading.Event) -> Any:
    """Register the handler with SetConsoleCtrlHandler on Windows; returns what must be kept
    alive (the ctypes callback), None elsewhere or when registration fails."""
    if not sys.platform.startswith("win"):
        return None
    import ctypes

    routine_type = ctypes.WINFUNCTYPE(ctypes.c_int, ctypes.c_ulong)
    handle = console_handler(stop, flushed)
    routine = routine_type(lambda ctrl_type: 1 if handle(ctrl_type) else 0)
    if not ctypes.windll.kernel32.SetConsoleCtrlHandler(routine, True):
        log.warning("cannot register the console control handler: no flush at shutdown")
        return None
    return routine
