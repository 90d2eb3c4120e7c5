"""S3_FROM_CLOUDFORMATION: buckets from CloudFormation lose their notifications and versioning."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto import mock_aws

from local.emulator.s3 import bucket_cloudformation_patches
from tests.support.emulator import (
    aws_client,
    create_stack,
    drain,
    probe_queue,
    stack_outputs,
)

# -- S3_FROM_CLOUDFORMATION --------------------------------------------------------------------
BUCKET_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "BuildsBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "NotificationConfiguration": {
                    "EventBridgeConfiguration": {"EventBridgeEnabled": True}
                },
            },
        }
    },
    "Outputs": {"Name": {"Value": {"Ref": "BuildsBucket"}}},
}


def _build_uploads(bucket: str) -> str:
    """A queue behind the release workflow's rule (default bus): builds/ in the bucket."""
    url, arn = probe_queue("uploads")
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "builds/"}]}},
    }
    events = aws_client("events")
    events.put_rule(Name="uploads", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="uploads", Targets=[{"Id": "q", "Arn": arn}])
    return url


@mock_aws
def test_gap_s3_from_cloudformation() -> None:
    """GAP S3_FROM_CLOUDFORMATION: a bucket made by CloudFormation loses its
    ``NotificationConfiguration`` (an upload puts no event on the default bus) and its
    ``VersioningConfiguration``. When this fails, moto has changed: drop
    ``bucket_cloudformation_patches`` in local/emulator/s3.py."""

    bucket = stack_outputs(create_stack("probe", BUCKET_TEMPLATE))["Name"]
    s3 = aws_client("s3")
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    queue_url = _build_uploads(bucket)
    s3.put_object(Bucket=bucket, Key="builds/1.0.0.tar.gz", Body=b"build")
    assert drain(queue_url) == []


@mock_aws
def test_workaround_s3_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bucket_cloudformation_patches``: the bucket is versioned and sends its events to
    EventBridge, where a rule on the default bus matches an upload under ``builds/`` (the
    bucket's name and the object's key where AWS puts them) and nothing else."""
    for owner, name, replacement in bucket_cloudformation_patches():
        monkeypatch.setattr(owner, name, replacement)
    bucket = stack_outputs(create_stack("probe", BUCKET_TEMPLATE))["Name"]
    s3 = aws_client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    queue_url = _build_uploads(bucket)
    s3.put_object(Bucket=bucket, Key="builds/1.0.0.tar.gz", Body=b"build")
    s3.put_object(Bucket=bucket, Key="image-source/dcvfleet-image.zip", Body=b"source")
    (event,) = drain(queue_url)
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["detail"]["bucket"]["name"] == bucket
    assert event["detail"]["object"]["key"] == "builds/1.0.0.tar.gz"
    assert event["detail"]["object"]["version-id"] not in ("", "null")
