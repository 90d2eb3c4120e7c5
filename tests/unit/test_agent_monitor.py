"""The idle monitor with an injected clock: the idle timer, Host Heartbeat cadence, Session Idle
once then as a reminder, delivery while the network is down, and that what it emits is what the
control plane's JSON Schemas accept."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dcvfleet_agent.aws import AwsError
from dcvfleet_agent.dcv import DcvCli
from dcvfleet_agent.events import EventSender
from dcvfleet_agent.logs import iso_utc
from dcvfleet_agent.monitor import HOST_HEARTBEAT, SESSION_IDLE, Monitor
from dcvfleet_agent.signals import (
    DcvSignal,
    GpuSignal,
    ProcessSignal,
    ProcStatCpu,
    Reading,
    Signal,
    TypeperfCpu,
    parse_time,
)
from tests.support.typeperf import FakeTypeperf, Spawner

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "agent"
SCHEMAS = ROOT / "functions" / "dcvfleet" / "schemas" / "events"
HEARTBEAT_SCHEMA = json.loads((SCHEMAS / "host-heartbeat.schema.json").read_text())
SESSION_IDLE_SCHEMA = json.loads((SCHEMAS / "session-idle.schema.json").read_text())
EPOCH = 1_795_000_000.0  # wall clock at monotonic 0
BASE = {
    "schemaVersion": "1",
    "instanceId": "i-0123456789abcdef0",
    "sessionId": "7d0f6c1e-3b8a-4f2e-9c55-0a1b2c3d4e5f",
    "dcvSessionId": "desktop",
    "agentVersion": "0.1.0",
}
OFFLINE = AwsError("ConnectionError", "POST https://events.us-east-1.amazonaws.com/: refused")


def validate(detail: dict[str, Any], schema: dict[str, Any]) -> None:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.validate(detail, schema, format_checker=checker)


class Clock:
    """Monotonic seconds since the start; wait() advances it and says stop after `stop_at`."""

    def __init__(self, stop_at: float = float("inf")) -> None:
        self.now = 0.0
        self.stop_at = stop_at
        self.waits: list[float] = []

    def mono(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return self.now > self.stop_at


class Events:
    """put_events that records entries, or raises while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.delivered: list[tuple[str, dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise OFFLINE
        self.delivered.extend((e["DetailType"], json.loads(e["Detail"])) for e in Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.delivered if kind == detail_type]


class Scripted(Signal):
    """A signal whose readings follow a function of the clock: (idle, quiet_since) or None."""

    def __init__(self, name: str, clock: Clock, script: Any) -> None:
        self.name = name
        self.clock = clock
        self.script = script

    def unknown(self) -> dict[str, Any]:
        return {"connections": None} if self.name == "dcv" else {"running": []}

    def read(self) -> Reading | None:
        state = self.script(self.clock.now)
        if state is None:
            return None
        idle, quiet = state if isinstance(state, tuple) else (state, None)
        values: dict[str, Any] = {"idle": idle}
        if self.name == "dcv":
            values["connections"] = 0 if idle else 1
        else:
            values["running"] = []
        return Reading(values, None if quiet is None else EPOCH + quiet)


def monitor(
    clock: Clock,
    signals: Sequence[Signal],
    events: Events | None = None,
    *,
    sample: float = 10,
    heartbeat: float = 60,
    timeout: float = 60,
    max_buffered: int = 100,
    sleeps: list[float] | None = None,
    session_ended: Any = None,
) -> Monitor:
    sender = EventSender(
        events or Events(),
        "fleet",
        max_attempts=8,
        max_buffered=max_buffered,
        sleep=(sleeps if sleeps is not None else []).append,
    )
    return Monitor(
        signals,
        sender,
        BASE,
        sample_interval=sample,
        heartbeat_interval=heartbeat,
        idle_timeout=timeout,
        wait=clock.wait,
        clock=clock.mono,
        wall=clock.wall,
        session_ended=session_ended,
    )


def idle_at(events: Events) -> list[float]:
    """When each Session Idle was sent, in seconds since the start."""
    return [round(_seconds(d["sentAt"])) for d in events.of(SESSION_IDLE)]


def _seconds(iso: str) -> float:
    stamp = parse_time(iso)
    assert stamp is not None
    return stamp - EPOCH


# --- the idle timer ----------------------------------------------------------------------------


def test_given_an_idle_host_then_session_idle_only_once_the_timeout_has_passed() -> None:
    clock, events = Clock(stop_at=75), Events()
    monitor(clock, [Scripted("dcv", clock, lambda t: True)], events).run()
    assert idle_at(events) == [70]  # idle since the first sample (10 s), timeout 60 s
    [detail] = events.of(SESSION_IDLE)
    assert detail["idleSince"] == iso_utc(EPOCH + 10)
    assert detail["idleSeconds"] == 60
    assert detail["idleTimeoutSeconds"] == 60


def test_given_a_connection_midway_then_the_idle_timer_starts_again() -> None:
    clock, events = Clock(stop_at=200), Events()
    dcv = Scripted("dcv", clock, lambda t: t != 60)  # someone connected around t=60
    monitor(clock, [dcv], events).run()
    assert idle_at(events) == [130, 190]  # idle again from 70: 70 + 60, then a reminder


def test_given_a_long_idle_period_then_session_idle_once_and_a_reminder_per_timeout() -> None:
    clock, events = Clock(stop_at=400), Events()
    monitor(clock, [Scripted("dcv", clock, lambda t: True)], events, timeout=100).run()
    assert idle_at(events) == [110, 210, 310]
    heartbeats = events.of(HOST_HEARTBEAT)
    assert {h["idleSince"] for h in heartbeats} == {iso_utc(EPOCH + 10)}


def test_given_activity_after_session_idle_then_it_is_re_armed() -> None:
    clock, events = Clock(stop_at=300), Events()
    dcv = Scripted("dcv", clock, lambda t: not 100 <= t <= 120)
    monitor(clock, [dcv], events).run()
    # idle 10..90 -> sent at 70; busy 100..120; idle from 130 -> sent at 190, reminder at 250
    assert idle_at(events) == [70, 190, 250]


def test_given_one_busy_signal_then_the_host_is_not_idle() -> None:
    clock, events = Clock(stop_at=200), Events()
    signals = [Scripted("dcv", clock, lambda t: True), Scripted("cpu", clock, lambda t: False)]
    monitor(clock, signals, events).run()
    assert idle_at(events) == []
    assert {h["idle"] for h in events.of(HOST_HEARTBEAT)} == {False}
    assert {h["idleSince"] for h in events.of(HOST_HEARTBEAT)} == {None}


def test_given_an_unreadable_signal_then_it_counts_as_not_idle() -> None:
    clock, events = Clock(stop_at=200), Events()

    class Broken(Scripted):
        def read(self) -> Reading | None:
            return self.failed("'nvidia-smi' did not finish within 10s")

    signals = [Scripted("dcv", clock, lambda t: True), Broken("processes", clock, None)]
    monitor(clock, signals, events).run()
    assert idle_at(events) == []
    heartbeat = events.of(HOST_HEARTBEAT)[0]
    assert heartbeat["signals"]["processes"]["error"] == "'nvidia-smi' did not finish within 10s"


def test_given_a_signal_that_raises_then_the_error_is_reported_and_sampling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, events = Clock(stop_at=30), Events()

    def explode(t: float) -> bool:
        raise RuntimeError("boom")

    monitor(clock, [Scripted("dcv", clock, explode)], events, heartbeat=10).run()
    assert len(events.of(HOST_HEARTBEAT)) == 3
    dcv = events.of(HOST_HEARTBEAT)[0]["signals"]["dcv"]
    assert dcv == {"idle": None, "connections": None, "error": "unexpected RuntimeError: boom"}
    assert "signal failed" in caplog.text


def test_given_an_absent_signal_then_it_is_left_out() -> None:
    clock, events = Clock(stop_at=15), Events()
    signals = [Scripted("dcv", clock, lambda t: True), Scripted("gpu", clock, lambda t: None)]
    monitor(clock, signals, events).run()
    [heartbeat] = events.of(HOST_HEARTBEAT)
    assert set(heartbeat["signals"]) == {"dcv"}
    assert heartbeat["idle"] is True


# --- backdating idleSince --------------------------------------------------------------------


def test_given_dcv_says_when_the_user_left_then_idle_since_is_that_moment() -> None:
    clock, events = Clock(stop_at=100), Events()
    dcv = Scripted("dcv", clock, lambda t: (True, 25.0) if t >= 30 else False)
    cpu = Scripted("cpu", clock, lambda t: True)
    monitor(clock, [dcv, cpu], events).run()
    assert events.of(SESSION_IDLE)[0]["idleSince"] == iso_utc(EPOCH + 25)
    assert idle_at(events) == [90]  # 25 + 60 -> the first sample after it


def test_given_cpu_was_busy_after_the_user_left_then_idle_since_is_when_cpu_calmed() -> None:
    clock, events = Clock(stop_at=150), Events()
    dcv = Scripted("dcv", clock, lambda t: (True, 25.0) if t >= 30 else False)
    cpu = Scripted("cpu", clock, lambda t: t >= 50)
    monitor(clock, [dcv, cpu], events).run()
    assert events.of(SESSION_IDLE)[0]["idleSince"] == iso_utc(EPOCH + 50)


def test_given_a_disconnection_before_the_agent_started_then_idle_since_is_the_start() -> None:
    clock, events = Clock(stop_at=70), Events()
    dcv = Scripted("dcv", clock, lambda t: (True, -3600.0))
    monitor(clock, [dcv, Scripted("cpu", clock, lambda t: True)], events).run()
    assert idle_at(events) == [60]
    assert events.of(SESSION_IDLE)[0]["idleSince"] == iso_utc(EPOCH)


def test_given_a_quiet_time_in_the_future_then_it_is_ignored() -> None:
    clock, events = Clock(stop_at=15), Events()
    monitor(clock, [Scripted("dcv", clock, lambda t: (True, 500.0))], events).run()
    assert events.of(HOST_HEARTBEAT)[0]["idleSince"] == iso_utc(EPOCH + 10)


# --- heartbeat cadence ----------------------------------------------------------------------


def test_heartbeats_go_at_the_first_sample_then_every_interval() -> None:
    clock, events = Clock(stop_at=250), Events()
    monitor(clock, [Scripted("dcv", clock, lambda t: False)], events).run()
    sent = [round(_seconds(h["sentAt"])) for h in events.of(HOST_HEARTBEAT)]
    assert sent == [10, 70, 130, 190, 250]
    assert set(clock.waits) == {10}


def test_heartbeat_cadence_survives_jittery_wakeups() -> None:
    class Late(Clock):
        def wait(self, seconds: float) -> bool:
            self.now += [0.3, 0.01, 0.2][len(self.waits) % 3]  # woken a bit late, unevenly
            return super().wait(seconds)

    clock, events = Late(stop_at=255), Events()
    monitor(clock, [Scripted("dcv", clock, lambda t: False)], events).run()
    assert [round(_seconds(h["sentAt"]), -1) for h in events.of(HOST_HEARTBEAT)] == [
        10,
        70,
        130,
        190,
        250,
    ]


def test_a_heartbeat_interval_shorter_than_sampling_means_one_per_sample() -> None:
    clock, events = Clock(stop_at=50), Events()
    monitor(clock, [Scripted("dcv", clock, lambda t: True)], events, heartbeat=1).run()
    assert len(events.of(HOST_HEARTBEAT)) == 5


def test_a_slow_sample_skips_the_missed_ones_instead_of_bursting() -> None:
    clock, events = Clock(stop_at=100), Events()

    def slow(t: float) -> bool:
        if t == 10:
            clock.now += 35  # hung commands, each cut off by its timeout
        return False

    monitor(clock, [Scripted("dcv", clock, slow)], events, heartbeat=1).run()
    sent = [round(_seconds(h["sentAt"])) for h in events.of(HOST_HEARTBEAT)]
    assert sent == [45, 55, 65, 75, 85, 95]  # samples due at 20..40 were skipped
    assert set(clock.waits) == {10}


# --- delivery while the network is down -------------------------------------------------------


def test_network_down_buffers_boundedly_drops_oldest_heartbeats_then_delivers() -> None:
    clock, events, sleeps = Clock(stop_at=160), Events(), list[float]()
    events.down = True
    dcv = Scripted("dcv", clock, lambda t: True)
    watch = monitor(clock, [dcv], events, heartbeat=10, timeout=30, max_buffered=5, sleeps=sleeps)
    watch.run()
    assert sleeps == []  # no back-off inside the loop
    assert events.calls == 17  # one PutEvents attempt per sample (16), one more at stop
    assert watch.sender.pending == 5
    clock.stop_at = clock.now + 10  # one more sample
    events.down = False
    watch.run()
    kinds = [kind for kind, _ in events.delivered]
    # Session Idle at 40, 70, 100, 130, 160 all kept: heartbeats made room, even the new one
    assert kinds == [SESSION_IDLE] * 5
    sent = [round(_seconds(d["sentAt"])) for kind, d in events.delivered if kind == SESSION_IDLE]
    assert sent == [40, 70, 100, 130, 160]
    assert watch.sender.pending == 0


def test_network_down_keeps_heartbeats_in_order_and_drops_the_oldest() -> None:
    clock, events = Clock(stop_at=80), Events()
    events.down = True
    watch = monitor(clock, [Scripted("dcv", clock, lambda t: False)], events, heartbeat=10)
    watch.sender.max_buffered = 3
    watch.run()
    events.down = False
    clock.stop_at = clock.now + 10  # one more sample
    watch.run()
    sent = [round(_seconds(d["sentAt"])) for d in events.of(HOST_HEARTBEAT)]
    assert sent == [70, 80, 100]  # 10..60 made room, oldest first


def test_stop_makes_one_last_bounded_attempt() -> None:
    clock, events = Clock(stop_at=10), Events()
    events.down = True
    watch = monitor(clock, [Scripted("dcv", clock, lambda t: True)], events)
    watch.run()
    assert events.calls == 2  # the sample's attempt, then the final one at stop
    assert watch.sender.pending == 1


class SessionClosesAt(Scripted):
    """The dcv signal, until the session is closed at `closed`: then dcv cannot describe it."""

    def __init__(self, clock: Clock, closed: float) -> None:
        super().__init__("dcv", clock, lambda t: False)
        self.closed = closed

    def read(self) -> Reading | None:
        if self.clock.now >= self.closed:
            return self.failed("'dcv describe-session' failed with exit code 1: no such session")
        return super().read()


def test_in_a_container_a_closed_session_ends_the_monitor() -> None:
    # Given a container desktop whose application quits at t=35 (DCV closes its session)
    clock, events, asked = Clock(stop_at=10_000), Events(), []

    def ended() -> bool:
        asked.append(clock.now)
        return clock.now >= 35

    watch = monitor(clock, [SessionClosesAt(clock, 35)], events, session_ended=ended)
    # When it runs / Then it stops at the first sample that cannot read the session
    watch.run()
    assert (watch.session_gone, clock.now, asked) == (True, 40, [40])


def test_a_dcv_error_with_the_session_still_listed_keeps_the_monitor_running() -> None:
    clock, events = Clock(stop_at=100), Events()
    # dcv hiccups, but the session is still listed
    watch = monitor(clock, [SessionClosesAt(clock, 35)], events, session_ended=lambda: False)
    watch.run()
    assert (watch.session_gone, clock.now) == (False, 110)
    assert events.of(HOST_HEARTBEAT)  # and it goes on reporting


# --- what the control plane receives ------------------------------------------------------------


def tool(*outputs: tuple[int, str]) -> Any:
    steps = list(outputs)

    def run(
        argv: Sequence[str], *, input_text: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        code, stdout = steps.pop(0) if len(steps) > 1 else steps[0]
        return subprocess.CompletedProcess(list(argv), code, stdout, "")

    return run


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def real_signals(tmp_path: Path, clock: Clock, broken: bool) -> list[Signal]:
    stat = tmp_path / "stat"
    stat.write_text(fixture("proc/stat-16cpu-before.txt"))
    describe = "describe-session-disconnected.json"
    dcv_out = (0, "not json {") if broken else (0, fixture(f"dcv/{describe}"))
    dcv = DcvSignal(DcvCli(["dcv"], 10, run=tool(dcv_out)), "desktop", 60, wall=clock.wall)
    cpu = ProcStatCpu(str(stat), 10)
    stat.write_text(
        fixture("proc/stat-16cpu-after.txt" if not broken else "nvidia-smi/driver-failure.txt")
    )
    mig, two_gpus = "h100-mig-590.48.01-idle.csv", "l40s-595.80-two-rows.csv"
    smi = (0, fixture(f"nvidia-smi/{mig if broken else two_gpus}"))
    gpu = GpuSignal(["nvidia-smi"], 90, 10, run=tool(smi))
    tasks = (1, "E" * 900) if broken else (0, fixture("windows/tasklist-recorded-pl.csv"))
    names = ["firefox", "x" * 128, *[f"tool{n}" for n in range(48)]]
    processes = ProcessSignal(names, "windows", 10, run=tool(tasks))
    return [dcv, cpu, gpu, processes]


@pytest.mark.parametrize("broken", [False, True])
def test_what_the_agent_emits_validates_against_the_control_planes_schemas(
    tmp_path: Path, broken: bool
) -> None:
    clock, events = Clock(stop_at=200), Events()
    signals = real_signals(tmp_path, clock, broken)
    watch = monitor(clock, signals, events, heartbeat=30)
    watch.run()
    heartbeats = events.of(HOST_HEARTBEAT)
    assert heartbeats
    for detail in heartbeats:
        validate(detail, HEARTBEAT_SCHEMA)
    first = heartbeats[0]["signals"]
    assert set(first) == {"dcv", "cpu", "gpu", "processes"}
    if broken:
        assert all(first[name]["idle"] is None for name in first)
        assert all(len(first[name]["error"]) <= 500 for name in first)
    else:
        assert first["cpu"]["busiestCorePercent"] == 100.0
        assert first["gpu"] == {
            "idle": False,
            "utilizationPercent": 100.0,
            "encoderPercent": 60.0,
            "thresholdPercent": 90,
        }
        assert first["processes"] == {"idle": False, "running": ["firefox"]}
        assert first["dcv"]["lastDisconnectAt"] == "2026-11-22T04:40:12.357Z"


def test_session_idle_and_idle_heartbeats_validate_against_the_schemas() -> None:
    clock, events = Clock(stop_at=200), Events()
    dcv = Scripted("dcv", clock, lambda t: (True, 5.0))
    cpu = Scripted("processes", clock, lambda t: True)
    monitor(clock, [dcv, cpu], events, heartbeat=30).run()
    assert events.of(SESSION_IDLE)
    for detail in events.of(SESSION_IDLE):
        validate(detail, SESSION_IDLE_SCHEMA)
    for detail in events.of(HOST_HEARTBEAT):
        validate(detail, HEARTBEAT_SCHEMA)
        assert detail["idle"] is True
    assert events.of(SESSION_IDLE)[0]["idleSince"] == iso_utc(EPOCH + 5)


def test_the_typeperf_reading_validates_too(tmp_path: Path) -> None:
    clock, events = Clock(stop_at=15), Events()
    dcv = Scripted("dcv", clock, lambda t: True)
    run = FakeTypeperf(fixture("windows/typeperf-4cpu-si2-sc3-ja.txt"))
    windows_cpu = TypeperfCpu(10, spawn=Spawner(run))
    assert windows_cpu.reader is not None
    windows_cpu.reader.join(timeout=5)
    monitor(clock, [dcv, windows_cpu], events).run()
    [detail] = events.of(HOST_HEARTBEAT)
    validate(detail, HEARTBEAT_SCHEMA)
    assert detail["signals"]["cpu"]["busiestCorePercent"] == 35.5
