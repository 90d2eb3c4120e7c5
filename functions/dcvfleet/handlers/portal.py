"""The ``PortalSite`` custom resource: publishes the portal at deploy time (``dcvfleet.portal``).

Deployed behind ``dcvfleet.custom_resource``, which answers CloudFormation with what this
returns, or with the error it raises (at import too), or "timed out" before the function's
timeout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import portal
from dcvfleet.aws import client
from dcvfleet.handlers import entry_point

logger = Logger()


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    props = event.get("ResourceProperties", {})
    bucket = str(props.get("Bucket", ""))
    resource_id = event.get("PhysicalResourceId") or bucket or "portal"
    if event["RequestType"] == "Delete":
        deleted = portal.empty(client("s3"), bucket) if bucket else 0
        return {"Reason": f"{deleted} object versions removed", "PhysicalResourceId": resource_id}
    count = portal.publish(
        client("s3"),
        client("cloudfront"),
        Path(os.environ.get("PORTAL_ASSETS", "/opt")),
        bucket,
        str(props.get("DistributionId", "")),
        dict(props.get("Config") or {}),
    )
    logger.info("portal published", bucket=bucket, files=count)
    return {
        "Reason": f"{count} files published",
        "Data": {"Files": count},
        "PhysicalResourceId": resource_id,
    }
