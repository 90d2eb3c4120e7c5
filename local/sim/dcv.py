#!/usr/bin/env python3
"""Simulated Amazon DCV `dcv` CLI for the local emulator's hosts (stdlib only).

    SIM_DCV_STATE=/tmp/host1.json python3 local/sim/dcv.py list-sessions -j

State file (created if missing, written atomically under a lock file, ``<state>.lock``):
``{"sessions": [...], "connections": N, "lastDisconnection": "…Z", "notices": [...],
"platform": "windows"}``; only
"sessions" and "connections" are required, so older files still load. "connections" is written
by another process (the host simulator, ``update_state``/``set_connections``) and is how many
clients every session reports. When it drops from more than 0 to 0, "lastDisconnection" records
that moment; a session created before it prints it as its ``last-disconnection-time`` (ISO 8601,
microseconds, "Z", as in the guide's "Finding and stopping idle sessions"), a session created
after it (or when no client ever left) prints "". SIM_DCV_FAIL=missing|garbage|hang makes every
command fail like a broken install: exit 127 / non-JSON output / sleep 60 s. With "platform"
"windows", `create-session` refuses `--type` and makes a console session, as DCV Server on
Windows does; `--permissions-file` is read when the session is made and its text kept in the
session's "permissions" (state only; not printed, as the real CLI does not print it).

Output shapes follow the Amazon DCV Administrator Guide, "Viewing Amazon DCV sessions": a
session object has the fields of `dcv describe-session <id> --json` ("id", "owner", "name",
"num-of-connections", "creation-time", "last-disconnection-time", "licenses", "storage-root",
"type", "x11-display", "x11-authority", "display-layout"), printed with the guide's
`"key" : value` spacing. `list-sessions -j` prints a JSON array of those objects. The guide
does not show `list-connections -j`; this prints a JSON array with one object per client
connection ("connection-id", "user", "client-ip", "connection-time"); it does not print
"last-interaction-time" (a field some DCV versions add), so an agent must not depend on it. Error
texts of the real CLI are not in the guide either: errors here go to stderr with exit code 1.

`dcv notify-users`: the syntax of this command was not found in the Amazon DCV Administrator
Guide (searched for it; only `set-storage-root --session <id> <path>` shows the guide's style
of naming a session), so this simulator implements
``dcv notify-users --session <id> [--title <title>] <message>``: it prints nothing, exits 0
when the session exists, and appends ``{"time", "session", "title", "message", "connections"}``
to the state file's "notices" (what the host simulator shows on ``GET /hosts``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

STATE_ENV = "SIM_DCV_STATE"
FAIL_ENV = "SIM_DCV_FAIL"
UID = 1000
LICENSE_DAYS = 30


class SimError(Exception):
    pass


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def iso_micro(timestamp: float) -> str:
    """``2019-05-14T12:32:14.357567Z``: how the guide shows a last-disconnection-time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def dump(value: Any) -> None:
    print(json.dumps(value, indent=2, separators=(",", " : ")))


def load_state(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        state: dict[str, Any] = {"sessions": [], "connections": 0}
        save_state(path, state)
        return state
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SimError(f"cannot read state file {path}: {exc}") from None
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("sessions", []), list)
        or not isinstance(state.get("connections", 0), int)
    ):
        raise SimError(f"state file {path} is not {{'sessions': [...], 'connections': int}}")
    state.setdefault("sessions", [])
    state.setdefault("connections", 0)
    return state


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Serialise read-modify-write of one state file across processes (``<path>.lock``)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_state(path: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Load, change and save the state file under its lock; the new state."""
    with locked(path):
        state = load_state(path)
        change(state)
        save_state(path, state)
        return state


def set_connections(state: dict[str, Any], count: int, now: float | None = None) -> None:
    """What the host simulator writes: the client count, and when the last client left."""
    previous = int(state.get("connections", 0))
    state["connections"] = count
    if previous > 0 and count == 0:
        state["lastDisconnection"] = iso_micro(time.time() if now is None else now)


def save_state(path: str, state: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sim_dcv.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def last_disconnection(session: dict[str, Any], state: dict[str, Any]) -> str:
    """The state's last disconnection, if it happened while this session existed; else ""."""
    left = state.get("lastDisconnection") or ""
    if not left:
        return ""
    try:
        return left if parse_iso(left) >= parse_iso(session["creation-time"]) else ""
    except ValueError:
        return ""


def session_json(
    session: dict[str, Any], connections: int, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    created = session["creation-time"]
    checked = iso(time.time())
    expires = iso(time.time() + LICENSE_DAYS * 86400)
    return {
        "id": session["id"],
        "owner": session["owner"],
        "name": session["name"],
        "num-of-connections": connections,
        "creation-time": created,
        "last-disconnection-time": last_disconnection(session, state or {}),
        "licenses": [
            {
                "product": product,
                "status": "licensed",
                "check-timestamp": checked,
                "expiration-date": expires,
            }
            for product in ("dcv", "dcv-gl")
        ],
        "storage-root": "",
        "type": session["type"],
        "x11-display": session["x11-display"],
        "x11-authority": f"/run/user/{UID}/dcv/{session['id']}.xauth",
        "display-layout": [{"width": 800, "height": 600, "x": 0, "y": 0}],
    }


def find(state: dict[str, Any], session_id: str) -> dict[str, Any]:
    for session in state["sessions"]:
        if session["id"] == session_id:
            return dict(session)
    raise SimError(f"Could not find session '{session_id}'")


def connections_json(path: str, session: dict[str, Any], count: int) -> list[dict[str, Any]]:
    since = iso(os.path.getmtime(path))  # when the connection count was last written
    return [
        {
            "connection-id": index + 1,
            "user": session["owner"],
            "client-ip": f"198.51.100.{10 + index}",
            "connection-time": since,
        }
        for index in range(count)
    ]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dcv", description="simulated Amazon DCV CLI")
    commands = root.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list-sessions")
    listing.add_argument("-j", "--json", action="store_true")
    for name in ("describe-session", "list-connections"):
        sub = commands.add_parser(name)
        sub.add_argument("-j", "--json", action="store_true")
        sub.add_argument("session_id")
    create = commands.add_parser("create-session")
    create.add_argument("--type", choices=("virtual", "console"))
    create.add_argument("--owner")
    create.add_argument("--permissions-file", dest="permissions_file")
    create.add_argument("--user")
    create.add_argument("--name")
    create.add_argument("--gl", choices=("on", "off"))
    create.add_argument("session_id")
    close = commands.add_parser("close-session")
    close.add_argument("session_id")
    notify = commands.add_parser("notify-users")
    notify.add_argument("--session", required=True, dest="session_id")
    notify.add_argument("--title", default="")
    notify.add_argument("message")
    return root


def run(args: argparse.Namespace, path: str) -> None:
    state = load_state(path)
    count = max(0, state["connections"])
    if getattr(args, "json", True) is False:
        raise SimError("this simulator prints only the JSON output: add -j")
    if args.command == "list-sessions":
        dump([session_json(s, count, state) for s in state["sessions"]])
    elif args.command == "describe-session":
        dump(session_json(find(state, args.session_id), count, state))
    elif args.command == "list-connections":
        dump(connections_json(path, find(state, args.session_id), count))
    else:
        update_state(path, lambda fresh: change(args, fresh))


def change(args: argparse.Namespace, state: dict[str, Any]) -> None:
    """The commands that change the state (run under the state file's lock)."""
    if args.command == "create-session":
        if any(s["id"] == args.session_id for s in state["sessions"]):
            raise SimError(f"A session with id '{args.session_id}' already exists")
        windows = state.get("platform") == "windows"
        if windows and args.type is not None:
            # "--type ... is supported on Linux Amazon DCV servers only" (admin guide, "Starting
            # Amazon DCV sessions"): a Windows server has console sessions only.
            raise SimError("--type is not supported on Windows")
        kind = args.type or ("console" if windows else "virtual")
        if kind == "console" and any(s["type"] == "console" for s in state["sessions"]):
            raise SimError("A console session is already running")
        permissions = None
        if args.permissions_file is not None:
            try:
                with open(args.permissions_file, encoding="utf-8") as handle:
                    permissions = handle.read()
            except OSError as exc:
                raise SimError(f"cannot read permissions file: {exc}") from None
        displays = [int(s["x11-display"][1:]) for s in state["sessions"]]
        state["sessions"].append(
            {
                "id": args.session_id,
                "owner": args.owner or args.user or getpass.getuser(),
                "name": args.name or args.session_id,
                "type": kind,
                "creation-time": iso(time.time()),
                **({"permissions": permissions} if permissions is not None else {}),
                "x11-display": f":{max(displays, default=0) + 1}",
            }
        )
    elif args.command == "close-session":
        find(state, args.session_id)
        state["sessions"] = [s for s in state["sessions"] if s["id"] != args.session_id]
    else:  # notify-users
        find(state, args.session_id)
        notices = state.setdefault("notices", [])
        notices.append(
            {
                "time": iso_micro(time.time()),
                "session": args.session_id,
                "title": args.title,
                "message": args.message,
                "connections": max(0, int(state.get("connections", 0))),
            }
        )


def main(argv: list[str] | None = None) -> int:
    fault = os.environ.get(FAIL_ENV, "")
    if fault == "missing":
        print("dcv: command not found", file=sys.stderr)
        return 127
    if fault == "garbage":
        print("Welcome to DCV <html> this is not JSON {")
        return 0
    if fault == "hang":
        time.sleep(60)
        return 0
    if fault:
        print(f"sim_dcv: unknown {FAIL_ENV} value {fault!r}", file=sys.stderr)
        return 2
    path = os.environ.get(STATE_ENV, "")
    if not path:
        print(f"sim_dcv: set {STATE_ENV} to the state file path", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    try:
        run(args, path)
    except SimError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
