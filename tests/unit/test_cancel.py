"""Cancelling a desktop that is still starting (DELETE while PROVISIONING), on the in-memory store
and fakes, at every point of its provisioning: before its host is launched, while RunInstances is
in flight, once its host reported ready but before READY, and racing READY. Whichever way it
goes, every record ends true and nothing is left running or billed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from dcvfleet import batch, compensation, service
from dcvfleet.adapters import Instance
from dcvfleet.errors import SessionConflictError
from dcvfleet.lifecycle import cancel, idle, user_requests
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.service import HostReadyClaim
from dcvfleet.sessions import Caller
from tests.support.batch import SECRET, FakeJobs, FakeReleases
from tests.support.batch import SETTINGS as BATCH
from tests.support.lifecycle import (
    SETTINGS,
    Fleet,
    LifecycleHosts,
    LifecycleWorkflows,
    RacyStore,
)
from tests.support.service import (
    ALICE,
    API,
    COMMON,
    LAUNCH,
    READY_PUBLIC,
    REQUESTED,
    SECRET_ARN,
    FakeWorkflows,
)
from tests.support.sessions import a_session

#: Rounds of the threaded race with READY; each lets the scheduler pick a different winner.
RACE_ROUNDS = 15
ADMIN = Caller(sub="sub-boss", username="boss", email="boss@example.com")


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def requested(fleet: Fleet, caller: Caller = ALICE) -> Session:
    """A desktop just asked for: PROVISIONING, its workflow started, nothing made yet."""
    return service.create_session(
        fleet.store,
        FakeWorkflows(),
        API,
        caller,
        CreateSessionRequest(backend="ec2", os="linux", instance_type=REQUESTED),
    )


def cancel_it(fleet: Fleet, session_id: str, caller: Caller = ALICE) -> Session:
    """The owner's DELETE (an administrator's with ADMIN)."""
    return user_requests.request_stop(
        fleet.store,
        fleet.workflows,
        SETTINGS,
        caller,
        session_id,
        action="terminate",
        as_admin=caller is ADMIN,
    )


def finish_termination(fleet: Fleet, session_id: str) -> dict[str, Any]:
    """The idle workflow the cancel started, to its end: Act, the hosts settle, Confirm."""
    name = fleet.store.require(session_id).idle_check
    assert name is not None
    outcome = fleet.act(
        session_id, name, trigger="user", requested_action="terminate", reason="requested"
    )
    fleet.hosts.settle()
    assert idle.confirm(fleet.store, fleet.hosts, session_id) == {"done": True}
    return outcome


def assert_nothing_left(fleet: Fleet, session_id: str) -> None:
    """No instance of the desktop's runs, its secret is gone, its slot is free."""
    live = [i.instance_id for i in fleet.hosts.instances.values() if i.state != "terminated"]
    assert live == [], fleet.hosts.instances
    assert session_id not in fleet.secrets.secrets
    assert fleet.store.active_count(ALICE.sub) == 0


def assert_cancelled(fleet: Fleet, session_id: str, reason: str = "Cancelled by you.") -> Session:
    session = fleet.store.require(session_id)
    assert session.status == Status.TERMINATED, session
    assert session.status_reason == reason
    assert cancel.was_cancelled(session)
    return session


# -- the cancel itself ---------------------------------------------------------------------------
def test_a_delete_while_provisioning_cancels_stops_the_workflow_and_starts_the_termination(
    fleet: Fleet,
) -> None:
    # Given alice's desktop, still starting (credentials made, host not launched yet)
    session = requested(fleet)
    sid = session.session_id
    service.create_credentials(fleet.store, fleet.secrets, COMMON, sid)
    # When she deletes it
    answered = cancel_it(fleet, sid)
    # Then one write made it TERMINATING, in her words, marked as a cancel
    assert answered.status == Status.TERMINATING
    record = fleet.store.require(sid)
    assert (record.status, record.status_reason) == (Status.TERMINATING, "Cancelled by you.")
    assert cancel.was_cancelled(record)
    # And its provisioning execution was stopped, and one termination started
    assert fleet.workflows.stopped == [(session.execution_arn, "desktop cancelled by Alice.Smith")]
    [(name, payload)] = fleet.workflows.idle_checks()
    assert payload == {"sessionId": sid, "trigger": "user", "action": "terminate", "claim": {}}
    assert record.idle_check == name


def test_cancel_before_the_launch_launches_nothing_and_ends_terminated(fleet: Fleet) -> None:
    # Given a desktop cancelled after its credentials were made, before its host was launched
    sid = requested(fleet).session_id
    service.create_credentials(fleet.store, fleet.secrets, COMMON, sid)
    cancel_it(fleet, sid)
    # When the launch step runs after all (a task StopExecution did not stop)
    with pytest.raises(SessionConflictError, match="TERMINATING, not provisioning"):
        service.launch_instance(
            fleet.store, fleet.hosts, fleet.secrets, LAUNCH, sid, secret_arn=SECRET_ARN
        )
    # Then nothing was launched
    assert fleet.hosts.attempts == []
    # And the termination ends it: TERMINATED, its secret deleted, its slot free
    outcome = finish_termination(fleet, sid)
    assert outcome["detailType"] == "Session Terminated"
    assert "cancelled while it was starting" in outcome["message"]
    assert_cancelled(fleet, sid)
    assert_nothing_left(fleet, sid)
    # And alice may start a new desktop at once (the limit is 1)
    assert requested(fleet).status == Status.PROVISIONING


class CancelDuringLaunch(LifecycleHosts):
    """RunInstances returns only after the desktop was cancelled, and (``act_first``) after its
    termination already looked for instances and found none."""

    def __init__(self, fleet: Fleet, *, act_first: bool) -> None:
        super().__init__()
        self.fleet = fleet
        self.act_first = act_first

    def launch(self, **kwargs: Any) -> Instance:
        sid = kwargs["tags"]["dcvfleet:session-id"]
        cancel_it(self.fleet, sid)
        if self.act_first:
            finish_termination(self.fleet, sid)
        return super().launch(**kwargs)


@pytest.mark.parametrize("act_first", [False, True], ids=["act-after", "act-before"])
def test_cancel_during_the_launch_terminates_the_instance_launched_too_late(
    act_first: bool,
) -> None:
    # Given a desktop whose RunInstances returns only after it was cancelled
    fleet = Fleet()
    fleet.hosts = CancelDuringLaunch(fleet, act_first=act_first)
    sid = requested(fleet).session_id
    service.create_credentials(fleet.store, fleet.secrets, COMMON, sid)
    # When the launch step records its instance / Then its conditional write finds the desktop
    # no longer starting, and the step terminates the instance it launched
    with pytest.raises(SessionConflictError, match="not provisioning"):
        service.launch_instance(
            fleet.store, fleet.hosts, fleet.secrets, LAUNCH, sid, secret_arn=SECRET_ARN
        )
    [launched] = fleet.hosts.instances
    assert launched in fleet.hosts.terminated
    assert fleet.store.require(sid).instance_id is None  # never recorded
    # And the termination ends the desktop, whether it ran before or after
    if not act_first:
        finish_termination(fleet, sid)
    assert_cancelled(fleet, sid)
    assert_nothing_left(fleet, sid)


def test_cancel_after_the_host_reported_ready_terminates_it_and_ready_never_comes(
    fleet: Fleet,
) -> None:
    # Given a desktop whose host reported ready, but which is not READY yet
    session, instance = fleet.provisioning()
    sid = session.session_id
    claim = HostReadyClaim(instance_id=instance.instance_id, session_id=sid, dcv_session_id="c")
    service.accept_host_ready(fleet.store, fleet.hosts, FakeWorkflows(), claim)
    # When alice cancels it
    cancel_it(fleet, sid)
    # Then MarkReady can no longer make it READY
    with pytest.raises(SessionConflictError):
        service.mark_ready(fleet.store, fleet.hosts, READY_PUBLIC, sid)
    # And the termination terminates its host and ends it
    finish_termination(fleet, sid)
    assert fleet.hosts.instances[instance.instance_id].state == "terminated"
    record = assert_cancelled(fleet, sid)
    assert record.connection_url is None
    assert_nothing_left(fleet, sid)


def _ready_and_delete(order: str) -> tuple[Fleet, str, Any, Any]:
    """A desktop whose host reported ready, then MarkReady and alice's delete: one after the
    other (``order``), or at once on two threads released together ("together", on a store
    whose reads yield so the two interleave)."""
    fleet = Fleet(store=RacyStore()) if order == "together" else Fleet()
    session, instance = fleet.provisioning()
    sid = session.session_id
    claim = HostReadyClaim(instance_id=instance.instance_id, session_id=sid, dcv_session_id="c")
    service.accept_host_ready(fleet.store, fleet.hosts, FakeWorkflows(), claim)
    calls: list[Callable[[], Any]] = [
        lambda: service.mark_ready(fleet.store, fleet.hosts, READY_PUBLIC, sid),
        lambda: cancel_it(fleet, sid),
    ]
    results: list[Any] = [None, None]

    def run(index: int, barrier: threading.Barrier | None = None) -> None:
        if barrier is not None:
            barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # asserted on by the test
            results[index] = exc

    if order == "together":
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(i, barrier)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    else:
        for index in (0, 1) if order == "ready-first" else (1, 0):
            run(index)
    return fleet, sid, results[0], results[1]


@pytest.mark.parametrize("order", ["ready-first", "cancel-first", "together"])
def test_cancel_racing_ready_has_exactly_one_winner_and_leaves_nothing(order: str) -> None:
    seen: set[str] = set()
    for _ in range(RACE_ROUNDS if order == "together" else 1):
        # When MarkReady and alice's delete meet
        fleet, sid, ready, deleted = _ready_and_delete(order)
        # Then the delete is always taken, and exactly one of the two writes won from
        # PROVISIONING: READY (the delete then deletes a READY desktop) or the cancel (READY is
        # then refused)
        assert isinstance(deleted, Session), deleted
        record = fleet.store.require(sid)
        assert record.status == Status.TERMINATING
        if isinstance(ready, SessionConflictError):
            assert record.status_reason == "Cancelled by you."
            assert cancel.was_cancelled(record)
            assert record.ready_at is None
            seen.add("cancel-first")
        else:
            assert isinstance(ready, dict), ready
            assert record.status_reason == "Deleted by you."
            assert not cancel.was_cancelled(record)
            assert record.ready_at is not None
            assert fleet.workflows.stopped == []  # nothing to stop: provisioning had finished
            seen.add("ready-first")
        # And either way one termination ends it, with nothing left
        assert len(fleet.workflows.idle_checks()) == 1
        finish_termination(fleet, sid)
        assert fleet.store.require(sid).status == Status.TERMINATED
        assert_nothing_left(fleet, sid)
    if order != "together":
        assert seen == {order}


def test_credentials_made_after_the_cancel_are_deleted_by_their_step(fleet: Fleet) -> None:
    # Given a desktop cancelled while its credentials were being made (the secret is created,
    # then the record is found TERMINATING)
    sid = requested(fleet).session_id
    created = fleet.secrets.create

    def create_then_cancelled(session_id: str, username: str, tags: dict[str, str]) -> str:
        arn = created(session_id, username, tags)
        cancel_it(fleet, session_id)
        return arn

    fleet.secrets.create = create_then_cancelled  # type: ignore[method-assign]
    # When the step records it / Then it fails and has deleted the secret it made
    with pytest.raises(SessionConflictError):
        service.create_credentials(fleet.store, fleet.secrets, COMMON, sid)
    assert sid not in fleet.secrets.secrets
    finish_termination(fleet, sid)
    assert_cancelled(fleet, sid)
    assert_nothing_left(fleet, sid)


def test_a_job_submitted_after_the_cancel_is_ended_by_its_step(fleet: Fleet) -> None:
    # Given a batch desktop cancelled while its job was being submitted
    jobs = FakeJobs()
    session = a_session("s-1", owner=ALICE.sub, backend="batch", status=Status.PROVISIONING)
    fleet.store.create(session, max_active=1)
    submit = jobs.submit

    def submit_then_cancelled(session_id: str, *args: Any, **kwargs: Any) -> str:
        job_id = submit(session_id, *args, **kwargs)
        cancel_it(fleet, session_id)
        return job_id

    jobs.submit = submit_then_cancelled  # type: ignore[method-assign]
    # When the step records the job / Then it fails and has ended the job it submitted
    with pytest.raises(SessionConflictError):
        batch.submit_job(
            fleet.store, jobs, FakeReleases(), BATCH, session_id="s-1", secret_arn=SECRET
        )
    [(job_id, reason)] = jobs.terminated
    assert jobs.jobs[job_id].status == "FAILED"
    assert "cancelled" in reason
    assert fleet.store.require("s-1").job_id is None


def test_compensation_never_marks_a_cancelled_desktop_failed(fleet: Fleet) -> None:
    # Given a desktop cancelled while a step of its workflow was failing
    session, _ = fleet.provisioning()
    sid = session.session_id
    cancel_it(fleet, sid)
    # When the workflow's Compensate runs after the cancel
    out = compensation.compensate(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        sid,
        {"Error": "HostNotReadyError", "Cause": "no Host Ready"},
    )
    # Then it says the desktop was cancelled (the workflow ends quietly: no Session Failed)
    assert out["cancelled"] is True
    assert out["ready"] is None
    # And the record is still the cancel's, never FAILED
    record = fleet.store.require(sid)
    assert (record.status, record.status_reason) == (Status.TERMINATING, "Cancelled by you.")
    finish_termination(fleet, sid)
    assert_cancelled(fleet, sid)


def test_compensation_of_a_desktop_still_provisioning_is_not_a_cancel(fleet: Fleet) -> None:
    session, _ = fleet.provisioning()
    out = compensation.compensate(
        fleet.store, fleet.hosts, fleet.secrets, session.session_id, {"Error": "X", "Cause": ""}
    )
    assert out["cancelled"] is False
    assert fleet.store.require(session.session_id).status == Status.FAILED


class FailingStop(LifecycleWorkflows):
    def stop(self, execution_arn: str, cause: str) -> bool:
        raise RuntimeError("StopExecution failed (test)")


def test_a_failed_stop_execution_still_cancels(fleet: Fleet) -> None:
    # Given Step Functions refusing StopExecution
    fleet.workflows = FailingStop()
    sid = requested(fleet).session_id
    # When alice cancels / Then the cancel is taken and its termination started all the same
    # (every later step of the workflow finds it no longer PROVISIONING)
    assert cancel_it(fleet, sid).status == Status.TERMINATING
    assert len(fleet.workflows.idle_checks()) == 1
    finish_termination(fleet, sid)
    assert_cancelled(fleet, sid)


def test_an_administrator_cancels_anyones_desktop_in_the_owners_words(fleet: Fleet) -> None:
    sid = requested(fleet).session_id
    cancel_it(fleet, sid, ADMIN)
    record = fleet.store.require(sid)
    assert record.status_reason == "Cancelled by an administrator."
    assert (record.evidence or {}).get("by") == "boss"
    finish_termination(fleet, sid)
    assert_cancelled(fleet, sid, "Cancelled by an administrator.")


def test_a_batch_desktop_cancelled_before_its_job_started_ends_its_job(fleet: Fleet) -> None:
    # Given a batch desktop whose job is submitted but has no host yet
    jobs = FakeJobs()
    session = a_session(
        "s-2", owner=ALICE.sub, backend="batch", status=Status.PROVISIONING, secret_arn=SECRET
    )
    fleet.store.create(session, max_active=1)
    fleet.secrets.secrets["s-2"] = {"username": "alice", "tags": {}}
    job_id = batch.submit_job(
        fleet.store, jobs, FakeReleases(), BATCH, session_id="s-2", secret_arn=SECRET
    )["jobId"]
    # When alice cancels it and its termination runs
    cancel_it(fleet, "s-2")
    name = fleet.store.require("s-2").idle_check
    assert name is not None
    idle.act(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        SETTINGS,
        session_id="s-2",
        execution=name,
        trigger="user",
        requested_action="terminate",
        reason="requested",
        evidence={},
        jobs=jobs,
    )
    assert idle.confirm(fleet.store, fleet.hosts, "s-2", jobs=jobs) == {"done": True}
    # Then its job is ended, its secret deleted, and it is TERMINATED, cancelled
    assert jobs.jobs[job_id].status == "FAILED"
    assert "s-2" not in fleet.secrets.secrets
    assert_cancelled(fleet, "s-2")
    assert fleet.store.active_count(ALICE.sub) == 0


def test_the_termination_ends_a_host_launched_but_never_recorded(fleet: Fleet) -> None:
    # Given a desktop cancelled after RunInstances made its host, but before the launch step
    # recorded it (its function ended there: a timeout), so the record names no instance
    sid = requested(fleet).session_id
    service.create_credentials(fleet.store, fleet.secrets, COMMON, sid)
    stray = fleet.hosts.add(session_id=sid, state="pending")
    cancel_it(fleet, sid)
    assert fleet.store.require(sid).instance_id is None
    # When its termination acts / Then it terminates every host tagged for the desktop
    name = fleet.store.require(sid).idle_check
    assert name is not None
    fleet.act(sid, name, trigger="user", requested_action="terminate", reason="requested")
    assert stray.instance_id in fleet.hosts.terminated
    # And Confirm says TERMINATED only while no host of the desktop is live (one the launch
    # step made after Act looked, before that step terminates it, holds it back)
    late = fleet.hosts.add(session_id=sid, state="running")
    assert idle.confirm(fleet.store, fleet.hosts, sid) == {"done": False}
    assert fleet.store.require(sid).status == Status.TERMINATING
    fleet.hosts.terminate(late.instance_id)
    assert idle.confirm(fleet.store, fleet.hosts, sid) == {"done": True}
    assert_cancelled(fleet, sid)
    assert_nothing_left(fleet, sid)
