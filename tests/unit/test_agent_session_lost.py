"""A DCV session that DCV itself closed (its user logged out, or its desktop process exited: a
virtual session ends with its session's init process) against local/sim/dcv.py: the host counts
as idle, and on Linux the agent creates the session again for its user; a `dcv` that cannot
answer at all still counts as not idle."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dcvfleet_agent.agent import Agent
from dcvfleet_agent.config import load_config
from dcvfleet_agent.dcv import DcvCli
from dcvfleet_agent.events import EventSender
from dcvfleet_agent.identity import Identity
from dcvfleet_agent.monitor import HOST_HEARTBEAT, SESSION_IDLE
from dcvfleet_agent.signals import DcvSignal
from tests.support.sim_dcv import DCV, fresh_dcv_state


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = fresh_dcv_state(tmp_path, monkeypatch)
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")
    return path


def sim(*args: str) -> None:
    subprocess.run([*DCV, *args], capture_output=True, text=True, check=True)


def sessions(path: Path) -> list[tuple[str, str]]:
    return [(s["id"], s["owner"]) for s in json.loads(path.read_text())["sessions"]]


class Events:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.delivered.extend((e["DetailType"], json.loads(e["Detail"])) for e in Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


def agent(platform: str, events: Events | None = None, now: list[float] | None = None) -> Agent:
    config = load_config(
        {
            "DCVFLEET_AGENT_CONFIG": "",
            "DCVFLEET_EVENT_BUS_NAME": "fleet",
            "DCVFLEET_REGION": "us-east-1",
            "DCVFLEET_PLATFORM": platform,
            "DCVFLEET_SAMPLE_INTERVAL_SECONDS": "10",
            "DCVFLEET_IDLE_TIMEOUT_SECONDS": "30",
            "DCVFLEET_CPU_THRESHOLD_PERCENT": "null",
            "DCVFLEET_GPU_THRESHOLD_PERCENT": "null",
        }
    )
    sender = EventSender(events or Events(), "fleet", sleep=lambda s: None)
    at = now or [0.0]
    the_agent = Agent(
        config,
        Identity("i-1", "s-1", None),
        DcvCli(DCV, 10),
        sender,
        clock=lambda: at[0],
        wall=lambda: 1_795_000_000.0 + at[0],
    )
    the_agent.dcv_session_id, the_agent.owner = "desktop", "alice"
    return the_agent


def test_given_a_closed_session_then_dcv_reads_idle_and_says_so(state: Path) -> None:
    sim("create-session", "--type", "virtual", "--owner", "alice", "desktop")
    told: list[str] = []
    signal = DcvSignal(DcvCli(DCV, 10), "desktop", 60, on_gone=lambda: told.append("gone"))
    assert signal.sample() is not None
    assert told == []
    # Given the user logs out: DCV closes the virtual session
    sim("close-session", "desktop")
    # Then the host has nobody to serve: idle, with no connection
    reading = signal.sample()
    assert reading is not None
    assert reading.values == {
        "idle": True,
        "connections": 0,
        "lastDisconnectAt": None,
        "lastInteractionAt": None,
    }
    assert told == ["gone"]


def test_given_a_closed_session_and_no_callback_then_dcv_is_unreadable(state: Path) -> None:
    # a container's agent ends with its session instead (the monitor asks session_ended)
    sim("create-session", "--type", "virtual", "--owner", "alice", "desktop")
    sim("close-session", "desktop")
    reading = DcvSignal(DcvCli(DCV, 10), "desktop", 60).sample()
    assert reading is not None
    assert reading.values["idle"] is None
    assert "desktop" in reading.values["error"]


def test_given_dcv_cannot_answer_at_all_then_the_host_is_not_counted_idle(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim("create-session", "--type", "virtual", "--owner", "alice", "desktop")
    monkeypatch.setenv("SIM_DCV_FAIL", "garbage")
    told: list[str] = []
    signal = DcvSignal(DcvCli(DCV, 10), "desktop", 60, on_gone=lambda: told.append("gone"))
    reading = signal.sample()
    assert reading is not None
    assert reading.values["idle"] is None
    assert "not JSON" in reading.values["error"]
    assert told == []


def test_on_linux_the_agent_creates_the_session_again_for_its_user(state: Path) -> None:
    sim("create-session", "--type", "virtual", "--owner", "alice", "desktop")
    sim("close-session", "desktop")
    agent("linux").session_lost()
    assert sessions(state) == [("desktop", "alice")]


def test_on_windows_the_agent_leaves_the_console_session_to_dcv_server(state: Path) -> None:
    sim("create-session", "--type", "console", "--owner", "Administrator", "console")
    sim("close-session", "console")
    windows = agent("windows")
    windows.dcv_session_id = "console"
    windows.session_lost()
    assert sessions(state) == []


def test_a_session_closed_by_its_user_comes_back_and_the_idle_clock_runs_on(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor as the agent builds it on Linux: the user is connected, then logs out at
    t=20 (DCV closes the session); the agent reports idle from the next sample, creates the
    session again, and sends Session Idle once the idle timeout has passed since then."""
    sim("create-session", "--type", "virtual", "--owner", "alice", "desktop")
    sim_state = json.loads(state.read_text())
    state.write_text(json.dumps({**sim_state, "connections": 1}))
    events, now = Events(), [0.0]
    linux = agent("linux", events, now)

    def wait(seconds: float) -> bool:
        now[0] += seconds
        if now[0] == 20:  # the user logs out: the client leaves, DCV closes the session
            state.write_text(json.dumps({**json.loads(state.read_text()), "connections": 0}))
            sim("close-session", "desktop")
        return now[0] > 70

    linux.monitor(wait).run()
    assert sessions(state) == [("desktop", "alice")]
    beats = [d for kind, d in events.delivered if kind == HOST_HEARTBEAT]
    assert [b["idle"] for b in beats][:2] == [False, True]
    assert all("error" not in b["signals"]["dcv"] for b in beats)
    [idle] = [d for kind, d in events.delivered if kind == SESSION_IDLE]
    assert idle["idleSeconds"] == 30  # idle since the first sample after the logout (t=20)
