"""Consumes agent events from the fleet bus. A claim is checked before anything acts on it.

An event that fails its schema or its verification is logged and dropped: it never fails a
workflow and never raises (a raise would only make EventBridge retry a bad claim).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import events, service
from dcvfleet.adapters import Ec2Hosts, Workflows
from dcvfleet.aws import client
from dcvfleet.config import CommonSettings
from dcvfleet.errors import ClaimRejectedError, SessionConflictError
from dcvfleet.store import DynamoSessionStore

logger = Logger()
COMMON = CommonSettings.from_env(os.environ)


@logger.inject_lambda_context(correlation_id_path="detail.sessionId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    problem = events.validate_envelope(event)
    if problem:
        logger.warning("agent event rejected", reason=problem)
        return {"outcome": "rejected", "reason": problem}
    detail_type = event["detail-type"]
    if detail_type != "Host Ready":
        logger.info("agent event ignored", detail_type=detail_type)
        return {"outcome": "ignored", "reason": f"no action for {detail_type}"}
    claim = service.HostReadyClaim.from_detail(event["detail"])
    try:
        completed = service.accept_host_ready(
            DynamoSessionStore(client("dynamodb"), COMMON.table_name),
            Ec2Hosts(client("ec2")),
            Workflows(client("stepfunctions")),
            claim,
        )
    except (ClaimRejectedError, SessionConflictError) as exc:
        logger.warning("host ready claim rejected", reason=exc.message)
        return {"outcome": "rejected", "reason": exc.message}
    logger.info("host ready accepted", completed_workflow=completed)
    return {"outcome": "accepted", "reason": "workflow resumed" if completed else "recorded"}
