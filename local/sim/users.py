"""A simulated container's user accounts: ``id -u``, ``useradd -m`` and ``chpasswd``, the three
commands the agent runs to make the desktop user from the session secret (manageUser).

Run as ``python local/sim/users.py <command> <args>`` through the ``id``, ``useradd`` and
``chpasswd`` shims on the container's PATH. The accounts live in the JSON file ``$SIM_USERS_STATE``:
``{"users": {"<name>": {"uid": N, "passwordSha256": "<hex>" | null}}}``; a password is kept only
as its SHA-256, so the file shows that (and which) password was set without holding it.

On a simulated Windows host the same store answers ``powershell.exe -Command <script>`` for the
agent's account script (``dcvfleet_agent.users``): it recognizes the cmdlets the script runs
(Get-LocalUser, Set-LocalUser, New-LocalUser, Get-/Add-LocalGroupMember by the BUILTIN\\Users
SID) and does what they do to the store; any other script is refused. New-LocalUser refuses a
name over WINDOWS_MAX_USERNAME characters, as Windows does ("User account names are limited to
20 characters", https://learn.microsoft.com/en-us/windows/win32/api/lmaccess/ns-lmaccess-user_info_0),
so a name the agent was given too long fails here as on a real host. An account's
``groups`` lists the SIDs of the local groups it was added to.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
from typing import Any

STATE_ENV = "SIM_USERS_STATE"
FIRST_UID = 1000
WINDOWS_MAX_USERNAME = 20
USERS_SID = "S-1-5-32-545"
_NAME = re.compile(r"\$name = '([^']*)'")
_ADD_TO_USERS = re.compile(r"Add-LocalGroupMember -SID '" + USERS_SID + r"' -Member \$name")


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data: dict[str, Any] = json.load(handle)
            return data
    except (FileNotFoundError, ValueError):
        return {"users": {}}


def _save(path: str, state: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=2)
    os.replace(tmp, path)


def run(argv: list[str], stdin: str, state: dict[str, Any]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command; ``state`` is changed in place."""
    users: dict[str, Any] = state.setdefault("users", {})
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    names = [a for a in args if not a.startswith("-")]
    if command == "id":
        name = names[0] if names else ""
        if name not in users:
            return 1, "", f"id: '{name}': no such user\n"
        return 0, f"{users[name]['uid']}\n", ""
    if command == "useradd":
        if len(names) != 1:
            return 2, "", "Usage: useradd [options] LOGIN\n"
        if names[0] in users:
            return 9, "", f"useradd: user '{names[0]}' already exists\n"
        uid = max([FIRST_UID - 1, *(u["uid"] for u in users.values())]) + 1
        users[names[0]] = {"uid": uid, "passwordSha256": None}
        return 0, "", ""
    if command == "chpasswd":
        for line in stdin.splitlines():
            name, sep, password = line.partition(":")
            if not sep or name not in users:
                return 1, "", f"chpasswd: line 1: user '{name}' does not exist\n"
            users[name]["passwordSha256"] = hashlib.sha256(password.encode()).hexdigest()
        return 0, "", ""
    if command == "powershell.exe":
        return _powershell(args, stdin, users)
    return 127, "", f"{command}: command not found\n"


def _powershell(args: list[str], stdin: str, users: dict[str, Any]) -> tuple[int, str, str]:
    """The agent's account script: set the password of account ``$name`` (from the first line
    of stdin), creating it if missing, and put it in BUILTIN\\Users once."""
    script = args[args.index("-Command") + 1] if "-Command" in args[:-1] else ""
    name = _NAME.search(script)
    cmdlets = ("Get-LocalUser", "Set-LocalUser", "New-LocalUser", "Add-LocalGroupMember")
    if name is None or not all(cmdlet in script for cmdlet in cmdlets):
        return 1, "", "the simulated powershell.exe runs only the agent's account script\n"
    user = name.group(1)
    if f"$name.Length -gt {WINDOWS_MAX_USERNAME}" in script and len(user) > WINDOWS_MAX_USERNAME:
        return 1, "", f"user name {user} is over {WINDOWS_MAX_USERNAME} characters\n"
    password = stdin.splitlines()[0] if stdin else ""
    digest = hashlib.sha256(password.encode()).hexdigest()
    created = user not in users
    if created:
        if len(user) > WINDOWS_MAX_USERNAME:
            return (
                1,
                "",
                f"New-LocalUser : The name {user} is too long: a local account name has at most "
                f"{WINDOWS_MAX_USERNAME} characters.\n",
            )
        sid = 1000 + len(users)
        users[user] = {"uid": sid, "passwordSha256": digest, "groups": []}
    else:
        users[user]["passwordSha256"] = digest
    groups: list[str] = users[user].setdefault("groups", [])
    if _ADD_TO_USERS.search(script) and USERS_SID not in groups:
        groups.append(USERS_SID)
    return 0, "created\n" if created and "'created'" in script else "", ""


def main(argv: list[str]) -> int:
    path = os.environ.get(STATE_ENV)
    if not path:
        sys.stderr.write(f"{STATE_ENV} is not set\n")
        return 2
    reads_stdin = bool(argv) and argv[0] in ("chpasswd", "powershell.exe") and sys.stdin is not None
    stdin = sys.stdin.read() if reads_stdin else ""
    with open(f"{path}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = _load(path)
        code, out, err = run(argv, stdin, state)
        if code == 0 and argv and argv[0] != "id":
            _save(path, state)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
