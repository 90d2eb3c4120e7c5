"""CodeBuild's gaps: CODEBUILD_FROM_CLOUDFORMATION, CODEBUILD_BUILDS."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from moto import mock_aws

from local.emulator import codebuild
from local.emulator.codebuild import BUILD_PHASES, codebuild_build_patches
from tests.support.emulator import (
    ACCOUNT,
    BUILDS_BUCKET,
    CODEBUILD_TEMPLATE,
    IMAGE_REPOSITORY,
    REGION,
    REPOSITORY_URI,
    ROLE_ARN,
    SOURCE_KEY,
    Installer,
    aws_client,
    create_stack,
    image_project,
    stack_outputs,
    tar_gz_bytes,
    zip_bytes,
)


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_gap_codebuild_from_cloudformation() -> None:
    """GAP CODEBUILD_FROM_CLOUDFORMATION: moto's CloudFormation has no ``AWS::CodeBuild::Project``:
    a ``Fn::GetAtt`` of one fails the stack, and without one the stack completes with no project.
    When this fails, moto has changed: drop ``codebuild_project_model`` in local/emulator/codebuild.py."""
    with mock_aws(), pytest.raises(AttributeError, match="has_cfn_attr"):
        create_stack("probe", CODEBUILD_TEMPLATE)
    with mock_aws():
        stack = create_stack("probe", {"Resources": CODEBUILD_TEMPLATE["Resources"]})
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert aws_client("codebuild").list_projects()["projects"] == []


SOURCE_BUNDLE = zip_bytes(
    {
        "container/buildspec.yml": "version: 0.2\n",
        "container/Dockerfile": "FROM scratch\n",
        "agent/build.py": "print('agent archive')\n",
    }
)


def _start_build(version: str, key: str | None = None, snapshot: str = "20261201T000000Z") -> str:
    artifact = f"s3://{BUILDS_BUCKET}/{key or f'builds/{version}.tar.gz'}"
    build_id: str = aws_client("codebuild").start_build(
        projectName="probe-image",
        environmentVariablesOverride=[
            {"name": "BUILD_VERSION", "value": version, "type": "PLAINTEXT"},
            {"name": "BUILD_ARTIFACT_S3_URI", "value": artifact, "type": "PLAINTEXT"},
            {"name": "UBUNTU_SNAPSHOT", "value": snapshot, "type": "PLAINTEXT"},
        ],
    )["build"]["id"]
    return build_id


def _build(build_id: str) -> dict[str, Any]:
    (build,) = aws_client("codebuild").batch_get_builds(ids=[build_id])["builds"]
    return dict(build)


def _finished_build(build_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (build := _build(build_id))["buildStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, "the build never finished"
        time.sleep(0.02)
    return build


def _image_tags() -> list[str]:
    images = aws_client("ecr").describe_images(repositoryName=IMAGE_REPOSITORY)["imageDetails"]
    return sorted(tag for image in images for tag in image.get("imageTags", []))


@mock_aws
def test_gap_codebuild_builds() -> None:
    """GAP CODEBUILD_BUILDS: StartBuild drops ``environmentVariablesOverride`` and records a
    made-up source (CODECOMMIT, not the project's S3 bundle); BatchGetBuilds reports the build
    SUCCEEDED the first time it is asked, with every phase SUCCEEDED, though its application
    build does not even exist, and nothing is pushed. When this fails, moto has changed: revisit
    ``codebuild_build_patches`` in local/emulator/codebuild.py."""

    aws_client("ecr").create_repository(repositoryName=IMAGE_REPOSITORY)
    image_project()
    build_id = _start_build("1.0.0")  # no bucket, no source bundle, no application build
    build = _build(build_id)
    assert build["buildStatus"] == "SUCCEEDED"
    assert {p.get("phaseStatus") for p in build["phases"]} == {"SUCCEEDED"}
    assert build["environment"]["environmentVariables"] == []
    assert build["source"]["type"] == "CODECOMMIT"
    assert _image_tags() == []


def test_workaround_codebuild_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``codebuild_build_patches``: a build keeps its variables and the project's source, runs
    after ``BUILD_SECONDS`` and pushes an image tagged with its version; a missing source bundle
    or application build, an application build with ``FAIL_BUILD`` in it and a version already
    pushed each fail their phase with a reason, and push nothing."""
    apply = [*codebuild_build_patches()]
    for owner, name, replacement in apply:
        monkeypatch.setattr(owner, name, replacement)
    monkeypatch.setattr(codebuild, "BUILD_SECONDS", 0.2)
    with mock_aws():
        s3, logs = aws_client("s3"), aws_client("logs")
        s3.create_bucket(Bucket=BUILDS_BUCKET)
        aws_client("ecr").create_repository(
            repositoryName=IMAGE_REPOSITORY, imageTagMutability="IMMUTABLE"
        )
        image_project()
        builds = {"1.0.0": tar_gz_bytes({"app/start": "#!/bin/sh\n"})}
        builds["1.1.0"] = tar_gz_bytes({"app/start": "#!/bin/sh\n", "app/FAIL_BUILD": "no GPU\n"})
        for version, body in builds.items():
            s3.put_object(Bucket=BUILDS_BUCKET, Key=f"builds/{version}.tar.gz", Body=body)

        # no source bundle yet: the source download fails
        missing_source = _finished_build(_start_build("1.0.0"))
        assert missing_source["buildStatus"] == "FAILED"
        assert missing_source["phases"][-3]["phaseType"] == "DOWNLOAD_SOURCE"
        assert "NoSuchKey" in missing_source["phases"][-3]["contexts"][0]["message"]
        s3.put_object(Bucket=BUILDS_BUCKET, Key=SOURCE_KEY, Body=SOURCE_BUNDLE)

        build_id = _start_build("1.0.0")
        started = _build(build_id)
        assert started["buildStatus"] == "IN_PROGRESS"
        variables = {v["name"]: v["value"] for v in started["environment"]["environmentVariables"]}
        assert variables == {
            "IMAGE_REPOSITORY_URI": REPOSITORY_URI,
            "BUILD_VERSION": "1.0.0",
            "BUILD_ARTIFACT_S3_URI": f"s3://{BUILDS_BUCKET}/builds/1.0.0.tar.gz",
            "UBUNTU_SNAPSHOT": "20261201T000000Z",
        }
        assert started["source"]["location"] == f"{BUILDS_BUCKET}/{SOURCE_KEY}"
        built = _finished_build(build_id)
        assert built["buildStatus"] == "SUCCEEDED", built["phases"]
        assert [p["phaseType"] for p in built["phases"]] == list(BUILD_PHASES)
        assert _image_tags() == ["1.0.0"]
        exported = {v["name"]: v["value"] for v in built["exportedEnvironmentVariables"]}
        assert exported["IMAGE_URI"] == f"{REPOSITORY_URI}:1.0.0"
        (image,) = aws_client("ecr").describe_images(
            repositoryName=IMAGE_REPOSITORY, imageIds=[{"imageTag": "1.0.0"}]
        )["imageDetails"]
        assert image["imageDigest"] == exported["IMAGE_DIGEST"]
        events = logs.get_log_events(
            logGroupName=built["logs"]["groupName"], logStreamName=built["logs"]["streamName"]
        )["events"]
        assert any("Phase complete: POST_BUILD State: SUCCEEDED" in e["message"] for e in events)

        def failed(version: str, key: str | None = None, snapshot: str = "") -> tuple[str, str]:
            build = _finished_build(_start_build(version, key, snapshot or "20261201T000000Z"))
            assert build["buildStatus"] == "FAILED"
            phase = next(p for p in build["phases"] if p.get("phaseStatus") == "FAILED")
            return phase["phaseType"], phase["contexts"][0]["message"]

        phase, message = failed("1.1.0")  # the application build says it cannot be built
        assert (phase, message) == (
            "BUILD",
            "docker build failed (app/FAIL_BUILD in the application build): no GPU",
        )
        phase, message = failed("1.2.0")  # no such application build
        assert phase == "PRE_BUILD"
        assert 'Key "builds/1.2.0.tar.gz" does not exist' in message
        phase, message = failed("1.0.0")  # that version was pushed already
        assert (phase, message) == (
            "PRE_BUILD",
            f"buildspec: {REPOSITORY_URI}:1.0.0 already exists",
        )
        phase, message = failed("latest")
        assert (phase, message) == ("PRE_BUILD", "buildspec: BUILD_VERSION must not be 'latest'")
        phase, message = failed("1.3.0", snapshot="2025-06-01")  # not a snapshot id
        assert (phase, message) == (
            "PRE_BUILD",
            "buildspec: UBUNTU_SNAPSHOT '2025-06-01' is not an Ubuntu snapshot id (YYYYMMDDTHHMMSSZ)",
        )
        assert _image_tags() == ["1.0.0"]


def test_workaround_codebuild_from_cloudformation(install: Installer) -> None:
    """CODEBUILD_FROM_CLOUDFORMATION's model creates the project through CodeBuild, with its
    service role, environment and source in the API's casing; ``Ref`` is its name, ``Arn`` its
    ARN."""
    install("CODEBUILD_FROM_CLOUDFORMATION")
    with mock_aws():
        cfn = aws_client("cloudformation")
        cfn.create_stack(StackName="probe", TemplateBody=json.dumps(CODEBUILD_TEMPLATE))
        stack = cfn.describe_stacks(StackName="probe")["Stacks"][0]
        (project,) = aws_client("codebuild").batch_get_projects(names=["probe-image"])["projects"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    arn = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/probe-image"
    assert stack_outputs(stack) == {"Name": "probe-image", "Arn": arn}
    assert project["serviceRole"] == ROLE_ARN
    assert project["environment"]["privilegedMode"] is True
    assert project["source"] == {"type": "NO_SOURCE", "buildspec": "version: 0.2"}
