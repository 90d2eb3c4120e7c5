"""EC2's gaps: EC2_PAGE_TOKEN, EC2_STATE_CHANGES, EC2_LAUNCH_TIME, DEFAULT_VPC_INTERNET,
LAUNCH_TEMPLATE_SSM_IMAGE."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator.ec2 import (
    default_vpc_patches,
    ec2_page_token_patches,
    launch_template_ssm_image_patches,
)
from tests.support.emulator import (
    ACCOUNT,
    REGION,
    Installer,
    aws_client,
)


# ==============================================================================================
# EC2_PAGE_TOKEN
def _three_reservations() -> Any:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    for _ in range(3):
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    return ec2


def test_gap_ec2_page_token() -> None:
    """GAP EC2_PAGE_TOKEN: a NextToken DescribeInstances never gave is a server error (500)."""

    with mock_aws():
        ec2 = _three_reservations()
        with pytest.raises(ValueError, match="is not in list"):
            ec2.describe_instances(NextToken="not-a-token")


def test_workaround_ec2_page_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in ec2_page_token_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        ec2 = _three_reservations()
        for token in ("not-a-token", "\x01control\x00"):
            with pytest.raises(ClientError) as refused:
                ec2.describe_instances(NextToken=token)
            assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
        first = ec2.describe_instances(MaxResults=2)
        rest = ec2.describe_instances(MaxResults=2, NextToken=first["NextToken"])
        assert len(first["Reservations"]) + len(rest["Reservations"]) == 3
        assert "NextToken" not in rest


# -- EC2_STATE_CHANGES -------------------------------------------------------------------------
@mock_aws
def test_gap_ec2_state_changes() -> None:
    """GAP EC2_STATE_CHANGES: moto changes an instance's state without the EventBridge
    notification AWS sends. When this fails, moto has changed: the local stack can listen to its
    events instead of the listeners in local/emulator/ec2.py."""
    sqs, events, ec2 = aws_client("sqs"), aws_client("events"), aws_client("ec2")
    queue = sqs.create_queue(QueueName="ec2-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(Name="ec2", EventPattern=json.dumps({"source": ["aws.ec2"]}))
    events.put_targets(Rule="ec2", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


@mock_aws
def test_workaround_ec2_state_changes(install: Installer) -> None:
    """After every run, stop, start and terminate, the default bus carries EC2's state-change
    events in order, and listeners hear of it once the change is made."""
    hooks = install("EC2_STATE_CHANGES")
    sqs, events, ec2 = aws_client("sqs"), aws_client("events"), aws_client("ec2")
    queue = sqs.create_queue(QueueName="ec2-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name="ec2",
        EventPattern=json.dumps(
            {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}
        ),
    )
    events.put_targets(Rule="ec2", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    heard: list[list[str]] = []

    def listener() -> None:
        found = ec2.describe_instances()["Reservations"]
        heard.append([i["State"]["Name"] for r in found for i in r["Instances"]])

    hooks.on_instances(listener)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.start_instances(InstanceIds=[instance_id])
    ec2.start_instances(InstanceIds=[instance_id])  # already running: no change, no event
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "dcvfleet:session-id", "Value": "s"}])
    ec2.terminate_instances(InstanceIds=[instance_id])
    # CreateTags on an instance is heard (a pool host binds to its session) and puts no event
    assert heard == [
        ["running"],
        ["stopped"],
        ["running"],
        ["running"],
        ["running"],
        ["terminated"],
    ]
    states = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            event = json.loads(message["Body"])
            assert event["detail"]["instance-id"] == instance_id
            assert event["resources"] == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"]
            states.append(event["detail"]["state"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert states == [
        "pending",
        "running",
        "stopping",
        "stopped",
        "pending",
        "running",
        "shutting-down",
        "terminated",
    ]


# ==============================================================================================
# EC2_LAUNCH_TIME
AN_HOUR_AGO = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)


def _launch_times_through_a_stop_and_start() -> list[datetime]:
    """An instance launched an hour ago (moto's record backdated), then stopped and started, a
    start that changes nothing (it is running), and what DescribeInstances says each time."""
    from moto.ec2.models import ec2_backends

    ec2 = aws_client("ec2")
    instance_id = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    ec2_backends[ACCOUNT][REGION].get_instance(instance_id).launch_time = AN_HOUR_AGO

    def launch_time() -> datetime:
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
        stamp: datetime = found["Instances"][0]["LaunchTime"]
        return stamp.astimezone(UTC).replace(tzinfo=None)

    seen = [launch_time()]
    ec2.stop_instances(InstanceIds=[instance_id])
    seen.append(launch_time())
    ec2.start_instances(InstanceIds=[instance_id])
    seen.append(launch_time())
    ec2.start_instances(InstanceIds=[instance_id])
    seen.append(launch_time())
    return seen


@mock_aws
def test_gap_ec2_launch_time() -> None:
    """GAP EC2_LAUNCH_TIME: a start leaves LaunchTime the time the instance was first launched.
    When this fails, moto sets it as EC2 does, and the patch can go."""
    assert _launch_times_through_a_stop_and_start() == [AN_HOUR_AGO] * 4


@mock_aws
def test_workaround_ec2_launch_time(install: Installer) -> None:
    """A start of a stopped instance sets its LaunchTime to now; a stop, or a start of a running
    instance, leaves it."""
    install("EC2_LAUNCH_TIME")
    launched, stopped, started, again = _launch_times_through_a_stop_and_start()
    assert launched == stopped == AN_HOUR_AGO
    assert started > AN_HOUR_AGO + timedelta(minutes=59)
    assert again == started


# ==============================================================================================
# DEFAULT_VPC_INTERNET
def _default_vpc_routes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
    )["InternetGateways"]
    tables = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    return gateways, tables[0]["Routes"]


def test_gap_default_vpc_internet() -> None:
    """GAP DEFAULT_VPC_INTERNET: the default VPC has no internet gateway, and its main route
    table only the local route."""

    with mock_aws():
        gateways, routes = _default_vpc_routes()
        assert gateways == []
        assert [r.get("GatewayId") for r in routes] == ["local"]


def test_workaround_default_vpc_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in default_vpc_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        gateways, routes = _default_vpc_routes()
        assert len(gateways) == 1
        to_internet = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert [r["GatewayId"] for r in to_internet] == [gateways[0]["InternetGatewayId"]]


# -- LAUNCH_TEMPLATE_SSM_IMAGE -----------------------------------------------------------------
def _launch_from_parameter(ec2: Any, ssm: Any, image: str) -> Any:
    ssm.put_parameter(Name="/fleet/host-image/linux", Value=image, Type="String")
    ec2.create_launch_template(
        LaunchTemplateName="host",
        LaunchTemplateData={"ImageId": "resolve:ssm:/fleet/host-image/linux"},
    )
    return ec2.run_instances(LaunchTemplate={"LaunchTemplateName": "host"}, MinCount=1, MaxCount=1)


@mock_aws
def test_gap_launch_template_ssm_image() -> None:
    """GAP LAUNCH_TEMPLATE_SSM_IMAGE: moto launches with the resolve:ssm: text as the image id.
    When this fails, moto resolves it and the patch can go."""
    ec2, ssm = aws_client("ec2"), aws_client("ssm")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = _launch_from_parameter(ec2, ssm, image)["Instances"][0]
    assert instance["ImageId"] == "resolve:ssm:/fleet/host-image/linux"


def test_workaround_launch_template_ssm_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each launch takes the parameter's value at that moment: a new image needs no new launch
    template version; a parameter that is gone fails the launch as a client error."""
    for owner, attribute, replacement in launch_template_ssm_image_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        ec2, ssm = aws_client("ec2"), aws_client("ssm")
        first, second = [i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"][:2]]
        instance = _launch_from_parameter(ec2, ssm, first)["Instances"][0]
        assert instance["ImageId"] == first
        ssm.put_parameter(Name="/fleet/host-image/linux", Value=second, Overwrite=True)
        again = ec2.run_instances(
            LaunchTemplate={"LaunchTemplateName": "host"}, MinCount=1, MaxCount=1
        )["Instances"][0]
        assert again["ImageId"] == second
        ssm.delete_parameter(Name="/fleet/host-image/linux")
        with pytest.raises(ClientError) as refused:
            ec2.run_instances(LaunchTemplate={"LaunchTemplateName": "host"}, MinCount=1, MaxCount=1)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
        assert "/fleet/host-image/linux" in refused.value.response["Error"]["Message"]
