"""Cancelling a desktop that is still starting: ``DELETE /sessions/{id}`` while PROVISIONING.

The API call makes one conditional write, PROVISIONING -> TERMINATING (``user_requests``), stops
the provisioning workflow's execution, and starts the idle workflow's termination, as a delete of
a READY desktop does ("Requested" -> Act -> Confirm -> ``Session Terminated``). The undo
(terminate the instances tagged for the desktop, end its Batch job, delete its secret) runs
there, not in the API call:

- the idle workflow already undoes a desktop's resources with retries, confirms the instance is
  gone before the record says TERMINATED, recovers when a step fails, publishes
  ``Session Terminated`` and notifies the owner; the fleet sweep re-drives a TERMINATING
  desktop whose workflow never finished;
- the API function, the one facing users, keeps its narrow permissions (no TerminateInstances,
  TerminateJob or DeleteSecret) and answers at once, well within API Gateway's 29 s;
- nothing depends on StopExecution having stopped a step already running: a Lambda task the
  execution had started runs to its end, and a step that finishes after the cancel finds the
  record no longer PROVISIONING and undoes its own work (``dcvfleet.overtaken``).

The compensation of the provisioning workflow leaves a cancelled desktop alone (it is never
marked FAILED, and no ``Session Failed`` is published for it).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from dcvfleet.adapters import Workflows
from dcvfleet.model import Session, Status

logger = Logger(child=True)

#: The evidence key that marks a termination as the cancel of a desktop still starting.
CANCELLED = "cancelled"


def is_cancel(session: Session, action: str) -> bool:
    """Whether a delete of ``session`` is the cancel of a desktop still starting."""
    return action == "terminate" and session.status == Status.PROVISIONING


def was_cancelled(session: Session) -> bool:
    """Whether the desktop's end was a cancel while it was starting."""
    return bool((session.evidence or {}).get(CANCELLED))


def reason(*, as_admin: bool) -> str:
    """What the owner reads once their desktop was cancelled."""
    return "Cancelled by an administrator." if as_admin else "Cancelled by you."


def stop_provisioning(workflows: Workflows, session: Session, by: str) -> bool:
    """Stop the desktop's provisioning execution; True when it was running.

    StopExecution ends a Standard workflow's execution
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html); an
    execution that already ended is fine (``Workflows.stop`` answers False). A failure here is
    logged, never raised: the record already left PROVISIONING, so every step still to run
    fails its conditional write and undoes its own work, and the execution's wait for the host
    ends at its timeout.
    """
    if not session.execution_arn:
        return False
    try:
        stopped = workflows.stop(session.execution_arn, f"desktop cancelled by {by}")
    except Exception:
        logger.exception(
            "the provisioning execution could not be stopped",
            session_id=session.session_id,
            execution=session.execution_arn,
        )
        return False
    logger.info(
        "provisioning execution stopped" if stopped else "provisioning execution had ended",
        session_id=session.session_id,
        execution=session.execution_arn,
    )
    return stopped
