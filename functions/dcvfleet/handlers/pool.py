"""The warm pool's refill, run on a schedule (template.yaml, RefillPoolFunction)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import pool
from dcvfleet.adapters import Ec2Hosts
from dcvfleet.aws import client
from dcvfleet.config import PoolSettings
from dcvfleet.handlers import entry_point
from dcvfleet.store import now_iso


def pool_store() -> pool.DynamoPoolStore:
    """The warm pool's table (POOL_TABLE)."""
    return pool.DynamoPoolStore(client("dynamodb"), os.environ["POOL_TABLE"])


@entry_point()
def refill(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = PoolSettings.from_env(os.environ)
    # the scheduled event's id: Lambda retries a failed asynchronous invocation with the same
    # event (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html)
    run_id = str(event.get("id") or context.aws_request_id)
    return pool.refill(
        pool_store(), Ec2Hosts(client("ec2")), settings, run_id=run_id, now=now_iso()
    )
