"""Batch jobs on the local stack: a job submitted to the template's queue gets an instance from
its compute environment, a container instance in its ECS cluster and a simulated container
running the real agent; control_url sets the GPU capacity and makes containers exit; TerminateJob
and lost instances end jobs; every status change is a ``Batch Job State Change`` on the default
bus (local/sim/containers.py, emulator.BATCH_JOBS)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dcvfleet.config import FLEET_TAG_KEY
from tests.support.stack import Stack, module_stack

CONTAINER_EXITED = "Essential container in task exited"


class DefaultBus:
    """A queue subscribed to the default bus for Batch's and EC2's state changes."""

    def __init__(self, stack: Stack) -> None:
        self.sqs = stack.client("sqs")
        name = f"batch-observer-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        events = stack.client("events")
        events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.batch", "aws.ec2"]}))
        events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}])
        self.seen: list[dict[str, Any]] = []

    def _receive(self) -> None:
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            if not messages.get("Messages"):
                return
            for message in messages["Messages"]:
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def _about(self, source: str, key: str, value: str) -> list[dict[str, Any]]:
        """The events from ``source`` seen so far whose detail's ``key`` is ``value``."""
        self._receive()
        return [e for e in self.seen if e["source"] == source and e["detail"][key] == value]

    def job_statuses(self, job_id: str) -> list[str]:
        return [e["detail"]["status"] for e in self._about("aws.batch", "jobId", job_id)]

    def job_event(self, job_id: str, status: str) -> dict[str, Any]:
        return next(
            e for e in self._about("aws.batch", "jobId", job_id) if e["detail"]["status"] == status
        )

    def instance_states(self, instance_id: str) -> list[str]:
        return [e["detail"]["state"] for e in self._about("aws.ec2", "instance-id", instance_id)]


batch = module_stack("batch-stack")


@pytest.fixture(scope="module")
def bus(batch: Stack) -> DefaultBus:
    # made before the first test's fake credentials (tests/conftest.py) are set: its clients
    # keep these, so that the module does not depend on credentials in the environment
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        return DefaultBus(batch)


@pytest.fixture
def capacity(batch: Stack) -> Iterator[None]:
    """Unlimited GPU capacity again after the test."""
    yield
    assert batch.control("POST", "/batch/capacity", {"instances": None}).status_code == 200


def _session(stack: Stack) -> tuple[str, str, dict[str, str]]:
    """A session id, its secret's ARN and the credentials in it."""
    session_id = str(uuid.uuid4())
    credentials = {"username": f"u{session_id[:8]}", "password": f"Pw-{uuid.uuid4().hex}"}
    arn = stack.client("secretsmanager").create_secret(
        Name=f"dcvfleet/sessions/{session_id}", SecretString=json.dumps(credentials)
    )["ARN"]
    return session_id, arn, credentials


def _submit(stack: Stack, session_id: str, secret_arn: str, **extra: Any) -> str:
    job_id: str = stack.client("batch").submit_job(
        jobName=f"dcvfleet-{session_id}",
        jobQueue=stack.info["resources"]["DesktopJobQueue"],
        jobDefinition=stack.info["resources"]["DesktopJobDefinition"],
        containerOverrides={
            "environment": [
                {"name": "DCVFLEET_SESSION_ID", "value": session_id},
                {"name": "DCVFLEET_SECRET_ARN", "value": secret_arn},
            ]
        },
        **extra,
    )["jobId"]
    return job_id


def _describe(stack: Stack, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = stack.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    return job


def _wait_job(stack: Stack, job_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = _describe(stack, job_id)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is {job['status']}, not {statuses}"
        time.sleep(0.1)


def _instance_of(stack: Stack, job: dict[str, Any]) -> str:
    arn = job["container"]["containerInstanceArn"]
    found = stack.client("ecs").describe_container_instances(
        cluster=arn.split("/")[1], containerInstances=[arn]
    )["containerInstances"]
    instance_id: str = found[0]["ec2InstanceId"]
    return instance_id


def _instance(stack: Stack, instance_id: str) -> dict[str, Any]:
    reservations = stack.client("ec2").describe_instances(InstanceIds=[instance_id])
    instance: dict[str, Any] = reservations["Reservations"][0]["Instances"][0]
    return instance


def _hosts(stack: Stack) -> dict[str, dict[str, Any]]:
    return {h["instanceId"]: h for h in stack.control("GET", "/hosts").json()["hosts"]}


def _wait(check: Any, what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def test_a_job_runs_in_a_container_whose_agent_reads_its_secret_and_reports_ready(
    batch: Stack, bus: DefaultBus
) -> None:
    # Given a session's secret, and an operator watching the fleet bus
    agent_events = batch.observe("dcvfleet.agent")
    session_id, secret_arn, credentials = _session(batch)
    # When its job is submitted to the template's queue
    job_id = _submit(batch, session_id, secret_arn)
    job = _wait_job(batch, job_id, "RUNNING")
    # Then it runs on a container instance of the Spot environment (first in the queue's order)
    container = job["container"]
    cluster_arn = container["containerInstanceArn"]
    match = re.fullmatch(
        r"arn:aws:ecs:us-east-1:\d{12}:container-instance/([^/]+)/[\w-]+", cluster_arn
    )
    assert match, cluster_arn
    task = re.fullmatch(
        rf"arn:aws:ecs:us-east-1:\d{{12}}:task/{match.group(1)}/([0-9a-f]{{32}})",
        container["taskArn"],
    )
    assert task, container["taskArn"]
    assert container["logStreamName"] == f"desktop/default/{task.group(1)}"
    assert "startedAt" in job
    instance_id = _instance_of(batch, job)
    instance = _instance(batch, instance_id)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    environments = batch.client("batch").describe_compute_environments()["computeEnvironments"]
    spot = next(e for e in environments if e["computeResources"]["type"] == "SPOT")
    assert tags["aws:batch:compute-environment"] == spot["computeEnvironmentName"]
    assert tags[FLEET_TAG_KEY] == "default"
    assert (instance["InstanceType"], instance.get("InstanceLifecycle")) == ("g5.xlarge", "spot")
    assert instance["State"]["Name"] == "running"
    # and a simulated container, listed with its job, runs the real agent
    host = _hosts(batch)[instance_id]
    assert (host["jobId"], host["platform"], host["sessionId"]) == (job_id, "container", session_id)
    # which sends Host Ready for the instance and the session
    ready = agent_events.wait_for("Host Ready", session_id, timeout=20)
    assert ready["detail"]["instanceId"] == instance_id
    assert ready["detail"]["platform"] == "container"
    # having read the session's secret itself and made its user with that password
    host = _wait(lambda: (h := _hosts(batch)[instance_id])["osUsers"] and h, "no OS user was made")
    assert host["osUsers"] == [credentials["username"]]
    users = json.loads((Path(host["workdir"]) / "users.json").read_text())["users"]
    digest = hashlib.sha256(credentials["password"].encode()).hexdigest()
    assert users[credentials["username"]]["passwordSha256"] == digest
    # When its container exits 0
    resp = batch.control("POST", f"/jobs/{job_id}/exit", {"code": 0})
    assert resp.status_code == 200, resp.text
    # Then the job SUCCEEDED, its container is gone and its instance is terminated
    ended = _describe(batch, job_id)
    assert (ended["status"], ended["statusReason"]) == ("SUCCEEDED", CONTAINER_EXITED)
    assert ended["container"]["exitCode"] == 0
    assert instance_id not in _hosts(batch)
    assert _instance(batch, instance_id)["State"]["Name"] == "terminated"
    cluster = batch.client("ecs").describe_container_instances(
        cluster=match.group(1), containerInstances=[cluster_arn]
    )["containerInstances"]
    assert cluster[0]["status"] == "INACTIVE"
    # and every change was on the default bus, as Batch and EC2 put them
    assert bus.job_statuses(job_id) == ["PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    running = bus.job_event(job_id, "RUNNING")
    assert running["detail-type"] == "Batch Job State Change"
    assert running["resources"] == [job["jobArn"]]
    assert running["detail"]["container"]["taskArn"] == container["taskArn"]
    assert _wait(
        lambda: bus.instance_states(instance_id)[-2:] == ["shutting-down", "terminated"],
        "no EC2 state change for the scaled-down instance",
    )
    # and the container's output is in the job's log stream
    events = batch.client("logs").get_log_events(
        logGroupName=batch.info["resources"]["BatchJobLogGroup"],
        logStreamName=container["logStreamName"],
    )["events"]
    assert any("OS user ready" in e["message"] for e in events)


def test_without_capacity_a_job_stays_runnable_until_there_is_some(
    batch: Stack, bus: DefaultBus, capacity: None
) -> None:
    # Given no GPU capacity left, and two jobs waiting for some
    resp = batch.control("POST", "/batch/capacity", {"instances": 0})
    assert resp.status_code == 200
    assert batch.control("GET", "/batch/capacity").json() == {"instances": 0}
    jobs = {_submit(batch, *_session(batch)[:2]) for _ in range(2)}
    for job_id in jobs:
        _wait_job(batch, job_id, "RUNNABLE")
    # When one instance can be launched, one job runs and the capacity is used up
    assert batch.control("POST", "/batch/capacity", {"instances": 1}).status_code == 200
    running = _wait(
        lambda: next((j for j in jobs if _describe(batch, j)["status"] == "RUNNING"), None),
        "no job ran once there was capacity",
    )
    assert batch.control("GET", "/batch/capacity").json() == {"instances": 0}
    # Then the other stays RUNNABLE, with no container: the simulator's pass that placed the
    # first looked at every RUNNABLE job, and none since has had capacity (no wait on a clock)
    (waiting,) = jobs - {running}
    job = _describe(batch, waiting)
    assert job["status"] == "RUNNABLE"
    assert "containerInstanceArn" not in job["container"]
    placed = {j["jobId"] for j in batch.control("GET", "/jobs").json()["jobs"]}
    assert running in placed
    assert waiting not in placed
    # When it is terminated while it waits, it ends FAILED at once, never having run
    batch.client("batch").terminate_job(jobId=waiting, reason="no capacity in time")
    failed = _describe(batch, waiting)
    assert (failed["status"], failed["statusReason"]) == ("FAILED", "no capacity in time")
    assert "startedAt" not in failed
    assert bus.job_statuses(waiting) == ["PENDING", "RUNNABLE", "FAILED"]
    assert batch.control("POST", f"/jobs/{running}/exit", {"code": 0}).status_code == 200


def test_terminate_job_ends_a_running_container_and_its_instance(
    batch: Stack, bus: DefaultBus
) -> None:
    session_id, secret_arn, _ = _session(batch)
    job_id = _submit(batch, session_id, secret_arn)
    instance_id = _instance_of(batch, _wait_job(batch, job_id, "RUNNING"))
    # When the control plane terminates the job
    batch.client("batch").terminate_job(jobId=job_id, reason="The desktop was deleted")
    # Then it is FAILED with that reason, its container is gone and its instance terminated
    job = _wait_job(batch, job_id, "FAILED")
    assert job["statusReason"] == "The desktop was deleted"
    assert instance_id not in _hosts(batch)
    _wait(
        lambda: _instance(batch, instance_id)["State"]["Name"] == "terminated",
        "the job's instance outlived it",
    )
    assert bus.job_statuses(job_id)[-2:] == ["RUNNING", "FAILED"]


def test_a_container_that_exits_non_zero_fails_its_job(batch: Stack) -> None:
    job_id = _submit(batch, *_session(batch)[:2])
    _wait_job(batch, job_id, "RUNNING")
    resp = batch.control("POST", f"/jobs/{job_id}/exit", {"code": 66})
    assert resp.status_code == 200, resp.text
    job = _describe(batch, job_id)
    assert (job["status"], job["statusReason"]) == ("FAILED", CONTAINER_EXITED)
    assert job["container"]["exitCode"] == 66
    assert job["attempts"][-1]["container"]["exitCode"] == 66
    # a container that is gone exits no more
    assert batch.control("POST", f"/jobs/{job_id}/exit", {"code": 0}).status_code == 404


def test_a_job_whose_instance_is_lost_fails(batch: Stack) -> None:
    job_id = _submit(batch, *_session(batch)[:2])
    instance_id = _instance_of(batch, _wait_job(batch, job_id, "RUNNING"))
    # When its instance is terminated under it (a Spot interruption, an operator)
    batch.client("ec2").terminate_instances(InstanceIds=[instance_id])
    # Then the job fails as Batch reports it
    job = _wait_job(batch, job_id, "FAILED")
    assert job["statusReason"] == f"Host EC2 (instance {instance_id}) terminated."
    assert instance_id not in _hosts(batch)


def test_a_job_past_its_timeout_fails(batch: Stack) -> None:
    job_id = _submit(batch, *_session(batch)[:2], timeout={"attemptDurationSeconds": 2})
    _wait_job(batch, job_id, "RUNNING")
    job = _wait_job(batch, job_id, "FAILED", timeout=10)
    assert job["statusReason"] == "Job attempt duration exceeded timeout"


def test_containers_take_the_hosts_controls(batch: Stack) -> None:
    job_id = _submit(batch, *_session(batch)[:2])
    instance_id = _instance_of(batch, _wait_job(batch, job_id, "RUNNING"))
    try:
        resp = batch.control("POST", f"/hosts/{instance_id}/connections", {"count": 2})
        assert (resp.status_code, resp.json()["connections"]) == (200, 2)
        resp = batch.control("POST", f"/hosts/{instance_id}/activity", {"gpuPercent": 80})
        assert (resp.status_code, resp.json()["gpuPercent"]) == (200, 80)
        resp = batch.control("POST", f"/hosts/{instance_id}/agent", {"running": False})
        assert (resp.status_code, resp.json()["agent"]) == (200, "stopped")
        # the container outlives its agent: only its own exit ends the job
        assert _describe(batch, job_id)["status"] == "RUNNING"
    finally:
        batch.control("POST", f"/jobs/{job_id}/exit", {"code": 0})


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/batch/capacity", {"instances": -1}, 400, "instances:"),
        ("/batch/capacity", {"instances": True}, 400, "instances:"),
        ("/batch/capacity", {"gpus": 1}, 400, "gpus: unknown field"),
        ("/jobs/no-such-job/exit", {"code": 0}, 404, "no simulated container"),
        ("/jobs/no-such-job/exit", {"code": 256}, 400, "code:"),
        ("/jobs/no-such-job/exit", {}, 400, "code:"),
    ],
)
def test_batch_controls_name_what_is_wrong(
    batch: Stack, path: str, body: Any, status: int, message: str
) -> None:
    resp = batch.control("POST", path, body)
    assert resp.status_code == status
    assert resp.json()["message"].startswith(message)


def _first_environment(stack: Stack) -> str:
    """The compute environment the desktop queue tries first (the one kept warm)."""
    (queue,) = stack.client("batch").describe_job_queues(
        jobQueues=[stack.info["resources"]["DesktopJobQueue"]]
    )["jobQueues"]
    first = min(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    return str(first["computeEnvironment"])


def test_a_warm_instance_with_the_release_cached_starts_a_job_without_boot_or_pull(
    batch: Stack,
) -> None:
    api = batch.client("batch")
    environment = _first_environment(batch)
    release = json.loads(
        batch.client("ssm").get_parameter(Name=batch.info["resources"]["ReleaseParameter"])[
            "Parameter"
        ]["Value"]
    )["image"]
    jobs: list[str] = []
    try:
        # Given an environment kept at one instance (minvCpus, a scaling update), booted with
        # the current release's image pulled (BatchLaunchTemplate's user data)
        api.update_compute_environment(
            computeEnvironment=environment, computeResources={"minvCpus": 1}
        )
        (warm,) = _wait(
            lambda: batch.control("GET", "/batch/warm").json()["instances"],
            "no instance was kept warm for minvCpus",
        )
        assert warm["images"] == [release]
        # When launching an instance and pulling the image take 30 s each from now on
        resp = batch.control("POST", "/boot-delay", {"seconds": 30, "pullSeconds": 30})
        assert resp.json()["pullSeconds"] == 30
        jobs.append(_submit(batch, *_session(batch)[:2]))
        # Then a job runs on the warm instance at once: no boot, and its image is cached
        started = _wait_job(batch, jobs[0], "RUNNING", timeout=10)
        assert _instance_of(batch, started) == warm["instanceId"]
        assert batch.control("GET", "/batch/warm").json()["instances"] == []
        # And with the warm instance busy, the next job launches its own and waits for its boot
        # and its image's pull
        jobs.append(_submit(batch, *_session(batch)[:2]))
        cold = _wait_job(batch, jobs[1], "STARTING")
        assert _instance_of(batch, cold) != warm["instanceId"]
        time.sleep(1.0)
        assert _describe(batch, jobs[1])["status"] == "STARTING"
    finally:
        batch.control("POST", "/boot-delay", {"seconds": 0, "pullSeconds": 0})
        api.update_compute_environment(
            computeEnvironment=environment, computeResources={"minvCpus": 0}
        )
        for job_id in jobs:
            api.terminate_job(jobId=job_id, reason="test over")
    # minvCpus back at 0: the idle instances go
    _wait(
        lambda: batch.control("GET", "/batch/warm").json()["instances"] == [],
        "an idle instance outlived minvCpus 0",
    )
