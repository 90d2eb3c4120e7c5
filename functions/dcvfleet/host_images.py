"""The host images new EC2 desktops start from: what is current, a rebuild on demand, and a
rollback.

Each OS has an SSM parameter (``/<stack>/host-image/<os>``) that its launch template resolves
at every launch; its first value is the base AMI (hosts install DCV at first boot), and each
image the Image Builder pipeline makes is written into it by the pipeline's distribution. The
parameter's history is the images' history: SSM keeps a parameter's last 100 versions
(https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-versions.html).

**The gate** is the pipeline's own: Image Builder runs the recipe's test phase on an instance
launched from the new image (every piece present, DCV starts), and distributes (writes the
parameter) only when the tests pass
("Tests run after building the image, to verify that the AMI ... is valid before distributing
it": https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-imagebuilder-image-imagetestsconfiguration.html;
the stages: https://docs.aws.amazon.com/imagebuilder/latest/userguide/manage-image-workflows.html);
a failed build leaves the parameter as it was. **A rollback** writes back the
newest earlier image that is still there and was never withdrawn, and marks the image it
replaces withdrawn (a ``dcvfleet:withdrawn`` tag on the AMI), so a second rollback goes further
back instead of returning to it. Desktops already running keep their hosts; new ones start from
the image the parameter names at their launch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dcvfleet.errors import HostImageConflictError, HostImageNotFoundError

#: The tag the pipelines' distributions put on each host image (template.yaml, *HostDistribution).
HOST_IMAGE_TAG = "dcvfleet:host-image"
#: The tag a rollback puts on the image it withdrew (the value: when).
WITHDRAWN_TAG = "dcvfleet:withdrawn"
OPERATING_SYSTEMS = ("linux", "windows")


@dataclass(frozen=True)
class ImageVersion:
    image_id: str
    version: int
    since: str
    #: A host image a pipeline made (False: the base AMI, installing DCV at first boot).
    baked: bool = False
    withdrawn: bool = False
    #: The image no longer exists (deregistered).
    gone: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "imageId": self.image_id,
            "version": self.version,
            "since": self.since,
            "baked": self.baked,
            "withdrawn": self.withdrawn,
            "gone": self.gone,
        }


class HostImages:
    """The host image parameters of this stack (``parameters``: os -> parameter name, for the
    OSes it serves) and their pipelines (os -> pipeline ARN; none when the stack builds no
    images)."""

    def __init__(
        self,
        ssm: Any,
        ec2: Any,
        imagebuilder: Any,
        parameters: dict[str, str],
        pipelines: dict[str, str],
    ) -> None:
        self._ssm = ssm
        self._ec2 = ec2
        self._imagebuilder = imagebuilder
        self._parameters = {os: name for os, name in parameters.items() if name}
        self._pipelines = {os: arn for os, arn in pipelines.items() if arn}

    def _parameter(self, os: str) -> str:
        if os not in self._parameters:
            served = ", ".join(sorted(self._parameters)) or "none"
            raise HostImageNotFoundError(
                f"no host image for {os!r} in this fleet (it has: {served})"
            )
        return self._parameters[os]

    def history(self, os: str) -> list[ImageVersion]:
        """The parameter's versions, newest first, each with what its image is now."""
        versions: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Name": self._parameter(os), "MaxResults": 50}
        while True:  # https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameterHistory.html
            resp = self._ssm.get_parameter_history(**kwargs)
            versions.extend(resp.get("Parameters", []))
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        tags = self._image_tags({v["Value"] for v in versions})
        found = [
            ImageVersion(
                image_id=v["Value"],
                version=int(v["Version"]),
                since=_iso(v["LastModifiedDate"]),
                baked=HOST_IMAGE_TAG in tags.get(v["Value"], {}),
                withdrawn=WITHDRAWN_TAG in tags.get(v["Value"], {}),
                gone=v["Value"] not in tags,
            )
            for v in versions
        ]
        return sorted(found, key=lambda v: v.version, reverse=True)

    def _image_tags(self, image_ids: set[str]) -> dict[str, dict[str, str]]:
        """Each image that still exists, with its tags (DescribeImages leaves out an image that
        is deregistered, and fails the whole call for a malformed id)."""
        wanted = sorted(i for i in image_ids if i.startswith("ami-"))
        if not wanted:
            return {}
        try:
            images = self._ec2.describe_images(ImageIds=wanted)["Images"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in (
                "InvalidAMIID.NotFound",
                "InvalidAMIID.Unavailable",
            ):
                raise
            # one of them is gone: ask one by one
            images = []
            for image_id in wanted:
                try:
                    images += self._ec2.describe_images(ImageIds=[image_id])["Images"]
                except ClientError:
                    continue
        return {i["ImageId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])} for i in images}

    def view(self) -> dict[str, Any]:
        """``GET /admin/host-images``: per OS, the current image and the earlier ones."""
        items = []
        for os in OPERATING_SYSTEMS:
            if os not in self._parameters:
                continue
            history = self.history(os)
            items.append(
                {
                    "os": os,
                    "current": history[0].view() if history else None,
                    "builds": os in self._pipelines,
                    "history": [v.view() for v in history[1:]],
                }
            )
        return {"items": items}

    def build(self, os: str, request_id: str) -> dict[str, str]:
        """Start the OS's pipeline now (its schedule runs on as well); ``request_id`` makes the
        idempotency token, so a retried request starts one build
        (https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_StartImagePipelineExecution.html)."""
        self._parameter(os)
        pipeline = self._pipelines.get(os)
        if not pipeline:
            raise HostImageConflictError(
                f"this fleet builds no {os} host image: its image pipelines exist only when "
                "AgentArtifactS3Uri is set (docs/host-images.md)"
            )
        token = hashlib.sha256(f"{os}/{request_id}".encode()).hexdigest()[:32]
        try:
            out = self._imagebuilder.start_image_pipeline_execution(
                imagePipelineArn=pipeline, clientToken=token
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceInUseException":
                raise HostImageConflictError(f"a {os} host image is being built already") from exc
            raise
        return {"os": os, "imageBuildVersionArn": out["imageBuildVersionArn"]}

    def rollback(self, os: str, now: str) -> dict[str, str]:
        """Put back the newest earlier image that still exists and was never withdrawn, and
        withdraw the current one; new desktops start from the image put back."""
        name = self._parameter(os)
        history = self.history(os)
        if not history:
            raise HostImageConflictError(f"the {os} host image parameter has no value")
        current = history[0]
        earlier = next(
            (
                v
                for v in history[1:]
                if v.image_id != current.image_id and not v.withdrawn and not v.gone
            ),
            None,
        )
        if earlier is None:
            raise HostImageConflictError(
                f"there is no earlier {os} host image to go back to (current: {current.image_id})"
            )
        # as the distribution writes it: the AMI data type, which SSM checks names an AMI
        # (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-ec2-aliases.html)
        self._ssm.put_parameter(
            Name=name,
            Value=earlier.image_id,
            Type="String",
            DataType="aws:ec2:image",
            Overwrite=True,
        )
        if current.baked:  # the base AMI is not ours to tag, and is never withdrawn
            self._ec2.create_tags(
                Resources=[current.image_id], Tags=[{"Key": WITHDRAWN_TAG, "Value": now}]
            )
        return {"os": os, "imageId": earlier.image_id, "withdrawn": current.image_id}


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)
