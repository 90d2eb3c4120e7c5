"""Releases of the desktop image: a build becomes current only after its smoke test, a failure
leaves the current release in place, the last N stay available to return to."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from dcvfleet import batch, releases
from dcvfleet.adapters import BatchJobs, ImageBuilds, Release, ReleaseRecords, Releases
from dcvfleet.aws import client
from dcvfleet.config import ReleaseSettings
from dcvfleet.errors import (
    ImageNotBuiltError,
    InvalidRequestError,
    ReleaseConflictError,
    ReleaseNotFoundError,
    SmokeTestFailedError,
)
from dcvfleet.model import Status
from dcvfleet.store import InMemorySessionStore
from local.sim import glxinfo as sim_glxinfo
from tests.support.batch import SETTINGS as BATCH
from tests.support.batch import FakeJobs, FakeReleases
from tests.support.fixtures import fresh
from tests.support.service import FakeSecrets, FakeWorkflows

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dcvfleet-desktop"
SETTINGS = ReleaseSettings(
    releases_table="releases",
    release_parameter="/fleet/release/current",
    repository_uri=REPO,
    releases_to_keep=2,
    provision_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:provision",
    smoke_instance_type="g5.xlarge",
)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:release:7f3e2c1d-aaaa-bbbb"


class FakeImages(ImageBuilds):
    def __init__(self) -> None:
        super().__init__(None, None)
        self.built: set[str] = set()
        self.revisions = 1
        self.deregistered: list[str] = []

    def image_uri(self, repository_uri: str, tag: str) -> str:
        if tag not in self.built:
            raise ImageNotBuiltError(f"no image {repository_uri}:{tag}")
        return f"{repository_uri}:{tag}"

    def register_revision(self, current: str, image: str, release: str) -> str:
        self.revisions += 1
        return f"arn:aws:batch:us-east-1:123456789012:job-definition/desktop:{self.revisions}"

    def deregister_revision(self, job_definition: str) -> None:
        self.deregistered.append(job_definition)


class ParameterReleases(Releases):
    """The release parameter, in memory: what SubmitJob would read."""

    def __init__(self) -> None:
        super().__init__(None, SETTINGS.release_parameter)
        self.value = Release("initial", f"{REPO}:initial", "desktop:1")

    def current(self) -> Release:
        return self.value

    def publish(self, release: str, image: str, job_definition: str) -> None:
        self.value = Release(release, image, job_definition)


@pytest.fixture
def records() -> Iterator[ReleaseRecords]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="releases",
            AttributeDefinitions=[{"AttributeName": "release", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "release", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield ReleaseRecords(db, "releases")


images = fresh("images", FakeImages)
current = fresh("current", ParameterReleases)


def release_through(
    version: str,
    records: ReleaseRecords,
    images: FakeImages,
    current: ParameterReleases,
    *,
    smoke: str = "READY",
) -> dict[str, Any]:
    """The workflow's steps for one build, as the ASL runs them, smoke test included."""
    store, jobs, workflows = InMemorySessionStore(), FakeJobs(), FakeWorkflows()
    releases.begin(records, "builds-bucket", f"builds/{version}.tar.gz", EXECUTION)
    images.built.add(version)
    releases.register(records, images, current, SETTINGS, version)
    session_id = releases.start_smoke(store, records, workflows, SETTINGS, version)["sessionId"]
    # a desktop's id, as the agent's events carry it, and a valid Batch job name whatever the version
    assert str(uuid.UUID(session_id)) == session_id
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", BatchJobs.name_for(session_id))
    store.update(store.require(session_id), secret_arn="arn:secret")
    batch.submit_job(
        store, jobs, FakeReleases(), BATCH, session_id=session_id, secret_arn="arn:secret"
    )
    if smoke != "READY":
        store.update(store.require(session_id), status=Status.FAILED, status_reason=smoke)
        with pytest.raises(SmokeTestFailedError) as caught:
            releases.check_smoke(store, records, version)
        cause = {"errorType": "SmokeTestFailedError", "errorMessage": caught.value.message}
        error = {"Error": "SmokeTestFailedError", "Cause": json.dumps(cause)}  # as Lambda's
        return releases.fail(records, images, version, error)
    assert releases.check_smoke(store, records, version) == {"done": False, "sessionId": session_id}
    store.update(store.require(session_id), status=Status.READY)
    assert releases.check_smoke(store, records, version)["done"]
    assert releases.end_smoke(store, records, jobs, FakeSecrets(), version) == {"ended": True}
    assert store.require(session_id).status == Status.TERMINATED
    # the smoke test ran the candidate revision, not the current release
    [submitted] = jobs.submitted
    assert submitted["definition"] == records.require(version)["jobDefinition"]
    assert jobs.terminated
    return releases.promote(records, current, images, SETTINGS, version)


def test_a_build_that_passes_its_smoke_test_becomes_current(
    records: ReleaseRecords, images: FakeImages, current: ParameterReleases
) -> None:
    out = release_through("1.0.0", records, images, current)
    assert out == {"release": "1.0.0", "retired": []}
    assert current.value == Release(
        "1.0.0", f"{REPO}:1.0.0", records.require("1.0.0")["jobDefinition"]
    )
    assert records.require("1.0.0")["status"] == "CURRENT"


def test_a_failed_smoke_test_leaves_the_previous_release_current(
    records: ReleaseRecords, images: FakeImages, current: ParameterReleases
) -> None:
    release_through("1.0.0", records, images, current)
    before = current.value
    out = release_through("1.1.0", records, images, current, smoke="DCV did not start")
    assert current.value == before
    record = records.require("1.1.0")
    assert record["status"] == "FAILED"
    assert (
        record["reason"]
        == out["reason"]
        == ("SmokeTestFailedError: the smoke-test desktop is FAILED: DCV did not start")
    )
    assert images.deregistered == [record["jobDefinition"]]  # no desktop may start on it


def test_the_last_n_releases_stay_available_and_older_ones_retire(
    records: ReleaseRecords, images: FakeImages, current: ParameterReleases
) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        out = release_through(version, records, images, current)
    assert out["retired"] == ["1.0.0"]
    statuses = {r["release"]: r["status"] for r in records.list()}
    assert statuses == {"1.0.0": "RETIRED", "1.1.0": "AVAILABLE", "1.2.0": "CURRENT"}
    assert images.deregistered == [records.require("1.0.0")["jobDefinition"]]


def test_an_admin_returns_to_an_earlier_release(
    records: ReleaseRecords, images: FakeImages, current: ParameterReleases
) -> None:
    release_through("1.0.0", records, images, current)
    release_through("1.1.0", records, images, current)
    assert releases.activate(records, current, "1.0.0") == {"release": "1.0.0", "status": "CURRENT"}
    assert current.value.release == "1.0.0"
    statuses = {r["release"]: r["status"] for r in records.list()}
    assert statuses == {"1.0.0": "CURRENT", "1.1.0": "AVAILABLE"}
    with pytest.raises(ReleaseNotFoundError):
        releases.activate(records, current, "9.9.9")


def test_a_failed_or_retired_release_cannot_be_made_current(
    records: ReleaseRecords, images: FakeImages, current: ParameterReleases
) -> None:
    release_through("1.0.0", records, images, current)
    release_through("1.1.0", records, images, current, smoke="no GPU capacity")
    with pytest.raises(ReleaseConflictError, match=r"1\.1\.0 is FAILED"):
        releases.activate(records, current, "1.1.0")
    assert current.value.release == "1.0.0"


@pytest.mark.parametrize(
    "key", ["builds/../x.tar.gz", "other/1.0.tar.gz", "builds/1.0.exe", "builds/.tar.gz"]
)
def test_a_build_key_must_name_a_version(records: ReleaseRecords, key: str) -> None:
    with pytest.raises(InvalidRequestError, match="is not builds/<version>"):
        releases.begin(records, "bucket", key, EXECUTION)
    assert records.list() == []


def test_each_release_builds_on_the_ubuntu_snapshot_of_the_day_it_begins(
    records: ReleaseRecords,
) -> None:
    begun = releases.begin(
        records, "bucket", "builds/4.0.tar.gz", EXECUTION,
        now=datetime(2027, 3, 9, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
    )  # fmt: skip

    assert begun["ubuntuSnapshot"] == "20270310T000000Z"  # the UTC day
    assert records.require("4.0")["ubuntuSnapshot"] == "20270310T000000Z"


@pytest.mark.parametrize(
    ("sample", "vendor", "renderer"),
    [
        (sim_glxinfo.NVIDIA, "NVIDIA Corporation", "GeForce MX150/PCIe/SSE2"),
        (sim_glxinfo.LLVMPIPE, "VMware, Inc.", "Gallium 0.4 on llvmpipe (LLVM 3.9, 256 bits)"),
        ("glxinfo: unable to open display\n", "", ""),
    ],
)
def test_glxinfo_names_who_renders_opengl(sample: str, vendor: str, renderer: str) -> None:
    assert releases.gl_renderer(sample) == (vendor, renderer)


def test_a_version_is_released_once(records: ReleaseRecords) -> None:
    releases.begin(records, "bucket", "builds/2.0.zip", EXECUTION)
    with pytest.raises(ReleaseConflictError, match="exists already"):
        releases.begin(records, "bucket", "builds/2.0.zip", EXECUTION)


def test_a_build_that_pushed_no_image_fails_before_any_revision(
    records: ReleaseRecords, images: FakeImages, current: ParameterReleases
) -> None:
    releases.begin(records, "bucket", "builds/3.0.tar.gz", EXECUTION)
    with pytest.raises(ImageNotBuiltError):
        releases.register(records, images, current, SETTINGS, "3.0")
    out = releases.fail(records, images, "3.0", {"Error": "ImageNotBuiltError", "Cause": "x"})
    assert records.require("3.0")["status"] == "FAILED"
    assert out["reason"].startswith("ImageNotBuiltError")
    assert images.deregistered == []


def test_a_new_revision_copies_the_current_definition_with_the_new_image() -> None:
    batch_client = client("batch")
    base = {
        "jobDefinitionName": "desktop",
        "jobDefinitionArn": "arn:aws:batch:us-east-1:123456789012:job-definition/desktop:4",
        "revision": 4,
        "type": "container",
        "status": "ACTIVE",
        "platformCapabilities": ["EC2"],
        "containerProperties": {
            "image": f"{REPO}:1.0.0",
            "jobRoleArn": "arn:aws:iam::123456789012:role/job",
            "resourceRequirements": [{"type": "GPU", "value": "1"}],
        },
        "propagateTags": True,
        # CloudFormation's own tags are AWS's: a request may not set them
        "tags": {"dcvfleet:fleet": "prod", "aws:cloudformation:stack-name": "fleet"},
    }
    with Stubber(batch_client) as stub:
        stub.add_response(
            "describe_job_definitions", {"jobDefinitions": [base]}, {"jobDefinitions": ["d:4"]}
        )
        stub.add_response(
            "register_job_definition",
            {"jobDefinitionName": "desktop", "jobDefinitionArn": "arn:d:5", "revision": 5},
            {
                "jobDefinitionName": "desktop",
                "type": "container",
                "containerProperties": {**base["containerProperties"], "image": f"{REPO}:2.0"},
                "tags": {"dcvfleet:fleet": "prod", "dcvfleet:release": "2.0"},
                "propagateTags": True,
                "platformCapabilities": ["EC2"],
            },
        )
        assert ImageBuilds(None, batch_client).register_revision("d:4", f"{REPO}:2.0", "2.0") == (
            "arn:d:5"
        )


def test_the_release_parameter_is_the_document_submit_job_reads() -> None:
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/r", Value="{}", Type="String")
        parameter = Releases(ssm, "/r")
        parameter.publish("2.0", f"{REPO}:2.0", "arn:d:5")
        assert json.loads(ssm.get_parameter(Name="/r")["Parameter"]["Value"]) == {
            "release": "2.0",
            "image": f"{REPO}:2.0",
            "jobDefinition": "arn:d:5",
        }
        assert parameter.current() == Release("2.0", f"{REPO}:2.0", "arn:d:5")


def test_a_refused_build_is_reported_in_words() -> None:
    cause = json.dumps(
        {
            "errorMessage": "release 2.0 exists already; a build's version names one release",
            "errorType": "ReleaseConflictError",
            "stackTrace": ["  File ..."],
        }
    )
    out = releases.reject({"Error": "ReleaseConflictError", "Cause": cause})
    assert out == {"reason": "release 2.0 exists already; a build's version names one release"}
    assert releases.reject({"Error": "Lambda.ServiceException"}) == {
        "reason": "Lambda.ServiceException"
    }
