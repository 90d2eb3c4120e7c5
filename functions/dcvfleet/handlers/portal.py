"""The ``PortalSite`` custom resource: publishes the portal at deploy time (``dcvfleet.portal``).

CloudFormation waits for the answer PUT to the request's ``ResponseURL``; it is always sent, with
the reason when publishing failed, so a deploy never hangs on this resource.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import portal
from dcvfleet.aws import client
from dcvfleet.observability import metrics, tracer

logger = Logger()


def respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or event["ResourceProperties"].get("Bucket", "portal"),
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    props = event.get("ResourceProperties", {})
    bucket = str(props.get("Bucket", ""))
    try:
        if event["RequestType"] == "Delete":
            deleted = portal.empty(client("s3"), bucket) if bucket else 0
            respond(event, "SUCCESS", f"{deleted} object versions removed", {})
            return
        count = portal.publish(
            client("s3"),
            client("cloudfront"),
            Path(os.environ.get("PORTAL_ASSETS", "/opt")),
            bucket,
            str(props.get("DistributionId", "")),
            dict(props.get("Config") or {}),
        )
        logger.info("portal published", bucket=bucket, files=count)
        respond(event, "SUCCESS", f"{count} files published", {"Files": count})
    except Exception as exc:
        logger.exception("portal not published")
        respond(event, "FAILED", f"{type(exc).__name__}: {exc}", {})
