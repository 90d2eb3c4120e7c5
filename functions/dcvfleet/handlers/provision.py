"""Task handlers of the provisioning workflow (statemachines/provision_session.asl.json).

Errors are never swallowed: each one propagates so the workflow's Retry and Catch see it.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import batch, compensation, pool, service
from dcvfleet.adapters import Ec2Hosts, OperatorNotices, Releases, SessionSecrets, Workflows
from dcvfleet.aws import client
from dcvfleet.config import (
    BatchSettings,
    CommonSettings,
    LaunchSettings,
    ReadySettings,
)
from dcvfleet.handlers import batch_jobs, caught_error, entry_point, session_store, task_text
from dcvfleet.observability import TELEMETRY

logger = Logger()
COMMON = CommonSettings.from_env(os.environ)


@entry_point("sessionId")
def create_credentials(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    secrets = SessionSecrets(
        client("secretsmanager"), kms_key_id=os.environ.get("SECRETS_KMS_KEY_ID", "")
    )
    return service.create_credentials(
        session_store(), secrets, COMMON, task_text(event, "sessionId")
    )


def warm_pool() -> pool.WarmPool | None:
    """The EC2 profiles' warm pools; None without a pool table. They are asked even while
    WarmPoolSize is 0: a profile's own plan (its ``pool``, put by an administrator at any time)
    may keep hosts in its pool. A desktop asks its own profile's pool only, with one Query of
    that pool's partition."""
    if not os.environ.get("POOL_TABLE"):
        return None
    return pool.WarmPool(
        store=pool.DynamoPoolStore(client("dynamodb"), os.environ["POOL_TABLE"]),
        refill=pool.LambdaRefill(client("lambda"), os.environ["REFILL_POOL_FUNCTION"]),
    )


@entry_point("sessionId")
def launch_instance(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = LaunchSettings.from_env(os.environ)
    return service.launch_instance(
        session_store(),
        Ec2Hosts(client("ec2")),
        SessionSecrets(client("secretsmanager")),
        settings,
        task_text(event, "sessionId"),
        secret_arn=task_text(event, "secretArn"),
        operators=OperatorNotices(client("sns"), settings.operator_topic_arn),
        telemetry=TELEMETRY,
        warm_pool=warm_pool(),
    )


@entry_point("sessionId")
def submit_job(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = BatchSettings.from_env(os.environ)
    return batch.submit_job(
        session_store(),
        batch_jobs(),
        Releases(client("ssm"), settings.release_parameter),
        settings,
        session_id=task_text(event, "sessionId"),
        secret_arn=task_text(event, "secretArn"),
    )


@entry_point("sessionId")
def check_job(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return batch.check_job(
        session_store(),
        batch_jobs(),
        SessionSecrets(client("secretsmanager")),
        BatchSettings.from_env(os.environ),
        task_text(event, "sessionId"),
    )


@entry_point("sessionId")
def resume_instance(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return service.resume_instance(
        session_store(), Ec2Hosts(client("ec2")), task_text(event, "sessionId")
    )


@entry_point("sessionId")
def await_host_ready(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    completed = service.await_host_ready(
        session_store(),
        Workflows(client("stepfunctions")),
        task_text(event, "sessionId"),
        task_text(event, "taskToken"),
        jobs=batch_jobs(),
    )
    return {"completedAtOnce": completed}


@entry_point("sessionId")
def mark_ready(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = ReadySettings.from_env(os.environ)
    return service.mark_ready(
        session_store(),
        Ec2Hosts(client("ec2")),
        settings,
        task_text(event, "sessionId"),
        telemetry=TELEMETRY,
    )


@entry_point("sessionId")
def compensate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return compensation.compensate(
        session_store(),
        Ec2Hosts(client("ec2")),
        SessionSecrets(client("secretsmanager")),
        task_text(event, "sessionId"),
        caught_error(event),
        resume=event.get("resume") is True,
        jobs=batch_jobs(),
        telemetry=TELEMETRY,
    )
