"""Wrapper around the Amazon DCV `dcv` command-line tool.

JSON field names are those of the Amazon DCV Administrator Guide, "Viewing Amazon DCV sessions"
(adminguide/managing-sessions-lifecycle-view), example output of `dcv describe-session <id> --json`:
  "id", "owner", "name", "num-of-connections", "creation-time", "last-disconnection-time",
  "licenses", "storage-root", "type", "x11-display", "x11-authority", "display-layout".
The guide does not print `dcv list-sessions -j`; the CLI prints a JSON array of those session
objects. Older editions of the same page show `{ "sessions": [ { "id": ..., "owner": ... } ] }`
for Windows servers, so that wrapper is accepted too.
`dcv list-connections -j <session>` is not shown in the guide; only its outer shape (a JSON
array with one object per client connection) is relied on here, plus an optional
"last-interaction-time" per connection when one carries it. The guide's "Finding and stopping idle
sessions" page reads "num-of-connections" and "last-disconnection-time" (ISO-8601 UTC, "" when the
session was never disconnected) from `dcv describe-session <id> -j`, as the idle monitor does.
Every failure surfaces as one DcvError with a readable message.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .proc import Runner, run_command

#: The session owner may use every feature, nobody else any ("%owner% allow builtin"): admin
#: guide, "Understanding permissions files"
#: (https://docs.aws.amazon.com/dcv/latest/adminguide/security-authorization-file-create.html).
OWNER_ONLY_PERMISSIONS = "[permissions]\n%owner% allow builtin\n"


class DcvError(Exception):
    pass


def same_windows_user(reported: str, user: str) -> bool:
    """Whether DCV's owner names the local account `user`: Windows account names ignore case,
    and an owner may be printed with its machine's name (``HOST\\user``)."""
    return reported.rpartition("\\")[2].casefold() == user.casefold()


@dataclass(frozen=True)
class DcvSession:
    id: str
    owner: str
    type: str
    num_connections: int | None


def _tail(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


class DcvCli:
    def __init__(self, command: Sequence[str], timeout: float, run: Runner = run_command) -> None:
        self.command = tuple(command)
        self.timeout = timeout
        self._run_command = run

    def _run(self, *args: str) -> str:
        label = f"dcv {args[0]}"
        try:
            result = self._run_command([*self.command, *args], timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DcvError(f"'{label}' did not finish within {self.timeout:g}s") from None
        except OSError as exc:
            raise DcvError(
                f"cannot run {self.command[0]!r} ({exc.strerror or exc}); "
                "is Amazon DCV Server installed?"
            ) from None
        if result.returncode == 127:
            raise DcvError(
                f"'{' '.join(self.command)}' exited 127 (command not found); "
                "is Amazon DCV Server installed?"
            )
        if result.returncode != 0:
            detail = _tail(result.stderr or result.stdout) or "no output"
            raise DcvError(f"'{label}' failed with exit code {result.returncode}: {detail}")
        return result.stdout

    def _json(self, *args: str) -> Any:
        output = self._run(*args)
        try:
            return json.loads(output)
        except ValueError:
            raise DcvError(
                f"'dcv {args[0]}' printed something that is not JSON: {_tail(output)!r}"
            ) from None

    def list_sessions(self) -> list[DcvSession]:
        data = self._json("list-sessions", "-j")
        if isinstance(data, dict) and isinstance(data.get("sessions"), list):
            data = data["sessions"]
        if not isinstance(data, list):
            raise DcvError(f"'dcv list-sessions -j' printed a {type(data).__name__}, not a list")
        sessions = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise DcvError(f"'dcv list-sessions -j' printed a session without an id: {item!r}")
            count = item.get("num-of-connections")
            sessions.append(
                DcvSession(
                    id=item["id"],
                    owner=str(item.get("owner", "")),
                    type=str(item.get("type", "")),
                    num_connections=count if isinstance(count, int) else None,
                )
            )
        return sessions

    def describe_session(self, session_id: str) -> dict[str, Any]:
        data = self._json("describe-session", session_id, "-j")
        if not isinstance(data, dict):
            raise DcvError(f"'dcv describe-session {session_id} -j' did not print a session object")
        return data

    def list_connections(self, session_id: str) -> list[dict[str, Any]]:
        data = self._json("list-connections", "-j", session_id)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise DcvError(
                f"'dcv list-connections -j {session_id}' did not print a list of connections"
            )
        return data

    def create_session(self, name: str, owner: str) -> None:
        """Linux virtual session owned by `owner` (Windows uses its existing console session).

        `--gl on`: OpenGL through dcv-gl on the GPU's X server, not in software (the host
        installs nice-dcv-gl; docs/host-linux.md,
        https://docs.aws.amazon.com/dcv/latest/adminguide/managing-sessions-start.html).
        """
        self._run("create-session", "--type", "virtual", "--owner", owner, "--gl", "on", name)

    def own_console(self, session_id: str, owner: str, *, close_first: bool) -> None:
        """Windows: make the console session `owner`'s. DCV Server creates it at boot owned by
        Administrator, and its default permissions admit only the owner ("The default
        permissions grants only the session owner full access to all features", admin guide,
        "Managing Amazon DCV Session authorization",
        https://docs.aws.amazon.com/dcv/latest/adminguide/managing-session-perms.html). So the
        session is closed and created again with `--owner` and a permissions file that admits
        the owner (admin guide, "Starting Amazon DCV sessions": on Windows `create-session`
        takes no `--type`, a Windows server runs console sessions only, one at a time,
        https://docs.aws.amazon.com/dcv/latest/adminguide/managing-sessions-start.html)."""
        if close_first:
            self._run("close-session", session_id)
        # A folder of its own (not a fixed name in a temp folder every user may write to); DCV
        # reads the file when it creates the session.
        try:
            with tempfile.TemporaryDirectory(prefix="dcvfleet-") as folder:
                path = os.path.join(folder, "console.perm")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(OWNER_ONLY_PERMISSIONS)
                self._run(
                    "create-session", "--owner", owner, "--permissions-file", path, session_id
                )
        except OSError as exc:
            raise DcvError(f"cannot write the console session's permissions file: {exc}") from None
