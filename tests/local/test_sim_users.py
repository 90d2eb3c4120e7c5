"""The simulated user commands a container's agent runs (local/sim_users.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from local import sim_users

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
