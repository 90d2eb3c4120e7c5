"""Preflight's windows-ami check: WindowsAmiId empty (its default) means no Windows desktops;
the image it names must be an available x86_64 Windows image, not AWS's plain Windows Server AMI
(no GRID driver, DCV or Python), and marked as a desktop image; what is inside an image cannot be
seen read-only. Run against moto, whose EC2 carries AWS's own Windows AMIs (owner alias "amazon")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dcvfleet_cli import preflight
from dcvfleet_cli.preflight import FAIL, PASS, WARN, WINDOWS_IMAGE_TAG, Account, Result

REGION = "us-east-1"
PARAMETER = "/fleet/windows-desktop-ami"
TEMPLATE = preflight.load_template(Path(__file__).resolve().parents[2] / "template.yaml")


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def aws_plain_windows() -> dict[str, Any]:
    images = client("ec2").describe_images(
        Owners=["amazon"], Filters=[{"Name": "platform", "Values": ["windows"]}]
    )["Images"]
    return next(i for i in images if "English-Full-Base" in i["Name"])


def desktop_image(tagged: bool) -> str:
    """An image made from an instance of AWS's Windows AMI, as an operator's image build would
    (after installing the driver, DCV and Python)."""
    ec2 = client("ec2")
    base = aws_plain_windows()["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]
    image = ec2.create_image(InstanceId=instance["InstanceId"], Name="fleet-windows-desktop-1")
    if tagged:
        ec2.create_tags(
            Resources=[image["ImageId"]], Tags=[{"Key": WINDOWS_IMAGE_TAG, "Value": "true"}]
        )
    return str(image["ImageId"])


def check(image_id: str | None, *, via_parameter: bool = True) -> Result:
    params: dict[str, str] = {}
    if image_id is not None:
        if via_parameter:
            client("ssm").put_parameter(Name=PARAMETER, Value=image_id, Type="String")
            params["WindowsAmiId"] = PARAMETER
        else:
            params["WindowsAmiId"] = image_id
    return preflight.check_windows_ami(Account(client, REGION, params))


def test_a_fleet_without_a_windows_ami_passes_as_one_without_windows_desktops() -> None:
    # the template's default is "" (Windows off), which preflight reads as the value
    assert TEMPLATE["Parameters"]["WindowsAmiId"]["Default"] == ""
    config = preflight.deploy_config(TEMPLATE, None, "default", "")
    assert config.parameters["WindowsAmiId"] == ""
    result = preflight.check_windows_ami(Account(client, REGION, dict(config.parameters)))
    assert result == Result("windows-ami", PASS, "no Windows desktops (WindowsAmiId empty)")
    assert check(None) == result


def test_aws_plain_windows_server_ami_fails_preflight() -> None:
    result = check(aws_plain_windows()["ImageId"])
    assert result.status == FAIL, result
    assert "AWS's plain Windows Server AMI" in result.message
    assert "GRID driver, Amazon DCV Server and Python" in result.message


def test_a_linux_image_fails_preflight() -> None:
    linux = client("ec2").describe_images(Owners=["amazon"])["Images"]
    image = next(i for i in linux if i.get("Platform") != "windows")
    result = check(image["ImageId"])
    assert result.status == FAIL
    assert "not a Windows image" in result.message


def test_an_image_the_region_does_not_have_fails_preflight() -> None:
    result = check("ami-0123456789abcdef0")
    assert result.status == FAIL
    assert "does not have" in result.message


def test_a_parameter_that_does_not_exist_fails_preflight() -> None:
    params = {"WindowsAmiId": "/fleet/missing"}
    result = preflight.check_windows_ami(Account(client, REGION, params))
    assert result.status == FAIL
    assert "does not exist" in result.message


def test_an_own_image_not_marked_is_a_warning_that_says_what_it_needs() -> None:
    result = check(desktop_image(tagged=False))
    assert result.status == WARN, result
    assert "cannot be seen from outside" in result.message
    assert f"tag it {WINDOWS_IMAGE_TAG}=true" in result.message


def test_an_own_image_marked_as_a_desktop_image_passes() -> None:
    result = check(desktop_image(tagged=True))
    assert result.status == PASS, result


def test_the_check_runs_with_the_others() -> None:
    assert "windows-ami" in dict(preflight.AWS_CHECKS)
