"""The simulated ``dcv`` and ``nvidia-smi`` of the local stack's hosts, run as an agent runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.sim import dcv as sim_dcv
from local.sim import nvidia_smi as sim_nvidia_smi

SIM_DCV = Path(sim_dcv.__file__)
SIM_NVIDIA_SMI = Path(sim_nvidia_smi.__file__)


def run_by_path(
    script: Path, variable: str, state: Path, *args: str, check: bool
) -> subprocess.CompletedProcess[str]:
    """A stand-in as a host's shim runs it: by path, ``-S``, its state file in ``variable``."""
    return subprocess.run(
        [sys.executable, "-S", str(script), *args],
        env={**os.environ, variable: str(state)},
        capture_output=True,
        text=True,
        check=check,
    )


def dcv(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_by_path(SIM_DCV, "SIM_DCV_STATE", state, *args, check=check)


def describe(state: Path, session_id: str = "desktop") -> dict[str, Any]:
    out: dict[str, Any] = json.loads(dcv(state, "describe-session", "-j", session_id).stdout)
    return out


def set_connections(state: Path, count: int, now: float | None = None) -> None:
    sim_dcv.update_state(str(state), lambda s: sim_dcv.set_connections(s, count, now))


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_last_disconnection_is_recorded_when_the_last_client_leaves(tmp_path: Path) -> None:
    state = tmp_path / "dcv-state.json"
    dcv(state, "create-session", "--owner", "dcvuser", "desktop")
    assert describe(state)["last-disconnection-time"] == ""
    set_connections(state, 2)
    set_connections(state, 1)  # one client left, one still there: not a disconnection
    assert describe(state)["last-disconnection-time"] == ""
    before = datetime.now(UTC)
    set_connections(state, 0)
    left = describe(state)["last-disconnection-time"]
    assert left.endswith("Z")
    assert before - timedelta(seconds=1) <= parse(left) <= datetime.now(UTC)
    # 0 -> 0 changes nothing; the listing shows it too
    set_connections(state, 0)
    assert describe(state)["last-disconnection-time"] == left
    listed = json.loads(dcv(state, "list-sessions", "-j").stdout)
    assert [s["last-disconnection-time"] for s in listed] == [left]
    assert json.loads(state.read_text())["lastDisconnection"] == left


def test_a_session_created_after_the_last_disconnection_shows_none(tmp_path: Path) -> None:
    # Given a host whose last client left a minute ago (a reboot keeps that in the state file)
    state = tmp_path / "dcv-state.json"
    set_connections(state, 1)
    set_connections(state, 0, now=datetime.now(UTC).timestamp() - 60)
    # When a new session is created
    dcv(state, "create-session", "desktop")
    # Then it has never been disconnected
    assert describe(state)["last-disconnection-time"] == ""


def test_an_old_state_file_still_loads(tmp_path: Path) -> None:
    state = tmp_path / "dcv-state.json"
    created = "2026-01-01T00:00:00Z"
    session = {
        "id": "desktop",
        "owner": "dcvuser",
        "name": "desktop",
        "type": "virtual",
        "creation-time": created,
        "x11-display": ":1",
    }
    state.write_text(json.dumps({"sessions": [session], "connections": 1}))
    assert describe(state)["num-of-connections"] == 1
    assert describe(state)["last-disconnection-time"] == ""
    assert len(json.loads(dcv(state, "list-connections", "-j", "desktop").stdout)) == 1


def test_notify_users_records_each_notice(tmp_path: Path) -> None:
    state = tmp_path / "dcv-state.json"
    dcv(state, "create-session", "desktop")
    set_connections(state, 1)
    result = dcv(state, "notify-users", "--session", "desktop", "--title", "Idle", "Stopping soon.")
    assert result.stdout == ""
    dcv(state, "notify-users", "--session", "desktop", "Second notice")
    notices = json.loads(state.read_text())["notices"]
    assert [(n["title"], n["message"], n["connections"]) for n in notices] == [
        ("Idle", "Stopping soon.", 1),
        ("", "Second notice", 1),
    ]
    assert all(n["session"] == "desktop" and n["time"].endswith("Z") for n in notices)


def test_notify_users_needs_an_existing_session(tmp_path: Path) -> None:
    state = tmp_path / "dcv-state.json"
    result = dcv(state, "notify-users", "--session", "nope", "hello", check=False)
    assert result.returncode == 1
    assert "Could not find session 'nope'" in result.stderr
    assert "notices" not in json.loads(state.read_text())


def nvidia_smi(activity: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_by_path(SIM_NVIDIA_SMI, "SIM_GPU_STATE", activity, *args, check=False)


QUERY = "--query-gpu=utilization.gpu,utilization.encoder"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("csv,noheader,nounits", "35, 12\n"),
        ("csv,noheader", "35 %, 12 %\n"),
        ("csv", "utilization.gpu [%], utilization.encoder [%]\n35 %, 12 %\n"),
    ],
)
def test_nvidia_smi_prints_the_set_utilisation(tmp_path: Path, fmt: str, expected: str) -> None:
    activity = tmp_path / "activity.json"
    activity.write_text(json.dumps({"gpuPercent": 35, "encoderPercent": 12}))
    result = nvidia_smi(activity, QUERY, f"--format={fmt}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_nvidia_smi_without_state_is_idle_and_rejects_unknown_fields(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    assert nvidia_smi(missing, QUERY, "--format=csv,noheader,nounits").stdout == "0, 0\n"
    bad = nvidia_smi(missing, "--query-gpu=utilization.nope", "--format=csv")
    assert bad.returncode == 2
    assert 'Field "utilization.nope" is not a valid field to query.' in bad.stderr
