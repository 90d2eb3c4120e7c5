"""The idle workflow (statemachines/idle_session.asl.json): heartbeats and idle claims start it;
its steps verify, warn, re-verify, act, confirm, or end the check and recover. Agent events are
claims: nothing is stopped before the session's record, the instance's real state and a live
check on the host (SSM Run Command) agree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet import batch
from dcvfleet.adapters import (
    SESSION_TAG,
    BatchJob,
    BatchJobs,
    Ec2Hosts,
    HostCommands,
    SessionSecrets,
    Workflows,
)
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import (
    ClaimRejectedError,
    HostCommandError,
    SessionConflictError,
    workflow_error,
)
from dcvfleet.lifecycle import cancel
from dcvfleet.lifecycle.triggers import (
    AUTOMATIC_TRIGGERS,
    NO_LIVE_SESSION,
    REQUESTED_TRIGGERS,
    iso,
    parse_time,
    stale,
    utc_now,
)
from dcvfleet.model import Session, Status
from dcvfleet.session_profile import (
    idle_action,
    idle_timeout_seconds,
    max_session_seconds,
    session_view,
)
from dcvfleet.sessions import cause_message
from dcvfleet.store import CONFLICT_RETRIES, SessionStore, now_iso
from dcvfleet.telemetry import NO_TELEMETRY, Telemetry

logger = Logger(child=True)

STOP_DETAIL_TYPE = "Session Stopped"
TERMINATE_DETAIL_TYPE = "Session Terminated"
WARNING_DETAIL_TYPE = "Session Idle Warning"


def _write(
    store: SessionStore,
    session_id: str,
    allowed: frozenset[Status],
    owner: str | None,
    **changes: Any,
) -> Session:
    """A versioned write, re-read and retried when it loses a race; refused (conflict) once the
    session is no longer in ``allowed`` or its idle slot is no longer ``owner``'s."""
    for _ in range(CONFLICT_RETRIES):
        session = store.require(session_id)
        if session.status not in allowed:
            raise SessionConflictError(f"session {session_id} is {session.status}")
        if owner is not None and session.idle_check != owner:
            raise SessionConflictError(f"session {session_id} is being decided by another check")
        try:
            return store.update(session, **changes)
        except SessionConflictError:
            continue
    raise SessionConflictError(f"session {session_id}: too many concurrent writers")


# -- heartbeats and idle claims ----------------------------------------------------------------
def record_heartbeat(store: SessionStore, detail: dict[str, Any]) -> bool:
    """Keep the latest heartbeat of a READY session's own host. Another host's is refused."""
    summary = {
        "idle": detail["idle"],
        "idleSince": detail["idleSince"],
        "sentAt": detail["sentAt"],
        "signals": detail["signals"],
    }
    saved = store.record_heartbeat(detail["sessionId"], detail["instanceId"], now_iso(), summary)
    if not saved:
        raise ClaimRejectedError(
            f"heartbeat from {detail['instanceId']} does not match a ready session "
            f"{detail['sessionId']} on that instance"
        )
    return saved


def start_idle_check(
    store: SessionStore,
    workflows: Workflows,
    settings: LifecycleSettings,
    session_id: str,
    *,
    trigger: str,
    claim: dict[str, Any] | None = None,
) -> str:
    """Start the idle workflow for a session unless one is deciding already; returns the outcome
    ("started", "already-checking"). Refuses (ClaimRejectedError) a session that is not READY or
    an idle claim from a host that is not the session's."""
    if trigger not in AUTOMATIC_TRIGGERS:
        raise ValueError(f"trigger {trigger!r} does not start an idle check")
    for _ in range(CONFLICT_RETRIES):
        session = store.get(session_id)
        if session is None:
            raise ClaimRejectedError(f"unknown session {session_id}")
        if session.status != Status.READY:
            raise ClaimRejectedError(f"session {session_id} is {session.status}, not ready")
        if claim is not None and claim.get("instanceId") != session.instance_id:
            raise ClaimRejectedError(
                f"instance {claim.get('instanceId')} is not the host of session {session_id}"
            )
        _refuse_idle_from_before_the_last_start(session, claim)
        if session.idle_check and not stale(session, settings):
            return "already-checking"
        name = f"{session_id}-{trigger}-{session.version + 1}"
        try:
            store.update(session, idle_check=name, idle_check_at=now_iso())
        except SessionConflictError:
            continue
        break
    else:
        raise SessionConflictError(f"session {session_id}: too many concurrent writers")
    payload = {"sessionId": session_id, "trigger": trigger, "action": None, "claim": claim or {}}
    try:
        workflows.start(settings.idle_state_machine_arn, name, payload)
    except Exception:
        logger.exception("could not start the idle workflow", session_id=session_id)
        _release(store, session_id, name)
        raise
    logger.info("idle check started", session_id=session_id, trigger=trigger, execution=name)
    return "started"


def _refuse_idle_from_before_the_last_start(session: Session, claim: dict[str, Any] | None) -> None:
    """An idle period cannot run through a stop: one that began before the desktop was last
    asked to start again (``resumed_at``) was counted by its agent before the host was stopped
    (hibernated) and reported after it resumed. EC2 hibernation stops the machine wherever it
    is, so the report can be made, or sent, just after the resume
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-resuming.html). EventBridge
    invokes this function asynchronously, from a queue that several instances of it read at
    once (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html), so the report can
    be handled alongside, or after, the resume's Host Ready and find the desktop READY. Its idle
    period counts the time the desktop was stopped, not time nobody used it."""
    since = (claim or {}).get("idleSince")
    if not since or not session.resumed_at:
        return
    if parse_time(str(since)) < parse_time(session.resumed_at):
        raise ClaimRejectedError(
            f"idleSince: {since} is before session {session.session_id} was last started "
            f"({session.resumed_at}): an idle period from before its host was stopped"
        )


def _give_back(store: SessionStore, session_id: str, execution: str, **changes: Any) -> Session:
    """Free a READY session's idle slot, while it is still ``execution``'s (a conflict once it
    is not), with ``changes``."""
    return _write(
        store,
        session_id,
        frozenset({Status.READY}),
        execution,
        idle_check=None,
        idle_check_at=None,
        **changes,
    )


def _release(store: SessionStore, session_id: str, execution: str, **changes: Any) -> bool:
    """``_give_back``, or False when the slot is no longer ``execution``'s."""
    try:
        _give_back(store, session_id, execution, **changes)
    except SessionConflictError:
        return False
    return True


# -- the idle workflow's steps ---------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    idle: bool
    reason: str
    evidence: dict[str, Any]

    def as_output(self) -> dict[str, Any]:
        return {"idle": self.idle, "reason": self.reason, "evidence": self.evidence}


def verify(
    store: SessionStore,
    hosts: Ec2Hosts,
    commands: HostCommands,
    settings: LifecycleSettings,
    *,
    session_id: str,
    execution: str,
    trigger: str,
    claim: dict[str, Any],
    phase: str,
    jobs: BatchJobs | None = None,
) -> Verdict:
    """Is the session still idle (or over its lifetime)? Checked against the record, the instance
    (and a batch desktop's job) and, for idle triggers, live on the host (in the container).
    ``phase`` is "verify" or "reverify" (after the grace period, when a reconnect or resumed
    activity cancels)."""
    now = utc_now()
    evidence: dict[str, Any] = {"trigger": trigger, "phase": phase, "checkedAt": iso(now)}
    session = store.get(session_id)
    if session is None or session.status != Status.READY:
        status = session.status if session else "gone"
        return Verdict(False, f"the desktop is {status}", evidence)
    if session.idle_check != execution:
        return Verdict(False, "another decision about this desktop is in progress", evidence)
    job = None
    if session.backend == "batch":
        job = _running_job(session, jobs)
        if job is None:
            return Verdict(False, "its container's job is not running", evidence)
        evidence["jobId"] = job.job_id
    instance = hosts.describe(session.instance_id or "") if session.instance_id else None
    if instance is None or instance.state != "running":
        state = instance.state if instance else "missing"
        return Verdict(False, f"its instance is {state}, not running", evidence)
    if job is None and instance.tags.get(SESSION_TAG) != session_id:
        return Verdict(False, "its instance is not tagged for this desktop", evidence)
    evidence["instanceId"] = instance.instance_id
    if trigger == "max-lifetime":
        # the desktop's own limit, its profile's when it was made (the fleet's before profiles)
        limit = max_session_seconds(session.extra, settings.max_session_seconds)
        started = parse_time(session.ready_at or session.created_at)
        evidence["readyAt"] = iso(started)
        evidence["maxSessionSeconds"] = limit
        over = limit > 0 and now - started >= timedelta(seconds=limit)
        return Verdict(
            over,
            _lifetime_reason(session, limit) if over else "it is within its lifetime",
            evidence,
        )
    if claim.get("signals"):
        evidence["claim"] = {
            "idleSince": claim.get("idleSince"),
            "idleSeconds": claim.get("idleSeconds"),
            "signals": claim["signals"],
        }
    if phase == "reverify" and session.last_heartbeat_at and session.idle_check_at:
        heard = parse_time(session.last_heartbeat_at) > parse_time(session.idle_check_at)
        beat = session.heartbeat or {}
        if heard and trigger == "agent-silent":
            return Verdict(False, "its agent is reporting again", evidence)
        if heard and beat.get("idle") is False:
            evidence["heartbeat"] = beat
            return Verdict(False, f"activity resumed ({_describe_signals(beat)})", evidence)
    try:
        connections = commands.list_connections(
            instance.instance_id,
            settings.list_container_connections_document
            if job
            else settings.list_connections_document,
            session.dcv_session_id or "",
            platform=session.os,
            task_arn=job.task_arn if job else None,
        )
    except HostCommandError as exc:
        evidence["liveCheckError"] = exc.message
        if trigger == "agent-silent":
            # the agent is silent and the host does not answer either: nobody can be using it
            return Verdict(True, "its agent is silent and the host does not answer", evidence)
        # (what the host said is in the evidence, for operators: the user reads plain words)
        return Verdict(False, "idleness could not be confirmed on the host", evidence)
    evidence["connections"] = connections
    if connections:
        reason = (
            "someone reconnected" if phase == "reverify" else f"{connections} client(s) connected"
        )
        return Verdict(False, reason, evidence)
    if trigger == "agent-silent":
        last = session.last_heartbeat_at or session.ready_at or session.created_at
        return Verdict(
            True, f"its agent has been silent since {last} and nobody is connected", evidence
        )
    return Verdict(True, _idle_reason(claim, settings, session), evidence)


def _lifetime_reason(session: Session, limit_seconds: int) -> str:
    """Why a desktop past its maximum length is stopped, in plain words: "it reached the
    12-hour limit of Linux workstation"."""
    if limit_seconds >= 3600:
        length = f"{limit_seconds / 3600:g}-hour"
    elif limit_seconds >= 60:
        length = f"{limit_seconds / 60:g}-minute"
    else:
        length = f"{limit_seconds}-second"
    profile = session_view(session.backend, session.os, session.extra)["profileName"]
    return f"it reached the {length} limit of {profile}"


def _running_job(session: Session, jobs: BatchJobs | None) -> BatchJob | None:
    """A batch desktop's job, when it is RUNNING on the session's instance."""
    if jobs is None or not session.job_id:
        return None
    job = jobs.describe(session.job_id)
    if job is None or job.status != "RUNNING" or not job.task_arn:
        return None
    return job


def _describe_signals(beat: dict[str, Any]) -> str:
    signals = beat.get("signals") or {}
    parts = []
    dcv = signals.get("dcv") or {}
    if dcv.get("connections") is not None:
        parts.append(f"{dcv['connections']} DCV connection(s)")
    cpu = signals.get("cpu") or {}
    if cpu.get("busiestCorePercent") is not None:
        parts.append(f"busiest CPU core {cpu['busiestCorePercent']:.0f} %")
    gpu = signals.get("gpu") or {}
    if gpu.get("utilizationPercent") is not None:
        parts.append(f"GPU {gpu['utilizationPercent']:.0f} %")
    processes = signals.get("processes") or {}
    if processes.get("running"):
        parts.append("running " + ", ".join(processes["running"][:3]))
    return ", ".join(parts) or "no signal values"


def _idle_reason(claim: dict[str, Any], settings: LifecycleSettings, session: Session) -> str:
    since = claim.get("idleSince")
    minutes = idle_timeout_seconds(session.extra, settings.idle_timeout_seconds) / 60
    described = _describe_signals({"signals": claim.get("signals") or {}})
    if since:
        return f"no one has used it since {since} (idle timeout {minutes:g} min; {described})"
    return f"no one has used it for the idle timeout of {minutes:g} min ({described})"


def _action_for(
    trigger: str,
    settings: LifecycleSettings,
    requested: str | None,
    backend: str = "ec2",
    extra: Mapping[str, str] | None = None,
) -> str:
    """What ends this desktop: a batch desktop's container always ends (its job is terminated);
    an automatic stop does what the desktop's profile says (``extra``: its record's snapshot of
    it), or IdleAction for a desktop made before profiles."""
    if backend == "batch":
        return "terminate"
    if trigger in REQUESTED_TRIGGERS:
        return requested or "stop"
    return idle_action(extra or {}, settings.idle_action)


def warn(
    store: SessionStore,
    commands: HostCommands,
    settings: LifecycleSettings,
    *,
    session_id: str,
    execution: str,
    trigger: str,
    reason: str,
    jobs: BatchJobs | None = None,
) -> dict[str, Any]:
    """Record the warning on the session, tell the user in the session, and return the
    ``Session Idle Warning`` event and the notification for the workflow to publish."""
    deciding = store.require(session_id)
    action = _action_for(trigger, settings, None, deciding.backend, deciding.extra)
    act_at = iso(utc_now() + timedelta(seconds=settings.idle_grace_seconds))
    verb = {"stop": "stop", "hibernate": "hibernate", "terminate": "end"}[action]
    if trigger == "max-lifetime":
        message = f"Your desktop will {verb} at {act_at} because {reason}. Save your work."
    else:
        message = (
            f"Your desktop looks idle: {reason}. It will {verb} at {act_at} "
            "unless you reconnect or use it."
        )
    if settings.dry_run:
        message = f"[dry run] {message}"
    session = _write(
        store,
        session_id,
        frozenset({Status.READY}),
        execution,
        status_reason=f"It will {verb} at {act_at}: {reason}."
        if trigger == "max-lifetime"  # use does not cancel this one
        else f"Idle warning: it will {verb} at {act_at} unless it is used.",
    )
    job = _running_job(session, jobs) if session.backend == "batch" else None
    if session.instance_id and session.dcv_session_id:
        notice = _notice_text(verb, act_at)
        try:
            commands.notify(
                session.instance_id,
                settings.notify_container_document if job else settings.notify_document,
                session.dcv_session_id,
                notice,
                platform=session.os,
                task_arn=job.task_arn if job else None,
            )
        except HostCommandError as exc:
            logger.warning("in-session notice failed", session_id=session_id, error=exc.message)
    detail: dict[str, Any] = {
        "sessionId": session_id,
        "owner": session.owner,
        "trigger": trigger,
        "action": action,
        "actAt": act_at,
        "message": message,
        "dryRun": settings.dry_run,
    }
    if session.instance_id:
        detail["instanceId"] = session.instance_id
    return {"detail": detail, "message": message, "subject": "Your DCV desktop looks idle"}


def _notice_text(verb: str, act_at: str) -> str:
    """The in-session notice: only characters the notify document's allowedPattern admits."""
    return (
        f"This desktop will {verb} at {act_at.replace('T', ' ').rstrip('Z')} UTC unless it is used"
    )


def end_check(
    store: SessionStore,
    *,
    session_id: str,
    execution: str,
    reason: str,
    warned: bool,
    telemetry: Telemetry = NO_TELEMETRY,
) -> dict[str, Any]:
    """The idle check found the desktop in use: release the slot, say why when it had warned.
    A warned desktop left READY by this release is an idle stop cancelled (reported once: a
    retried step finds the slot released already)."""
    changes: dict[str, Any] = {}
    if warned:
        changes["status_reason"] = f"Idle stop cancelled: {reason}."
    released = _release(store, session_id, execution, **changes)
    logger.info("idle check ended", session_id=session_id, reason=reason, released=released)
    if warned and released:
        telemetry.idle_stop_cancelled()
    return {"cancelled": True, "reason": reason}


def act(
    store: SessionStore,
    hosts: Ec2Hosts,
    secrets: SessionSecrets,
    settings: LifecycleSettings,
    *,
    session_id: str,
    execution: str,
    trigger: str,
    requested_action: str | None,
    reason: str,
    evidence: dict[str, Any],
    jobs: BatchJobs | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
) -> dict[str, Any]:
    """Stop, hibernate or terminate (or, with DryRun, record what would have been done). A batch
    desktop's container job is always ended. What an automatic trigger really did is reported
    (a dry run, a user's, an administrator's or an outside change is not an idle stop).

    For automatic triggers the session moves READY -> STOPPING/TERMINATING here, only while this
    execution holds its idle slot. A user's or an external change has made that move already.
    Returns the event and notification for the workflow to publish.
    """
    current = store.require(session_id)
    backend = current.backend
    action = _action_for(trigger, settings, requested_action, backend, current.extra)
    terminal = action == "terminate"
    moving = Status.TERMINATING if terminal else Status.STOPPING
    evidence = {**evidence, "trigger": trigger, "decidedAt": iso(utc_now())}
    if trigger in AUTOMATIC_TRIGGERS and settings.dry_run:
        session = _give_back(
            store,
            session_id,
            execution,
            evidence=evidence,
            status_reason=f"Dry run: it would have been {_past(action)} because {reason}.",
        )
        return _outcome(session, action, trigger, reason, evidence, dry_run=True)
    if trigger in AUTOMATIC_TRIGGERS:
        session = _write(
            store,
            session_id,
            frozenset({Status.READY}),
            execution,
            status=moving,
            evidence=evidence,
            status_reason=_stopped_because(action, trigger, reason),
        )
    else:
        session = current  # a user's or an outside change: the record moved already
        done_already = (Status.TERMINATED,) if terminal else (Status.STOPPED, Status.TERMINATED)
        if session.status in done_already and (session.evidence or {}).get("trigger") == trigger:
            # a change outside DCV Fleet finished (and was confirmed by its EC2 event) before
            # this step ran: nothing is left to stop, but it is still announced and notified
            if terminal:
                secrets.delete(session_id)
            return _outcome(session, action, trigger, reason, evidence, dry_run=False)
        if session.status != moving or session.idle_check != execution:
            raise SessionConflictError(f"session {session_id} is {session.status}")
    done = action
    instance = hosts.describe(session.instance_id) if session.instance_id else None
    if backend == "batch":
        if jobs is None:
            raise SessionConflictError(f"session {session_id} is a batch desktop")
        batch.end_job(jobs, session, f"DCV Fleet: {trigger} ({reason})"[:256])
        instance = None  # the instance belongs to Batch's compute environment
    if instance is not None and instance.state not in ("terminated", "shutting-down"):
        if terminal:
            hosts.terminate(instance.instance_id)
        elif instance.state in ("pending", "running"):
            done = hosts.stop(instance, hibernate=action == "hibernate")
    if terminal and backend != "batch":
        # a desktop cancelled while starting may have a host its record does not name yet
        for stray in hosts.find_by_session(session_id):
            hosts.terminate(stray.instance_id)
    if terminal:
        secrets.delete(session_id)
    if done != action:
        evidence["hibernateFellBackToStop"] = True
        try:  # the record said "Hibernated because ..." before the stop: keep it true
            session = _write(
                store,
                session_id,
                frozenset({moving}),
                execution,
                evidence=evidence,
                status_reason=f"Stopped (it could not hibernate) because {reason}.",
            )
        except SessionConflictError:
            logger.warning("fallback to stop not recorded", session_id=session_id)
    logger.info("desktop acted on", session_id=session_id, action=done, trigger=trigger)
    if trigger in AUTOMATIC_TRIGGERS:
        telemetry.idle_stopped(done)
    return _outcome(session, done, trigger, reason, evidence, dry_run=False)


def _stopped_because(action: str, trigger: str, reason: str) -> str:
    """The status reason of an automatic stop: "Stopped: it reached the 12-hour limit of Linux
    workstation." for a desktop past its maximum length."""
    if trigger == "max-lifetime":
        return f"{_past(action).capitalize()}: {reason}."
    return f"{_past(action).capitalize()} because {reason}."


def _past(action: str) -> str:
    return {"stop": "stopped", "hibernate": "hibernated", "terminate": "terminated"}[action]


def _outcome(
    session: Session,
    action: str,
    trigger: str,
    reason: str,
    evidence: dict[str, Any],
    *,
    dry_run: bool,
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "sessionId": session.session_id,
        "owner": session.owner,
        "trigger": trigger,
        "action": action,
        "reason": reason,
        "evidence": evidence,
        "dryRun": dry_run,
    }
    if session.instance_id:
        detail["instanceId"] = session.instance_id
    what = _past(action)
    prefix = "[dry run] would have been " if dry_run else ""
    message = f"Your DCV desktop {session.session_id} {prefix or 'was '}{what}: {reason}."
    if cancel.was_cancelled(session):
        message = (
            f"Your DCV desktop {session.session_id} was cancelled while it was starting; "
            "nothing of it is left running."
        )
    if action != "terminate" and not dry_run:
        message += " Start it again whenever you need it; your disk is kept."
    elif session.backend == "batch" and not dry_run:
        message += " Ask for a new desktop whenever you need one."
    return {
        "action": action,
        "dryRun": dry_run,
        "detailType": TERMINATE_DETAIL_TYPE if action == "terminate" else STOP_DETAIL_TYPE,
        "detail": detail,
        "message": message,
        "subject": f"Your DCV desktop was {what}" if not dry_run else "DCV desktop (dry run)",
    }


def confirm(
    store: SessionStore, hosts: Ec2Hosts, session_id: str, jobs: BatchJobs | None = None
) -> dict[str, bool]:
    """Has the host (a batch desktop's job) reached the end of the stop or termination? Then the
    record says so."""
    for _ in range(CONFLICT_RETRIES):
        session = store.require(session_id)
        if session.status in (Status.STOPPED, Status.TERMINATED):
            return {"done": True}
        if session.status not in (Status.STOPPING, Status.TERMINATING):
            raise SessionConflictError(f"session {session_id} is {session.status}")
        if session.backend == "batch":
            if jobs is None:
                raise SessionConflictError(f"session {session_id} is a batch desktop")
            state = "terminated" if batch.job_ended(jobs, session) else "running"
        else:
            instance = hosts.describe(session.instance_id) if session.instance_id else None
            state = instance.state if instance else "terminated"
            if state == "terminated" and session.status == Status.TERMINATING:
                # a host launched for a desktop cancelled while starting, not yet recorded
                stray = hosts.find_by_session(session_id)
                state = stray[0].state if stray else state
        try:
            if state == "terminated":
                if session.status == Status.STOPPING:
                    session = store.update(session, status=Status.TERMINATING)
                _finish(store, session, Status.TERMINATED)
                return {"done": True}
            if state == "stopped" and session.status == Status.STOPPING:
                _finish(store, session, Status.STOPPED)
                return {"done": True}
            return {"done": False}
        except SessionConflictError:
            continue
    raise SessionConflictError(f"session {session_id}: too many concurrent writers")


def _finish(store: SessionStore, session: Session, status: Status) -> Session:
    return store.update(session, status=status, **NO_LIVE_SESSION)


def recover(
    store: SessionStore,
    hosts: Ec2Hosts,
    *,
    session_id: str,
    execution: str,
    error: str,
    cause: str = "",
) -> dict[str, Any]:
    """The idle workflow failed: leave every record true. A desktop whose stop failed and whose
    host still runs is READY again; a check that never acted gives its slot back. With the
    error the execution then fails with (``error``, a name of ours; ``cause``, for operators)."""
    done = _recover(store, hosts, session_id=session_id, execution=execution, error=error)
    return {**done, **workflow_error(error, cause_message(cause))}


def _recover(
    store: SessionStore, hosts: Ec2Hosts, *, session_id: str, execution: str, error: str
) -> dict[str, Any]:
    session = store.get(session_id)
    if session is None:
        return {"recovered": "gone"}
    if session.status == Status.STOPPING and session.idle_check == execution:
        instance = hosts.describe(session.instance_id) if session.instance_id else None
        if instance is not None and instance.state == "running":
            store.update(
                session,
                status=Status.READY,
                idle_check=None,
                idle_check_at=None,
                status_reason="The desktop could not be stopped and is still running.",
            )
            return {"recovered": "ready"}
    if session.status == Status.READY and session.idle_check == execution:
        _release(store, session_id, execution)
        return {"recovered": "released"}
    logger.warning(
        "idle workflow failed", session_id=session_id, error=error, status=session.status
    )
    return {"recovered": "left", "status": session.status.value}
