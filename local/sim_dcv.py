#!/usr/bin/env python3
"""Simulated Amazon DCV `dcv` CLI for the local emulator's hosts (stdlib only).

    SIM_DCV_STATE=/tmp/host1.json python3 local/sim_dcv.py list-sessions -j

State file (created if missing, written atomically): {"sessions": [...], "connections": N}.
"connections" is written by another process (the emulator) and is how many clients every
session reports. SIM_DCV_FAIL=missing|garbage|hang makes every command fail like a broken
install: exit 127 / non-JSON output / sleep 60 s.

Output shapes follow the Amazon DCV Administrator Guide, "Viewing Amazon DCV sessions": a
session object has the fields of `dcv describe-session <id> --json` ("id", "owner", "name",
"num-of-connections", "creation-time", "last-disconnection-time", "licenses", "storage-root",
"type", "x11-display", "x11-authority", "display-layout"), printed with the guide's
`"key" : value` spacing. `list-sessions -j` prints a JSON array of those objects. The guide
does not show `list-connections -j`; this prints a JSON array with one object per client
connection ("connection-id", "user", "client-ip", "connection-time"). Error texts of the real
CLI are not in the guide either: errors here go to stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
import time
from typing import Any

STATE_ENV = "SIM_DCV_STATE"
FAIL_ENV = "SIM_DCV_FAIL"
UID = 1000
LICENSE_DAYS = 30


class SimError(Exception):
    pass


def iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


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


def session_json(session: dict[str, Any], connections: int) -> dict[str, Any]:
    created = session["creation-time"]
    checked = iso(time.time())
    expires = iso(time.time() + LICENSE_DAYS * 86400)
    return {
        "id": session["id"],
        "owner": session["owner"],
        "name": session["name"],
        "num-of-connections": connections,
        "creation-time": created,
        "last-disconnection-time": "",
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
    create.add_argument("--type", choices=("virtual", "console"), default="virtual")
    create.add_argument("--owner")
    create.add_argument("--user")
    create.add_argument("--name")
    create.add_argument("session_id")
    close = commands.add_parser("close-session")
    close.add_argument("session_id")
    return root


def run(args: argparse.Namespace, path: str) -> None:
    state = load_state(path)
    count = max(0, state["connections"])
    if getattr(args, "json", True) is False:
        raise SimError("this simulator prints only the JSON output: add -j")
    if args.command == "list-sessions":
        dump([session_json(s, count) for s in state["sessions"]])
    elif args.command == "describe-session":
        dump(session_json(find(state, args.session_id), count))
    elif args.command == "list-connections":
        dump(connections_json(path, find(state, args.session_id), count))
    elif args.command == "create-session":
        if any(s["id"] == args.session_id for s in state["sessions"]):
            raise SimError(f"A session with id '{args.session_id}' already exists")
        if args.type == "console" and any(s["type"] == "console" for s in state["sessions"]):
            raise SimError("A console session is already running")
        displays = [int(s["x11-display"][1:]) for s in state["sessions"]]
        state["sessions"].append(
            {
                "id": args.session_id,
                "owner": args.owner or args.user or getpass.getuser(),
                "name": args.name or args.session_id,
                "type": args.type,
                "creation-time": iso(time.time()),
                "x11-display": f":{max(displays, default=0) + 1}",
            }
        )
        save_state(path, state)
    else:  # close-session
        find(state, args.session_id)
        state["sessions"] = [s for s in state["sessions"] if s["id"] != args.session_id]
        save_state(path, state)


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
