"""Batch desktops end to end on the local stack: a DCV container per desktop, run as a Batch job
(simulated containers running the real agent), through the real API and workflows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dcvfleet import events
from local.client import Client
from tests.support.batch_stack import BATCH, CAPACITY_TIMEOUT, GRACE, IDLE_TIMEOUT, PARAMS
from tests.support.stack import Stack, module_stack

fleet = module_stack("batch", PARAMS)


@pytest.fixture(autouse=True)
def unlimited_capacity(fleet: Stack) -> Iterator[None]:
    yield
    fleet.control("POST", "/batch/capacity", {"instances": None})


def _request(fleet: Stack) -> tuple[Client, str]:
    user = fleet.new_user()
    resp = user.call("POST", "/sessions", BATCH)
    assert resp.status_code == 202, resp.text
    return user, resp.json()["sessionId"]


def _ready(fleet: Stack) -> tuple[Client, dict[str, Any]]:
    user, session_id = _request(fleet)
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "READY", session
    return user, session


def _job(fleet: Stack, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = fleet.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    return job


def _wait_job(fleet: Stack, job_id: str, statuses: tuple[str, ...], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = str(_job(fleet, job_id)["status"])
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _secret_exists(fleet: Stack, session_id: str) -> bool:
    names = [s["Name"] for s in fleet.client("secretsmanager").list_secrets().get("SecretList", [])]
    return f"dcvfleet/sessions/{session_id}" in names


def test_a_batch_desktop_reaches_ready_through_the_api(fleet: Stack) -> None:
    observer = fleet.observe("dcvfleet")
    # Given a user, When they ask for a batch desktop
    _, session = _ready(fleet)
    session_id, job_id = session["sessionId"], session["jobId"]
    # Then it is READY in its own container: the job runs on the instance it reports
    job = _job(fleet, job_id)
    assert job["status"] == "RUNNING"
    assert job["jobName"] == f"dcvfleet-{session_id}"
    environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert environment["DCVFLEET_SESSION_ID"] == session_id
    assert "password" not in str(job).lower()
    instances = fleet.client("ecs").describe_container_instances(
        cluster=job["container"]["containerInstanceArn"].split("/")[1],
        containerInstances=[job["container"]["containerInstanceArn"]],
    )["containerInstances"]
    assert instances[0]["ec2InstanceId"] == session["instanceId"]
    assert session["connectionUrl"].endswith(":8443/#desktop")
    # And only that job's task may read the secret (its tag names the task)
    secret = fleet.client("secretsmanager").describe_secret(
        SecretId=f"dcvfleet/sessions/{session_id}"
    )
    tags = {t["Key"]: t["Value"] for t in secret["Tags"]}
    task_id = job["container"]["taskArn"].rsplit("/", 1)[1]
    assert tags["dcvfleet:reader"].endswith(f":{task_id}")
    # And the workflow went the batch way, announcing it like any desktop
    entered = fleet.states_entered(session_id)
    assert entered[:7] == [
        "LoadSettings", "IsResume", "WhichBackend", "CreateCredentials", "SubmitJob",
        "StartCapacityPoll", "CheckJob",
    ]  # fmt: skip
    assert "LaunchInstance" not in entered
    ready = observer.wait_for("Session Ready", session_id)
    assert events.validate_detail("dcvfleet", "Session Ready", ready["detail"]) is None
    assert ready["detail"]["backend"] == "batch"


def test_an_idle_batch_desktop_ends_its_job(fleet: Stack) -> None:
    observer = fleet.observe("dcvfleet")
    # Given a READY batch desktop someone used and left
    user, session = _ready(fleet)
    session_id, instance_id = session["sessionId"], session["instanceId"]
    fleet.control("POST", f"/hosts/{instance_id}/connections", {"count": 1})
    time.sleep(1.5)
    fleet.control("POST", f"/hosts/{instance_id}/connections", {"count": 0})
    # When nobody comes back: Then it is warned (checked live, inside the container)
    warning = observer.wait_for("Session Idle Warning", session_id, timeout=IDLE_TIMEOUT + 15)
    assert warning["detail"]["action"] == "terminate"
    # And its job is ended and the desktop TERMINATED, saying why
    done = fleet.wait_for(user, session_id, ("TERMINATED",), timeout=IDLE_TIMEOUT + GRACE + 25)
    assert done["status"] == "TERMINATED", done
    assert "no one has used it" in done["statusReason"]
    assert _wait_job(fleet, session["jobId"], ("FAILED", "SUCCEEDED")) == "FAILED"
    terminated = observer.wait_for("Session Terminated", session_id)
    assert events.validate_detail("dcvfleet", "Session Terminated", terminated["detail"]) is None
    assert terminated["detail"]["evidence"]["connections"] == 0
    assert not _secret_exists(fleet, session_id)


def test_a_users_stop_ends_the_container(fleet: Stack) -> None:
    user, session = _ready(fleet)
    session_id = session["sessionId"]
    resp = user.call("POST", f"/sessions/{session_id}/stop")
    assert (resp.status_code, resp.json()["status"]) == (202, "TERMINATING"), resp.text
    done = fleet.wait_for(user, session_id, ("TERMINATED",), timeout=30)
    assert done["status"] == "TERMINATED", done
    assert _wait_job(fleet, session["jobId"], ("FAILED", "SUCCEEDED")) == "FAILED"
    # a container desktop cannot be started again: ask for a new one
    again = user.call("POST", f"/sessions/{session_id}/start")
    assert again.status_code == 409, again.text


def test_no_gpu_capacity_fails_with_a_reason_and_cancels_the_job(fleet: Stack) -> None:
    # Given no GPU instance can be launched
    resp = fleet.control("POST", "/batch/capacity", {"instances": 0})
    assert resp.status_code == 200, resp.text
    # When a batch desktop is requested
    user, session_id = _request(fleet)
    # Then after the capacity timeout it is FAILED with a reason a user understands
    session = fleet.wait_for(user, session_id, timeout=CAPACITY_TIMEOUT + 30)
    assert session["status"] == "FAILED", session
    assert session["statusReason"] == (
        "No GPU capacity is available right now for the requested desktop. Try again later."
    )
    # And the waiting job was cancelled, the secret deleted
    assert _wait_job(fleet, session["jobId"], ("FAILED",)) == "FAILED"
    assert not _secret_exists(fleet, session_id)
    assert "Compensate" in fleet.states_entered(session_id)


def test_a_job_that_fails_at_start_fails_the_desktop_with_its_reason(fleet: Stack) -> None:
    # Given a batch desktop whose container runs but has not reported ready (no agent yet)
    assert fleet.control("POST", "/agents", {"enabled": False}).status_code == 200
    try:
        user, session_id = _request(fleet)
        deadline = time.monotonic() + 30
        job_id = ""
        while time.monotonic() < deadline and not job_id:
            job_id = user.call("GET", f"/sessions/{session_id}").json().get("jobId", "")
            time.sleep(0.1)
        assert job_id
        assert _wait_job(fleet, job_id, ("RUNNING",)) == "RUNNING"
        # When DCV cannot start in it (the entrypoint exits 67)
        resp = fleet.control("POST", f"/jobs/{job_id}/exit", {"code": 67})
        assert resp.status_code == 200, resp.text
        failed_at = time.monotonic()
    finally:
        fleet.control("POST", "/agents", {"enabled": True})
    # Then the desktop is FAILED at once, not after the ready timeout (30 s), saying why
    session = fleet.wait_for(user, session_id, timeout=20)
    assert session["status"] == "FAILED", session
    assert time.monotonic() - failed_at < 15
    assert "DCV did not start in its container" in session["statusReason"], session
    assert not _secret_exists(fleet, session_id)


def test_a_container_that_ends_outside_is_recorded_terminated(fleet: Stack) -> None:
    observer = fleet.observe("dcvfleet")
    user, session = _ready(fleet)
    session_id = session["sessionId"]
    # When the application quits and its container ends on its own
    resp = fleet.control("POST", f"/jobs/{session['jobId']}/exit", {"code": 0})
    assert resp.status_code == 200, resp.text
    # Then the record follows: TERMINATED, saying why, announced
    done = fleet.wait_for(user, session_id, ("TERMINATED",), timeout=30)
    assert done["statusReason"] == (
        "Its container ended outside DCV Fleet: its desktop session ended (the application quit)."
    )
    terminated = observer.wait_for("Session Terminated", session_id, timeout=15)
    assert terminated["detail"]["trigger"] == "external"
