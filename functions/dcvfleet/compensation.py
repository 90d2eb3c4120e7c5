"""Undoing a provisioning that failed: the provisioning workflow's Compensate step, and the
fleet sweep's end of a desktop stuck in provisioning. Pure of environment and client
construction.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet import batch
from dcvfleet.adapters import BatchJobs, Ec2Hosts, SessionSecrets
from dcvfleet.errors import (
    SessionConflictError,
    operator_detail,
    user_message_for,
    workflow_error,
)
from dcvfleet.model import Status
from dcvfleet.sessions import cause_message, ready_view
from dcvfleet.store import CONFLICT_RETRIES, SessionStore
from dcvfleet.telemetry import NO_TELEMETRY, Telemetry

logger = Logger(child=True)


def compensate(
    store: SessionStore,
    hosts: Ec2Hosts,
    secrets: SessionSecrets,
    session_id: str,
    error: dict[str, Any] | None,
    *,
    resume: bool = False,
    jobs: BatchJobs | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
) -> dict[str, Any]:
    """Undo whatever provisioning made, then mark the session FAILED with a readable reason
    (reported, with the error's name, by the call that marked it).

    A resume is undone differently: the desktop's instance is stopped again, not terminated, and
    its secret kept, so the session goes back to STOPPED with its disk (FAILED only when its
    instance is gone). A session that is past provisioning (READY, or already stopped or ended)
    is never touched: compensation undoes a provisioning, not a desktop someone is using.
    """
    error_name = (error or {}).get("Error", "States.TaskFailed")
    cause = cause_message((error or {}).get("Cause"))
    reason = user_message_for(error_name, cause)
    detail = operator_detail(error_name, cause)
    # what the execution fails with: a name of ours (never a reserved States.* one), and
    # for operators the caught name and its message
    reported = workflow_error(error_name, cause)
    current = store.get(session_id)
    if current is not None and current.status not in (Status.PROVISIONING, Status.FAILED):
        logger.warning(
            "compensation skipped", session_id=session_id, status=current.status, error=error_name
        )
        # READY after all (a step failed after it recorded READY): the workflow says so
        ready = ready_view(current) if current.status == Status.READY else None
        # cancelled (or deleted) while this workflow ran: its termination undoes what was made
        # and tells the owner; the workflow ends quietly, the desktop never FAILED
        ended = current.status in (Status.TERMINATING, Status.TERMINATED)
        return {
            "reason": reason,
            **reported,
            "terminated": [],
            "ready": ready,
            "cancelled": ended,
        }
    if resume:
        return {
            **_compensate_resume(store, hosts, session_id, error_name, (reason, detail), telemetry),
            **reported,
            "cancelled": False,
        }
    if current is not None and current.backend == "batch" and jobs is not None:
        batch.end_job(jobs, current, f"DCV Fleet: provisioning failed ({error_name})")
    terminated = [i.instance_id for i in hosts.find_by_session(session_id)]
    for instance_id in terminated:
        hosts.terminate(instance_id)
    secret_deleted = secrets.delete(session_id)
    logger.info(
        "compensated",
        session_id=session_id,
        error=error_name,
        cause=cause,
        terminated=terminated,
        secret_deleted=secret_deleted,
    )
    if _end_provisioning(store, session_id, Status.FAILED, reason, detail):
        telemetry.provisioning_failed(error_name)
    return {
        "reason": reason,
        **reported,
        "terminated": terminated,
        "ready": None,
        "cancelled": False,
    }


def _compensate_resume(  # noqa: PLR0917 (the adapters, the error, then the telemetry)
    store: SessionStore,
    hosts: Ec2Hosts,
    session_id: str,
    error_name: str,
    said: tuple[str, str],
    telemetry: Telemetry,
) -> dict[str, Any]:
    reason, detail = said
    stopped = []
    for instance in hosts.find_by_session(session_id):
        if instance.state in ("pending", "running"):
            hosts.stop(instance, hibernate=False)
            stopped.append(instance.instance_id)
    kept = bool(hosts.find_by_session(session_id))
    status = Status.STOPPED if kept else Status.FAILED
    text = (
        f"{reason} The desktop could not be started again; it is stopped and its disk is kept."
        if kept
        else f"{reason} The desktop's instance no longer exists."
    )
    logger.info("resume compensated", session_id=session_id, error=error_name, stopped=stopped)
    if _end_provisioning(store, session_id, status, text, detail) and status == Status.FAILED:
        telemetry.provisioning_failed(error_name)
    return {
        "reason": text,
        "terminated": [],
        "stopped": stopped,
        "ready": None,
    }


def _end_provisioning(
    store: SessionStore, session_id: str, status: Status, reason: str, detail: str
) -> bool:
    """Move a session that is still PROVISIONING to ``status``, with the user's ``reason`` and
    the operator's ``detail``; any other is left as it is. True when this call moved it."""
    for _ in range(CONFLICT_RETRIES):
        session = store.get(session_id)
        if session is None or session.status != Status.PROVISIONING:
            return False
        try:
            store.update(
                session,
                status=status,
                status_reason=reason,
                status_detail=detail,
                task_token=None,
            )
            return True
        except SessionConflictError:
            continue
    return False
