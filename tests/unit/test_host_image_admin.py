"""An admin sees which host image new EC2 desktops start from and the earlier ones, starts a
build on demand (the pipeline's test phase is its gate), and rolls back: the newest earlier image
still there and never withdrawn goes back into the parameter, and the one it replaces is withdrawn,
so a second rollback goes further back instead of returning to it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dcvfleet import aws
from dcvfleet.errors import HostImageConflictError, HostImageNotFoundError
from dcvfleet.host_images import HOST_IMAGE_TAG, WITHDRAWN_TAG, HostImages
from tests.support.handlers import HANDLER_ENV, admin_request

PARAMETER = "/dcvfleet/host-image/linux"
PIPELINE = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/dcvfleet-linux-host"


class FakeImageBuilder:
    """StartImagePipelineExecution as Image Builder answers it (moto has no Image Builder)."""

    def __init__(self, busy: bool = False) -> None:
        self.calls: list[dict[str, str]] = []
        self.busy = busy

    def start_image_pipeline_execution(self, **kwargs: str) -> dict[str, str]:
        self.calls.append(kwargs)
        if self.busy:
            error = {"Error": {"Code": "ResourceInUseException", "Message": "in use"}}
            raise ClientError(error, "StartImagePipelineExecution")  # type: ignore[arg-type]
        return {
            "clientToken": kwargs["clientToken"],
            "imageBuildVersionArn": "arn:aws:imagebuilder:us-east-1:123456789012:image/x/1.0.0/1",
        }


class Images:
    """A base AMI in the host image parameter, and host images the pipeline published."""

    def __init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name="us-east-1")
        self.ssm = boto3.client("ssm", region_name="us-east-1")
        self.base = self.ec2.register_image(Name="gpu-base", RootDeviceName="/dev/xvda")["ImageId"]
        self.ssm.put_parameter(Name=PARAMETER, Value=self.base, Type="String")

    def publish(self, name: str) -> str:
        """What one pipeline run does: a tagged AMI, written into the parameter."""
        image = self.ec2.copy_image(SourceImageId=self.base, SourceRegion="us-east-1", Name=name)
        self.ec2.create_tags(
            Resources=[image["ImageId"]], Tags=[{"Key": HOST_IMAGE_TAG, "Value": "linux"}]
        )
        self.ssm.put_parameter(
            Name=PARAMETER, Value=image["ImageId"], Type="String", Overwrite=True
        )
        return str(image["ImageId"])

    def current(self) -> str:
        return str(self.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])

    def tags(self, image_id: str) -> dict[str, str]:
        (image,) = self.ec2.describe_images(ImageIds=[image_id])["Images"]
        return {t["Key"]: t["Value"] for t in image.get("Tags", [])}

    def admin(self, builder: Any = None, pipeline: str = PIPELINE) -> HostImages:
        return HostImages(
            self.ssm,
            self.ec2,
            builder or FakeImageBuilder(),
            parameters={"linux": PARAMETER, "windows": ""},
            pipelines={"linux": pipeline, "windows": ""},
        )


@pytest.fixture(autouse=True)
def no_public_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's own catalogue of public AMIs is not needed here, and takes seconds to load."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture
def images() -> Iterator[Images]:
    with mock_aws():
        yield Images()


def test_the_view_shows_the_current_image_and_the_earlier_ones_newest_first(
    images: Images,
) -> None:
    first = images.publish("host-1")
    second = images.publish("host-2")
    (item,) = images.admin().view()["items"]
    assert item["os"] == "linux"
    assert item["builds"] is True
    assert item["current"]["imageId"] == second
    assert item["current"]["baked"] is True
    assert [(v["imageId"], v["baked"]) for v in item["history"]] == [
        (first, True),
        (images.base, False),
    ]


def test_rollbacks_go_back_one_image_at_a_time_and_never_return_to_a_withdrawn_one(
    images: Images,
) -> None:
    first = images.publish("host-1")
    second = images.publish("host-2")
    admin = images.admin()
    # the first rollback puts back the image before, and withdraws the one it replaces
    out = admin.rollback("linux", "2026-12-07T15:00:00Z")
    assert out == {"os": "linux", "imageId": first, "withdrawn": second}
    assert images.current() == first
    assert images.tags(second)[WITHDRAWN_TAG] == "2026-12-07T15:00:00Z"
    # the second goes further back (to the base AMI), not back to the withdrawn image
    assert admin.rollback("linux", "2026-12-07T15:01:00Z")["imageId"] == images.base
    assert images.current() == images.base
    # and then there is nothing earlier: a clear refusal, the parameter unchanged
    with pytest.raises(HostImageConflictError, match="no earlier linux host image"):
        admin.rollback("linux", "2026-12-07T15:02:00Z")
    assert images.current() == images.base
    # a new build is current again, and a rollback from it skips both withdrawn images
    third = images.publish("host-3")
    assert admin.rollback("linux", "2026-12-07T15:03:00Z")["imageId"] == images.base
    assert images.tags(third)[WITHDRAWN_TAG] == "2026-12-07T15:03:00Z"


def test_a_rollback_skips_an_image_that_is_gone(images: Images) -> None:
    first = images.publish("host-1")
    images.publish("host-2")
    images.ec2.deregister_image(ImageId=first)
    assert images.admin().rollback("linux", "2026-12-07T15:00:00Z")["imageId"] == images.base
    history = images.admin().view()["items"][0]["history"]
    assert [v["gone"] for v in history if v["imageId"] == first] == [True]


def test_a_build_starts_the_pipeline_once_per_request_and_says_when_it_cannot(
    images: Images,
) -> None:
    builder = FakeImageBuilder()
    out = images.admin(builder).build("linux", "request-1")
    assert out["os"] == "linux"
    images.admin(builder).build("linux", "request-1")  # the same request, retried
    tokens = {c["clientToken"] for c in builder.calls}
    assert len(tokens) == 1
    assert all(c["imagePipelineArn"] == PIPELINE for c in builder.calls)
    assert 1 <= len(next(iter(tokens))) <= 36  # StartImagePipelineExecution's clientToken
    with pytest.raises(HostImageConflictError, match="being built already"):
        images.admin(FakeImageBuilder(busy=True)).build("linux", "request-2")
    with pytest.raises(HostImageConflictError, match="AgentArtifactS3Uri"):
        images.admin(pipeline="").build("linux", "request-3")
    with pytest.raises(HostImageNotFoundError, match="no host image for 'windows'"):
        images.admin().build("windows", "request-4")
    with pytest.raises(HostImageNotFoundError, match="it has: linux"):
        images.admin().rollback("beos", "2026-12-07T15:00:00Z")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    env = {**HANDLER_ENV, "LINUX_HOST_IMAGE_PARAMETER": PARAMETER, "LINUX_HOST_PIPELINE": ""}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        aws_images = Images()
        aws_images.publish("host-1")
        sys.modules.pop("dcvfleet.handlers.api", None)
        yield importlib.import_module("dcvfleet.handlers.api")
        sys.modules.pop("dcvfleet.handlers.api", None)


def _call(api: ModuleType, method: str, path: str, *, admin: bool = True) -> tuple[int, Any]:
    return admin_request(api, method, path, admin=admin)


def test_the_api_lets_admins_alone_see_and_roll_back_and_says_why_it_cannot_build(
    api: ModuleType,
) -> None:
    assert _call(api, "GET", "/admin/host-images", admin=False)[0] == 403
    assert _call(api, "POST", "/admin/host-images/linux/rollback", admin=False)[0] == 403
    status, body = _call(api, "GET", "/admin/host-images")
    assert status == 200
    assert body["items"][0]["current"]["baked"] is True
    assert body["items"][0]["builds"] is False
    status, body = _call(api, "POST", "/admin/host-images/linux/build")
    assert status == 409
    assert "AgentArtifactS3Uri" in body["message"]
    assert _call(api, "POST", "/admin/host-images/windows/rollback")[0] == 404
    status, body = _call(api, "POST", "/admin/host-images/linux/rollback")
    assert status == 200
    assert body["imageId"] == aws.client("ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    assert _call(api, "POST", "/admin/host-images/linux/rollback")[0] == 409
