"""What a user reads about their desktop (``statusReason``) is plain words: no subnet, instance
or job ids, no instance types, ARNs, Regions or error class names. Every error class and every
writer of a reason is driven here with the details the code really produces (EC2's refusals,
Batch's job endings, a host command's failure), and the user's text is checked against AWS's id
formats and the code's own jargon. The operator's detail is kept in ``statusDetail`` (admin views
only) and the logs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dcvfleet import batch, compensation, service
from dcvfleet.adapters import BatchJob
from dcvfleet.errors import (
    DcvFleetError,
    HostCommandError,
    InsufficientCapacityError,
    JobFailedError,
    all_error_classes,
    user_message_for,
)
from dcvfleet.lifecycle import idle, reconcile
from dcvfleet.model import Session, Status
from dcvfleet.sessions import start_provisioning
from dcvfleet.store import InMemorySessionStore
from tests.support.batch import NOW, SECRET, FakeJobs, FakeReleases, TaggingSecrets
from tests.support.batch import SETTINGS as BATCH
from tests.support.lifecycle import Fleet, LifecycleWorkflows
from tests.support.service import (
    LAUNCH,
    SECRET_ARN,
    STATE_MACHINE,
    FakeHosts,
    FakeSecrets,
    FakeWorkflows,
)
from tests.support.sessions import a_session

#: What a user must never read: AWS resource ids (subnet, instance, security group, image, VPC,
#: volume, ECS task), ARNs and account-looking numbers, instance types, Regions, Batch job ids,
#: error class and exception names, Step Functions' own error names, and exit codes.
JARGON = re.compile(
    r"\b(?:subnet|i|sg|ami|vpc|vol|eni)-[0-9a-f]{4,}\b"
    r"|\barn:"
    r"|\b\d{12}\b"
    r"|\b[a-z]+\d[a-z0-9-]*\.(?:\d*x?large|metal|medium|small|micro|nano)\b"
    r"|\b(?:us|eu|ap|sa|ca|me|af|il|mx)(?:-gov)?-[a-z]+-\d\b"
    r"|\bjob[- ](?:[0-9a-f]{8}-|\d)"
    r"|\b[A-Z][a-z]+(?:[A-Z][a-z0-9]*)*(?:Error|Exception)\b"
    r"|\bStates\.|\bLambda\.|\bSandbox\."
    r"|\b(?:exit )?code \d+\b"
    r"|\bRUNNABLE|SUBMITTED|STARTING\b"
)


def assert_plain(text: str | None, where: str) -> None:
    assert text, f"{where}: no reason"
    found = JARGON.search(text)
    assert found is None, f"{where}: the user reads {found.group(0)!r} in {text!r}"


def test_the_jargon_pattern_finds_what_it_is_for() -> None:
    for text in [
        "no capacity for g5.xlarge in subnet-0a1b2c3d",
        "instance i-0123456789abcdef0 is gone",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        "in eu-west-1",
        "KeyError",
        "its job job-1 no longer exists",
        "CannotPullContainerError: pull access denied",
        "its container exited with code 137",
        "States.Timeout",
        "its job is RUNNABLE",
    ]:
        assert JARGON.search(text), text
    for text in [
        "No GPU capacity is available right now for the requested desktop. Try again later.",
        "The desktop's container stopped before it was ready (its image could not be pulled).",
        "Idle stop cancelled: someone is using it.",
    ]:
        assert JARGON.search(text) is None, text


# -- the details the code really fails with -------------------------------------------------------
def _ec2_capacity_errors() -> list[DcvFleetError]:
    """What launching raises when EC2 has no capacity (every type, every subnet)."""
    store = InMemorySessionStore()
    session = a_session("s-1", owner="sub-alice", status=Status.PROVISIONING)
    store.create(session, max_active=5)
    hosts = FakeHosts(capacity=set())
    with pytest.raises(InsufficientCapacityError) as raised:
        service.launch_instance(store, hosts, FakeSecrets(), LAUNCH, "s-1", secret_arn=SECRET_ARN)
    return [raised.value]


#: Batch jobs as they end: exit codes, ECS's reasons, timeouts, and a job gone.
JOB_ENDINGS: list[dict[str, Any]] = [
    {"status": "FAILED", "exit_code": 3},
    {"status": "FAILED", "exit_code": 137, "status_reason": "Essential container in task exited"},
    {"status": "FAILED", "exit_code": 65},
    {
        "status": "FAILED",
        "container_reason": "CannotPullContainerError: pull access denied for "
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/desk",
    },
    {"status": "FAILED", "status_reason": "Job attempt duration exceeded timeout"},
    {"status": "FAILED", "status_reason": "Host EC2 (instance i-0123456789abcdef0) terminated."},
    {"status": "FAILED"},
    {"status": "SUCCEEDED", "exit_code": 0},
]


def _job(**changes: Any) -> BatchJob:
    base = BatchJob("job-1", "dcvfleet-s-1", "FAILED", "", NOW, None, None, None, "")
    return BatchJob(**{**base.__dict__, **changes})


def _batch_errors() -> list[DcvFleetError]:
    """What the batch backend raises: each ending of a job, a job gone, no capacity in time."""
    errors: list[DcvFleetError] = []
    for ending in [*JOB_ENDINGS, None, {"status": "RUNNABLE"}]:
        store, jobs = InMemorySessionStore(), FakeJobs()
        session = a_session(
            "s-1", owner="sub-alice", backend="batch", status=Status.PROVISIONING, secret_arn=SECRET
        )
        store.create(session, max_active=5)
        job_id = batch.submit_job(
            store, jobs, FakeReleases(), BATCH, session_id="s-1", secret_arn=SECRET
        )["jobId"]
        if ending is None:
            del jobs.jobs[job_id]
        else:
            jobs.set(job_id, **ending)
        with pytest.raises(DcvFleetError) as raised:
            batch.check_job(store, jobs, TaggingSecrets(), BATCH, "s-1", now=NOW + 3600)
        errors.append(raised.value)
    recording = RecordingWorkflows()
    for ending in JOB_ENDINGS:  # the same endings, seen by the wait for the host
        batch.fail_wait(recording, "token", _job(**ending))
    return [*errors, *recording.failed]


class RecordingWorkflows(FakeWorkflows):
    """The errors the waiting workflow is failed with."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[DcvFleetError] = []

    def fail(self, task_token: str, error: DcvFleetError) -> bool:
        self.failed.append(error)
        return True


def _other_errors() -> list[DcvFleetError]:
    """Every other class, with a message as internal as the code's own messages get (an
    error whose message's first line is meant for users is made only by its one maker, below)."""
    detail = (
        "instance i-0123456789abcdef0 in subnet-0a1b2c3d (g5.xlarge, eu-west-1): "
        "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0 ClientError"
    )
    return [cls(detail) for cls in all_error_classes() if not cls.detail_for_user]


def test_an_error_whose_message_users_read_is_made_in_one_place_only() -> None:
    # The only error whose message's first line the user reads is JobFailedError, and only
    # batch.job_failed makes one (from job_failure_reason's plain phrases, driven above)
    assert [c for c in all_error_classes() if c.detail_for_user] == [JobFailedError]
    functions = Path(__file__).resolve().parents[2] / "functions"
    makers = [
        f"{path.relative_to(functions)}:{number}"
        for path in functions.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "JobFailedError(" in line and "class JobFailedError" not in line
    ]
    assert len(makers) == 2, makers  # the job gone, and the job ended, both in job_failed
    assert all(m.startswith("dcvfleet/batch.py:") for m in makers), makers


def _every_error() -> list[DcvFleetError]:
    return [*_ec2_capacity_errors(), *_batch_errors(), *_other_errors()]


def test_every_error_class_reads_plainly_to_the_user() -> None:
    errors = _every_error()
    assert {type(e) for e in errors} == set(all_error_classes())
    for error in errors:
        where = f"{type(error).__name__}({error.message!r})"
        assert_plain(user_message_for(type(error).__name__, error.message), where)


def _cause(error: DcvFleetError) -> dict[str, str]:
    """The Catch's error output for a Lambda task that raised ``error``."""
    return {
        "Error": type(error).__name__,
        "Cause": json.dumps({"errorType": type(error).__name__, "errorMessage": error.message}),
    }


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resumed"])
def test_compensation_writes_a_plain_reason_and_keeps_the_detail_for_operators(
    resume: bool,
) -> None:
    for error in _every_error():
        fleet = Fleet()
        session, instance = fleet.provisioning()
        if resume:  # a resume that failed: its instance stopped again, the disk kept
            fleet.hosts.set(instance.instance_id, state="running")
        out = compensation.compensate(
            fleet.store,
            fleet.hosts,
            fleet.secrets,
            session.session_id,
            _cause(error),
            resume=resume,
        )
        record = fleet.store.require(session.session_id)
        where = f"compensate({type(error).__name__}: {error.message!r})"
        assert_plain(record.status_reason, where)
        assert_plain(out["reason"], where)
        # And operators read exactly what failed, in the admin view only
        assert record.status_detail is not None, where
        assert type(error).__name__ in record.status_detail
        assert error.message.split("\n")[0] in record.status_detail
        assert record.to_admin_api()["statusDetail"] == record.status_detail
        assert "statusDetail" not in record.to_api()


def test_a_workflow_that_cannot_be_started_is_a_plain_reason() -> None:
    for resume in (False, True):
        store = InMemorySessionStore()
        session = a_session(
            "s-1",
            owner="sub-alice",
            status=Status.PROVISIONING,
            instance_id="i-0123456789abcdef0",
        )
        store.create(session, max_active=5)
        refusal = RuntimeError(
            "An error occurred (AccessDeniedException) when calling the StartExecution "
            f"operation: not authorized on {STATE_MACHINE}"
        )
        with pytest.raises(RuntimeError):
            start_provisioning(
                store,
                LifecycleWorkflows(start_fails_with=refusal),
                STATE_MACHINE,
                "s-1",
                store.require("s-1"),
                resume=resume,
            )
        record = store.require("s-1")
        assert_plain(record.status_reason, f"start_provisioning(resume={resume})")
        assert record.status_detail is not None
        assert "AccessDeniedException" in record.status_detail


def test_an_idle_stop_cancelled_because_the_host_did_not_answer_is_a_plain_reason() -> None:
    # Given a READY desktop warned of an idle stop, whose host's live check fails
    fleet = Fleet()
    session = fleet.ready()
    sid = session.session_id
    execution = fleet.check(sid)
    fleet.warn(sid, execution)
    fleet.commands.connections = HostCommandError(
        f"command 0f1e2d3c-aaaa-bbbb-cccc-0123456789ab on {session.instance_id} failed: "
        "InvalidInstanceId (arn:aws:ssm:us-east-1:123456789012:document/dcvfleet-ListConnections)"
    )
    verdict = fleet.verify(sid, execution, phase="reverify")
    assert not verdict.idle
    # When the check ends / Then the user reads why in plain words
    idle.end_check(fleet.store, session_id=sid, execution=execution, reason=verdict.reason,
                   warned=True)  # fmt: skip
    record = fleet.store.require(sid)
    assert_plain(record.status_reason, "end_check")
    # And what the host said is the verdict's evidence (the workflow's history and the logs)
    assert "InvalidInstanceId" in verdict.evidence["liveCheckError"]


def test_a_container_that_ended_outside_is_a_plain_reason() -> None:
    for ending in JOB_ENDINGS:
        fleet, jobs = Fleet(), FakeJobs()
        session = a_session(
            "s-1",
            owner="sub-alice",
            backend="batch",
            status=Status.READY,
            secret_arn=SECRET,
            job_id="job-1",
        )
        fleet.store.create(session, max_active=5)
        jobs.jobs["job-1"] = _job(**ending)
        outcome = reconcile.job_changed(
            fleet.store,
            fleet.hosts,
            jobs,
            fleet.secrets,
            fleet.workflows,
            fleet.settings,
            {"jobName": "dcvfleet-s-1", "jobId": "job-1"},
            job_role_id="role",
        )
        assert outcome == "recording an external terminate", outcome
        record: Session = fleet.store.require("s-1")
        assert_plain(record.status_reason, f"job_changed({ending})")
        assert record.status_detail is not None
        assert "job job-1" in record.status_detail
