"""Following a desktop while it changes: each provisioning step as it completes, with its time,
and the step or status under way with the time it has taken so far (on a terminal, one line
rewritten in place; otherwise a line each time the step or status changes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

from dcvfleet_cli.api import Api
from dcvfleet_cli.errors import INTERRUPTED, CliError
from dcvfleet_cli.output import duration, symbols, timestamp

#: The provisioning steps (the API's ``progress`` keys): how each reads once done and while
#: it is under way.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("credentials", "credentials", "creating credentials"),
    ("capacity", "GPU", "finding a GPU"),
    ("booted", "desktop booted", "booting the desktop"),
    ("ready", "ready", "getting the connection URL"),
)
#: How a desktop starts (the API's ``estimate.path``), as the CLI says it.
PATHS = {
    "pool": "a desktop was waiting in the pool",
    "pool-stopped": "starting a waiting desktop",
    "launch": "a new GPU machine",
    "resume": "starting your desktop again",
    "batch": "a container on a GPU machine",
}
#: Statuses a stop or delete passes through, and how each reads while it is under way.
ENDING = {"STOPPING": "stopping", "TERMINATING": "shutting down"}


def pause(seconds: float) -> None:
    """Sleep between polls (tests replace it)."""
    time.sleep(seconds)


def poll_interval(waited: float) -> float:
    if waited < 30:
        return 0.5
    return 1.0 if waited < 300 else 2.0


class _Line:
    """Writes finished lines and the one line under way: on a terminal (``live``) that line is
    rewritten in place at every poll, with its running time; otherwise it is written once each
    time what it says changes, so a log shows every step and status with its time."""

    def __init__(self, out: TextIO, live: bool, clock: Callable[[], float]) -> None:
        self.out = out
        self.live = live
        self.clock = clock
        self.started = clock()
        self.line_open = False
        self.doing: str | None = None
        self.ok, self.busy, self.fail = symbols(out)

    def _write(self, text: str, end: str = "\n") -> None:
        if self.line_open:
            self.out.write("\r\x1b[K")
        self.out.write(text + end)
        self.out.flush()
        self.line_open = end == ""

    def elapsed(self) -> float:
        return max(self.clock() - self.started, 0.0)

    def under_way(self, label: str, status: str) -> None:
        """The step or status under way: ``… finding a GPU (PROVISIONING, 12s)``."""
        text = f"{self.busy} {label} ({status}, {duration(self.elapsed())})"
        if self.live:
            self._write(text, end="")
        elif self.doing != label:
            self._write(text)
        self.doing = label

    def close(self) -> None:
        if self.line_open:
            self._write(f"{self.busy} {self.doing}" if self.doing else "")


class Progress(_Line):
    """Renders a provisioning on a stream: a line per finished step with the seconds since
    ``origin`` (the request), and the step under way with the desktop's status and the time
    since the request. With no origin (watching a desktop someone else asked for) the seconds run
    from when watching began, and steps finished before that show no time."""

    def __init__(
        self,
        out: TextIO,
        origin: float | None,
        live: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(out, live, clock)
        self.origin = origin
        self.done: set[str] = set()
        self.told_path: str | None = None

    def _since(self, at: float | None) -> float | None:
        if at is None:
            return None
        if self.origin is not None:
            return max(at - self.origin, 0.0)
        if at < self.started - 1:
            return None
        return max(at - self.started, 0.0)

    def _estimate(self, estimate: Any) -> None:
        """Once per start, how it starts and how long that usually takes (the profile's recent
        desktops that started the same way): ``· a new GPU machine: usually 1m 40s, 9 in 10
        within 2m 30s (last 12)``."""
        path = estimate.get("path") if isinstance(estimate, dict) else None
        if path not in PATHS or path == self.told_path:
            return
        self.told_path = path
        text = f"· {PATHS[path]}"
        if isinstance(estimate.get("seconds"), int) and isinstance(
            estimate.get("upToSeconds"), int
        ):
            text += (
                f": usually {duration(estimate['seconds'])}, 9 in 10 within "
                f"{duration(estimate['upToSeconds'])} (last {estimate.get('samples')})"
            )
        self._write(text)
        self.doing = None

    def update(self, session: dict[str, Any]) -> None:
        progress = session.get("progress") or {}
        status = str(session.get("status"))
        current: tuple[str, str, str] | None = None
        for step in STEPS:
            key, done_label, _ = step
            if key in self.done:
                continue
            if key not in progress:
                current = current or step
                if status == "PROVISIONING":
                    break
                continue
            since = self._since(timestamp(progress[key]))
            self._write(f"{self.ok} {done_label}" + ("" if since is None else f" ({since:.1f}s)"))
            self.done.add(key)
            self.doing = None
        if status == "PROVISIONING":
            self._estimate(session.get("estimate"))
        if current is None:
            return
        if status == "PROVISIONING":
            self.under_way(current[2], status)
        elif status == "FAILED":
            self._write(f"{self.fail} {current[2]}")

    def elapsed(self) -> float:
        return max(self.clock() - (self.origin or self.started), 0.0)

    def total(self, session: dict[str, Any]) -> float | None:
        """Seconds from the request to READY, where both are known."""
        ready = timestamp((session.get("progress") or {}).get("ready"))
        if ready is None or self.origin is None:
            return None
        return max(ready - self.origin, 0.0)


class Ending(_Line):
    """Renders a stop or delete: the status under way with the time since watching began."""

    def update(self, session: dict[str, Any]) -> None:
        status = str(session.get("status"))
        if status in ENDING:
            self.under_way(ENDING[status], status)


def plausible_origin(session: dict[str, Any], now: float) -> float | None:
    """When this provisioning began, if the record tells: ``createdAt`` for a desktop's first
    provisioning (its first step shortly after it); unknown for a resume."""
    created = timestamp(session.get("createdAt"))
    if created is None:
        return None
    progress = session.get("progress") or {}
    first = timestamp(progress.get(STEPS[0][0]))
    reference = first if first is not None else now
    return created if 0 <= reference - created <= 2 * 3600 else None


def wait_provisioned(
    api: Api,
    session_id: str,
    out: TextIO,
    origin: float | None,
    *,
    timeout: float,
    clock: Callable[[], float] = time.time,
    again: str = "",
    first: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Progress]:
    """Poll the desktop until it is no longer PROVISIONING, rendering its progress on ``out``
    (``first``: the desktop as just read, if it was). Ctrl-C stops watching (the desktop carries
    on) and says how to watch again (``again``, the desktop as the user names it; its id by
    default)."""
    again = again or session_id
    path = f"/sessions/{quote(session_id, safe='')}"
    live = out.isatty()
    session: dict[str, Any] = first if first is not None else api.get(path)
    if origin is None and session.get("status") == "PROVISIONING":
        origin = plausible_origin(session, clock())
    progress = Progress(out, origin, live, clock)
    started = clock()
    try:
        while True:
            progress.update(session)
            if session.get("status") != "PROVISIONING":
                return session, progress
            waited = clock() - started
            if waited > timeout:
                raise CliError(
                    f"the desktop is still being prepared after {duration(timeout)}; "
                    f"keep watching: dcvfleet sessions wait {again}"
                )
            pause(poll_interval(waited))
            session = api.get(path)
    except KeyboardInterrupt:
        raise CliError(
            "stopped watching; the desktop carries on. "
            f"Watch it again: dcvfleet sessions wait {again}",
            INTERRUPTED,
        ) from None
    finally:
        progress.close()


def wait_settled(
    api: Api,
    session_id: str,
    out: TextIO,
    timeout: float,
    *,
    clock: Callable[[], float] = time.time,
) -> tuple[dict[str, Any], float]:
    """Poll until a stop or delete has finished (the status is no longer STOPPING or
    TERMINATING), rendering the status under way on ``out``; the desktop and the seconds it
    took."""
    path = f"/sessions/{quote(session_id, safe='')}"
    ending = Ending(out, out.isatty(), clock)
    try:
        while True:
            session: dict[str, Any] = api.get(path)
            ending.update(session)
            waited = ending.elapsed()
            if session.get("status") not in ENDING:
                return session, waited
            if waited > timeout:
                raise CliError(
                    f"the desktop is still {session.get('status')} after {duration(timeout)}"
                )
            pause(poll_interval(waited))
    except KeyboardInterrupt:
        raise CliError("stopped watching; the desktop carries on", INTERRUPTED) from None
    finally:
        ending.close()
