"""What the domain modules share about a desktop: who asks (``Caller``, ``get_session``), how
its provisioning workflow is started (``provisioning_input``, ``start_provisioning``), what a
READY desktop reports (``ready_view``), and what a failed workflow step said (``cause_message``).

The provisioning path (``dcvfleet.service``), the lifecycle after READY (``dcvfleet.lifecycle``)
and the releases (``dcvfleet.releases``) each import this module, never one another.
Pure of environment and client construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet.adapters import Workflows
from dcvfleet.errors import SessionNotFoundError
from dcvfleet.model import Session, Status
from dcvfleet.store import SessionStore

logger = Logger(child=True)


@dataclass(frozen=True)
class Caller:
    """The signed-in user, from the Cognito claims API Gateway passes on."""

    sub: str
    username: str
    email: str | None = None


def get_session(store: SessionStore, caller: Caller, session_id: str) -> Session:
    session = store.get(session_id)
    if session is None or session.owner != caller.sub:
        raise SessionNotFoundError(f"session {session_id} not found")
    return session


def provisioning_input(session: Session, *, resume: bool = False) -> dict[str, Any]:
    """The provisioning workflow's input for a new desktop, or a stopped one resumed."""
    return {
        "sessionId": session.session_id,
        "owner": session.owner,
        "backend": session.backend,
        "os": session.os,
        "instanceType": session.instance_type,
        "resume": resume,
    }


def start_provisioning(
    store: SessionStore,
    workflows: Workflows,
    state_machine_arn: str,
    name: str,
    session: Session,
    *,
    resume: bool = False,
) -> None:
    """Start the provisioning workflow for ``session`` (just recorded as PROVISIONING), or roll
    the record back when it cannot be started: a new desktop becomes FAILED, a resumed one
    STOPPED again; the error propagates either way."""
    try:
        workflows.start(state_machine_arn, name, provisioning_input(session, resume=resume))
    except Exception as exc:
        logger.exception(
            "could not start the provisioning workflow",
            session_id=session.session_id,
            resume=resume,
        )
        detail = f"{type(exc).__name__}: {exc}"[:2000]
        if resume:
            store.update(
                session,
                status=Status.STOPPED,
                status_reason="The desktop could not be started. Try again.",
                status_detail=detail,
            )
        else:
            store.update(
                session,
                status=Status.FAILED,
                status_reason="The desktop could not be requested. Try again.",
                status_detail=detail,
            )
        raise


def ready_view(session: Session) -> dict[str, str]:
    """What Session Ready says about a READY desktop (MarkReady's output)."""
    return {
        "connectionUrl": session.connection_url or "",
        "instanceId": session.instance_id or "",
        "instanceType": session.instance_type,
    }


def cause_message(cause: Any) -> str:
    """The error message inside a Lambda error's Cause (a JSON document), or the cause itself."""
    if not isinstance(cause, str):
        return ""
    try:
        parsed = json.loads(cause)
    except json.JSONDecodeError:
        return cause[:500]
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage", ""))[:500]
    return cause[:500]
