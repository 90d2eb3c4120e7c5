"""Consumes agent events from the fleet bus (Host Ready, Host Heartbeat, Session Idle).
An event counts only when signed with its session's event key, sent (its signed ``sentAt``)
within the window LifecycleSettings.agent_event_window_seconds gives (two heartbeat intervals,
at least 30 s) and newer than the last event accepted from its session (so a replayed copy is
refused); its claim is then checked against the record and the instance before anything acts
on it.

An event that fails its schema or its verification is logged and dropped: it never fails a
workflow and never raises (a raise would only make EventBridge retry a bad claim).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import events, service, snapstart
from dcvfleet.adapters import Ec2Hosts, EventKeys, Workflows
from dcvfleet.aws import client
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import ClaimRejectedError, SessionConflictError
from dcvfleet.handlers import batch_jobs, entry_point, session_store
from dcvfleet.lifecycle import idle
from dcvfleet.observability import TELEMETRY

logger = Logger()
SETTINGS = LifecycleSettings.from_env(os.environ)


@functools.cache
def _keys() -> EventKeys:
    """One per execution environment, so its cache of keys outlives an invocation."""
    return EventKeys(client("secretsmanager"))


@entry_point("detail.sessionId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    problem = events.validate_envelope(event)
    if not problem and event["source"] != events.AGENT_SOURCE:
        problem = f"source: {event['source']!r} is not the agent's"
    if problem:
        logger.warning("agent event rejected", reason=problem)
        TELEMETRY.agent_event_rejected()
        return {"outcome": "rejected", "reason": problem}
    detail_type, detail = event["detail-type"], event["detail"]
    try:
        service.authenticate_agent_event(
            session_store(),
            _keys(),
            detail_type,
            detail,
            window_seconds=SETTINGS.agent_event_window_seconds,
        )
        if detail_type == "Host Ready":
            completed = service.accept_host_ready(
                session_store(),
                Ec2Hosts(client("ec2")),
                Workflows(client("stepfunctions")),
                service.HostReadyClaim.from_detail(detail),
                jobs=batch_jobs(),
            )
            reason = "workflow resumed" if completed else "recorded"
        elif detail_type == "Host Heartbeat":
            idle.record_heartbeat(session_store(), detail)
            reason = "recorded"
        else:  # Session Idle: the idle workflow verifies it before anything stops
            reason = idle.start_idle_check(
                session_store(),
                Workflows(client("stepfunctions")),
                SETTINGS,
                detail["sessionId"],
                trigger="idle",
                claim={
                    "instanceId": detail["instanceId"],
                    "idleSince": detail["idleSince"],
                    "idleSeconds": detail["idleSeconds"],
                    "signals": detail["signals"],
                },
            )
    except (ClaimRejectedError, SessionConflictError) as exc:
        logger.warning("agent claim rejected", detail_type=detail_type, reason=exc.message)
        TELEMETRY.agent_event_rejected()
        return {"outcome": "rejected", "reason": exc.message}
    logger.info("agent event accepted", detail_type=detail_type, reason=reason)
    return {"outcome": "accepted", "reason": reason}


#: The clients this SnapStart function makes before its snapshot (template.yaml: SnapStart).
SNAPSTART_CLIENTS = {
    "handler": ("dynamodb", "secretsmanager", "ec2", "stepfunctions", "batch", "ecs"),
}
# _HANDLER is Lambda's name of the handler this environment runs (module.function)
snapstart.prepare(SNAPSTART_CLIENTS.get(os.environ.get("_HANDLER", "").rpartition(".")[2], ()))
