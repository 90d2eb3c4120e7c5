"""The batch backend's domain: submitting a desktop's job once, following it to a host, failing
with a reason a user understands, accepting only its own container's Host Ready, ending it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from dcvfleet import batch, compensation, service
from dcvfleet.adapters import (
    BATCH_INSTANCE_TAG,
    READER_TAG,
    BatchJobs,
    Releases,
)
from dcvfleet.aws import client
from dcvfleet.errors import (
    ClaimRejectedError,
    ConfigurationError,
    DcvFleetError,
    InsufficientCapacityError,
    InvalidRequestError,
    JobFailedError,
    SessionConflictError,
    user_message_for,
)
from dcvfleet.lifecycle import idle, reconcile, sweep, user_requests
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.service import HostReadyClaim
from dcvfleet.store import InMemorySessionStore
from tests.support.batch import (
    ALICE_BATCH,
    CLUSTER_INSTANCE,
    NOW,
    ROLE_ID,
    SECRET,
    SETTINGS,
    FakeJobs,
    FakeReleases,
    TaggingSecrets,
)
from tests.support.lifecycle import Fleet, LifecycleWorkflows
from tests.support.service import API, COMMON, READY_PUBLIC, FakeHosts, FakeSecrets, FakeWorkflows
from tests.support.sessions import a_session


def provisioning(store: InMemorySessionStore, session_id: str = "s-1") -> Session:
    session = a_session(
        session_id,
        owner="sub-alice",
        backend="batch",
        status=Status.PROVISIONING,
        created_at="2026-11-22T10:00:00Z",
        secret_arn=SECRET,
    )
    store.create(session, max_active=5)
    return session


def submit(store: InMemorySessionStore, jobs: FakeJobs, session_id: str = "s-1") -> str:
    out = batch.submit_job(
        store, jobs, FakeReleases(), SETTINGS, session_id=session_id, secret_arn=SECRET
    )
    return out["jobId"]


def submitted(store: InMemorySessionStore, jobs: FakeJobs, **job_state: Any) -> str:
    """A provisioning session "s-1" whose job is submitted (then given ``job_state``, if any)."""
    provisioning(store)
    job_id = submit(store, jobs)
    if job_state:
        jobs.set(job_id, **job_state)
    return job_id


# -- submit -------------------------------------------------------------------------------------
def test_submit_runs_the_current_release_with_the_session_in_its_environment(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    job_id = submitted(store, jobs)
    [sent] = jobs.submitted
    assert sent["definition"] == "jobdef:7"
    assert sent["env"] == {"DCVFLEET_SESSION_ID": "s-1", "DCVFLEET_SECRET_ARN": SECRET}
    assert sent["timeout"] == 12 * 3600
    session = store.require("s-1")
    assert (session.job_id, session.extra["release"]) == (job_id, "1.4.2")


def test_a_desktop_of_a_profile_runs_with_its_own_idle_timeout_and_length(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    provisioning(store)
    current = store.require("s-1")
    own = {"profile": "linux-session", "idleTimeoutSeconds": "900", "maxSessionHours": "2"}
    store.update(current, extra={**current.extra, **own})
    submit(store, jobs)
    [sent] = jobs.submitted
    assert sent["env"]["DCVFLEET_IDLE_TIMEOUT_SECONDS"] == "900"  # the agent's own setting
    assert sent["timeout"] == 2 * 3600


def test_a_retried_submit_never_submits_twice(store: InMemorySessionStore, jobs: FakeJobs) -> None:
    provisioning(store)
    first = submit(store, jobs)
    assert submit(store, jobs) == first  # the record has the job
    store.update(store.require("s-1"), job_id=None)  # the record write was lost
    assert submit(store, jobs) == first  # found by its name
    assert len(jobs.submitted) == 1


def test_submit_refuses_an_ec2_or_a_finished_session(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    session = provisioning(store)
    store.update(session, backend="ec2")
    with pytest.raises(SessionConflictError, match="not a batch desktop"):
        submit(store, jobs)
    assert jobs.submitted == []


def test_a_garbled_release_parameter_is_a_configuration_error() -> None:
    ssm = client("ssm")
    with Stubber(ssm) as stub:
        stub.add_response(
            "get_parameter", {"Parameter": {"Name": "/r", "Value": '{"release": "1"}'}}
        )
        with pytest.raises(ConfigurationError, match="not a release document"):
            Releases(ssm, "/r").current()


# -- check --------------------------------------------------------------------------------------
def test_a_waiting_job_is_polled_until_its_container_has_a_host(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    job_id = submitted(store, jobs)
    secrets = TaggingSecrets()
    jobs.set(job_id, status="RUNNABLE")
    out = batch.check_job(store, jobs, secrets, SETTINGS, "s-1", now=NOW + 30)
    assert out == {"started": False, "jobStatus": "RUNNABLE", "waitedSeconds": 30}
    assert secrets.readers == {}
    jobs.start(job_id, "i-0aaa")
    out = batch.check_job(store, jobs, secrets, SETTINGS, "s-1", now=NOW + 60)
    assert out == {"started": True, "jobStatus": "RUNNING", "instanceId": "i-0aaa"}
    # only that task (the job role's session named after it) may read the secret
    assert secrets.readers == {SECRET: f"{ROLE_ID}:0123abcd"}
    assert store.require("s-1").instance_id == "i-0aaa"


def test_runnable_past_the_capacity_timeout_is_no_gpu_capacity(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    submitted(store, jobs, status="RUNNABLE")
    with pytest.raises(InsufficientCapacityError) as caught:
        batch.check_job(store, jobs, TaggingSecrets(), SETTINGS, "s-1", now=NOW + 601)
    assert (
        caught.value.message
        == "no GPU capacity for g5.xlarge, g4dn.xlarge in eu-west-1 within 10 min"
    )
    # (the user reads plain words; the types and Region are the operator's statusDetail)
    reason = user_message_for("InsufficientCapacityError", caught.value.message)
    assert reason == InsufficientCapacityError.user_message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exit_code": 65}, "its credentials could not be read"),
        ({"exit_code": 67}, "DCV did not start in its container"),
        ({"exit_code": 3}, "the program in its container stopped with an error"),
        (
            {"container_reason": "CannotPullContainerError: pull access denied"},
            "its image could not be pulled",
        ),
        ({"status_reason": "Job attempt duration exceeded timeout"}, "maximum session length"),
    ],
)
def test_a_job_that_ended_fails_provisioning_with_a_readable_reason(
    store: InMemorySessionStore, jobs: FakeJobs, changes: dict[str, Any], reason: str
) -> None:
    submitted(store, jobs, status="FAILED", **changes)
    with pytest.raises(JobFailedError, match=reason) as caught:
        batch.check_job(store, jobs, TaggingSecrets(), SETTINGS, "s-1", now=NOW)
    assert reason in user_message_for("JobFailedError", caught.value.message)


# -- Host Ready ---------------------------------------------------------------------------------
def ready_claim(instance_id: str) -> HostReadyClaim:
    return HostReadyClaim(instance_id=instance_id, session_id="s-1", dcv_session_id="desktop")


def test_host_ready_is_accepted_only_from_the_jobs_own_instance(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    job_id = submitted(store, jobs)
    hosts, workflows = FakeHosts(), FakeWorkflows()
    mine = hosts.add(session_id="unrelated-tag")  # Batch's instances carry no session tag
    other = hosts.add(session_id="unrelated-tag")
    jobs.set(job_id, status="RUNNABLE")
    with pytest.raises(ClaimRejectedError, match="RUNNABLE, not running"):
        service.accept_host_ready(store, hosts, workflows, ready_claim(mine.instance_id), jobs)
    jobs.start(job_id, mine.instance_id)
    with pytest.raises(ClaimRejectedError, match="not the host of job"):
        service.accept_host_ready(store, hosts, workflows, ready_claim(other.instance_id), jobs)
    store.update(store.require("s-1"), task_token="token-1")
    assert service.accept_host_ready(store, hosts, workflows, ready_claim(mine.instance_id), jobs)
    session = store.require("s-1")
    assert (session.instance_id, session.dcv_session_id) == (mine.instance_id, "desktop")
    assert workflows.succeeded[0][0] == "token-1"


# -- compensation and the end of a job ---------------------------------------------------------
def test_compensation_cancels_the_job_and_deletes_the_secret(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    job_id = submitted(store, jobs, status="RUNNABLE")
    secrets = FakeSecrets()
    secrets.create("s-1", "alice", {})
    error = {"Error": "InsufficientCapacityError", "Cause": "no GPU capacity for g5.xlarge"}
    out = compensation.compensate(store, FakeHosts(), secrets, "s-1", error, jobs=jobs)
    assert jobs.terminated == [
        (job_id, "DCV Fleet: provisioning failed (InsufficientCapacityError)")
    ]
    assert secrets.secrets == {}
    session = store.require("s-1")
    assert session.status == Status.FAILED
    assert session.status_reason == out["reason"]


def test_end_job_finds_a_job_the_record_never_got(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    job_id = submitted(store, jobs)
    session = store.update(store.require("s-1"), job_id=None)
    assert batch.end_job(jobs, session, "stop")
    assert jobs.terminated == [(job_id, "stop")]
    assert not batch.end_job(jobs, session, "again")  # ended already: nothing to do


# -- the adapter against the Batch and ECS APIs ---------------------------------------------------
def test_batch_jobs_adapter_speaks_the_batch_and_ecs_apis() -> None:
    batch_client, ecs = client("batch"), client("ecs")
    adapter = BatchJobs(batch_client, ecs, "queue")
    raw_job = {
        "jobId": "j-1",
        "jobName": "dcvfleet-s-1",
        "jobQueue": "queue",
        "status": "RUNNING",
        "jobDefinition": "jobdef:7",
        "startedAt": 1,
        "createdAt": 1_800_000_000_000,
        "container": {
            "containerInstanceArn": CLUSTER_INSTANCE,
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/desk-cluster/feed",
        },
    }
    with Stubber(batch_client) as b, Stubber(ecs) as e:
        b.add_response(
            "list_jobs",
            {"jobSummaryList": [{"jobId": "j-1", "jobName": "dcvfleet-s-1", "status": "RUNNING"}]},
            {"jobQueue": "queue", "filters": [{"name": "JOB_NAME", "values": ["dcvfleet-s-1"]}]},
        )
        b.add_response("describe_jobs", {"jobs": [raw_job]}, {"jobs": ["j-1"]})
        e.add_response(
            "describe_container_instances",
            {"containerInstances": [{"ec2InstanceId": "i-0bbb"}]},
            {"cluster": "desk-cluster", "containerInstances": [CLUSTER_INSTANCE]},
        )
        b.add_response(
            "submit_job",
            {"jobName": "dcvfleet-s-2", "jobId": "j-2"},
            {
                "jobName": "dcvfleet-s-2",
                "jobQueue": "queue",
                "jobDefinition": "jobdef:7",
                "containerOverrides": {"environment": [{"name": "A", "value": "b"}]},
                "tags": {"k": "v"},
                "propagateTags": True,
                "timeout": {"attemptDurationSeconds": 60},
            },
        )
        found = adapter.find("s-1")
        assert found is not None
        assert (found.task_id, found.created_at) == ("feed", 1_800_000_000.0)
        assert adapter.instance_of(found) == "i-0bbb"
        assert adapter.submit("s-2", "jobdef:7", {"A": "b"}, 5, {"k": "v"}) == "j-2"


def test_reader_tag_is_the_one_the_job_role_policy_checks() -> None:
    template = (Path(__file__).parents[2] / "template.yaml").read_text()
    assert f"secretsmanager:ResourceTag/{READER_TAG}" in template


# -- the lifecycle of a batch desktop -----------------------------------------------------------
class BatchWorkflows(LifecycleWorkflows):
    def __init__(self) -> None:
        super().__init__()
        self.failed: list[tuple[str, str, str]] = []

    def fail(self, task_token: str, error: DcvFleetError) -> bool:
        self.failed.append((task_token, type(error).__name__, error.message))
        return True


@dataclass
class BatchFleet:
    fleet: Fleet = field(default_factory=Fleet)
    jobs: FakeJobs = field(default_factory=FakeJobs)
    workflows: BatchWorkflows = field(default_factory=BatchWorkflows)

    def provisioning(self) -> tuple[Session, str, str]:
        """A batch session whose job runs on an instance of Batch's (no session tag on it)."""
        store = self.fleet.store
        session = provisioning(store, "s-1")
        self.fleet.secrets.create("s-1", "alice", {})
        job_id = submit(store, self.jobs)
        tags = {BATCH_INSTANCE_TAG: "desktops-ce", COMMON.fleet_tag_key: COMMON.fleet_tag_value}
        instance = self.fleet.hosts.add(session_id="", **tags)
        self.jobs.start(job_id, instance.instance_id)
        return session, job_id, instance.instance_id

    def ready(self) -> tuple[Session, str]:
        _, job_id, instance_id = self.provisioning()
        claim = HostReadyClaim(instance_id=instance_id, session_id="s-1", dcv_session_id="desktop")
        store = self.fleet.store
        service.accept_host_ready(store, self.fleet.hosts, FakeWorkflows(), claim, self.jobs)
        service.mark_ready(store, self.fleet.hosts, READY_PUBLIC, "s-1")
        return store.require("s-1"), job_id


def test_an_idle_batch_desktop_is_checked_in_its_container_then_its_job_ended() -> None:
    # Given a READY batch desktop whose agent says it is idle, and the IdleAction "stop"
    given = BatchFleet()
    session, job_id = given.ready()
    fleet, jobs = given.fleet, given.jobs
    assert fleet.settings.idle_action == "stop"
    execution = fleet.check("s-1")
    # When the idle workflow verifies: the live check runs inside the job's container
    verdict = idle.verify(
        fleet.store, fleet.hosts, fleet.commands, fleet.settings, session_id="s-1",
        execution=execution, trigger="idle", claim={}, phase="verify", jobs=jobs,
    )  # fmt: skip
    assert verdict.idle, verdict.reason
    task = jobs.jobs[job_id].task_arn
    assert fleet.commands.tasks == [task]
    assert fleet.commands.checks[-1][1] == fleet.settings.list_container_connections_document
    # And acts: a container is not kept, so its job ends whatever IdleAction says
    out = idle.act(
        fleet.store, fleet.hosts, fleet.secrets, fleet.settings, session_id="s-1",
        execution=execution, trigger="idle", requested_action=None, reason="idle",
        evidence=verdict.evidence, jobs=jobs,
    )  # fmt: skip
    assert (out["action"], out["detailType"]) == ("terminate", "Session Terminated")
    assert jobs.terminated[0][0] == job_id
    assert fleet.store.require("s-1").status == Status.TERMINATING
    assert "s-1" not in fleet.secrets.secrets
    assert fleet.hosts.instances[session.instance_id or ""].state == "running"  # Batch's own
    # Then confirm finds the job ended and the record TERMINATED
    assert idle.confirm(fleet.store, fleet.hosts, "s-1", jobs) == {"done": True}
    assert fleet.store.require("s-1").status == Status.TERMINATED


def test_a_batch_desktop_whose_job_stopped_running_is_not_idle() -> None:
    given = BatchFleet()
    _, job_id = given.ready()
    fleet = given.fleet
    execution = fleet.check("s-1")
    given.jobs.set(job_id, status="FAILED")
    verdict = idle.verify(
        fleet.store, fleet.hosts, fleet.commands, fleet.settings, session_id="s-1",
        execution=execution, trigger="idle", claim={}, phase="verify", jobs=given.jobs,
    )  # fmt: skip
    assert (verdict.idle, verdict.reason) == (False, "its container's job is not running")
    assert fleet.commands.checks == []


def test_a_users_stop_of_a_batch_desktop_ends_its_container() -> None:
    given = BatchFleet()
    given.ready()
    fleet = given.fleet
    session = user_requests.request_stop(
        fleet.store, fleet.workflows, fleet.settings, ALICE_BATCH, "s-1", action="stop"
    )
    assert session.status == Status.TERMINATING
    [(_, _, payload)] = fleet.workflows.started
    assert payload["action"] == "terminate"


def test_a_job_that_ends_while_provisioning_fails_the_waiting_workflow_at_once() -> None:
    given = BatchFleet()
    _, job_id, _ = given.provisioning()
    store = given.fleet.store
    store.update(store.require("s-1"), task_token="token-7")
    given.jobs.set(job_id, status="FAILED", exit_code=67)
    outcome = job_changed(given, job_id)
    assert outcome == (
        "provisioning failed: DCV did not start in its container: job job-1 FAILED; exit code 67"
    )
    assert given.workflows.failed == [
        (
            "token-7",
            "JobFailedError",
            "DCV did not start in its container\njob job-1 FAILED; exit code 67",
        )
    ]


def test_a_running_job_gets_the_secret_granted_when_its_event_arrives() -> None:
    given = BatchFleet()
    secrets = TaggingSecrets()
    given.fleet.secrets = secrets
    _, job_id, _ = given.provisioning()
    assert job_changed(given, job_id) == "secret granted to its task"
    assert secrets.readers == {SECRET: f"{ROLE_ID}:0123abcd"}


def test_a_ready_desktop_whose_job_ended_outside_is_recorded_terminated() -> None:
    given = BatchFleet()
    _, job_id = given.ready()
    given.jobs.set(job_id, status="FAILED", exit_code=137)
    outcome = job_changed(given, job_id)
    assert outcome == "recording an external terminate"
    session = given.fleet.store.require("s-1")
    assert session.status == Status.TERMINATING
    assert session.status_reason == (
        "Its container ended outside DCV Fleet: the program in its container stopped with an error."
    )
    assert session.status_detail == "job job-1 FAILED; exit code 137"
    [(_, name, payload)] = given.workflows.started
    assert (payload["trigger"], payload["action"]) == ("external", "terminate")
    assert name.startswith("s-1-external-")


def test_events_of_other_jobs_are_ignored() -> None:
    given = BatchFleet()
    detail = {"jobId": "job-x", "jobName": "render-frames", "status": "FAILED"}
    assert reconcile.job_changed(
        given.fleet.store, given.fleet.hosts, given.jobs, given.fleet.secrets, given.workflows,
        given.fleet.settings, detail, job_role_id=ROLE_ID,
    ) == "not a desktop job"  # fmt: skip


def test_the_sweep_leaves_batchs_own_instances_alone() -> None:
    given = BatchFleet()
    given.ready()
    fleet = given.fleet
    fleet.hosts.add(session_id="gone", **{COMMON.fleet_tag_key: COMMON.fleet_tag_value})
    found = sweep.find_sweep_work(fleet.store, fleet.hosts, fleet.settings)
    orphans = [i["id"] for i in found["items"] if i["kind"] == "orphan"]
    batch_owned = [i for i in fleet.hosts.instances.values() if BATCH_INSTANCE_TAG in i.tags]
    assert len(orphans) == 1
    assert batch_owned[0].instance_id not in orphans


def job_changed(given: BatchFleet, job_id: str) -> str:
    job = given.jobs.jobs[job_id]
    detail = {"jobId": job_id, "jobName": job.name, "status": job.status}
    return reconcile.job_changed(
        given.fleet.store, given.fleet.hosts, given.jobs, given.fleet.secrets, given.workflows,
        given.fleet.settings, detail, job_role_id=ROLE_ID,
    )  # fmt: skip


# -- the API ------------------------------------------------------------------------------------
BATCH_API = replace(API, enabled_backends=("ec2", "batch"), batch_instance_types=("g5.xlarge",))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"os": "windows"}, "os: a batch desktop runs linux"),
        ({"os": "linux", "instance_type": "p4d.24xlarge"}, "instanceType: a batch desktop runs"),
    ],
)
def test_a_batch_request_is_linux_on_the_compute_environments_types(
    store: InMemorySessionStore, body: dict[str, str], problem: str
) -> None:
    request = CreateSessionRequest(
        backend="batch", os=body["os"], instance_type=body.get("instance_type")
    )
    with pytest.raises(InvalidRequestError, match=problem):
        service.create_session(store, FakeWorkflows(), BATCH_API, ALICE_BATCH, request)


def test_a_batch_request_starts_provisioning_with_its_backend(
    store: InMemorySessionStore,
) -> None:
    workflows = FakeWorkflows()
    request = CreateSessionRequest(backend="batch", os="linux", instance_type=None)
    session = service.create_session(store, workflows, BATCH_API, ALICE_BATCH, request)
    assert (session.backend, session.instance_type) == ("batch", "g5.xlarge")
    assert workflows.started[0][2]["backend"] == "batch"


def test_a_job_that_ended_before_the_token_was_parked_fails_the_wait_at_once(
    store: InMemorySessionStore, jobs: FakeJobs
) -> None:
    # Given a batch desktop whose job ended while the workflow was between its last poll and
    # parking its task token (the job's state change found no token to fail)
    submitted(store, jobs, status="FAILED", exit_code=65)
    workflows = BatchWorkflows()
    # When the token is parked / Then the wait fails at once, with the job's reason
    assert service.await_host_ready(store, workflows, "s-1", "token-9", jobs)
    assert workflows.failed == [
        (
            "token-9",
            "JobFailedError",
            "its credentials could not be read\njob job-1 FAILED; exit code 65",
        )
    ]
