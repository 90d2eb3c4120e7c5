"""S3: buckets from CloudFormation keep their versioning and their EventBridge notifications."""

from __future__ import annotations

import logging
from typing import Any

from local.emulator.gap import Gap, Patch

log = logging.getLogger("local.emulator")


def bucket_cloudformation_patches() -> list[Patch]:
    """S3_FROM_CLOUDFORMATION: an ``AWS::S3::Bucket`` gets its ``VersioningConfiguration`` and
    its ``NotificationConfiguration.EventBridgeConfiguration`` (S3 then sends its events to
    EventBridge).."""
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    original = FakeBucket.create_from_cloudformation_json
    create_bucket = original.__func__  # type: ignore[attr-defined]

    def create(
        cls: Any, /, resource_name: str, cfn: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        bucket = create_bucket(cls, resource_name, cfn, account_id, region_name, **kwargs)
        properties = cfn.get("Properties", {})
        backend = s3_backends[account_id][get_partition(region_name)]
        status = (properties.get("VersioningConfiguration") or {}).get("Status")
        if status:
            backend.put_bucket_versioning(bucket.name, status)
        notifications = properties.get("NotificationConfiguration") or {}
        enabled = (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")
        if str(enabled).lower() == "true":
            backend.put_bucket_notification_configuration(
                bucket.name, {"EventBridgeConfiguration": {}}
            )
        return bucket

    return [Patch(FakeBucket, "create_from_cloudformation_json", classmethod(create))]


S3_FROM_CLOUDFORMATION = Gap(
    "S3_FROM_CLOUDFORMATION",
    moto_does="an AWS::S3::Bucket made by CloudFormation loses its NotificationConfiguration (so"
    " S3 sends no event to EventBridge, though moto does for a bucket configured through the"
    " API) and its VersioningConfiguration",
    we_do="both are applied; the events then match AWS's where rules and the release workflow"
    " read them (source aws.s3, detail-type Object Created, detail.bucket.name,"
    " detail.object.key)",
    install=lambda context: bucket_cloudformation_patches(),
)
