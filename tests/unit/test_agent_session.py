"""Agent.wait_for_session: create once, poll until DCV lists it, bounded by readyTimeoutSeconds."""

from __future__ import annotations

from typing import Any

import pytest

from dcvfleet_agent.agent import Agent, NotReadyError
from dcvfleet_agent.config import load_config
from dcvfleet_agent.dcv import DcvError, DcvSession
from dcvfleet_agent.identity import Identity


class FakeDcv:
    """list_sessions follows a script of session-id lists or DcvErrors (last one repeats)."""

    def __init__(self, *script: Any, create_error: DcvError | None = None) -> None:
        self.script = list(script)
        self.created: list[tuple[str, str]] = []
        self.create_error = create_error

    def list_sessions(self) -> list[DcvSession]:
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, DcvError):
            raise step
        return [DcvSession(s, "owner", "console" if s == "console" else "virtual", 0) for s in step]

    def create_session(self, name: str, owner: str) -> None:
        if self.create_error is not None:
            error, self.create_error = self.create_error, None
            raise error
        self.created.append((name, owner))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def agent(dcv: FakeDcv, clock: Clock, platform: str = "linux", timeout: str = "10") -> Agent:
    config = load_config(
        {
            "DCVFLEET_AGENT_CONFIG": "",
            "DCVFLEET_EVENT_BUS_NAME": "fleet",
            "DCVFLEET_REGION": "us-east-1",
            "DCVFLEET_PLATFORM": platform,
            "DCVFLEET_READY_TIMEOUT_SECONDS": timeout,
        }
    )
    identity = Identity("i-1", "s-1", None)
    return Agent(
        config,
        identity,
        dcv,
        sender=None,
        sleep=clock.sleep,
        clock=clock,
        poll_interval=2,  # type: ignore[arg-type]
    )


@pytest.fixture(autouse=True)
def no_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")


def test_linux_creates_once_then_polls_until_listed() -> None:
    dcv, clock = FakeDcv([], [], [], ["other", "desktop"]), Clock()
    assert agent(dcv, clock).wait_for_session("alice") == "desktop"
    assert dcv.created == [("desktop", "alice")]
    assert clock.sleeps == [2, 2]


def test_create_failure_is_retried_on_the_next_poll(caplog: pytest.LogCaptureFixture) -> None:
    down = DcvError("'dcv create-session' failed with exit code 1: no server")
    dcv, clock = FakeDcv([], [], [], ["desktop"], create_error=down), Clock()
    assert agent(dcv, clock).wait_for_session("alice") == "desktop"
    assert dcv.created == [("desktop", "alice")]
    assert caplog.text.count("DCV not ready yet") == 1


def test_never_listed_raises_after_the_timeout() -> None:
    dcv, clock = FakeDcv(DcvError("'dcv list-sessions' did not finish within 10s")), Clock()
    with pytest.raises(NotReadyError, match=r"within 5s \(last error: .*did not finish"):
        agent(dcv, clock, timeout="5").wait_for_session("alice")
    assert clock.sleeps == [2, 2, 1]
    assert dcv.created == []


def test_windows_uses_the_console_session_and_never_creates() -> None:
    dcv, clock = FakeDcv([], ["console"]), Clock()
    assert agent(dcv, clock, platform="windows").wait_for_session("owner") == "console"
    assert dcv.created == []


def test_windows_prefers_the_configured_session_name() -> None:
    dcv = FakeDcv(["console", "desktop"])
    assert agent(dcv, Clock(), platform="windows").wait_for_session("owner") == "desktop"


def test_windows_without_any_session_times_out_without_creating() -> None:
    dcv, clock = FakeDcv([]), Clock()
    with pytest.raises(NotReadyError, match="session not listed yet"):
        agent(dcv, clock, platform="windows", timeout="3").wait_for_session("alice")
    assert dcv.created == []
