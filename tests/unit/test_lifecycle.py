"""The desktop lifecycle after READY (dcvfleet.lifecycle), on the in-memory store and fakes.

The fakes (tests/support/lifecycle.py) extend those of the provisioning path: the hosts' instances
change state when stopped or started (a stop goes through the real Ec2Hosts.stop over a stub EC2
client, so its hibernate fallback is the real one), the live check on a host answers a chosen
number of connections or fails, and Step Functions records what was started and stopped. Races run on threads released at one moment
against a store whose every read yields, so the writers really do interleave.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from botocore.exceptions import ClientError

from dcvfleet import compensation, events, profiles, service
from dcvfleet.adapters import SESSION_TAG, Ec2Hosts, Instance
from dcvfleet.errors import (
    ClaimRejectedError,
    HostCommandError,
    InstanceBusyError,
    InstanceGoneError,
    SessionConflictError,
    SessionLimitExceededError,
    SessionNotFoundError,
    StatusConflictError,
)
from dcvfleet.lifecycle import idle, sweep, triggers, user_requests
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.sessions import Caller
from dcvfleet.store import InMemorySessionStore
from tests.support.lifecycle import (
    BOB,
    LIST_CONNECTIONS,
    NOTIFY,
    SETTINGS,
    Fleet,
    RacyStore,
    StubEc2,
    ago,
)
from tests.support.service import (
    ALICE,
    API,
    COMMON,
    FLEET_TAG,
    LAUNCH,
    REQUESTED,
    STATE_MACHINE,
    FakeWorkflows,
)

#: The NotifyUsersDocument's allowedPattern for the message (template.yaml).
NOTICE_PATTERN = re.compile(r"^[A-Za-z0-9 .,:;!?()-]{1,200}$")
SCHEMAS = Path(__file__).resolve().parents[2] / "functions" / "dcvfleet" / "schemas" / "events"
#: Rounds of each threaded race; each round lets the scheduler pick a different winner.
RACE_ROUNDS = 15


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def backdate_updated_at(store: InMemorySessionStore, session_id: str, seconds: float) -> None:
    """Every versioned write stamps updated_at with now, so a test that needs an old one replaces
    the in-memory record directly (reaching into the store's private dict, in a test only)."""
    store._items[session_id] = replace(store._items[session_id], updated_at=ago(seconds))


def idle_claim(session: Session) -> dict[str, Any]:
    """The agent's Session Idle detail (a claim)."""
    return {
        "schemaVersion": "1",
        "instanceId": session.instance_id,
        "sessionId": session.session_id,
        "dcvSessionId": "console",
        "agentVersion": "0.1.0",
        "sentAt": ago(0),
        "idleSince": ago(1800),
        "idleSeconds": 1800,
        "idleTimeoutSeconds": 1800,
        "signals": {
            "dcv": {"idle": True, "connections": 0},
            "cpu": {"idle": True, "busiestCorePercent": 3.5, "thresholdPercent": 10},
        },
    }


def heartbeat(
    session: Session, *, idle: bool = True, instance_id: str | None = None
) -> dict[str, Any]:
    """The agent's Host Heartbeat detail."""
    detail = {
        "schemaVersion": "1",
        "instanceId": instance_id or session.instance_id,
        "sessionId": session.session_id,
        "dcvSessionId": "console",
        "agentVersion": "0.1.0",
        "sentAt": ago(0),
        "idle": idle,
        "idleSince": ago(600) if idle else None,
        "signals": {
            "dcv": {"idle": idle, "connections": 0 if idle else 1},
            "cpu": {
                "idle": idle,
                "busiestCorePercent": 3.5 if idle else 64.0,
                "thresholdPercent": 10,
            },
        },
    }
    assert events.validate_detail("dcvfleet.agent", "Host Heartbeat", detail) is None
    return detail


def assert_valid_event(detail_type: str, detail: dict[str, Any]) -> None:
    """The detail is valid for its event: through dcvfleet.events and, with formats checked,
    against the schema file itself."""
    assert events.validate_detail("dcvfleet", detail_type, detail) is None
    name = events.DETAIL_SCHEMAS[("dcvfleet", detail_type)]
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(detail)


def run_together(*calls: Callable[[], Any], head_start: int | None = None) -> list[Any]:
    """Run every call on its own thread, all released at one moment (or call ``head_start``
    a few milliseconds before the others); each one's result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        if head_start is not None and index != head_start:
            time.sleep(0.003)
        try:
            results[index] = call()
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    return results


# -- heartbeats -------------------------------------------------------------------------------
def test_a_heartbeat_from_the_sessions_own_instance_is_saved_without_bumping_the_version(
    fleet: Fleet,
) -> None:
    # Given a READY desktop
    session = fleet.ready()
    # When its own host's agent sends a heartbeat
    saved = idle.record_heartbeat(fleet.store, heartbeat(session, idle=False))
    # Then its summary is kept on the record, and the version (which workflows write on) is not bumped
    assert saved is True
    stored = fleet.store.require(session.session_id)
    assert stored.last_heartbeat_at is not None
    assert stored.heartbeat is not None
    assert stored.heartbeat["idle"] is False
    assert stored.heartbeat["signals"]["dcv"]["connections"] == 1
    assert stored.version == session.version
    assert stored.updated_at == session.updated_at


def test_a_heartbeat_from_another_instance_is_rejected_and_changes_nothing(
    fleet: Fleet,
) -> None:
    # Given a READY desktop, and another running host of the fleet
    session = fleet.ready()
    other = fleet.hosts.add(session_id=session.session_id)
    before = fleet.store.require(session.session_id)
    # When a heartbeat naming the session arrives from the other host
    with pytest.raises(ClaimRejectedError, match=other.instance_id):
        idle.record_heartbeat(fleet.store, heartbeat(session, instance_id=other.instance_id))
    # Then the record is exactly as it was
    assert fleet.store.require(session.session_id) == before


def test_a_heartbeat_for_a_session_that_is_not_ready_is_rejected(fleet: Fleet) -> None:
    # Given a desktop still provisioning on its launched host
    session, _ = fleet.provisioning()
    # When its agent sends a heartbeat / Then it is refused and nothing is written
    with pytest.raises(ClaimRejectedError):
        idle.record_heartbeat(fleet.store, heartbeat(session))
    assert fleet.store.require(session.session_id).last_heartbeat_at is None


# -- start_idle_check ---------------------------------------------------------------------------
def test_start_idle_check_claims_the_slot_and_starts_one_idle_workflow(fleet: Fleet) -> None:
    # Given a READY desktop and its agent's idle claim
    session = fleet.ready()
    claim = idle_claim(session)
    # When the idle check starts
    outcome = idle.start_idle_check(
        fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle", claim=claim
    )
    # Then the session's slot names the one idle workflow started, with the claim as its input
    stored = fleet.store.require(session.session_id)
    assert outcome == "started"
    assert stored.status is Status.READY
    assert stored.idle_check_at is not None
    assert fleet.workflows.idle_checks() == [
        (
            stored.idle_check,
            {"sessionId": session.session_id, "trigger": "idle", "action": None, "claim": claim},
        )
    ]


@pytest.mark.parametrize("status", ["provisioning", "stopping", "stopped", "unknown"])
def test_start_idle_check_is_refused_unless_the_session_is_ready(fleet: Fleet, status: str) -> None:
    # Given a desktop that is not READY (or no desktop at all)
    if status == "provisioning":
        session_id = fleet.provisioning()[0].session_id
    elif status == "stopping":
        session_id = fleet.ready().session_id
        fleet.request_stop(session_id)
    elif status == "stopped":
        session_id = fleet.stopped().session_id
    else:
        session_id = "no-such-session"
    started_before = len(fleet.workflows.started)
    # When an idle check is asked for / Then it is refused and no workflow starts
    with pytest.raises(ClaimRejectedError):
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session_id, trigger="agent-silent"
        )
    assert len(fleet.workflows.started) == started_before


def test_start_idle_check_refuses_an_idle_claim_from_another_instance(fleet: Fleet) -> None:
    # Given a READY desktop, and a claim about it sent from another host
    session = fleet.ready()
    forged = {**idle_claim(session), "instanceId": fleet.hosts.add(session_id="x").instance_id}
    # When it arrives / Then it is refused, the slot stays free and nothing starts
    with pytest.raises(ClaimRejectedError, match="is not the host of session"):
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle", claim=forged
        )
    assert fleet.store.require(session.session_id).idle_check is None
    assert fleet.workflows.started == []


def test_start_idle_check_refuses_a_trigger_that_is_not_automatic(fleet: Fleet) -> None:
    session = fleet.ready()
    with pytest.raises(ValueError, match="does not start an idle check"):
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="user"
        )


def test_a_second_start_while_a_check_is_in_progress_starts_nothing(fleet: Fleet) -> None:
    # Given an idle check in progress
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    # When another one is asked for (another claim, or the sweep)
    again = idle.start_idle_check(
        fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="agent-silent"
    )
    # Then it is "already-checking": still one workflow, and the slot is the first one's
    assert again == "already-checking"
    assert len(fleet.workflows.idle_checks()) == 1
    assert fleet.store.require(session.session_id).idle_check == execution


def test_a_stale_check_can_be_taken_over_by_a_new_one(fleet: Fleet) -> None:
    # Given a check that started longer ago than any check can run (it died without ending)
    session = fleet.ready()
    dead = fleet.check(session.session_id)
    current = fleet.store.require(session.session_id)
    fleet.store.update(current, idle_check_at=ago(SETTINGS.stale_check_seconds + 60))
    # When a new check is asked for
    outcome = idle.start_idle_check(
        fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="agent-silent"
    )
    # Then it takes the slot and a second workflow starts
    assert outcome == "started"
    taken = fleet.store.require(session.session_id)
    assert taken.idle_check not in (None, dead)
    assert [name for name, _ in fleet.workflows.idle_checks()] == [dead, taken.idle_check]
    # And the dead check's later steps no longer write
    with pytest.raises(SessionConflictError):
        fleet.warn(session.session_id, dead)


def test_a_failure_to_start_the_workflow_gives_the_slot_back(fleet: Fleet) -> None:
    # Given Step Functions refuses to start executions
    session = fleet.ready()
    fleet.workflows.start_fails_with = RuntimeError("ExecutionLimitExceeded")
    # When an idle check is asked for / Then the error surfaces
    with pytest.raises(RuntimeError, match="ExecutionLimitExceeded"):
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle"
        )
    # And the slot is free again, so the next claim can start a check
    assert fleet.store.require(session.session_id).idle_check is None
    fleet.workflows.start_fails_with = None
    assert (
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle"
        )
        == "started"
    )


def test_twenty_simultaneous_starts_with_mixed_triggers_start_exactly_one_workflow() -> None:
    for round_number in range(5):
        # Given a READY desktop
        fleet = Fleet(store=RacyStore())
        session = fleet.ready()
        claim = idle_claim(session)
        start = partial(
            idle.start_idle_check, fleet.store, fleet.workflows, SETTINGS, session.session_id
        )
        # When 20 idle claims and sweep findings arrive at the same moment
        calls = [
            partial(start, trigger="idle", claim=claim)
            if i % 2
            else partial(start, trigger="agent-silent")
            for i in range(20)
        ]
        outcomes = run_together(*calls)
        # Then exactly one started a workflow, every other one was told a check is in progress
        assert outcomes.count("started") == 1, f"round {round_number}: {outcomes}"
        assert outcomes.count("already-checking") == 19, f"round {round_number}: {outcomes}"
        [(name, _)] = fleet.workflows.idle_checks()
        assert fleet.store.require(session.session_id).idle_check == name


# -- verify -------------------------------------------------------------------------------------
def test_verify_finds_a_desktop_idle_when_no_client_is_connected(fleet: Fleet) -> None:
    # Given an idle check of a READY desktop, and nobody connected to its DCV session
    session = fleet.ready()
    claim = idle_claim(session)
    execution = fleet.check(session.session_id, "idle", claim)
    fleet.commands.connections = 0
    # When it is verified
    verdict = fleet.verify(session.session_id, execution, claim=claim)
    # Then it is idle, asked live on its own host, with the claim's signals as evidence
    assert verdict.idle is True
    assert verdict.reason.startswith(f"no one has used it since {claim['idleSince']}")
    assert fleet.commands.checks == [(session.instance_id, LIST_CONNECTIONS, "console")]
    assert verdict.evidence["connections"] == 0
    assert verdict.evidence["instanceId"] == session.instance_id
    assert verdict.evidence["claim"]["signals"] == claim["signals"]


def test_verify_finds_a_desktop_in_use_when_clients_are_connected(fleet: Fleet) -> None:
    # Given an idle claim while two clients are in fact connected
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    fleet.commands.connections = 2
    # When it is verified / Then it is not idle, and says why
    verdict = fleet.verify(session.session_id, execution, claim=idle_claim(session))
    assert verdict.idle is False
    assert verdict.reason == "2 client(s) connected"


def test_for_an_agents_idle_claim_a_failed_live_check_is_not_idle(fleet: Fleet) -> None:
    # Given an idle claim, and a host that does not answer the live check
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    fleet.commands.connections = HostCommandError("InvalidInstanceId: not managed by SSM")
    # When it is verified
    verdict = fleet.verify(session.session_id, execution, claim=idle_claim(session))
    # Then it is not idle: nothing is stopped on an agent's word alone
    assert verdict.idle is False
    assert "could not be confirmed" in verdict.reason
    assert verdict.evidence["liveCheckError"] == "InvalidInstanceId: not managed by SSM"


def test_for_a_silent_agent_a_failed_live_check_is_idle(fleet: Fleet) -> None:
    # Given the sweep found the agent silent, and the host does not answer either
    session = fleet.ready()
    execution = fleet.check(session.session_id, "agent-silent")
    fleet.commands.connections = HostCommandError("TimedOut")
    # When it is verified / Then it is idle: nobody can be using it
    verdict = fleet.verify(session.session_id, execution, trigger="agent-silent")
    assert verdict.idle is True
    assert verdict.reason == "its agent is silent and the host does not answer"


def test_for_a_silent_agent_an_answering_host_with_nobody_connected_is_idle(fleet: Fleet) -> None:
    session = fleet.ready()
    execution = fleet.check(session.session_id, "agent-silent")
    verdict = fleet.verify(session.session_id, execution, trigger="agent-silent")
    assert verdict.idle is True
    assert "its agent has been silent since" in verdict.reason


def _instance_stopped(fleet: Fleet, session: Session, execution: str) -> None:
    fleet.hosts.set(session.instance_id or "", state="stopped")


def _instance_gone(fleet: Fleet, session: Session, execution: str) -> None:
    del fleet.hosts.instances[session.instance_id or ""]


def _instance_tagged_for_another_session(fleet: Fleet, session: Session, execution: str) -> None:
    instance = fleet.instance(session.session_id)
    fleet.hosts.set(instance.instance_id, tags={**instance.tags, SESSION_TAG: "another-session"})


def _instance_untagged(fleet: Fleet, session: Session, execution: str) -> None:
    fleet.hosts.set(session.instance_id or "", tags={})


def _session_not_ready(fleet: Fleet, session: Session, execution: str) -> None:
    # moved on underneath the check, the slot still naming it
    fleet.store.update(fleet.store.require(session.session_id), status=Status.STOPPING)


def _slot_of_another_execution(fleet: Fleet, session: Session, execution: str) -> None:
    current = fleet.store.require(session.session_id)
    fleet.store.update(current, idle_check=f"{session.session_id}-idle-999")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_instance_stopped, "its instance is stopped, not running"),
        (_instance_gone, "its instance is missing, not running"),
        (_instance_tagged_for_another_session, "its instance is not tagged for this desktop"),
        (_instance_untagged, "its instance is not tagged for this desktop"),
        (_session_not_ready, "the desktop is STOPPING"),
        (_slot_of_another_execution, "another decision about this desktop is in progress"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_verify_is_not_idle_when_the_record_or_the_instance_disagrees(
    fleet: Fleet, change: Callable[[Fleet, Session, str], None], reason: str
) -> None:
    # Given an idle check, and nobody connected, but the record or the instance says otherwise
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    change(fleet, session, execution)
    # When it is verified / Then it is not idle, says why, and never asked the host
    verdict = fleet.verify(session.session_id, execution, claim=idle_claim(session))
    assert verdict.idle is False
    assert verdict.reason == reason
    assert fleet.commands.checks == []


def _warned_check(fleet: Fleet, trigger: str) -> tuple[Session, str]:
    """A desktop warned a minute ago (its check began then), now in its grace period."""
    session = fleet.ready()
    execution = fleet.check(
        session.session_id, trigger, idle_claim(session) if trigger == "idle" else None
    )
    assert fleet.verify(session.session_id, execution, trigger=trigger).idle is True
    fleet.warn(session.session_id, execution, trigger=trigger)
    fleet.store.update(fleet.store.require(session.session_id), idle_check_at=ago(60))
    return session, execution


def test_reverify_cancels_when_a_heartbeat_since_the_check_began_reports_activity(
    fleet: Fleet,
) -> None:
    # Given a warned desktop in its grace period, with nobody connected over DCV
    session, execution = _warned_check(fleet, "idle")
    # When its agent reports activity (say a long render on the GPU/CPU) after the check began
    idle.record_heartbeat(fleet.store, heartbeat(session, idle=False))
    verdict = fleet.verify(session.session_id, execution, phase="reverify")
    # Then the stop is cancelled, saying which activity
    assert verdict.idle is False
    assert verdict.reason == "activity resumed (1 DCV connection(s), busiest CPU core 64 %)"
    assert verdict.evidence["heartbeat"]["idle"] is False


def test_reverify_is_not_cancelled_by_a_heartbeat_that_still_says_idle(fleet: Fleet) -> None:
    # Given a warned desktop whose agent still says idle, and nobody connected
    session, execution = _warned_check(fleet, "idle")
    idle.record_heartbeat(fleet.store, heartbeat(session, idle=True))
    # When it is re-verified / Then it is still idle (the live check agrees)
    verdict = fleet.verify(session.session_id, execution, phase="reverify")
    assert verdict.idle is True


def test_reverify_of_a_silent_agent_cancels_on_any_heartbeat_since_the_check_began(
    fleet: Fleet,
) -> None:
    # Given a desktop warned because its agent was silent
    session, execution = _warned_check(fleet, "agent-silent")
    # When the agent speaks again, even to say idle
    idle.record_heartbeat(fleet.store, heartbeat(session, idle=True))
    verdict = fleet.verify(session.session_id, execution, trigger="agent-silent", phase="reverify")
    # Then the stop is cancelled
    assert verdict.idle is False
    assert verdict.reason == "its agent is reporting again"


def test_reverify_ignores_a_heartbeat_from_before_the_check_began(fleet: Fleet) -> None:
    # Given a silent-agent check, whose desktop's last heartbeat is older than the check
    session = fleet.ready()
    fleet.store.record_heartbeat(
        session.session_id, session.instance_id or "", ago(900), {"idle": False}
    )
    execution = fleet.check(session.session_id, "agent-silent")
    # When it is re-verified / Then that old heartbeat does not cancel it
    verdict = fleet.verify(session.session_id, execution, trigger="agent-silent", phase="reverify")
    assert verdict.idle is True


@pytest.mark.parametrize(
    ("ready_seconds_ago", "over"), [(600, False), (7200, True)], ids=["within", "past"]
)
def test_max_lifetime_is_idle_only_past_max_session_seconds(
    ready_seconds_ago: int, over: bool
) -> None:
    # Given a one-hour lifetime, and a desktop READY since 10 min or 2 h (with a client connected)
    fleet = Fleet(settings=replace(SETTINGS, max_session_seconds=3600))
    session = fleet.ready()
    fleet.store.update(fleet.store.require(session.session_id), ready_at=ago(ready_seconds_ago))
    fleet.commands.connections = 1
    execution = fleet.check(session.session_id, "max-lifetime")
    # When it is verified for its lifetime
    verdict = fleet.verify(session.session_id, execution, trigger="max-lifetime")
    # Then it is due only past the limit, whoever is connected
    assert verdict.idle is over
    assert verdict.evidence["maxSessionSeconds"] == 3600
    if over:
        assert verdict.reason == "it reached the 1-hour limit of Linux workstation"
    else:
        assert verdict.reason == "it is within its lifetime"


# -- warn ---------------------------------------------------------------------------------------
def test_warn_records_the_warning_notifies_in_session_and_returns_a_valid_event(
    fleet: Fleet,
) -> None:
    # Given a desktop verified idle
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    reason = fleet.verify(session.session_id, execution, claim=idle_claim(session)).reason
    # When the user is warned
    out = fleet.warn(session.session_id, execution, reason=reason)
    # Then the record says when it will stop, still READY and still this check's
    detail = out["detail"]
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.READY
    assert stored.idle_check == execution
    assert (
        stored.status_reason
        == f"Idle warning: it will stop at {detail['actAt']} unless it is used."
    )
    # And the grace period is the configured one
    act_at = triggers.parse_time(detail["actAt"])
    grace = act_at - datetime.now(UTC)
    assert (
        timedelta(seconds=SETTINGS.idle_grace_seconds - 5)
        < grace
        <= timedelta(seconds=SETTINGS.idle_grace_seconds)
    )
    # And the user is told inside the DCV session, in words the notify document admits
    [(instance_id, document, dcv_session_id, notice)] = fleet.commands.notices
    assert (instance_id, document, dcv_session_id) == (session.instance_id, NOTIFY, "console")
    assert NOTICE_PATTERN.match(notice), notice
    # And the event is a valid Session Idle Warning that says why and when
    assert_valid_event("Session Idle Warning", detail)
    assert detail["sessionId"] == session.session_id
    assert detail["owner"] == ALICE.sub
    assert detail["instanceId"] == session.instance_id
    assert (detail["trigger"], detail["action"], detail["dryRun"]) == ("idle", "stop", False)
    assert reason in out["message"]
    assert out["message"] == detail["message"]


def test_a_failed_in_session_notice_is_only_logged(fleet: Fleet) -> None:
    # Given a host on which the notice cannot be shown
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    fleet.commands.notify_fails_with = HostCommandError("in-session notice: Failed (exit 1)")
    # When the user is warned / Then the warning is recorded and returned all the same
    out = fleet.warn(session.session_id, execution)
    assert len(fleet.commands.notices) == 1
    assert_valid_event("Session Idle Warning", out["detail"])
    status_reason = fleet.store.require(session.session_id).status_reason
    assert status_reason is not None
    assert status_reason.startswith("Idle warning")


@pytest.mark.parametrize("trigger", ["idle", "agent-silent", "max-lifetime"])
@pytest.mark.parametrize("action", ["stop", "hibernate", "terminate"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["live", "dry-run"])
def test_every_warning_fits_the_notify_document_and_the_event_schema(
    trigger: str, action: str, dry_run: bool
) -> None:
    # Given any idle action, trigger and DryRun
    fleet = Fleet(settings=replace(SETTINGS, idle_action=action, dry_run=dry_run))
    session = fleet.ready()
    execution = fleet.check(session.session_id, trigger)
    # When the user is warned
    out = fleet.warn(
        session.session_id, execution, trigger=trigger, reason="a reason: with (signals) 3.5 %"
    )
    # Then the notice passes the SSM document's allowedPattern and the event its schema
    [(_, _, _, notice)] = fleet.commands.notices
    assert NOTICE_PATTERN.match(notice), notice
    assert_valid_event("Session Idle Warning", out["detail"])
    assert out["detail"]["action"] == action
    assert out["detail"]["dryRun"] is dry_run
    assert out["message"].startswith("[dry run]") is dry_run


def test_warn_after_another_decision_took_the_slot_is_refused(fleet: Fleet) -> None:
    # Given an idle check that lost its slot to the user's stop
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    fleet.request_stop(session.session_id)
    # When it warns / Then the write is refused and nobody is told anything
    with pytest.raises(SessionConflictError):
        fleet.warn(session.session_id, execution)
    assert fleet.commands.notices == []
    assert fleet.store.require(session.session_id).status_reason == "Stopped by you."


# -- act ----------------------------------------------------------------------------------------
def test_act_stops_an_idle_desktop_and_records_why(fleet: Fleet) -> None:
    # Given a desktop verified idle twice
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    verdict = fleet.verify(
        session.session_id, execution, phase="reverify", claim=idle_claim(session)
    )
    # When the idle workflow acts
    out = fleet.act(session.session_id, execution, reason=verdict.reason, evidence=verdict.evidence)
    # Then the record is STOPPING with the reason and the evidence it was decided on
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPING
    assert stored.status_reason == f"Stopped because {verdict.reason}."
    assert stored.evidence is not None
    assert stored.evidence["connections"] == 0
    assert stored.evidence["trigger"] == "idle"
    assert "decidedAt" in stored.evidence
    # And the host was stopped, once, not hibernated
    assert fleet.hosts.stops == [(session.instance_id, "stop")]
    assert fleet.instance(session.session_id).state == "stopping"
    # And the outcome is a valid Session Stopped event telling the user their disk is kept
    assert out["action"] == "stop"
    assert out["detailType"] == "Session Stopped"
    assert_valid_event("Session Stopped", out["detail"])
    assert out["detail"]["reason"] == verdict.reason
    assert out["detail"]["evidence"] == stored.evidence
    assert "your disk is kept" in out["message"]


def test_act_hibernates_an_instance_configured_for_it() -> None:
    # Given hibernate as the idle action, and a host launched for hibernation
    fleet = Fleet(settings=replace(SETTINGS, idle_action="hibernate"))
    session = fleet.ready()
    fleet.hosts.set(session.instance_id or "", hibernation_configured=True)
    execution = fleet.check(session.session_id)
    # When the idle workflow acts / Then the host is hibernated
    out = fleet.act(session.session_id, execution)
    assert fleet.hosts.ec2.calls == [{"InstanceIds": [session.instance_id], "Hibernate": True}]
    assert fleet.hosts.stops == [(session.instance_id, "hibernate")]
    assert out["action"] == "hibernate"
    assert "hibernateFellBackToStop" not in out["detail"]["evidence"]
    assert_valid_event("Session Stopped", out["detail"])
    assert fleet.store.require(session.session_id).status_reason == (
        "Hibernated because no one has used it for 30 min."
    )


@pytest.mark.parametrize(
    ("configured", "refusal"),
    [(False, None), (True, "UnsupportedHibernationConfiguration")],
    ids=["not-configured", "refused-by-stop-instances"],
)
def test_act_falls_back_to_a_stop_when_the_host_cannot_hibernate(
    configured: bool, refusal: str | None
) -> None:
    # Given hibernate as the idle action, and a host that cannot hibernate
    fleet = Fleet(settings=replace(SETTINGS, idle_action="hibernate"))
    session = fleet.ready()
    fleet.hosts.set(session.instance_id or "", hibernation_configured=configured)
    fleet.hosts.ec2.refuse_hibernate_with = refusal
    execution = fleet.check(session.session_id)
    # When the idle workflow acts
    out = fleet.act(session.session_id, execution)
    # Then the host is stopped all the same, and the outcome says it was a stop
    assert fleet.hosts.stops == [(session.instance_id, "stop")]
    assert fleet.instance(session.session_id).state == "stopping"
    assert out["action"] == "stop"
    assert out["detail"]["action"] == "stop"
    assert out["detail"]["evidence"]["hibernateFellBackToStop"] is True
    assert_valid_event("Session Stopped", out["detail"])
    assert "was stopped" in out["message"]
    # And the record does not claim a hibernation that did not happen
    stored = fleet.store.require(session.session_id)
    assert stored.status_reason is not None
    assert not stored.status_reason.startswith("Hibernated")
    assert stored.evidence is not None
    assert stored.evidence["hibernateFellBackToStop"] is True


def _stub_instance(configured: bool) -> Instance:
    return Instance(
        instance_id="i-0abc1234def567890",
        state="running",
        instance_type=REQUESTED,
        tags={},
        public_dns=None,
        public_ip=None,
        private_ip="10.0.1.23",
        hibernation_configured=configured,
    )


@pytest.mark.parametrize(
    ("hibernate", "configured", "refusal", "calls", "done"),
    [
        (True, True, None, [True], "hibernate"),
        (True, True, "UnsupportedHibernationConfiguration", [True, False], "stop"),
        (True, True, "UnsupportedOperation", [True, False], "stop"),
        (True, True, "IncorrectInstanceState", [True, False], "stop"),
        (True, False, None, [False], "stop"),
        (False, True, None, [False], "stop"),
    ],
    ids=[
        "hibernates",
        "refused-unsupported-configuration",
        "refused-unsupported-operation",
        "refused-not-ready-yet",
        "not-configured",
        "plain-stop",
    ],
)
def test_ec2_hosts_stop_hibernates_where_it_can_and_stops_otherwise(
    hibernate: bool, configured: bool, refusal: str | None, calls: list[bool], done: str
) -> None:
    # Given EC2 answering StopInstances (refusing hibernation with ``refusal``)
    ec2 = StubEc2(refuse_hibernate_with=refusal)
    # When an instance is stopped through the real adapter
    outcome = Ec2Hosts(ec2).stop(_stub_instance(configured), hibernate=hibernate)
    # Then hibernation is tried only where configured, a refusal falls back to a plain stop
    assert outcome == done
    assert [bool(call.get("Hibernate")) for call in ec2.calls] == calls
    assert all(call["InstanceIds"] == ["i-0abc1234def567890"] for call in ec2.calls)


def test_ec2_hosts_stop_does_not_hide_an_error_that_is_not_a_hibernation_refusal() -> None:
    # Given EC2 refusing the hibernation for another reason (permissions)
    ec2 = StubEc2(refuse_hibernate_with="UnauthorizedOperation")
    # When the instance is stopped / Then the error surfaces and no plain stop is attempted
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        Ec2Hosts(ec2).stop(_stub_instance(configured=True), hibernate=True)
    assert len(ec2.calls) == 1


def test_act_terminates_deleting_the_instance_and_the_secret() -> None:
    # Given terminate as the idle action
    fleet = Fleet(settings=replace(SETTINGS, idle_action="terminate"))
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    # When the idle workflow acts
    out = fleet.act(session.session_id, execution)
    # Then the record is TERMINATING, the host terminated and the credentials deleted
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.TERMINATING
    assert stored.status_reason == "Terminated because no one has used it for 30 min."
    assert fleet.hosts.terminated == [session.instance_id]
    assert fleet.hosts.stops == []
    assert session.session_id not in fleet.secrets.secrets
    # And the outcome is a valid Session Terminated event
    assert out["detailType"] == "Session Terminated"
    assert_valid_event("Session Terminated", out["detail"])
    assert "disk is kept" not in out["message"]


@pytest.mark.parametrize(
    ("action", "detail_type"),
    [
        ("stop", "Session Stopped"),
        ("hibernate", "Session Stopped"),
        ("terminate", "Session Terminated"),
    ],
)
def test_dry_run_records_what_would_have_been_done_and_does_nothing(
    action: str, detail_type: str
) -> None:
    # Given DryRun on
    fleet = Fleet(settings=replace(SETTINGS, idle_action=action, dry_run=True))
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    # When the idle workflow acts
    out = fleet.act(session.session_id, execution, reason="nobody used it")
    # Then the desktop stays READY with its slot free, and its record says what would have been done
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.READY
    assert stored.idle_check is None
    assert stored.idle_check_at is None
    assert (
        stored.status_reason
        == f"Dry run: it would have been {idle._past(action)} because nobody used it."
    )
    assert stored.evidence is not None
    assert stored.evidence["trigger"] == "idle"
    # And nothing was stopped, terminated or deleted
    assert fleet.hosts.stops == []
    assert fleet.hosts.terminated == []
    assert fleet.hosts.ec2.calls == []
    assert session.session_id in fleet.secrets.secrets
    assert fleet.instance(session.session_id).state == "running"
    # And the event says dryRun and is valid for its type
    assert out["dryRun"] is True
    assert out["detail"]["dryRun"] is True
    assert out["detailType"] == detail_type
    assert_valid_event(detail_type, out["detail"])
    assert out["message"].startswith(
        f"Your DCV desktop {session.session_id} [dry run] would have been"
    )


def test_dry_run_never_holds_back_a_users_stop() -> None:
    # Given DryRun on, and the user stopping her desktop
    fleet = Fleet(settings=replace(SETTINGS, dry_run=True))
    session = fleet.ready()
    name = fleet.request_stop(session.session_id)
    # When the workflow acts / Then the host really stops
    out = fleet.act(
        session.session_id, name, trigger="user", requested_action="stop", reason="requested"
    )
    assert out["dryRun"] is False
    assert fleet.hosts.stops == [(session.instance_id, "stop")]


# -- confirm ------------------------------------------------------------------------------------
def test_confirm_moves_a_stopped_host_to_stopped_and_releases_the_counter(fleet: Fleet) -> None:
    # Given a desktop whose stop was acted on, its host now stopped
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    fleet.act(session.session_id, execution)
    fleet.hosts.settle()
    assert fleet.store.active_count(ALICE.sub) == 1
    # When the workflow confirms
    out = idle.confirm(fleet.store, fleet.hosts, session.session_id)
    # Then it is STOPPED, its connection and slot cleared, and it no longer counts against the limit
    assert out == {"done": True}
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPED
    assert stored.connection_url is None
    assert stored.dcv_session_id is None
    assert stored.idle_check is None
    assert stored.instance_id == session.instance_id
    assert fleet.store.active_count(ALICE.sub) == 0
    # And confirming again is done at once, writing nothing
    assert idle.confirm(fleet.store, fleet.hosts, session.session_id) == {"done": True}
    assert fleet.store.require(session.session_id) == stored


def test_confirm_waits_while_the_host_is_still_stopping(fleet: Fleet) -> None:
    # Given a desktop whose host is still stopping
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    fleet.act(session.session_id, execution)
    # When the workflow confirms / Then it is not done yet and the record is unchanged
    assert idle.confirm(fleet.store, fleet.hosts, session.session_id) == {"done": False}
    assert fleet.store.require(session.session_id).status is Status.STOPPING


def test_confirm_moves_a_terminated_host_to_terminated() -> None:
    # Given a desktop whose termination was acted on
    fleet = Fleet(settings=replace(SETTINGS, idle_action="terminate"))
    session = fleet.ready()
    fleet.act(session.session_id, fleet.check(session.session_id))
    # When the workflow confirms / Then it is TERMINATED and no longer counted
    assert idle.confirm(fleet.store, fleet.hosts, session.session_id) == {"done": True}
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.TERMINATED
    assert stored.connection_url is None
    assert fleet.store.active_count(ALICE.sub) == 0


# -- recover ------------------------------------------------------------------------------------
def test_recover_returns_a_desktop_whose_stop_failed_to_ready(fleet: Fleet) -> None:
    # Given an idle workflow that moved the record to STOPPING, but its host still runs
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    fleet.store.update(fleet.store.require(session.session_id), status=Status.STOPPING)
    # When the workflow's Catch recovers
    out = idle.recover(
        fleet.store,
        fleet.hosts,
        session_id=session.session_id,
        execution=execution,
        error="States.TaskFailed",
        cause="SNS Publish failed",
    )
    # Then the desktop is READY again, its slot free, saying it could not be stopped
    # And the execution fails with a name of ours (States.* is reserved), the caught one in
    # the cause
    assert out == {
        "recovered": "ready",
        "error": "WorkflowStepError",
        "cause": "States.TaskFailed: SNS Publish failed",
    }
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.READY
    assert stored.idle_check is None
    assert stored.status_reason == "The desktop could not be stopped and is still running."


def test_recover_releases_the_slot_of_a_check_that_never_acted(fleet: Fleet) -> None:
    # Given an idle check that failed before acting
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    # When its workflow recovers / Then the slot is free and the desktop still READY
    out = idle.recover(
        fleet.store,
        fleet.hosts,
        session_id=session.session_id,
        execution=execution,
        error="HostCommandError",
        cause=json.dumps({"errorMessage": "the host did not answer", "errorType": "x"}),
    )
    assert out == {
        "recovered": "released",
        "error": "HostCommandError",
        "cause": "the host did not answer",
    }
    stored = fleet.store.require(session.session_id)
    assert (stored.status, stored.idle_check, stored.idle_check_at) == (Status.READY, None, None)


def test_recover_leaves_a_decision_that_is_not_its_own(fleet: Fleet) -> None:
    # Given a check that lost its slot to a newer one
    session = fleet.ready()
    old = fleet.check(session.session_id)
    fleet.store.update(
        fleet.store.require(session.session_id), idle_check_at=ago(SETTINGS.stale_check_seconds + 1)
    )
    new = fleet.check(session.session_id, "agent-silent")
    # When the old one recovers / Then the newer check keeps its slot
    out = idle.recover(
        fleet.store, fleet.hosts, session_id=session.session_id, execution=old, error="x"
    )
    assert out["recovered"] == "left"
    assert fleet.store.require(session.session_id).idle_check == new


# -- the whole idle workflow, and its races -------------------------------------------------------
def test_an_idle_desktop_goes_from_claim_to_stopped_through_every_step(fleet: Fleet) -> None:
    # Given a READY desktop whose agent claims idle, and nobody connected
    session = fleet.ready()
    claim = idle_claim(session)
    execution = fleet.check(session.session_id, "idle", claim)
    # When the workflow verifies, warns, re-verifies, acts and confirms
    first = fleet.verify(session.session_id, execution, claim=claim)
    assert first.idle is True
    fleet.warn(session.session_id, execution, reason=first.reason)
    second = fleet.verify(session.session_id, execution, phase="reverify", claim=claim)
    assert second.idle is True
    fleet.act(session.session_id, execution, reason=second.reason, evidence=second.evidence)
    fleet.hosts.settle()
    idle.confirm(fleet.store, fleet.hosts, session.session_id)
    # Then the desktop is STOPPED, its host stopped once, and the record says why
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPED
    assert fleet.hosts.stops == [(session.instance_id, "stop")]
    assert stored.status_reason == f"Stopped because {second.reason}."
    assert fleet.instance(session.session_id).state == "stopped"


def test_a_reconnect_during_the_grace_period_cancels_the_stop(fleet: Fleet) -> None:
    # Given a desktop verified idle and warned
    session = fleet.ready()
    execution = fleet.check(session.session_id, "idle", idle_claim(session))
    first = fleet.verify(session.session_id, execution, claim=idle_claim(session))
    assert first.idle is True
    fleet.warn(session.session_id, execution, reason=first.reason)
    # When the user reconnects before the grace period ends
    fleet.commands.connections = 1
    second = fleet.verify(
        session.session_id, execution, phase="reverify", claim=idle_claim(session)
    )
    assert second.idle is False
    assert second.reason == "someone reconnected"
    out = idle.end_check(
        fleet.store,
        session_id=session.session_id,
        execution=execution,
        reason=second.reason,
        warned=True,
    )
    # Then the desktop stays READY, says why nothing stopped, and nothing was stopped
    assert out == {"cancelled": True, "reason": "someone reconnected"}
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.READY
    assert stored.idle_check is None
    assert stored.status_reason == "Idle stop cancelled: someone reconnected."
    assert fleet.hosts.stops == []
    assert fleet.instance(session.session_id).state == "running"


def test_a_check_that_never_warned_ends_without_a_reason(fleet: Fleet) -> None:
    session = fleet.ready()
    execution = fleet.check(session.session_id)
    idle.end_check(
        fleet.store,
        session_id=session.session_id,
        execution=execution,
        reason="1 client(s) connected",
        warned=False,
    )
    stored = fleet.store.require(session.session_id)
    assert (stored.idle_check, stored.status_reason) == (None, None)


def test_two_idle_events_for_one_session_start_one_workflow(fleet: Fleet) -> None:
    # Given a READY desktop
    session = fleet.ready()
    claim = idle_claim(session)
    # When its agent's idle event is delivered twice
    outcomes = [
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle", claim=claim
        )
        for _ in range(2)
    ]
    # Then one idle workflow runs
    assert outcomes == ["started", "already-checking"]
    assert len(fleet.workflows.idle_checks()) == 1


def test_an_idle_event_after_the_users_stop_is_rejected(fleet: Fleet) -> None:
    # Given the user stopped her desktop
    session = fleet.ready()
    fleet.request_stop(session.session_id)
    started = len(fleet.workflows.started)
    # When the agent's idle event arrives after / Then it is refused and nothing more starts
    with pytest.raises(ClaimRejectedError, match="STOPPING"):
        idle.start_idle_check(
            fleet.store,
            fleet.workflows,
            SETTINGS,
            session.session_id,
            trigger="idle",
            claim=idle_claim(session),
        )
    assert len(fleet.workflows.started) == started


def test_an_idle_check_past_verify_loses_to_the_users_stop_and_the_host_stops_once(
    fleet: Fleet,
) -> None:
    # Given an idle workflow that verified the desktop idle (twice) and is about to act
    session = fleet.ready()
    idle_execution = fleet.check(session.session_id, "idle", idle_claim(session))
    assert fleet.verify(session.session_id, idle_execution, phase="reverify").idle is True
    # When the user stops it first, and the user's workflow acts
    user_execution = fleet.request_stop(session.session_id)
    fleet.act(
        session.session_id,
        user_execution,
        trigger="user",
        requested_action="stop",
        reason="requested",
    )
    # Then the idle workflow's act is refused
    with pytest.raises(SessionConflictError):
        fleet.act(session.session_id, idle_execution)
    # And its recovery leaves the user's stop alone
    out = idle.recover(
        fleet.store,
        fleet.hosts,
        session_id=session.session_id,
        execution=idle_execution,
        error="SessionConflictError",
    )
    assert out["recovered"] == "left"
    # And the host was stopped once, by the user's path, and the record says so
    assert fleet.hosts.stops == [(session.instance_id, "stop")]
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPING
    assert stored.idle_check == user_execution
    assert stored.status_reason == "Stopped by you."


def test_idle_act_racing_the_users_stop_lets_exactly_one_win() -> None:
    winners: list[str] = []
    for round_number in range(RACE_ROUNDS):
        # Given an idle workflow about to act
        fleet = Fleet(store=RacyStore())
        session = fleet.ready()
        execution = fleet.check(session.session_id)
        # When the user's stop and the idle act hit the record at the same moment (or one of them
        # a moment earlier, so that each side gets to win some rounds)
        acted, stopped = run_together(
            partial(fleet.act, session.session_id, execution),
            partial(
                user_requests.request_stop,
                fleet.store,
                fleet.workflows,
                SETTINGS,
                ALICE,
                session.session_id,
                action="stop",
            ),
            head_start=(0, 1, None)[round_number % 3],
        )
        # Then exactly one of them moved READY -> STOPPING; the other was refused
        stored = fleet.store.require(session.session_id)
        assert stored.status is Status.STOPPING
        user_workflows = [p for _, p in fleet.workflows.idle_checks() if p["trigger"] == "user"]
        if isinstance(acted, dict):
            assert isinstance(stopped, StatusConflictError), f"round {round_number}: {stopped!r}"
            assert stopped.status == "STOPPING"
            assert fleet.hosts.stops == [(session.instance_id, "stop")]
            assert user_workflows == []
            assert stored.idle_check == execution
            winners.append("idle")
        else:
            assert isinstance(acted, SessionConflictError), f"round {round_number}: {acted!r}"
            assert isinstance(stopped, Session)
            assert fleet.hosts.stops == []
            assert len(user_workflows) == 1
            assert stored.status_reason == "Stopped by you."
            winners.append("user")
    assert len(winners) == RACE_ROUNDS  # which side wins each round is the scheduler's choice


def test_a_sweep_finding_and_an_agents_idle_event_at_once_start_one_workflow() -> None:
    for round_number in range(RACE_ROUNDS):
        # Given a READY desktop whose agent has been silent (by the sweep's clock) yet claims idle
        fleet = Fleet(store=RacyStore())
        session = fleet.ready()
        claim = idle_claim(session)
        # When the sweep's item and the agent's idle event are handled at the same moment
        swept, claimed = run_together(
            partial(
                sweep.sweep_item,
                fleet.store,
                fleet.hosts,
                fleet.secrets,
                fleet.workflows,
                SETTINGS,
                kind="agent-silent",
                item_id=session.session_id,
            ),
            partial(
                idle.start_idle_check,
                fleet.store,
                fleet.workflows,
                SETTINGS,
                session.session_id,
                trigger="idle",
                claim=claim,
            ),
        )
        # Then one idle workflow runs
        outcomes = sorted([swept["outcome"], claimed])
        assert outcomes == ["already-checking", "started"], f"round {round_number}: {outcomes}"
        assert len(fleet.workflows.idle_checks()) == 1


# -- the user's calls: stop, delete, start ----------------------------------------------------------
def test_request_stop_moves_to_stopping_and_starts_the_users_stop(fleet: Fleet) -> None:
    # Given a READY desktop with an idle check in progress
    session = fleet.ready()
    fleet.check(session.session_id)
    # When its owner stops it
    updated = user_requests.request_stop(
        fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id, action="stop"
    )
    # Then it is STOPPING, the slot is the user's workflow's, and that workflow starts to stop it
    assert updated.status is Status.STOPPING
    assert updated.status_reason == "Stopped by you."
    name, payload = fleet.workflows.idle_checks()[-1]
    assert updated.idle_check == name
    assert payload == {
        "sessionId": session.session_id,
        "trigger": "user",
        "action": "stop",
        "claim": {},
    }


def test_delete_of_a_stopped_desktop_terminates_it(fleet: Fleet) -> None:
    # Given a STOPPED desktop
    session = fleet.stopped()
    # When its owner deletes it, and the workflow acts and confirms
    name = fleet.request_stop(session.session_id, action="terminate")
    assert fleet.store.require(session.session_id).status is Status.TERMINATING
    fleet.act(
        session.session_id, name, trigger="user", requested_action="terminate", reason="requested"
    )
    idle.confirm(fleet.store, fleet.hosts, session.session_id)
    # Then it is TERMINATED, its host terminated and its credentials gone
    assert fleet.store.require(session.session_id).status is Status.TERMINATED
    assert fleet.hosts.terminated == [session.instance_id]
    assert session.session_id not in fleet.secrets.secrets
    assert fleet.store.active_count(ALICE.sub) == 0


def _stop(fleet: Fleet, session_id: str, caller: Caller) -> Any:
    return user_requests.request_stop(
        fleet.store, fleet.workflows, SETTINGS, caller, session_id, action="stop"
    )


def _delete(fleet: Fleet, session_id: str, caller: Caller) -> Any:
    return user_requests.request_stop(
        fleet.store, fleet.workflows, SETTINGS, caller, session_id, action="terminate"
    )


def _start(fleet: Fleet, session_id: str, caller: Caller) -> Any:
    return user_requests.resume(fleet.store, fleet.workflows, SETTINGS, caller, session_id)


@pytest.mark.parametrize(
    ("call", "status"),
    [(_stop, "STOPPED"), (_delete, "STOPPING"), (_start, "READY")],
    ids=["stop-from-stopped", "delete-from-stopping", "start-from-ready"],
)
def test_calls_from_the_wrong_status_are_conflicts_naming_the_current_status(
    fleet: Fleet, call: Callable[[Fleet, str, Caller], Any], status: str
) -> None:
    # Given alice's desktop in a status the call is not valid from
    if status == "STOPPED":
        session = fleet.stopped()
    elif status == "STOPPING":  # (a delete while PROVISIONING cancels: tests/unit/test_cancel.py)
        session = fleet.ready()
        fleet.request_stop(session.session_id)
    else:
        session = fleet.ready()
    before = fleet.store.require(session.session_id)
    started = len(fleet.workflows.started)
    # When she makes the call / Then it is a 409 naming the current status, and nothing changes
    with pytest.raises(StatusConflictError, match=f"the desktop is {status}") as raised:
        call(fleet, session.session_id, ALICE)
    assert raised.value.status == status
    assert fleet.store.require(session.session_id) == before
    assert len(fleet.workflows.started) == started


@pytest.mark.parametrize("call", [_stop, _delete, _start], ids=["stop", "delete", "start"])
def test_another_users_session_is_not_found(
    fleet: Fleet, call: Callable[[Fleet, str, Caller], Any]
) -> None:
    # Given alice's READY desktop (bob is refused before its status is even looked at)
    ready = fleet.ready()
    before = fleet.store.require(ready.session_id)
    # When bob calls on it / Then it does not exist for him, and nothing changes
    with pytest.raises(SessionNotFoundError):
        call(fleet, ready.session_id, BOB)
    assert fleet.store.require(ready.session_id) == before


def test_another_user_cannot_start_a_stopped_desktop(fleet: Fleet) -> None:
    session = fleet.stopped()
    with pytest.raises(SessionNotFoundError):
        _start(fleet, session.session_id, BOB)
    assert fleet.store.require(session.session_id).status is Status.STOPPED


def test_resume_over_the_per_user_limit_is_refused_and_the_desktop_stays_stopped(
    fleet: Fleet,
) -> None:
    # Given alice's STOPPED desktop, and a second desktop of hers that is active (limit: 1)
    stopped = fleet.stopped()
    fleet.ready()
    assert fleet.store.active_count(ALICE.sub) == 1
    before = fleet.store.require(stopped.session_id)
    started = len(fleet.workflows.started)
    # When she starts the stopped one / Then it is refused over the limit
    with pytest.raises(SessionLimitExceededError):
        user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, stopped.session_id)
    # And it stays STOPPED, nothing starts, and the count is unchanged
    assert fleet.store.require(stopped.session_id) == before
    assert len(fleet.workflows.started) == started
    assert fleet.store.active_count(ALICE.sub) == 1


def test_resume_clears_the_old_connection_and_starts_the_provisioning_workflow_as_a_resume(
    fleet: Fleet,
) -> None:
    # Given a desktop that was READY (with a URL and DCV session) and is now STOPPED
    session = fleet.ready()
    assert session.connection_url is not None
    fleet.stop_by_user(session.session_id)
    # When alice starts it again
    updated = user_requests.resume(
        fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id
    )
    # Then it is PROVISIONING on the same instance, with no stale connection, counted again
    stored = fleet.store.require(session.session_id)
    assert updated == stored
    assert stored.status is Status.PROVISIONING
    assert stored.instance_id == session.instance_id
    assert (stored.connection_url, stored.dcv_session_id, stored.status_reason) == (
        None,
        None,
        None,
    )
    assert fleet.store.active_count(ALICE.sub) == 1
    # And the provisioning workflow starts as a resume, under the execution the record names
    arn, name, payload = fleet.workflows.started[-1]
    assert arn == STATE_MACHINE
    assert stored.execution_arn is not None
    assert stored.execution_arn.endswith(f":{name}")
    assert "-resume-" in name
    assert payload == {
        "sessionId": session.session_id,
        "owner": ALICE.sub,
        "backend": "ec2",
        "os": "linux",
        "instanceType": REQUESTED,
        "resume": True,
    }


def test_a_resume_that_cannot_start_its_workflow_leaves_the_desktop_stopped(fleet: Fleet) -> None:
    session = fleet.stopped()
    fleet.workflows.start_fails_with = RuntimeError("ExecutionLimitExceeded")
    with pytest.raises(RuntimeError):
        user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPED
    assert stored.status_reason == "The desktop could not be started. Try again."
    assert fleet.store.active_count(ALICE.sub) == 0


def _resuming(fleet: Fleet) -> Session:
    """A STOPPED desktop alice has just started again (PROVISIONING, its instance stopped)."""
    session = fleet.stopped()
    return user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)


def test_resume_instance_starts_the_stopped_instance_of_the_desktop(fleet: Fleet) -> None:
    # Given a resuming desktop whose instance is stopped
    session = _resuming(fleet)
    # When the provisioning workflow resumes it
    out = service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    # Then its own instance is started (same disk), and the step says which
    assert fleet.hosts.starts == [session.instance_id]
    assert out == {"instanceId": session.instance_id, "instanceType": REQUESTED}
    # And a retry of the step finds it started and does not start it again
    fleet.hosts.settle()
    service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    assert fleet.hosts.starts == [session.instance_id]


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("stopping", InstanceBusyError),
        ("terminated", InstanceGoneError),
        ("shutting-down", InstanceGoneError),
    ],
)
def test_resume_instance_waits_for_a_stopping_instance_and_gives_up_on_a_gone_one(
    fleet: Fleet, state: str, error: type[Exception]
) -> None:
    # Given a resuming desktop whose instance is still stopping, or gone
    session = _resuming(fleet)
    fleet.hosts.set(session.instance_id or "", state=state)
    # When the workflow resumes it / Then the step fails (busy is retried; gone compensates)
    with pytest.raises(error):
        service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    assert fleet.hosts.starts == []


def test_a_failed_resume_is_undone_by_stopping_the_instance_and_keeping_the_secret(
    fleet: Fleet,
) -> None:
    # Given a resumed desktop whose instance started but whose agent never reported ready
    session = _resuming(fleet)
    service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    fleet.hosts.settle()
    # When the provisioning workflow compensates the resume
    out = compensation.compensate(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        session.session_id,
        {"Error": "HostNotReadyError"},
        resume=True,
    )
    # Then the instance is stopped again (not terminated), the secret kept, and the desktop STOPPED
    assert out["stopped"] == [session.instance_id]
    assert fleet.hosts.stops[-1] == (session.instance_id, "stop")
    assert fleet.hosts.terminated == []
    assert session.session_id in fleet.secrets.secrets
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPED
    assert stored.status_reason is not None
    assert "its disk is kept" in stored.status_reason
    assert fleet.store.active_count(ALICE.sub) == 0


def test_a_failed_resume_whose_instance_is_gone_fails_the_session(fleet: Fleet) -> None:
    # Given a resuming desktop whose instance was terminated meanwhile
    session = _resuming(fleet)
    fleet.hosts.set(session.instance_id or "", state="terminated")
    # When the workflow compensates the resume / Then the session is FAILED, saying why
    compensation.compensate(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        session.session_id,
        {"Error": "InstanceGoneError"},
        resume=True,
    )
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.FAILED
    assert stored.status_reason is not None
    assert "no longer exists" in stored.status_reason
    assert fleet.store.active_count(ALICE.sub) == 0


# -- reconciliation with EC2 --------------------------------------------------------------------
def test_an_instance_stopped_outside_dcv_fleet_is_recorded_and_never_started_again(
    fleet: Fleet,
) -> None:
    # Given a READY desktop whose instance someone stopped in the EC2 console
    session = fleet.ready()
    fleet.hosts.set(session.instance_id or "", state="stopped")
    # When the EC2 state change arrives
    outcome = fleet.instance_changed(session.instance_id or "", "stopped")
    # Then the desktop is STOPPING, says why, and an idle workflow records it as an external stop
    assert outcome == "recording an external stop"
    stored = fleet.store.require(session.session_id)
    assert stored.status is Status.STOPPING
    assert stored.status_reason == "Its instance was stopped outside DCV Fleet."
    [(name, payload)] = fleet.workflows.idle_checks()
    assert stored.idle_check == name
    assert payload == {
        "sessionId": session.session_id,
        "trigger": "external",
        "action": "stop",
        "claim": {},
    }
    # And when that workflow acts and confirms, the desktop is STOPPED and nothing was started or stopped by us
    out = fleet.act(
        session.session_id, name, trigger="external", requested_action="stop", reason="requested"
    )
    assert_valid_event("Session Stopped", out["detail"])
    assert idle.confirm(fleet.store, fleet.hosts, session.session_id) == {"done": True}
    assert fleet.store.require(session.session_id).status is Status.STOPPED
    assert fleet.hosts.starts == []
    assert fleet.hosts.stops == []


def test_an_instance_terminated_outside_dcv_fleet_moves_its_session_to_terminating(
    fleet: Fleet,
) -> None:
    # Given a READY desktop whose instance someone terminated
    session = fleet.ready()
    fleet.hosts.set(session.instance_id or "", state="terminated")
    # When the EC2 state change arrives
    outcome = fleet.instance_changed(session.instance_id or "", "terminated")
    # Then it is TERMINATING and an external termination is recorded by the idle workflow
    assert outcome == "recording an external terminate"
    assert fleet.store.require(session.session_id).status is Status.TERMINATING
    [(name, payload)] = fleet.workflows.idle_checks()
    assert payload["trigger"] == "external"
    assert payload["action"] == "terminate"
    # And that workflow deletes the credentials and ends at TERMINATED
    fleet.act(
        session.session_id,
        name,
        trigger="external",
        requested_action="terminate",
        reason="requested",
    )
    idle.confirm(fleet.store, fleet.hosts, session.session_id)
    assert fleet.store.require(session.session_id).status is Status.TERMINATED
    assert session.session_id not in fleet.secrets.secrets


@pytest.mark.parametrize(
    ("first", "then", "action", "final", "detail_type"),
    [
        ("stopping", "stopped", "stop", Status.STOPPED, "Session Stopped"),
        ("shutting-down", "terminated", "terminate", Status.TERMINATED, "Session Terminated"),
    ],
)
def test_a_change_outside_that_finishes_before_its_workflow_acts_is_still_announced(  # noqa: PLR0917
    fleet: Fleet, first: str, then: str, action: str, final: Status, detail_type: str
) -> None:
    # Given a READY desktop whose instance is stopped (or terminated) in the console
    session = fleet.ready()
    instance_id = session.instance_id or ""
    fleet.hosts.set(instance_id, state=then)
    fleet.instance_changed(instance_id, first)
    [(name, _)] = fleet.workflows.idle_checks()
    # When the final state's event confirms it before the workflow's act step runs
    assert fleet.instance_changed(instance_id, then) == "done"
    assert fleet.store.require(session.session_id).status is final
    # Then the act step still produces the announcement and notification, acting on nothing
    out = fleet.act(
        session.session_id, name, trigger="external", requested_action=action, reason="outside"
    )
    assert (out["detailType"], out["action"]) == (detail_type, action)
    assert idle.confirm(fleet.store, fleet.hosts, session.session_id) == {"done": True}
    if action == "terminate":
        assert session.session_id not in fleet.secrets.secrets


def _untagged(fleet: Fleet, session: Session) -> str:
    instance = fleet.hosts.add(session_id="unused", state="stopped")
    fleet.hosts.set(instance.instance_id, tags={"Name": "someone-elses-server"})
    return instance.instance_id


def _unknown(fleet: Fleet, session: Session) -> str:
    return "i-0123456789abcdef0"


def _stray_of_the_session(fleet: Fleet, session: Session) -> str:
    # tagged for the desktop, but not the instance its record names
    return fleet.hosts.add(session_id=session.session_id, state="stopped").instance_id


@pytest.mark.parametrize(
    ("instance_for", "outcome"),
    [
        (_untagged, "not a desktop of this fleet"),
        (_unknown, "not a desktop of this fleet"),
        (_stray_of_the_session, "no session on this instance"),
    ],
    ids=["not-tagged", "unknown", "not-the-recorded-instance"],
)
def test_an_event_for_an_instance_that_is_not_a_desktops_is_ignored(
    fleet: Fleet, instance_for: Callable[[Fleet, Session], str], outcome: str
) -> None:
    # Given a READY desktop, and a state change of some other instance
    session = fleet.ready()
    before = fleet.store.require(session.session_id)
    instance_id = instance_for(fleet, session)
    # When it arrives / Then it is ignored: no record changes and no workflow starts
    result = fleet.instance_changed(instance_id, "stopped")
    assert result == outcome
    assert fleet.store.require(session.session_id) == before
    assert fleet.workflows.started == []


def test_a_stopping_session_whose_instance_stopped_becomes_stopped(fleet: Fleet) -> None:
    # Given a desktop the user stopped, its host now stopped
    session = fleet.ready()
    name = fleet.request_stop(session.session_id)
    fleet.act(session.session_id, name, trigger="user", requested_action="stop", reason="requested")
    fleet.hosts.settle()
    # When the EC2 state change arrives
    outcome = fleet.instance_changed(session.instance_id or "", "stopped")
    # Then the desktop is STOPPED (no further workflow needed)
    assert outcome == "done"
    assert fleet.store.require(session.session_id).status is Status.STOPPED
    assert len(fleet.workflows.started) == 1


# -- the fleet sweep --------------------------------------------------------------------------
def _sweep(fleet: Fleet) -> list[tuple[str, str]]:
    found = sweep.find_sweep_work(fleet.store, fleet.hosts, fleet.settings)
    return [(item["kind"], item["id"]) for item in found["items"]]


def _ready_since(fleet: Fleet, seconds: float, caller: Caller = ALICE) -> Session:
    """A desktop READY since ``seconds`` ago."""
    session = fleet.ready(caller)
    return fleet.store.update(fleet.store.require(session.session_id), ready_at=ago(seconds))


def test_the_sweep_finds_a_ready_desktop_whose_agent_went_silent(fleet: Fleet) -> None:
    # Given a desktop READY for an hour whose agent last spoke longer ago than the heartbeat
    # timeout, and one whose agent spoke just now
    silent = _ready_since(fleet, 3600)
    fleet.store.record_heartbeat(
        silent.session_id,
        silent.instance_id or "",
        ago(SETTINGS.heartbeat_timeout_seconds + 60),
        {"idle": True},
    )
    chatty = fleet.ready(BOB)
    idle.record_heartbeat(fleet.store, heartbeat(chatty))
    # When the sweep looks / Then only the silent one is found
    assert _sweep(fleet) == [("agent-silent", silent.session_id)]
    # And its item starts an idle check for a silent agent
    out = sweep.sweep_item(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        fleet.workflows,
        SETTINGS,
        kind="agent-silent",
        item_id=silent.session_id,
    )
    assert out == {"kind": "agent-silent", "id": silent.session_id, "outcome": "started"}
    [(_, payload)] = fleet.workflows.idle_checks()
    assert payload == {
        "sessionId": silent.session_id,
        "trigger": "agent-silent",
        "action": None,
        "claim": {},
    }


def test_the_sweep_counts_silence_from_ready_for_an_agent_that_never_spoke(fleet: Fleet) -> None:
    # Given a desktop READY just now, and one READY for an hour, neither agent heard from
    fleet.ready()
    quiet = _ready_since(fleet, 3600, BOB)
    # When the sweep looks / Then only the one past the heartbeat timeout since READY is silent
    assert _sweep(fleet) == [("agent-silent", quiet.session_id)]


def test_the_sweep_does_not_take_a_just_resumed_desktop_for_silent(fleet: Fleet) -> None:
    # Given a desktop whose agent last spoke days ago, before it was stopped
    session = fleet.ready()
    fleet.store.record_heartbeat(
        session.session_id, session.instance_id or "", ago(3 * 86400), {"idle": True}
    )
    fleet.stop_by_user(session.session_id)
    # When it is started again and has just become READY (its agent not heard from yet)
    user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)
    service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    fleet.hosts.settle()
    fleet.host_ready(session.session_id, session.instance_id or "")
    assert fleet.store.require(session.session_id).status is Status.READY
    # Then the sweep does not count the silence from a heartbeat of its previous run
    assert _sweep(fleet) == []


def test_the_sweep_finds_a_desktop_past_its_max_lifetime() -> None:
    # Given a one-hour lifetime, and a desktop READY for two hours whose agent speaks
    fleet = Fleet(settings=replace(SETTINGS, max_session_seconds=3600))
    session = fleet.ready()
    fleet.store.update(fleet.store.require(session.session_id), ready_at=ago(7200))
    idle.record_heartbeat(fleet.store, heartbeat(session, idle=False))
    # When the sweep looks / Then it is found over its lifetime, and its item starts that check
    assert _sweep(fleet) == [("max-lifetime", session.session_id)]
    out = sweep.sweep_item(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        fleet.workflows,
        fleet.settings,
        kind="max-lifetime",
        item_id=session.session_id,
    )
    assert out["outcome"] == "started"
    assert fleet.workflows.idle_checks()[0][1]["trigger"] == "max-lifetime"


def test_the_sweep_fails_a_provisioning_stuck_past_its_timeout(fleet: Fleet) -> None:
    # Given a desktop provisioning with no progress for longer than any provisioning can take,
    # and one that started provisioning just now
    stuck, instance = fleet.provisioning()
    backdate_updated_at(fleet.store, stuck.session_id, SETTINGS.stuck_provisioning_seconds + 60)
    fresh, _ = fleet.provisioning(BOB)
    # When the sweep looks / Then only the stuck one is found
    assert _sweep(fleet) == [("stuck-provisioning", stuck.session_id)]
    # And its item stops its workflow and compensates it
    out = sweep.sweep_item(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        fleet.workflows,
        SETTINGS,
        kind="stuck-provisioning",
        item_id=stuck.session_id,
    )
    assert out["outcome"] == "compensated"
    assert [arn for arn, _ in fleet.workflows.stopped] == [stuck.execution_arn]
    stored = fleet.store.require(stuck.session_id)
    assert stored.status is Status.FAILED
    assert stored.status_reason == "The desktop did not become ready in time."
    assert fleet.hosts.terminated == [instance.instance_id]
    assert stuck.session_id not in fleet.secrets.secrets
    assert fresh.session_id in fleet.secrets.secrets
    assert fleet.store.active_count(ALICE.sub) == 0


def test_the_sweep_leaves_a_batch_desktop_waiting_for_gpu_capacity_until_that_wait_is_over(
    fleet: Fleet,
) -> None:
    # Given a batch desktop whose job has waited for GPU capacity (its record unchanged) longer
    # than an ec2 desktop's provisioning can take, within BatchCapacityTimeoutSeconds (a day)
    settings = replace(SETTINGS, batch_capacity_timeout_seconds=86_400)
    waiting, _ = fleet.provisioning()
    fleet.store.update(fleet.store.require(waiting.session_id), backend="batch")
    backdate_updated_at(fleet.store, waiting.session_id, settings.stuck_provisioning_seconds + 3600)
    # When the sweep looks / Then it is not stuck: its workflow is still waiting for capacity
    assert sweep.find_sweep_work(fleet.store, fleet.hosts, settings)["items"] == []
    # And once even that wait is over, it is
    backdate_updated_at(
        fleet.store, waiting.session_id, settings.stuck_provisioning_seconds_for("batch") + 60
    )
    found = sweep.find_sweep_work(fleet.store, fleet.hosts, settings)["items"]
    assert found == [{"kind": "stuck-provisioning", "id": waiting.session_id}]


@pytest.mark.parametrize(
    ("orphan_action", "outcome", "state"),
    [
        ("stop", "stopped", "stopping"),
        ("terminate", "terminated", "terminated"),
        ("report", "reported", "running"),
    ],
)
def test_the_sweep_handles_a_running_fleet_instance_without_a_live_session_per_orphan_action(
    orphan_action: str, outcome: str, state: str
) -> None:
    # Given a running fleet instance whose session no longer exists, one whose desktop is STOPPED,
    # a running instance outside the fleet, and a READY desktop
    fleet = Fleet(settings=replace(SETTINGS, orphan_action=orphan_action))
    orphan = fleet.hosts.add(session_id="a-deleted-session")
    fleet.hosts.set(orphan.instance_id, tags={**orphan.tags, FLEET_TAG[0]: FLEET_TAG[1]})
    stopped = fleet.stopped()
    fleet.hosts.set(stopped.instance_id or "", state="running")  # started by hand in the console
    fleet.hosts.add(session_id="another-fleets-session")
    live = fleet.ready(BOB)
    # When the sweep looks / Then both fleet instances without a live session are orphans
    assert sorted(_sweep(fleet)) == sorted(
        [("orphan", orphan.instance_id), ("orphan", stopped.instance_id or "")]
    )
    # And each item acts on it per OrphanAction
    for instance_id in (orphan.instance_id, stopped.instance_id or ""):
        out = sweep.sweep_item(
            fleet.store,
            fleet.hosts,
            fleet.secrets,
            fleet.workflows,
            fleet.settings,
            kind="orphan",
            item_id=instance_id,
        )
        assert out["outcome"] == outcome
        assert fleet.hosts.instances[instance_id].state == state
    assert fleet.instance(live.session_id).state == "running"


def test_a_sweep_acts_on_at_most_its_cap_of_findings_and_counts_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given more orphaned fleet instances than one sweep acts on (the cap keeps the sweep
    # workflow within Step Functions' history and payload quotas)
    monkeypatch.setattr(sweep, "MAX_SWEEP_ITEMS", 3)
    fleet = Fleet()
    for n in range(5):
        orphan = fleet.hosts.add(session_id=f"a-deleted-session-{n}")
        fleet.hosts.set(orphan.instance_id, tags={**orphan.tags, FLEET_TAG[0]: FLEET_TAG[1]})
    # When the sweep looks / Then it acts on three, and still reports finding five
    found = sweep.find_sweep_work(fleet.store, fleet.hosts, fleet.settings)
    assert len(found["items"]) == 3
    assert found["counts"] == {"orphan": 5}


def test_a_sweep_items_outcome_line_is_short(fleet: Fleet) -> None:
    # Given a finding whose session is gone, with a very long id
    item_id = "x" * 5000
    # When it is acted on / Then its outcome line stays within the sweep's bound
    out = sweep.sweep_item(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        fleet.workflows,
        SETTINGS,
        kind="stuck-stopping",
        item_id=item_id,
    )
    assert 0 < len(out["outcome"]) <= sweep.MAX_SWEEP_OUTCOME_CHARACTERS


def test_an_orphan_item_skips_an_instance_whose_session_became_live(fleet: Fleet) -> None:
    # Given an instance found orphaned, whose desktop was started again since
    session = fleet.stopped()
    fleet.hosts.set(session.instance_id or "", state="running")
    user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)
    # When its item is acted on / Then it is skipped, not stopped
    out = sweep.sweep_item(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        fleet.workflows,
        SETTINGS,
        kind="orphan",
        item_id=session.instance_id or "",
    )
    assert out["outcome"].startswith("skipped")
    assert fleet.instance(session.session_id).state == "running"


def test_the_sweep_does_not_refind_a_desktop_whose_check_is_in_progress(fleet: Fleet) -> None:
    # Given a silent desktop whose idle check the sweep already started
    session = _ready_since(fleet, 3600)
    fleet.store.record_heartbeat(
        session.session_id,
        session.instance_id or "",
        ago(SETTINGS.heartbeat_timeout_seconds + 60),
        {"idle": True},
    )
    assert _sweep(fleet) == [("agent-silent", session.session_id)]
    fleet.check(session.session_id, "agent-silent")
    # When the sweep looks again / Then it is not found while the check is fresh
    assert _sweep(fleet) == []
    # But it is once that check is stale (it died without ending)
    fleet.store.update(
        fleet.store.require(session.session_id),
        idle_check_at=ago(SETTINGS.stale_check_seconds + 60),
    )
    assert _sweep(fleet) == [("agent-silent", session.session_id)]


def test_the_sweep_redrives_a_stop_whose_workflow_never_finished(fleet: Fleet) -> None:
    # Given a desktop stuck STOPPING for longer than any check runs
    session = fleet.ready()
    fleet.request_stop(session.session_id)
    backdate_updated_at(fleet.store, session.session_id, SETTINGS.stale_check_seconds + 60)
    # When the sweep looks / Then it is found, and its item starts the user's stop again
    assert _sweep(fleet) == [("stuck-stopping", session.session_id)]
    out = sweep.sweep_item(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        fleet.workflows,
        SETTINGS,
        kind="stuck-stopping",
        item_id=session.session_id,
    )
    assert out["outcome"] == "stop started again"
    name, payload = fleet.workflows.idle_checks()[-1]
    assert payload == {
        "sessionId": session.session_id,
        "trigger": "user",
        "action": "stop",
        "claim": {},
    }
    assert fleet.store.require(session.session_id).idle_check == name


# -- each desktop's own policy, from its profile ----------------------------------------------------
def _of_profile(fleet: Fleet, session: Session, **spec: Any) -> Session:
    """``session`` as if made from a profile with ``spec``'s idle policy and maximum length."""
    body = {
        "name": "CAD workstation",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": [REQUESTED],
        "idle": {"timeoutSeconds": 600, "action": "stop"},
        **spec,
    }
    kept = profiles.snapshot(profiles.parse_spec(body), "cad", None)
    current = fleet.store.require(session.session_id)
    return fleet.store.update(current, extra={**current.extra, **kept})


def test_an_idle_desktop_gets_its_profiles_action_not_the_fleets() -> None:
    # Given a fleet whose IdleAction is stop, and a desktop whose profile says terminate
    fleet = Fleet(settings=replace(SETTINGS, idle_action="stop"))
    session = _of_profile(fleet, fleet.ready(), idle={"timeoutSeconds": 600, "action": "terminate"})
    # When it is found idle and acted on
    execution = fleet.check(session.session_id, "idle")
    warned = fleet.warn(session.session_id, execution)
    done = fleet.act(session.session_id, execution)
    # Then it is terminated, and its user was warned so
    assert warned["detail"]["action"] == "terminate"
    assert done["action"] == "terminate"
    assert fleet.store.require(session.session_id).status is Status.TERMINATING


def test_an_idle_reason_names_the_desktops_own_timeout() -> None:
    fleet = Fleet(settings=replace(SETTINGS, idle_timeout_seconds=1800))
    session = _of_profile(fleet, fleet.ready())
    execution = fleet.check(session.session_id, "idle")
    verdict = fleet.verify(session.session_id, execution, claim={"signals": {}})
    assert verdict.reason.startswith("no one has used it for the idle timeout of 10 min")


def test_the_sweep_holds_each_desktop_to_its_own_maximum_length() -> None:
    # Given a fleet without a limit, a desktop whose profile allows 1 hour, READY for 2 hours,
    # and one whose profile has no limit although the fleet's MaxSessionMinutes would
    unlimited_fleet = Fleet(settings=replace(SETTINGS, max_session_seconds=0))
    limited = _of_profile(unlimited_fleet, _ready_since(unlimited_fleet, 7200), maxSessionHours=1)
    limited_fleet = Fleet(settings=replace(SETTINGS, max_session_seconds=3600))
    _of_profile(limited_fleet, _ready_since(limited_fleet, 7200), maxSessionHours=None)
    for found in (unlimited_fleet, limited_fleet):
        for session in found.store.scan_by_status(frozenset({Status.READY})):
            idle.record_heartbeat(found.store, heartbeat(session, idle=False))
    # When the sweep looks / Then only the desktop past its own limit is found
    assert _sweep(unlimited_fleet) == [("max-lifetime", limited.session_id)]
    assert _sweep(limited_fleet) == []


def test_a_desktop_past_its_maximum_length_is_stopped_however_busy_saying_why() -> None:
    # Given a desktop of "CAD workstation" (12 hours at most) READY for 13 hours, in use
    fleet = Fleet(settings=replace(SETTINGS, max_session_seconds=0))
    session = _of_profile(fleet, _ready_since(fleet, 13 * 3600), maxSessionHours=12)
    fleet.commands.connections = 2
    # When the max-lifetime check runs its course
    execution = fleet.check(session.session_id, "max-lifetime")
    verdict = fleet.verify(session.session_id, execution, trigger="max-lifetime")
    warned = fleet.warn(
        session.session_id, execution, trigger="max-lifetime", reason=verdict.reason
    )
    fleet.act(session.session_id, execution, trigger="max-lifetime", reason=verdict.reason)
    # Then it is stopped, and its user reads why in plain words
    assert verdict.idle is True
    assert verdict.reason == "it reached the 12-hour limit of CAD workstation"
    assert "because it reached the 12-hour limit of CAD workstation" in warned["message"]
    stopped = fleet.store.require(session.session_id)
    assert stopped.status is Status.STOPPING
    assert stopped.status_reason == "Stopped: it reached the 12-hour limit of CAD workstation."


def test_a_desktop_launches_with_its_own_idle_timeout_and_hibernation() -> None:
    # Given a desktop of a profile whose idle action is hibernate, after 15 minutes
    fleet = Fleet(settings=replace(SETTINGS, idle_action="stop"))
    body = {
        "name": "Sim",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": [REQUESTED],
        "idle": {"timeoutSeconds": 900, "action": "hibernate"},
    }
    kept = profiles.snapshot(profiles.parse_spec(body), "sim", None)
    request = CreateSessionRequest(backend="ec2", os="linux", instance_type=REQUESTED, profile=kept)
    session = service.create_session(fleet.store, FakeWorkflows(), API, ALICE, request)
    # When its host is launched
    service.create_credentials(fleet.store, fleet.secrets, COMMON, session.session_id)
    out = service.launch_instance(
        fleet.store, fleet.hosts, fleet.secrets, LAUNCH, session.session_id, secret_arn="arn:s"
    )
    # Then the host carries its timeout for its agent, and can hibernate
    instance = fleet.hosts.instances[out["instanceId"]]
    assert instance.tags["dcvfleet:idle-timeout-seconds"] == "900"
    assert fleet.hosts.hibernation == [True]


def _resumed_ready(fleet: Fleet) -> Session:
    """A desktop stopped by its user, started again, and READY again (its agent said so)."""
    session = fleet.ready()
    fleet.stop_by_user(session.session_id)
    user_requests.resume(fleet.store, fleet.workflows, SETTINGS, ALICE, session.session_id)
    service.resume_instance(fleet.store, fleet.hosts, session.session_id)
    fleet.hosts.settle()
    fleet.host_ready(session.session_id, session.instance_id or "")
    resumed = fleet.store.require(session.session_id)
    assert resumed.status is Status.READY
    assert resumed.resumed_at is not None
    return resumed


def test_an_idle_claim_whose_idle_period_began_before_the_last_start_is_refused(
    fleet: Fleet,
) -> None:
    # Given a desktop hibernated while its agent counted an idle period, then started again and
    # READY (the resume's Host Ready handled)
    session = _resumed_ready(fleet)
    assert session.resumed_at is not None
    before = fleet.store.require(session.session_id)
    started = len(fleet.workflows.started)
    # When the agent's Session Idle about that idle period, made as the host resumed, is handled
    # only now (its idle period began an hour before the start)
    resumed_at = triggers.parse_time(session.resumed_at)
    stale = {
        **idle_claim(session),
        "idleSince": triggers.iso(resumed_at - timedelta(hours=1)),
        "idleSeconds": 3600,
    }
    # Then it is refused, saying why; no idle workflow starts and the record is as it was
    with pytest.raises(ClaimRejectedError, match=r"before session .* was last started"):
        idle.start_idle_check(
            fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle", claim=stale
        )
    assert len(fleet.workflows.started) == started
    assert fleet.store.require(session.session_id) == before


def test_an_idle_claim_whose_idle_period_began_after_the_last_start_starts_a_check(
    fleet: Fleet,
) -> None:
    # Given a resumed READY desktop, and its agent's claim of an idle period since the resume
    session = _resumed_ready(fleet)
    assert session.resumed_at is not None
    since = triggers.parse_time(session.resumed_at) + timedelta(seconds=1)
    claim = {**idle_claim(session), "idleSince": triggers.iso(since)}
    checks = len(fleet.workflows.idle_checks())  # the user's stop was one
    # When it arrives / Then the idle workflow checks it
    outcome = idle.start_idle_check(
        fleet.store, fleet.workflows, SETTINGS, session.session_id, trigger="idle", claim=claim
    )
    assert outcome == "started"
    assert fleet.workflows.idle_checks()[checks:] == [
        (
            fleet.store.require(session.session_id).idle_check,
            {"sessionId": session.session_id, "trigger": "idle", "action": None, "claim": claim},
        )
    ]
