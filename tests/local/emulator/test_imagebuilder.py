"""Image Builder's gap: IMAGEBUILDER (moto has no Image Builder; the local stack simulates a
pipeline run, ``local.emulator.imagebuilder.run_pipeline``)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator.imagebuilder import is_host_image, run_pipeline
from tests.support.emulator import Installer, aws_client

PARAMETER = "/fleet/host-image/windows"
FLEET = ("dcvfleet:fleet", "local")


@mock_aws
def test_gap_imagebuilder() -> None:
    """GAP IMAGEBUILDER: moto answers every Image Builder call "Not yet implemented", and its
    CloudFormation knows none of the AWS::ImageBuilder::* types. When this fails, moto has an
    Image Builder: the pipelines could be deployed and run there."""
    from moto.cloudformation.parsing import get_model_map

    with pytest.raises(ClientError, match="Not yet implemented"):
        aws_client("imagebuilder").list_image_pipelines()
    assert not [t for t in get_model_map() if t.startswith("AWS::ImageBuilder::")]


@mock_aws
def test_workaround_imagebuilder(install: Installer) -> None:
    """A simulated run makes an image of the base's platform, tagged as the distribution tags
    it, and publishes it in the parameter; the next launch from the launch template gets it; a
    rebuild starts again from the base; a parameter holding no AMI id is refused, unchanged."""
    install("LAUNCH_TEMPLATE_SSM_IMAGE")
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    base = ec2.describe_images(Filters=[{"Name": "platform", "Values": ["windows"]}])["Images"][0]
    ssm.put_parameter(Name=PARAMETER, Value=base["ImageId"], Type="String")
    ec2.create_launch_template(
        LaunchTemplateName="windows", LaunchTemplateData={"ImageId": f"resolve:ssm:{PARAMETER}"}
    )

    built = run_pipeline(ec2, ssm, name=PARAMETER, os_type="windows", fleet_tag=FLEET)
    assert built["baseImageId"] == base["ImageId"]
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == built["imageId"]
    (image,) = ec2.describe_images(ImageIds=[built["imageId"]])["Images"]
    assert image["Platform"] == "windows"
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["dcvfleet:host-image"] == "windows"
    assert tags["dcvfleet:fleet"] == "local"
    assert is_host_image(ec2, built["imageId"])
    assert not is_host_image(ec2, base["ImageId"])
    launched = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateName": "windows"}, MinCount=1, MaxCount=1
    )["Instances"][0]
    assert launched["ImageId"] == built["imageId"]

    rebuilt = run_pipeline(ec2, ssm, name=PARAMETER, os_type="windows", fleet_tag=FLEET)
    assert rebuilt["baseImageId"] == base["ImageId"]
    assert rebuilt["imageId"] != built["imageId"]

    ssm.put_parameter(Name=PARAMETER, Value="not-an-ami", Overwrite=True)
    with pytest.raises(ValueError, match="which is no AMI id"):
        run_pipeline(ec2, ssm, name=PARAMETER, os_type="windows", fleet_tag=FLEET)
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == "not-an-ami"
    with pytest.raises(ValueError, match="os: one of linux, windows"):
        run_pipeline(ec2, ssm, name=PARAMETER, os_type="macos", fleet_tag=FLEET)
