"""Metrics, traces and log context (dcvfleet.observability).

Each metric is driven through the Lambda handler that emits it, on the in-memory store and the
fakes of test_service / test_lifecycle (the handler module's adapters are swapped for them), and
read back from the embedded-metric-format blobs Powertools prints: name, unit, dimensions and
value, as the template's dashboard and alarms name them. Every entry point the template names is
shown to open a trace subsegment and to flush the metrics recorded during its invocation.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from samtranslator.yaml_helper import yaml_parse

from dcvfleet import observability, service
from dcvfleet.lifecycle import user_requests
from dcvfleet.model import Session, Status
from dcvfleet.service import HostReadyClaim
from dcvfleet.sessions import Caller
from dcvfleet.store import now_iso
from tests.support.batch import FakeJobs
from tests.support.handlers import HANDLER_ENV
from tests.support.lifecycle import BOB, SETTINGS, Fleet, ago
from tests.support.service import ALICE, FakeWorkflows
from tests.support.sessions import a_session

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"
CAROL = Caller(sub="sub-carol", username="carol", email="carol@example.com")
#: What the handler modules read from the environment when they are imported.
ENV = {
    **HANDLER_ENV,
    "EVENT_BUS_NAME": "fleet",
    "FLEET_TAG_VALUE": "test-fleet",
    "AWS_DEFAULT_REGION": "us-east-1",
}
HANDLER_MODULES = (
    "agent_events",
    "api",
    "lifecycle",
    "pool",
    "portal",
    "profiles_check",
    "provision",
    "release",
)


def template_entry_points() -> list[str]:
    """Every function's Handler in template.yaml (``dcvfleet.handlers.<module>.<function>``), or
    for a custom resource the handler ``dcvfleet.custom_resource`` answers for."""
    template = yaml_parse((ROOT / "template.yaml").read_text())
    handlers = [
        props.get("Environment", {}).get("Variables", {}).get("CUSTOM_RESOURCE_HANDLER")
        or props.get("Handler", "")
        for props in (
            resource["Properties"]
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Serverless::Function"
        )
    ]
    return sorted(h for h in handlers if str(h).startswith("dcvfleet.handlers."))


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def handlers() -> Iterator[SimpleNamespace]:
    """The handler modules, imported afresh with a complete environment."""
    names = [f"dcvfleet.handlers.{m}" for m in HANDLER_MODULES]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        for name in names:
            sys.modules.pop(name, None)
        yield SimpleNamespace(
            **{m: importlib.import_module(n) for m, n in zip(HANDLER_MODULES, names, strict=True)}
        )
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def no_metrics_left() -> Iterator[None]:
    """Powertools keeps metrics in memory across instances: none from another test."""
    observability.metrics.clear_metrics()
    yield
    observability.metrics.clear_metrics()


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


@dataclass
class LambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


CONTEXT = LambdaContext()


def wire(patch: pytest.MonkeyPatch, module: ModuleType, fleet: Fleet) -> None:
    """The handler module's adapters and settings become the fleet's fakes (no AWS client)."""
    patch.setattr(module, "client", lambda service_name: None)
    patch.setattr(module, "session_store", lambda: fleet.store)
    fakes = {
        "Ec2Hosts": fleet.hosts,
        "SessionSecrets": fleet.secrets,
        "Workflows": fleet.workflows,
        "HostCommands": fleet.commands,
    }
    for name, fake in fakes.items():
        if hasattr(module, name):
            patch.setattr(module, name, lambda _client, fake=fake: fake)
    if hasattr(module, "batch_jobs"):
        patch.setattr(module, "batch_jobs", lambda: None)
    if hasattr(module, "SETTINGS"):
        patch.setattr(module, "SETTINGS", fleet.settings)


# -- reading the EMF blobs back -------------------------------------------------------------------
@dataclass(frozen=True)
class Emitted:
    namespace: str
    unit: str
    dimensions: dict[str, str]
    values: list[float]


def emitted(out: str, name: str) -> list[Emitted]:
    """Every EMF blob in ``out`` (one JSON document a line, with ``_aws``) that holds ``name``."""
    found = []
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for definition in directive["Metrics"]:
                if definition["Name"] != name:
                    continue
                (keys,) = directive["Dimensions"]  # one dimension set per metric
                value = blob[name]
                found.append(
                    Emitted(
                        namespace=directive["Namespace"],
                        unit=definition["Unit"],
                        dimensions={key: blob[key] for key in keys},
                        values=value if isinstance(value, list) else [value],
                    )
                )
    return found


def the_one(out: str, name: str) -> Emitted:
    found = emitted(out, name)
    assert len(found) == 1, f"{name}: expected one blob, found {found}\n{out}"
    assert len(found[0].values) == 1, found
    assert found[0].namespace == "DCVFleet"
    return found[0]


# -- Given steps ----------------------------------------------------------------------------------
def claimed(fleet: Fleet, session_id: str) -> None:
    """The session's agent reported DCV ready, and its claim was verified."""
    session = fleet.store.require(session_id)
    assert session.instance_id is not None
    claim = HostReadyClaim(
        instance_id=session.instance_id, session_id=session_id, dcv_session_id="console"
    )
    service.accept_host_ready(fleet.store, fleet.hosts, FakeWorkflows(), claim)


def backdate(fleet: Fleet, session_id: str, **times: Any) -> None:
    fleet.store.update(fleet.store.require(session_id), **times)


# -- TimeToReady ----------------------------------------------------------------------------------
def test_time_to_ready_counts_the_seconds_from_the_request_to_ready(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a desktop asked for 90 s ago whose host's claim was verified
    session, _ = fleet.provisioning()
    backdate(fleet, session.session_id, created_at=ago(90))
    claimed(fleet, session.session_id)
    wire(monkeypatch, handlers.provision, fleet)
    # When the workflow's MarkReady step runs
    handlers.provision.mark_ready({"sessionId": session.session_id}, CONTEXT)
    # Then TimeToReady says about 90 seconds, with the service as its only dimension
    assert fleet.store.require(session.session_id).status is Status.READY
    metric = the_one(capsys.readouterr().out, "TimeToReady")
    assert metric.unit == MetricUnit.Seconds.value
    assert metric.dimensions == {"service": "dcvfleet"}
    assert 90 <= metric.values[0] < 150


def test_time_to_ready_of_a_resumed_desktop_counts_from_its_resume_not_its_creation(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a desktop made two days ago, stopped, and started again 45 s ago
    session = fleet.stopped()
    user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)
    assert fleet.store.require(session.session_id).resumed_at is not None
    backdate(fleet, session.session_id, created_at=ago(2 * 86400), resumed_at=ago(45))
    service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    fleet.hosts.settle()
    claimed(fleet, session.session_id)
    wire(monkeypatch, handlers.provision, fleet)
    # When it is marked ready
    handlers.provision.mark_ready({"sessionId": session.session_id}, CONTEXT)
    # Then the time counts from the resume
    metric = the_one(capsys.readouterr().out, "TimeToReady")
    assert 45 <= metric.values[0] < 105


def test_a_retried_mark_ready_emits_time_to_ready_once(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a verified desktop marked READY by the workflow's step
    session, _ = fleet.provisioning()
    claimed(fleet, session.session_id)
    wire(monkeypatch, handlers.provision, fleet)
    first = handlers.provision.mark_ready({"sessionId": session.session_id}, CONTEXT)
    # When the step is retried (its first answer was lost)
    again = handlers.provision.mark_ready({"sessionId": session.session_id}, CONTEXT)
    # Then it answers the same, and TimeToReady was emitted once over both invocations
    assert again == first
    the_one(capsys.readouterr().out, "TimeToReady")


# -- ProvisioningFailed ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    ["InsufficientCapacityError", "States.Timeout", "JobFailedError"],
)
def test_a_compensated_provisioning_is_counted_once_by_its_errors_name(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: str,
) -> None:
    # Given a desktop whose provisioning failed with ``error``
    session, _ = fleet.provisioning()
    wire(monkeypatch, handlers.provision, fleet)
    event = {
        "sessionId": session.session_id,
        "error": {"Error": error, "Cause": json.dumps({"errorMessage": "i-0abc: no g5 anywhere"})},
    }
    # When the workflow compensates, and the step is retried
    handlers.provision.compensate(event, CONTEXT)
    handlers.provision.compensate(event, CONTEXT)
    # Then the session is FAILED, counted once, with the error's name (never its message)
    assert fleet.store.require(session.session_id).status is Status.FAILED
    metric = the_one(capsys.readouterr().out, "ProvisioningFailed")
    assert metric.unit == MetricUnit.Count.value
    assert metric.dimensions == {"service": "dcvfleet", "Reason": error}
    assert metric.values == [1.0]


def test_the_sweep_counts_a_stuck_provisioning_it_fails_and_logs_under_its_session(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a desktop stuck in provisioning
    session, _ = fleet.provisioning()
    wire(monkeypatch, handlers.lifecycle, fleet)
    # When the sweep fails it
    out = handlers.lifecycle.sweep_item(
        {"kind": "stuck-provisioning", "id": session.session_id}, CONTEXT
    )
    # Then it is counted as a provisioning that never got ready
    assert out["outcome"] == "compensated"
    metric = the_one(capsys.readouterr().out, "ProvisioningFailed")
    assert metric.dimensions == {"service": "dcvfleet", "Reason": "HostNotReadyError"}
    # And the invocation's logs carry the session as their correlation id (the item's id)
    assert observability.logger.get_correlation_id() == session.session_id


@pytest.mark.parametrize(
    ("instance_state", "status", "counted"),
    [("running", Status.STOPPED, 0), ("terminated", Status.FAILED, 1)],
    ids=["stopped-again-disk-kept", "instance-gone"],
)
def test_a_failed_resume_is_a_provisioning_failure_only_when_it_leaves_the_desktop_failed(  # noqa: PLR0917 (fixtures, then parameters)
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    instance_state: str,
    status: Status,
    counted: int,
) -> None:
    # Given a resumed desktop whose host never reported ready (its instance running, or gone)
    session = fleet.stopped()
    user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)
    fleet.hosts.set(session.instance_id or "", state=instance_state)
    wire(monkeypatch, handlers.provision, fleet)
    # When the workflow compensates the resume
    handlers.provision.compensate(
        {"sessionId": session.session_id, "resume": True, "error": {"Error": "States.Timeout"}},
        CONTEXT,
    )
    # Then only a desktop left FAILED counts as a failed provisioning
    assert fleet.store.require(session.session_id).status is status
    found = emitted(capsys.readouterr().out, "ProvisioningFailed")
    assert len(found) == counted
    assert all(f.dimensions["Reason"] == "States.Timeout" for f in found)


# -- IdleStops ------------------------------------------------------------------------------------
def idle_act_event(session_id: str, execution: str, trigger: str = "idle") -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "execution": execution,
        "trigger": trigger,
        "action": None,
        "reason": "no one has used it for 30 min",
        "evidence": {"connections": 0},
    }


@pytest.mark.parametrize(
    ("idle_action", "hibernation_configured", "action"),
    [
        ("stop", False, "stop"),
        ("hibernate", True, "hibernate"),
        ("hibernate", False, "stop"),  # a host not launched for hibernation is stopped
        ("terminate", False, "terminate"),
    ],
)
def test_an_idle_stop_is_counted_by_what_was_done(  # noqa: PLR0917 (fixtures, then parameters)
    handlers: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    idle_action: str,
    hibernation_configured: bool,
    action: str,
) -> None:
    # Given an idle desktop on a fleet whose idle action is ``idle_action``, verified and warned
    fleet = Fleet(settings=replace(SETTINGS, idle_action=idle_action))
    session = fleet.ready()
    fleet.hosts.set(session.instance_id or "", hibernation_configured=hibernation_configured)
    execution = fleet.check(session.session_id)
    fleet.warn(session.session_id, execution)
    wire(monkeypatch, handlers.lifecycle, fleet)
    # When the idle workflow acts
    out = handlers.lifecycle.act(idle_act_event(session.session_id, execution), CONTEXT)
    # Then what it really did is counted, by action
    assert out["action"] == action
    metric = the_one(capsys.readouterr().out, "IdleStops")
    assert metric.unit == MetricUnit.Count.value
    assert metric.dimensions == {"service": "dcvfleet", "Action": action}
    assert metric.values == [1.0]


def test_neither_a_dry_run_nor_a_users_stop_is_an_idle_stop(
    handlers: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a dry-run fleet with an idle desktop, and a desktop its user is stopping
    fleet = Fleet(settings=replace(SETTINGS, dry_run=True))
    idle = fleet.ready()
    idle_execution = fleet.check(idle.session_id)
    stopping = fleet.ready(BOB)
    stop_execution = fleet.request_stop(stopping.session_id, BOB)
    wire(monkeypatch, handlers.lifecycle, fleet)
    # When the idle workflow acts on both
    dry = handlers.lifecycle.act(idle_act_event(idle.session_id, idle_execution), CONTEXT)
    user_stop = idle_act_event(stopping.session_id, stop_execution, trigger="user")
    handlers.lifecycle.act({**user_stop, "action": "stop"}, CONTEXT)
    # Then nothing was stopped idle: no IdleStops
    assert dry["dryRun"] is True
    assert fleet.store.require(stopping.session_id).status is Status.STOPPING
    assert emitted(capsys.readouterr().out, "IdleStops") == []


# -- IdleStopsCancelled ---------------------------------------------------------------------------
def test_an_idle_stop_cancelled_by_a_reconnect_is_counted_once(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a warned desktop whose user reconnected during the grace period
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    fleet.warn(session.session_id, execution)
    fleet.commands.connections = 1
    verdict = fleet.verify(session.session_id, execution, phase="reverify")
    assert (verdict.idle, verdict.reason) == (False, "someone reconnected")
    wire(monkeypatch, handlers.lifecycle, fleet)
    event = {
        "sessionId": session.session_id,
        "execution": execution,
        "reason": verdict.reason,
        "warned": True,
    }
    # When the workflow's Cancelled step runs, and is retried
    handlers.lifecycle.end_check(event, CONTEXT)
    handlers.lifecycle.end_check(event, CONTEXT)
    # Then the desktop stays READY, and the cancelled stop is counted once
    stored = fleet.store.require(session.session_id)
    assert (stored.status, stored.idle_check) == (Status.READY, None)
    metric = the_one(capsys.readouterr().out, "IdleStopsCancelled")
    assert metric.unit == MetricUnit.Count.value
    assert metric.dimensions == {"service": "dcvfleet"}
    assert metric.values == [1.0]


def test_an_idle_check_that_never_warned_cancels_no_stop(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an idle claim that the first verification found untrue (someone is connected)
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    wire(monkeypatch, handlers.lifecycle, fleet)
    # When the workflow's NotIdle step ends the check
    handlers.lifecycle.end_check(
        {
            "sessionId": session.session_id,
            "execution": execution,
            "reason": "1 client(s) connected",
            "warned": False,
        },
        CONTEXT,
    )
    # Then no stop was announced, so none is counted as cancelled
    assert emitted(capsys.readouterr().out, "IdleStopsCancelled") == []


# -- ActiveSessions -------------------------------------------------------------------------------
def ready_batch_desktop(fleet: Fleet, owner: str) -> Session:
    """A READY container desktop's record (its provisioning is test_batch's subject)."""
    now = now_iso()
    session = a_session(
        f"batch-{owner}",
        owner=owner,
        backend="batch",
        created_at=now,
        ready_at=now,
        idle_check="someone-else-deciding",  # keeps the sweep from deciding about it
        idle_check_at=now,
    )
    fleet.store.create(session, max_active=1)
    return session


@pytest.mark.parametrize("batch_desktops", [0, 1])
def test_the_sweep_reports_ready_sessions_per_backend_zero_included(
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    batch_desktops: int,
) -> None:
    # Given two READY ec2 desktops, one still provisioning, one stopped, and batch desktops
    fleet.ready(ALICE)
    fleet.ready(BOB)
    fleet.provisioning(CAROL)
    dave = Caller(sub="sub-dave", username="dave")
    fleet.stop_by_user(fleet.ready(dave).session_id, dave)
    for n in range(batch_desktops):
        ready_batch_desktop(fleet, f"sub-batch-{n}")
    wire(monkeypatch, handlers.lifecycle, fleet)
    # When the scheduled sweep looks at the fleet
    handlers.lifecycle.sweep_find({}, CONTEXT)
    # Then each backend's READY desktops are counted in a blob of its own, none as zero
    out = capsys.readouterr().out
    by_backend = {m.dimensions["Backend"]: m for m in emitted(out, "ActiveSessions")}
    assert set(by_backend) == {"ec2", "batch"}
    assert by_backend["ec2"].values == [2.0]
    assert by_backend["batch"].values == [float(batch_desktops)]
    for backend, metric in by_backend.items():
        assert metric.unit == MetricUnit.Count.value
        assert metric.dimensions == {"service": "dcvfleet", "Backend": backend}


# -- AgentEventsRejected --------------------------------------------------------------------------
def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return event


def _without_instance(event: dict[str, Any]) -> dict[str, Any]:
    detail = {k: v for k, v in event["detail"].items() if k != "instanceId"}
    return {**event, "detail": detail}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_without_instance(sample("agent-host-heartbeat")), "detail.instanceId: is required"),
        (sample("session-ready"), "source: 'dcvfleet' is not the agent's"),
        # well-formed and unsigned, for no session of the fleet
        (sample("agent-host-heartbeat"), "unknown session"),
    ],
    ids=["schema", "source", "claim"],
)
def test_every_agent_event_the_consumer_rejects_is_counted(  # noqa: PLR0917 (fixtures, then parameters)
    handlers: SimpleNamespace,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, Any],
    reason: str,
) -> None:
    # Given an agent event that is malformed, not the agent's, or a claim the fleet refuses
    wire(monkeypatch, handlers.agent_events, fleet)
    monkeypatch.setattr(handlers.agent_events, "_keys", lambda: None)
    # When the consumer gets it
    answer = handlers.agent_events.handler(event, CONTEXT)
    # Then it is rejected, and counted
    assert answer["outcome"] == "rejected"
    assert reason in answer["reason"]
    metric = the_one(capsys.readouterr().out, "AgentEventsRejected")
    assert metric.unit == MetricUnit.Count.value
    assert metric.dimensions == {"service": "dcvfleet"}
    assert metric.values == [1.0]


# -- log context ----------------------------------------------------------------------------------
def ec2_state_change(instance_id: str, state: str) -> dict[str, Any]:
    event = sample("ec2-instance-state-change")
    return {**event, "detail": {"instance-id": instance_id, "state": state}}


def test_an_instance_state_change_names_its_session_in_the_logs_and_no_later_one(
    handlers: SimpleNamespace, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a READY desktop whose instance was stopped outside DCV Fleet
    session = fleet.ready()
    instance_id = session.instance_id or ""
    fleet.hosts.set(instance_id, state="stopped")
    wire(monkeypatch, handlers.lifecycle, fleet)
    # When its EC2 state change arrives
    out = handlers.lifecycle.instance_state(ec2_state_change(instance_id, "stopped"), CONTEXT)
    # Then that invocation's logs name the instance (correlation id) and its session
    assert out == {"outcome": "recording an external stop"}
    assert observability.logger.get_correlation_id() == instance_id
    assert observability.logger.get_current_keys()["session_id"] == session.session_id
    # And the next invocation, about an instance of no desktop, names no session
    handlers.lifecycle.instance_state(ec2_state_change("i-0ffffffffffffffff", "stopped"), CONTEXT)
    assert observability.logger.get_correlation_id() == "i-0ffffffffffffffff"
    assert "session_id" not in observability.logger.get_current_keys()


def test_a_batch_job_state_change_names_its_session_in_the_logs(
    handlers: SimpleNamespace, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a state change of the job the fleet runs (ran) for a desktop
    event = sample("batch-job-state-change")
    wire(monkeypatch, handlers.lifecycle, fleet)
    monkeypatch.setattr(handlers.lifecycle, "batch_jobs", FakeJobs)
    # When it arrives
    handlers.lifecycle.job_state(event, CONTEXT)
    # Then that invocation's logs name the job (correlation id) and the session in its name
    assert observability.logger.get_correlation_id() == event["detail"]["jobName"]
    session_id = event["detail"]["jobName"].removeprefix("dcvfleet-")
    assert observability.logger.get_current_keys()["session_id"] == session_id


# -- every entry point ----------------------------------------------------------------------------
class RecordingProvider:
    """Tracer's provider (X-Ray), recording the subsegments the handlers open."""

    def __init__(self) -> None:
        self.subsegments: list[str] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str, **_: Any) -> Iterator[Any]:
        self.subsegments.append(name)
        yield SimpleNamespace(put_annotation=lambda **_: None, put_metadata=lambda **_: None)


class NoAwsError(Exception):
    pass


def _no_aws(service_name: str) -> Any:
    raise NoAwsError(service_name)


def test_the_templates_entry_points_are_every_handler_of_the_package(
    handlers: SimpleNamespace,
) -> None:
    # Given every module-level function of dcvfleet.handlers.* that takes (event, context)
    defined = sorted(
        f"{module.__name__}.{name}"
        for module in vars(handlers).values()
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__
        and list(inspect.signature(function).parameters) == ["event", "context"]
    )
    # Then the template deploys each of them, and nothing else: the next test covers them all
    assert defined == template_entry_points()


@pytest.mark.parametrize("entry_point", template_entry_points())
def test_every_entry_point_is_traced_and_flushes_its_metrics(
    handlers: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    entry_point: str,
) -> None:
    # Given the entry point, with no AWS client to be had and a trace provider that records
    module_name, _, function_name = entry_point.rpartition(".")
    module = getattr(handlers, module_name.rpartition(".")[2])
    monkeypatch.setattr(module, "client", _no_aws, raising=False)  # one without calls none
    monkeypatch.setattr(importlib.import_module("dcvfleet.handlers"), "client", _no_aws)
    provider = RecordingProvider()
    monkeypatch.setattr(observability.tracer, "provider", provider)
    # And a metric recorded, as the domain records one, before the handler returns
    observability.metrics.add_metric(name="Probe", unit=MetricUnit.Count, value=1)
    # When it is invoked (with an event it refuses, or cannot act on without AWS)
    with contextlib.suppress(Exception):
        getattr(module, function_name)({}, CONTEXT)
    # Then it ran in a subsegment of its own, and flushed the metrics of its invocation
    assert provider.subsegments == [f"## {function_name}"]
    probe = the_one(capsys.readouterr().out, "Probe")
    assert probe.dimensions == {"service": "dcvfleet"}
