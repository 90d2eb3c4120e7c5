"""A host that slept (EC2 hibernated it, then resumed it): the agent notices the jump in time
between two samples, sends nothing from before the sleep (no stale Session Idle), and gets
ready again (a fresh Host Ready, which the resume waits for) with a fresh idle state. Run with
the real Agent against local/sim/dcv.py and injected clocks."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dcvfleet_agent.agent import HOST_READY, Agent
from dcvfleet_agent.aws import AwsError
from dcvfleet_agent.config import load_config
from dcvfleet_agent.dcv import DcvCli
from dcvfleet_agent.events import EventSender
from dcvfleet_agent.identity import Identity
from dcvfleet_agent.monitor import HOST_HEARTBEAT, SESSION_IDLE
from dcvfleet_agent.proc import run_command
from dcvfleet_agent.signals import parse_time
from tests.support.sim_dcv import DCV, fresh_dcv_state

EPOCH = 1_795_000_000.0


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = fresh_dcv_state(tmp_path, monkeypatch)
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")
    return path


class Events:
    def __init__(self) -> None:
        self.down = False
        self.delivered: list[tuple[str, dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, str]]) -> dict[str, Any]:
        if self.down:
            raise AwsError("ConnectionError", "network unreachable")
        self.delivered.extend((e["DetailType"], json.loads(e["Detail"])) for e in Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}

    def at(self, detail_type: str) -> list[float]:
        """When each event of that type was sent, in wall seconds since EPOCH."""
        stamps = [parse_time(d["sentAt"]) for kind, d in self.delivered if kind == detail_type]
        return [round(s - EPOCH) for s in stamps if s is not None]


class Host:
    """The host's two clocks. sleep(): the machine is suspended (the wall clock moves on, the
    monotonic one does not); freeze(): the process is stopped (both move on)."""

    def __init__(self, stop_at: float) -> None:
        self.mono = 0.0
        self.wall_offset = 0.0
        self.stop_at = stop_at
        self.plan: dict[float, tuple[str, float]] = {}

    def wall(self) -> float:
        return EPOCH + self.mono + self.wall_offset

    def wait(self, seconds: float) -> bool:
        self.mono += seconds
        self.happen(self.plan.pop(self.mono, None))
        return self.wall() - EPOCH > self.stop_at

    def happen(self, what: tuple[str, float] | None) -> None:
        if what is not None:
            kind, length = what
            if kind == "freeze":
                self.mono += length  # the wall clock follows it
            else:
                self.wall_offset += length

    def dcv(self, during_sample: dict[float, tuple[str, float]]) -> DcvCli:
        """The simulated dcv, on which the host sleeps (or is frozen) in the middle of the
        sample taken at each of `during_sample`'s monotonic times: once dcv has answered."""

        def run(
            argv: Sequence[str], *, input_text: str | None = None, timeout: float | None = None
        ) -> subprocess.CompletedProcess[str]:
            done = run_command(argv, input_text=input_text, timeout=timeout)
            if "describe-session" in argv:
                self.happen(during_sample.pop(self.mono, None))
            return done

        return DcvCli(DCV, 10, run=run)


def agent(host: Host, events: Events, gap: str = "120", dcv: DcvCli | None = None) -> Agent:
    config = load_config(
        {
            "DCVFLEET_AGENT_CONFIG": "",
            "DCVFLEET_EVENT_BUS_NAME": "fleet",
            "DCVFLEET_REGION": "us-east-1",
            "DCVFLEET_PLATFORM": "linux",
            "DCVFLEET_MANAGE_USER": "false",
            "DCVFLEET_SAMPLE_INTERVAL_SECONDS": "10",
            "DCVFLEET_HEARTBEAT_INTERVAL_SECONDS": "60",
            "DCVFLEET_IDLE_TIMEOUT_SECONDS": "60",
            "DCVFLEET_CPU_THRESHOLD_PERCENT": "null",
            "DCVFLEET_GPU_THRESHOLD_PERCENT": "null",
            "DCVFLEET_RESUME_GAP_SECONDS": gap,
        }
    )
    sender = EventSender(events, "fleet", max_attempts=1, sleep=lambda s: None)
    return Agent(
        config,
        Identity("i-1", "s-1", None),
        dcv or DcvCli(DCV, 10),
        sender,
        sleep=lambda s: None,
        clock=lambda: host.mono,
        wall=host.wall,
    )


@pytest.mark.parametrize("kind", ["sleep", "freeze"])
def test_after_hibernation_the_agent_is_ready_again_and_sends_no_stale_session_idle(
    kind: str,
) -> None:
    # Given an idle host (no client; idle since its first sample, t=10; Session Idle due at
    # t=70) that hibernates after the sample at t=50, for an hour
    host, events = Host(stop_at=3600 + 130), Events()
    host.plan[60.0] = (kind, 3600.0)
    # When the agent runs through the sleep
    assert agent(host, events).run(host.wait) == 0
    # Then no Session Idle from the time before: the idle clock starts again after the resume
    # (first idle sample at 3670, timeout 60 s)
    assert events.at(SESSION_IDLE) == [3730]
    # and Host Ready at the start and again at the first sample after the sleep
    assert events.at(HOST_READY) == [0, 3660]
    assert events.at(HOST_HEARTBEAT) == [10, 3670, 3730]


@pytest.mark.parametrize("kind", ["sleep", "freeze"])
def test_a_sleep_in_the_middle_of_a_sample_sends_no_stale_session_idle(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an idle host (idle since its first sample, t=10) that hibernates for an hour in the
    # middle of its sample at t=60 (dcv has answered; the idle state has not yet been updated)
    caplog.set_level(logging.INFO, logger="dcvfleet_agent")
    host, events = Host(stop_at=3600 + 130), Events()
    the_agent = agent(host, events, dcv=host.dcv({60.0: (kind, 3600.0)}))
    # When the agent runs through the sleep
    assert the_agent.run(host.wait) == 0
    # Then that sample sends nothing (no Session Idle whose idle period began an hour before
    # it, which would have been sent at 3660 with idleSince t=10): the agent is ready again at
    # once, and the idle clock starts again after the resume (first idle sample at 3670)
    assert events.at(SESSION_IDLE) == [3730]
    assert events.at(HOST_READY) == [0, 3660]
    assert events.at(HOST_HEARTBEAT) == [10, 3670, 3730]
    # and the log says where the sleep was noticed
    [noticed] = [r for r in caplog.records if r.getMessage().startswith("the host has slept")]
    assert noticed.fields["during"] == "a sample"  # type: ignore[attr-defined]


def test_events_buffered_before_the_sleep_are_not_sent_after_it() -> None:
    # Given the network is down when the host hibernates, with a Session Idle buffered
    host, events = Host(stop_at=3600 + 80), Events()
    host.plan[80.0] = ("sleep", 3600.0)
    the_agent = agent(host, events)
    assert the_agent.run_once_ready() == 0
    events.down, events.delivered = True, []
    watch = the_agent.monitor(host.wait)
    watch.run()
    # Then the monitor ends on the resume with its buffer dropped, nothing delivered
    assert watch.resumed
    assert watch.sender.pending == 0
    assert events.delivered == []


def test_a_slow_sample_or_a_small_clock_step_is_not_a_sleep() -> None:
    host, events = Host(stop_at=180), Events()
    host.plan[30.0] = ("freeze", 100.0)  # 100 s stuck (hung commands), gap allows 120 s
    host.plan[150.0] = ("sleep", -30.0)  # an NTP step back
    assert agent(host, events).run(host.wait) == 0
    assert events.at(HOST_READY) == [0]
    assert events.at(SESSION_IDLE) == [130]  # the idle run went on through both
