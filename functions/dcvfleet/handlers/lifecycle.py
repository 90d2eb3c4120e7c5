"""Task handlers of the idle workflow (statemachines/idle_session.asl.json), the fleet sweep
(statemachines/sweep_fleet.asl.json) and the EC2 state-change consumer.

Errors are never swallowed in a task: each one propagates so the workflow's Retry and Catch see it.
"""

from __future__ import annotations

import os
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet.adapters import Ec2Hosts, HostCommands, SessionSecrets, Workflows
from dcvfleet.aws import client
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import InvalidRequestError
from dcvfleet.handlers import batch_jobs, entry_point, session_store, task_text
from dcvfleet.handlers.pool import pool_store
from dcvfleet.lifecycle import idle, reconcile, sweep, triggers
from dcvfleet.observability import TELEMETRY

logger = Logger()
SETTINGS = LifecycleSettings.from_env(os.environ)


def _object(event: dict[str, Any], name: str) -> dict[str, Any]:
    value = event.get(name) or {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{name}: must be an object")
    return value


def _idle_check(
    event: dict[str, Any], allowed_triggers: tuple[str, ...] | None = None
) -> dict[str, str]:
    """The idle check a step belongs to: its desktop, its execution (the claim's holder) and,
    given the triggers it allows, what started it."""
    check = {
        "session_id": task_text(event, "sessionId"),
        "execution": task_text(event, "execution"),
    }
    if allowed_triggers is not None:
        check["trigger"] = task_text(event, "trigger", allowed_triggers)
    return check


@entry_point("sessionId")
def verify(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    verdict = idle.verify(
        session_store(),
        Ec2Hosts(client("ec2")),
        HostCommands(client("ssm")),
        SETTINGS,
        **_idle_check(event, triggers.AUTOMATIC_TRIGGERS),
        claim=_object(event, "claim"),
        phase=task_text(event, "phase", ("verify", "reverify")),
        jobs=batch_jobs(),
    )
    logger.info("idle verdict", idle=verdict.idle, reason=verdict.reason)
    return verdict.as_output()


@entry_point("sessionId")
def warn(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return idle.warn(
        session_store(),
        HostCommands(client("ssm")),
        SETTINGS,
        **_idle_check(event, triggers.AUTOMATIC_TRIGGERS),
        reason=task_text(event, "reason"),
        jobs=batch_jobs(),
    )


@entry_point("sessionId")
def end_check(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return idle.end_check(
        session_store(),
        **_idle_check(event),
        reason=task_text(event, "reason"),
        warned=event.get("warned") is True,
        telemetry=TELEMETRY,
    )


@entry_point("sessionId")
def act(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    requested = event.get("action")
    return idle.act(
        session_store(),
        Ec2Hosts(client("ec2")),
        SessionSecrets(client("secretsmanager")),
        SETTINGS,
        **_idle_check(event, triggers.TRIGGERS),
        requested_action=task_text(event, "action", ("stop", "terminate")) if requested else None,
        reason=task_text(event, "reason"),
        evidence=_object(event, "evidence"),
        jobs=batch_jobs(),
        telemetry=TELEMETRY,
    )


@entry_point("sessionId")
def confirm(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    return idle.confirm(
        session_store(), Ec2Hosts(client("ec2")), task_text(event, "sessionId"), batch_jobs()
    )


@entry_point("sessionId")
def recover(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    error = _object(event, "error")
    return idle.recover(
        session_store(),
        Ec2Hosts(client("ec2")),
        **_idle_check(event),
        error=str(error.get("Error", "unknown")),
        cause=str(error.get("Cause", "")),
    )


@entry_point()
def sweep_find(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return sweep.find_sweep_work(
        session_store(), Ec2Hosts(client("ec2")), SETTINGS, telemetry=TELEMETRY
    )


# correlation id: the item's id, its session's (an orphan's instance for an orphan)
@entry_point("id")
def sweep_item(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return sweep.sweep_item(
        session_store(),
        Ec2Hosts(client("ec2")),
        SessionSecrets(client("secretsmanager")),
        Workflows(client("stepfunctions")),
        SETTINGS,
        kind=task_text(event, "kind"),
        item_id=task_text(event, "id"),
        jobs=batch_jobs(),
        telemetry=TELEMETRY,
    )


def _notification(
    event: Any, source: str, detail_type: str, fields: tuple[str, ...]
) -> dict[str, Any] | None:
    """The detail of ``event`` when it is the ``source``/``detail_type`` notification and its
    ``fields`` are strings; None for anything else (not even an object)."""
    if not isinstance(event, dict):
        return None
    detail = event.get("detail")
    if (
        event.get("source") != source
        or event.get("detail-type") != detail_type
        or not isinstance(detail, dict)
        or not all(isinstance(detail.get(name), str) for name in fields)
    ):
        return None
    return detail


#: Batch's rule for a job's name: up to 128 letters, digits, hyphens and underscores, the first a
#: letter or digit (anything else would reach the sessions table as a key it refuses).
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _source(event: Any) -> str:
    return str(event.get("source")) if isinstance(event, dict) else type(event).__name__


# Keyed by an instance (or a job): the session it is about joins the log context once it is known
# (TELEMETRY.session_found); an earlier invocation's is dropped first.
@entry_point('detail."instance-id"')
def instance_state(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    """``EC2 Instance State-change Notification`` from the default bus (a fact from AWS)."""
    logger.remove_keys(["session_id"])
    detail = _notification(
        event, "aws.ec2", "EC2 Instance State-change Notification", ("instance-id", "state")
    )
    if detail is None:
        logger.warning("not an EC2 state-change event", event_source=_source(event))
        return {"outcome": "rejected", "reason": "not an EC2 instance state-change notification"}
    outcome = reconcile.instance_changed(
        session_store(),
        Ec2Hosts(client("ec2")),
        Workflows(client("stepfunctions")),
        SETTINGS,
        detail["instance-id"],
        state=detail["state"],
        telemetry=TELEMETRY,
        pool_store=pool_store() if os.environ.get("POOL_TABLE") else None,
    )
    logger.info("instance state change", state=detail["state"], outcome=outcome)
    return {"outcome": outcome}


@entry_point("detail.jobName")
def job_state(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    """``Batch Job State Change`` from the default bus (a fact from AWS, described again)."""
    logger.remove_keys(["session_id"])
    detail = _notification(event, "aws.batch", "Batch Job State Change", ("jobId", "jobName"))
    if detail is None:
        logger.warning("not a Batch job state change", event_source=_source(event))
        return {"outcome": "rejected", "reason": "not a Batch job state change"}
    if not _JOB_NAME.fullmatch(detail["jobName"]):
        logger.warning("not a Batch job's name", job_name=detail["jobName"][:200])
        return {"outcome": "rejected", "reason": "jobName: not a name Batch gives a job"}
    outcome = reconcile.job_changed(
        session_store(),
        Ec2Hosts(client("ec2")),
        batch_jobs(),
        SessionSecrets(client("secretsmanager")),
        Workflows(client("stepfunctions")),
        SETTINGS,
        detail,
        job_role_id=os.environ.get("JOB_ROLE_ID", ""),
        telemetry=TELEMETRY,
    )
    logger.info("job state change", status=str(detail.get("status")), outcome=outcome)
    return {"outcome": outcome}
