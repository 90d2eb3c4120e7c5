"""The simulated user commands a container's agent runs (local/sim/users.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dcvfleet_agent.users import _WINDOWS_SCRIPT, Credentials, ensure_os_user
from local.sim import users as sim_users

SCRIPT = Path(sim_users.__file__)


def _run(state: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", str(SCRIPT), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, sim_users.STATE_ENV: str(state)},
        check=False,
    )


def test_a_user_is_made_and_given_a_password_as_the_agent_does(tmp_path: Path) -> None:
    state = tmp_path / "users.json"
    assert _run(state, "id", "-u", "alice").returncode == 1
    assert _run(state, "useradd", "-m", "alice").returncode == 0
    found = _run(state, "id", "-u", "alice")
    assert (found.returncode, found.stdout) == (0, "1000\n")
    assert _run(state, "chpasswd", stdin="alice:S3cret-pw\n").returncode == 0
    users = json.loads(state.read_text())["users"]
    assert users["alice"]["passwordSha256"] == hashlib.sha256(b"S3cret-pw").hexdigest()
    assert "S3cret-pw" not in state.read_text()


def test_what_the_real_commands_refuse_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "users.json"
    assert _run(state, "useradd", "-m", "alice").returncode == 0
    assert _run(state, "useradd", "-m", "alice").returncode == 9
    assert _run(state, "chpasswd", stdin="bob:pw\n").returncode == 1
    assert _run(state, "usermod", "alice").returncode == 127
    assert _run(state, "useradd", "-m", "bob").returncode == 0
    assert _run(state, "id", "-u", "bob").stdout == "1001\n"


def _windows_runner(state: Path) -> Any:
    """The agent's Runner, with ``powershell.exe`` answered by the simulated account store."""

    def run(
        argv: list[str], input_text: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert argv[0] == "powershell.exe", argv
        return _run(state, *argv, stdin=input_text or "")

    return run


def test_the_agents_windows_account_script_makes_a_user_in_builtin_users(tmp_path: Path) -> None:
    state = tmp_path / "users.json"
    creds = Credentials(username="dcvalexandrako341175", password="S3cret-pw")
    assert ensure_os_user("windows", creds, _windows_runner(state)) is True
    assert ensure_os_user("windows", creds, _windows_runner(state)) is False  # exists: updated
    users = json.loads(state.read_text())["users"]
    assert list(users) == ["dcvalexandrako341175"]
    assert users["dcvalexandrako341175"]["groups"] == [sim_users.USERS_SID]
    assert (
        users["dcvalexandrako341175"]["passwordSha256"] == hashlib.sha256(b"S3cret-pw").hexdigest()
    )


def test_new_local_user_refuses_a_name_over_20_characters(tmp_path: Path) -> None:
    # The agent's script without its own length check: the account store itself refuses,
    # as Windows does (USER_INFO_0: "User account names are limited to 20 characters").
    script = "; ".join(
        line
        for line in _WINDOWS_SCRIPT.format(user="dcv" + "a" * 18).split("; ")
        if "Length" not in line
    )
    state = tmp_path / "users.json"
    refused = _run(state, "powershell.exe", "-Command", script, stdin="pw\n")
    assert refused.returncode == 1
    assert "New-LocalUser" in refused.stderr
    assert "at most 20 characters" in refused.stderr
    assert not state.exists()
    made = _run(
        state, "powershell.exe", "-Command", script.replace("a" * 18, "a" * 17), stdin="pw\n"
    )
    assert (made.returncode, made.stdout) == (0, "created\n")


def test_powershell_runs_only_the_agents_account_script(tmp_path: Path) -> None:
    other = _run(tmp_path / "users.json", "powershell.exe", "-Command", "Get-Process")
    assert other.returncode == 1
    assert "only the agent's account script" in other.stderr
