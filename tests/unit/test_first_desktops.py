"""``tools/first_desktops.py``'s last word on a deleted desktop: what of it is still there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools import first_desktops

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def _desktop(aws: Any, session_id: str) -> dict[str, Any]:
    ec2 = aws("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    (instance,) = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"]
    aws("secretsmanager").create_secret(
        Name=f"dcvfleet/{session_id}",
        SecretString="{}",
        Tags=[{"Key": "dcvfleet:session-id", "Value": session_id}],
    )
    return {"sessionId": session_id, "backend": "ec2", "instanceId": instance["InstanceId"]}


def test_a_running_instance_and_a_kept_secret_are_reported(aws: Any) -> None:
    session = _desktop(aws, "s-1")
    left = first_desktops.ended(aws, session)
    assert left == [f"instance {session['instanceId']} is running", "secret dcvfleet/s-1"]


def test_a_terminated_instance_and_a_deleted_secret_leave_nothing(aws: Any) -> None:
    session = _desktop(aws, "s-2")
    aws("ec2").terminate_instances(InstanceIds=[session["instanceId"]])
    aws("secretsmanager").delete_secret(SecretId="dcvfleet/s-2", ForceDeleteWithoutRecovery=True)
    assert first_desktops.ended(aws, session) == []
