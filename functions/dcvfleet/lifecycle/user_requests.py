"""A user's (or a fleet administrator's) stop, delete and resume of a desktop."""

from __future__ import annotations

from dcvfleet import estimates
from dcvfleet.adapters import Workflows
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import SessionConflictError, SessionNotFoundError, StatusConflictError
from dcvfleet.lifecycle import cancel
from dcvfleet.lifecycle.triggers import NO_LIVE_SESSION
from dcvfleet.model import Session, Status
from dcvfleet.sessions import Caller, get_session, start_provisioning
from dcvfleet.store import CONFLICT_RETRIES, SessionStore, now_iso


def request_stop(
    store: SessionStore,
    workflows: Workflows,
    settings: LifecycleSettings,
    caller: Caller,
    session_id: str,
    *,
    action: str,
    as_admin: bool = False,
) -> Session:
    """POST /sessions/{id}/stop (action "stop") and DELETE /sessions/{id} ("terminate"); with
    ``as_admin``, a fleet administrator's stop or termination of anyone's desktop.

    A delete of a desktop still PROVISIONING cancels it (``dcvfleet.lifecycle.cancel``)."""
    allowed = {
        "stop": frozenset({Status.READY}),
        "terminate": frozenset({Status.READY, Status.STOPPED, Status.PROVISIONING}),
    }[action]
    trigger = "admin" if as_admin else "user"
    by = "an administrator" if as_admin else "you"
    for _ in range(CONFLICT_RETRIES):
        session = store.get(session_id) if as_admin else get_session(store, caller, session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id} not found")
        if session.status not in allowed:
            raise StatusConflictError(
                f"the desktop is {session.status}; it can be "
                f"{'stopped' if action == 'stop' else 'deleted'} only when "
                f"{' or '.join(s.value for s in sorted(allowed))}",
                session.status.value,
            )
        ends = action == "terminate" or session.backend == "batch"  # a container is not kept
        name = f"{session_id}-{trigger}-{session.version + 1}"
        # the neutral record the status reason is worded from, for each reader (dcvfleet.wording)
        evidence: dict[str, object] = {"trigger": trigger, "decidedAt": now_iso(), "action": action}
        if as_admin:
            evidence["by"] = caller.username
        cancelling = cancel.is_cancel(session, action)
        if cancelling:
            evidence[cancel.CANCELLED] = True
        said = f"{'Deleted' if action == 'terminate' else 'Stopped'} by {by}."
        try:
            updated = store.update(
                session,
                status=Status.TERMINATING if ends else Status.STOPPING,
                idle_check=name,
                idle_check_at=now_iso(),
                status_reason=cancel.reason(as_admin=as_admin) if cancelling else said,
                evidence=evidence,
            )
        except SessionConflictError:
            continue
        break
    else:
        raise SessionConflictError(f"session {session_id}: too many concurrent writers")
    if cancelling:
        cancel.stop_provisioning(workflows, session, caller.username)
    payload = {
        "sessionId": session_id,
        "trigger": trigger,
        "action": "terminate" if ends else action,
        "claim": {},
    }
    workflows.start(settings.idle_state_machine_arn, name, payload)
    return updated


def resume(
    store: SessionStore,
    workflows: Workflows,
    settings: LifecycleSettings,
    caller: Caller,
    session_id: str,
) -> Session:
    """POST /sessions/{id}/start: a STOPPED ec2 desktop comes back on the same instance."""
    for _ in range(CONFLICT_RETRIES):
        session = get_session(store, caller, session_id)
        if session.status != Status.STOPPED:
            raise StatusConflictError(
                f"the desktop is {session.status}; only a STOPPED desktop can be started",
                session.status.value,
            )
        if session.backend != "ec2" or not session.instance_id:
            raise StatusConflictError(
                "only an ec2 desktop with its instance can be started again",
                session.status.value,
            )
        name = f"{session_id}-resume-{session.version + 1}"
        try:
            updated = store.update(
                session,
                max_active=settings.max_active_sessions,
                status=Status.PROVISIONING,
                status_reason=None,
                status_detail=None,
                evidence=None,
                **NO_LIVE_SESSION,
                resumed_at=now_iso(),
                progress={"credentials": now_iso()},  # its credentials are kept while stopped
                extra=estimates.without_estimate(session.extra),
                execution_arn=Workflows.execution_arn(settings.provision_state_machine_arn, name),
            )
        except SessionConflictError:
            continue
        break
    else:
        raise SessionConflictError(f"session {session_id}: too many concurrent writers")
    start_provisioning(
        store, workflows, settings.provision_state_machine_arn, name, updated, resume=True
    )
    return updated
