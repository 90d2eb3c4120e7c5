"""The release workflow end to end on the local stack: an application build dropped in the builds
bucket is built into an image (the build simulated), smoke-tested on a real batch desktop through
the provisioning workflow and made current, or refused, or failed with the current release kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.batch_stack import BATCH
from tests.support.batch_stack import PARAMS as BATCH_PARAMS
from tests.support.emulator import tar_gz_bytes
from tests.support.stack import Stack, module_stack

PARAMS = f"{BATCH_PARAMS} ReleasePollSeconds=1"
#: The application build the local stack's simulated image build refuses to build.
FAIL_BUILD = "FAIL_BUILD"


@dataclass
class Release:
    """What a release workflow execution left behind."""

    version: str
    execution: dict[str, Any]
    record: dict[str, str]

    @property
    def states(self) -> list[str]:
        return self.execution["states"]  # type: ignore[no-any-return]


class OperatorInbox:
    """An operator's queue subscribed to the operator topic."""

    def __init__(self, fleet: Stack) -> None:
        self.sqs = fleet.client("sqs")
        self.url = self.sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        fleet.client("sns").subscribe(
            TopicArn=fleet.info["resources"]["OperatorTopic"],
            Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"],
        )
        self.seen: list[dict[str, str]] = []

    def wait_for(self, subject: str, text: str, timeout: float = 10) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for notice in self.seen:
                if notice["Subject"] == subject and text in notice["Message"]:
                    return notice
            for message in self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        raise AssertionError(f"no {subject!r} notice saying {text!r}: {self.seen}")


fleet = module_stack("release", PARAMS)


@pytest.fixture(scope="module")
def inbox(fleet: Stack) -> OperatorInbox:
    return OperatorInbox(fleet)


@pytest.fixture(autouse=True)
def agents_report(fleet: Stack) -> Iterator[None]:
    yield
    fleet.agents(True)


# -- helpers -----------------------------------------------------------------------------------
def _build(files: dict[str, str]) -> bytes:
    """An application build, as a .tar.gz."""
    return tar_gz_bytes(files, mode=0o755)


GOOD_BUILD = {"start": "#!/bin/sh\nexec sleep infinity\n"}


def _resource(fleet: Stack, logical_id: str) -> str:
    return str(fleet.info["resources"][logical_id])


def _executions(fleet: Stack) -> set[str]:
    sfn = fleet.client("stepfunctions")
    machine = _resource(fleet, "ReleaseStateMachine")
    return {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}


def _upload(fleet: Stack, version: str, files: dict[str, str]) -> set[str]:
    """Drop a build in the builds bucket; the release executions there were before."""
    before = _executions(fleet)
    fleet.client("s3").put_object(
        Bucket=_resource(fleet, "BuildsBucket"), Key=f"builds/{version}.tar.gz", Body=_build(files)
    )
    return before


def _new_execution(fleet: Stack, before: set[str], timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = _executions(fleet) - before
        if new:
            return new.pop()
        time.sleep(0.1)
    raise AssertionError("the upload started no release workflow")


def _finished(fleet: Stack, arn: str, timeout: float = 60) -> dict[str, Any]:
    sfn = fleet.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"release workflow {arn} still running"
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    execution["states"] = [
        e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")
    ]
    return dict(execution)


def _record(fleet: Stack, version: str) -> dict[str, str]:
    item = fleet.client("dynamodb").get_item(
        TableName=_resource(fleet, "ReleasesTable"),
        Key={"release": {"S": version}},
        ConsistentRead=True,
    )
    return {k: v["S"] for k, v in item.get("Item", {}).items()}


def _release(fleet: Stack, version: str, files: dict[str, str] | None = None) -> Release:
    """Upload a build and wait for its release workflow to end."""
    before = _upload(fleet, version, GOOD_BUILD if files is None else files)
    execution = _finished(fleet, _new_execution(fleet, before))
    return Release(version, execution, _record(fleet, version))


def _current(fleet: Stack) -> dict[str, str]:
    name = _resource(fleet, "ReleaseParameter")
    value = fleet.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    return dict(json.loads(value))


def _session(fleet: Stack, session_id: str) -> dict[str, Any]:
    item = fleet.client("dynamodb").get_item(
        TableName=_resource(fleet, "SessionsTable"), Key={"pk": {"S": session_id}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def _job(fleet: Stack, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = fleet.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    return job


def _definition(fleet: Stack, arn: str) -> dict[str, Any]:
    (found,) = fleet.client("batch").describe_job_definitions(jobDefinitions=[arn])[
        "jobDefinitions"
    ]
    return dict(found)


def _revisions(fleet: Stack) -> list[int]:
    name = _resource(fleet, "DesktopJobDefinition").rsplit("/", 1)[1].split(":")[0]
    found = fleet.client("batch").describe_job_definitions(jobDefinitionName=name)
    return sorted(d["revision"] for d in found["jobDefinitions"])


def _image_tags(fleet: Stack) -> list[str]:
    repository = _resource(fleet, "ImageRepository")
    images = fleet.client("ecr").describe_images(repositoryName=repository)["imageDetails"]
    return sorted(t for image in images for t in image.get("imageTags", []))


@pytest.fixture(scope="module")
def first_release(fleet: Stack, inbox: OperatorInbox) -> Release:
    """Release 1.1.0, the first build after the initial release."""
    return _release(fleet, "1.1.0")


# -- tests -------------------------------------------------------------------------------------
def test_a_build_becomes_the_current_release_after_its_smoke_test(
    fleet: Stack, inbox: OperatorInbox, first_release: Release
) -> None:
    # Given the initial release, When a build 1.1.0 was dropped in the builds bucket
    release = first_release
    # Then the workflow went all the way
    assert release.execution["status"] == "SUCCEEDED", release.execution
    assert release.states[-3:] == ["Promote", "NotifyReleased", "Released"]
    # And the image was built and pushed under its version, on a new job definition revision
    repository = fleet.client("ecr").describe_repositories(
        repositoryNames=[_resource(fleet, "ImageRepository")]
    )["repositories"][0]["repositoryUri"]
    assert "1.1.0" in _image_tags(fleet)
    definition = _definition(fleet, release.record["jobDefinition"])
    assert definition["status"] == "ACTIVE"
    assert definition["containerProperties"]["image"] == f"{repository}:1.1.0"
    assert definition["revision"] > 1
    assert definition["tags"]["dcvfleet:release"] == "1.1.0"
    # And the smoke-test desktop reached READY, its session's OpenGL on the NVIDIA GPU (the
    # simulated session answers glxinfo -B as an NVIDIA GPU does), then was ended with its job
    assert release.record["smokeRenderer"] == "GeForce MX150/PCIe/SSE2"
    smoke = _session(fleet, release.record["smokeSessionId"])
    assert smoke["status"] == "TERMINATED", smoke
    job = _job(fleet, smoke["jobId"])
    assert job["status"] in ("FAILED", "SUCCEEDED")
    assert job["jobDefinition"] == release.record["jobDefinition"]
    assert not fleet.secret_exists(release.record["smokeSessionId"])
    # And only then did it become current: the parameter, the record, the operators
    assert release.record["status"] == "CURRENT"
    assert _current(fleet) == {
        "release": "1.1.0",
        "image": f"{repository}:1.1.0",
        "jobDefinition": release.record["jobDefinition"],
    }
    notice = inbox.wait_for("DCV Fleet: new desktop release", "Release 1.1.0 is now current")
    assert f"{repository}:1.1.0" in notice["Message"]
    # And a batch desktop requested now runs on the new revision
    user = fleet.new_user()
    resp = user.call("POST", "/sessions", BATCH)
    assert resp.status_code == 202, resp.text
    session = fleet.wait_for(user, resp.json()["sessionId"], timeout=40)
    assert session["status"] == "READY", session
    assert _job(fleet, session["jobId"])["jobDefinition"] == release.record["jobDefinition"]
    assert user.call("DELETE", f"/sessions/{session['sessionId']}").status_code == 202


def test_a_failed_smoke_test_leaves_the_current_release(
    fleet: Stack, inbox: OperatorInbox, first_release: Release
) -> None:
    # Given the current release, and containers whose DCV never comes up
    current = _current(fleet)
    revisions = _revisions(fleet)
    fleet.agents(False)
    # When a build 1.2.0 is dropped and its smoke-test desktop's container exits
    before = _upload(fleet, "1.2.0", GOOD_BUILD)
    arn = _new_execution(fleet, before)
    deadline = time.monotonic() + 30
    job_id = ""
    while not job_id:
        assert time.monotonic() < deadline, "no smoke-test job"
        smoke_id = _record(fleet, "1.2.0").get("smokeSessionId", "")
        job_id = _session(fleet, smoke_id).get("jobId", "") if smoke_id else ""
        time.sleep(0.2)
    while _job(fleet, job_id)["status"] != "RUNNING":
        assert time.monotonic() < deadline, _job(fleet, job_id)
        time.sleep(0.2)
    resp = fleet.control("POST", f"/jobs/{job_id}/exit", {"code": 67})
    assert resp.status_code == 200, resp.text
    execution = _finished(fleet, arn)
    # Then the release failed, saying why, and the current release is the one before
    assert execution["status"] == "FAILED", execution
    assert "ReleaseFailed" in execution["states"]
    record = _record(fleet, "1.2.0")
    assert record["status"] == "FAILED"
    assert record["reason"].startswith("SmokeTestFailedError"), record
    assert "DCV did not start in its container" in record["reason"], record
    assert _current(fleet) == current
    # And its revision no longer starts desktops
    assert _definition(fleet, record["jobDefinition"])["status"] == "INACTIVE"
    assert _revisions(fleet) == [*revisions, max(revisions) + 1]
    # And no smoke-test desktop is left: FAILED, its job ended, its secret gone
    smoke = _session(fleet, record["smokeSessionId"])
    assert smoke["status"] == "FAILED", smoke
    assert _job(fleet, job_id)["status"] == "FAILED"
    assert not fleet.secret_exists(record["smokeSessionId"])
    # And the operators were told
    inbox.wait_for("DCV Fleet: release failed", "Release 1.2.0 did not make it")


def test_a_smoke_test_desktop_without_gpu_opengl_fails_the_release(
    fleet: Stack, inbox: OperatorInbox, first_release: Release
) -> None:
    # Given a current release whose containers run without the 3D X server, so that their
    # session renders OpenGL in software (the simulated session then answers glxinfo -B as
    # Mesa's llvmpipe does), as an image or job definition that lost the GPU would
    current = _current(fleet)
    base = _definition(fleet, current["jobDefinition"])
    container = dict(base["containerProperties"])
    container["environment"] = [
        *container.get("environment", []),
        {"name": "DCVFLEET_GPU_X_SERVER", "value": "false"},
    ]
    batch, ssm = fleet.client("batch"), fleet.client("ssm")
    software = batch.register_job_definition(
        jobDefinitionName=base["jobDefinitionName"],
        type="container",
        containerProperties=container,
        tags={k: v for k, v in base.get("tags", {}).items() if not k.startswith("aws:")},
        propagateTags=True,
    )["jobDefinitionArn"]
    parameter = _resource(fleet, "ReleaseParameter")
    ssm.put_parameter(
        Name=parameter, Value=json.dumps({**current, "jobDefinition": software}), Overwrite=True
    )
    try:
        # When a build 1.4.0 is dropped, and its smoke-test desktop reaches READY
        release = _release(fleet, "1.4.0")
    finally:
        ssm.put_parameter(Name=parameter, Value=json.dumps(current), Overwrite=True)
        batch.deregister_job_definition(jobDefinition=software)
    # Then the release failed on the GPU check, saying what renders
    assert release.execution["status"] == "FAILED", release.execution
    assert "ReleaseFailed" in release.states
    record = release.record
    assert record["status"] == "FAILED"
    assert record["reason"].startswith("SmokeTestFailedError"), record
    assert "does not render OpenGL on the NVIDIA GPU" in record["reason"], record
    assert "llvmpipe" in record["reason"], record
    assert "smokeRenderer" not in record
    # And the current release is untouched, the smoke-test desktop gone, the operators told
    assert _current(fleet) == current
    assert _definition(fleet, record["jobDefinition"])["status"] == "INACTIVE"
    assert not fleet.secret_exists(record["smokeSessionId"])
    inbox.wait_for("DCV Fleet: release failed", "Release 1.4.0 did not make it")


def test_a_build_that_cannot_be_built_registers_no_revision(
    fleet: Stack, inbox: OperatorInbox, first_release: Release
) -> None:
    current, revisions = _current(fleet), _revisions(fleet)
    # When a build that cannot be built is dropped
    release = _release(fleet, "1.3.0", {**GOOD_BUILD, FAIL_BUILD: "missing GPU driver\n"})
    # Then the build failed, nothing was pushed or registered, and the current release stays
    assert release.execution["status"] == "FAILED"
    assert "BuildFailed" in release.states
    assert "RegisterJobDefinition" not in release.states
    assert release.record["status"] == "FAILED"
    assert "jobDefinition" not in release.record
    assert release.record["reason"] == "BuildFailedError: the image build ended FAILED"
    assert "1.3.0" not in _image_tags(fleet)
    assert _revisions(fleet) == revisions
    assert _current(fleet) == current
    inbox.wait_for("DCV Fleet: release failed", "Release 1.3.0 did not make it")
    # And the build's log says why
    codebuild = fleet.client("codebuild")
    ids = codebuild.list_builds_for_project(projectName=_resource(fleet, "ImageBuildProject"))
    (build,) = [
        b
        for b in codebuild.batch_get_builds(ids=ids["ids"])["builds"]
        if {"name": "BUILD_VERSION", "value": "1.3.0", "type": "PLAINTEXT"}
        in b["environment"]["environmentVariables"]
    ]
    failed = [p for p in build["phases"] if p.get("phaseStatus") == "FAILED"]
    assert [p["phaseType"] for p in failed] == ["BUILD"]
    assert "missing GPU driver" in failed[0]["contexts"][0]["message"]


def test_an_admin_returns_to_an_earlier_release(fleet: Stack, first_release: Release) -> None:
    # Given 1.1.0 released, then 2.0.0
    assert _release(fleet, "2.0.0").record["status"] == "CURRENT"
    assert _record(fleet, "1.1.0")["status"] == "AVAILABLE"
    admin = fleet.new_user(groups=("admins",))
    listed = admin.call("GET", "/admin/releases")
    assert listed.status_code == 200, listed.text
    statuses = {r["release"]: r["status"] for r in listed.json()["releases"]}
    assert (statuses["1.1.0"], statuses["2.0.0"]) == ("AVAILABLE", "CURRENT")
    # When someone who is not an admin tries to return to 1.1.0, Then they may not
    user = fleet.new_user()
    assert user.call("POST", "/admin/releases/1.1.0/activate").status_code == 403
    assert user.call("GET", "/admin/releases").status_code == 403
    assert _current(fleet)["release"] == "2.0.0"
    # When an admin does, Then new batch desktops start on 1.1.0 again
    resp = admin.call("POST", "/admin/releases/1.1.0/activate")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"release": "1.1.0", "status": "CURRENT"}
    assert _current(fleet) == {
        "release": "1.1.0",
        "image": first_release.record["image"],
        "jobDefinition": first_release.record["jobDefinition"],
    }
    assert (_record(fleet, "1.1.0")["status"], _record(fleet, "2.0.0")["status"]) == (
        "CURRENT",
        "AVAILABLE",
    )
    # And a failed release cannot be made current
    assert admin.call("POST", "/admin/releases/1.3.0/activate").status_code == 409


def test_a_version_released_before_is_refused(
    fleet: Stack, inbox: OperatorInbox, first_release: Release
) -> None:
    record, revisions = _record(fleet, "1.1.0"), _revisions(fleet)
    # When the build of 1.1.0 is dropped again
    release = _release(fleet, "1.1.0")
    # Then it is refused before anything is built, and reported
    assert release.execution["status"] == "FAILED"
    assert release.states[-4:] == ["Begin", "Rejected", "NotifyRejected", "Failed"]
    assert _record(fleet, "1.1.0") == record
    assert _revisions(fleet) == revisions
    message = inbox.wait_for("DCV Fleet: build not released", "release 1.1.0 exists already")
    assert "errorType" not in str(message)  # the reason in words, not the Lambda error document
