"""EC2 Image Builder: the host image pipelines, simulated as CodeBuild's builds are.

moto has no Image Builder (no backend, and its CloudFormation creates none of the
``AWS::ImageBuilder::*`` types). The pipelines exist only with ``AgentArtifactS3Uri`` set, which
the local stack leaves empty, so the deployer never meets them; ``run_pipeline`` does what one
pipeline run does for the fleet: from the base image in the host image parameter, it makes a
new AMI tagged as the distribution tags it (``dcvfleet:host-image``) and writes its id into the
parameter, as the distribution's ``SsmParameterConfigurations`` does
(https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_SsmParameterConfiguration.html).
Nothing is installed: a simulated host needs nothing installed, and boots from a baked image
with the shorter delay (``local.sim.hosts``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from local.emulator.gap import Gap

#: The tag the distribution puts on each host image (template.yaml, *HostDistribution).
HOST_IMAGE_TAG = "dcvfleet:host-image"
OPERATING_SYSTEMS = ("linux", "windows")


#: os -> the template's host image parameter (its physical id is the parameter's name).
PARAMETERS = {"linux": "LinuxHostImage", "windows": "WindowsHostImage"}


def run_pipeline(
    ec2: Any, ssm: Any, *, name: str, os_type: str, fleet_tag: tuple[str, str]
) -> dict[str, str]:
    """One simulated run of the ``os_type`` pipeline whose distribution writes the parameter
    ``name``: a new AMI from the parameter's base image, published in the parameter. Returns
    ``{"imageId", "parameter", "baseImageId"}``."""
    if os_type not in OPERATING_SYSTEMS:
        raise ValueError(f"os: one of {', '.join(OPERATING_SYSTEMS)}, not {os_type!r}")
    current = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    base = _base_image(ec2, current)
    # the distribution's AMI name, "<stack>-<os>-host-{{ imagebuilder:buildDate }}"
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    image = ec2.copy_image(
        SourceImageId=base,
        SourceRegion=ec2.meta.region_name,
        Name=f"dcvfleet-{os_type}-host-{stamp}-{time.monotonic_ns() % 1000000}",
    )["ImageId"]
    ec2.create_tags(
        Resources=[image],
        Tags=[
            {"Key": HOST_IMAGE_TAG, "Value": os_type},
            {"Key": fleet_tag[0], "Value": fleet_tag[1]},
            {"Key": "dcvfleet:base-image", "Value": base},
        ],
    )
    ssm.put_parameter(Name=name, Value=image, Type="String", Overwrite=True)
    return {"imageId": image, "parameter": name, "baseImageId": base}


def _base_image(ec2: Any, image_id: str) -> str:
    """The image a build starts from: the parameter's image, or that image's own base when
    the parameter already holds a host image (a rebuild starts again from the base)."""
    if not re.fullmatch(r"ami-[0-9a-f]+", image_id):
        raise ValueError(f"the host image parameter holds {image_id!r}, which is no AMI id")
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    return str(tags.get("dcvfleet:base-image", image_id))


def is_host_image(ec2: Any, image_id: str) -> bool:
    """Whether ``image_id`` is a host image a pipeline made (its distribution's tag)."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except Exception:  # an image that is gone: a bare boot
        return False
    return any(t["Key"] == HOST_IMAGE_TAG for i in images for t in i.get("Tags", []))


IMAGEBUILDER = Gap(
    "IMAGEBUILDER",
    moto_does="has no EC2 Image Builder: no API, and its CloudFormation creates none of the"
    " AWS::ImageBuilder::* types",
    we_do="the template creates the pipelines only with AgentArtifactS3Uri, which the local stack"
    " leaves empty; POST /host-images/<os>/build (control server) runs one simulated pipeline"
    " run: a new AMI tagged dcvfleet:host-image, published in /<stack>/host-image/<os>, as the"
    " distribution's SsmParameterConfigurations does",
)
