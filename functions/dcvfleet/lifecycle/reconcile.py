"""Reconciliation with EC2 and Batch: a desktop changed outside DCV Fleet keeps a true record."""

from __future__ import annotations

from typing import Any

from dcvfleet import batch, pool
from dcvfleet.adapters import (
    JOB_ENDED,
    POOL_TAG,
    SESSION_TAG,
    BatchJobs,
    Ec2Hosts,
    SessionSecrets,
    Workflows,
)
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import SessionConflictError
from dcvfleet.lifecycle.idle import confirm
from dcvfleet.model import Session, Status
from dcvfleet.store import SessionStore, now_iso
from dcvfleet.telemetry import NO_TELEMETRY, Telemetry


def instance_changed(
    store: SessionStore,
    hosts: Ec2Hosts,
    workflows: Workflows,
    settings: LifecycleSettings,
    instance_id: str,
    *,
    state: str,
    telemetry: Telemetry = NO_TELEMETRY,
    pool_store: pool.PoolStore | None = None,
) -> str:
    """An instance of the fleet changed state (``EC2 Instance State-change Notification``).

    Keeps the record true when it happened outside DCV Fleet: a READY desktop whose instance was
    stopped becomes STOPPED (through the idle workflow, which records, publishes and notifies),
    one whose instance was terminated becomes TERMINATED. A manual stop is never undone: nothing
    here starts an instance.
    """
    instance = hosts.describe(instance_id)
    session_id = instance.tags.get(SESSION_TAG) if instance else None
    if instance is not None and not session_id and POOL_TAG in instance.tags:
        if pool_store is None:
            return "a pool host, and no pool table"
        return pool.instance_changed(pool_store, instance, state=state, now=now_iso())
    if not session_id:
        return "not a desktop of this fleet"
    telemetry.session_found(session_id)
    session = store.get(session_id)
    if session is None or session.instance_id != instance_id:
        return "no session on this instance"
    if instance is not None and instance.state in ("pending", "running"):
        # a notification from before a resume, delivered late: the instance's state is the fact
        return f"nothing to do: a late {state} notification for a {instance.state} instance"
    if state in ("stopping", "stopped") and session.status == Status.READY:
        return _external(store, workflows, settings, session, action="stop", state=state)
    if state in ("shutting-down", "terminated") and session.status in (
        Status.READY,
        Status.STOPPED,
        Status.STOPPING,
    ):
        return _external(store, workflows, settings, session, action="terminate", state=state)
    if session.status in (Status.STOPPING, Status.TERMINATING) and state in (
        "stopped",
        "terminated",
    ):
        return "done" if confirm(store, hosts, session_id)["done"] else "waiting"
    return f"nothing to do for a {session.status} desktop whose instance is {state}"


def _external(
    store: SessionStore,
    workflows: Workflows,
    settings: LifecycleSettings,
    session: Session,
    *,
    action: str,
    state: str,
    what: str = "",
) -> str:
    name = f"{session.session_id}-external-{session.version + 1}"
    what = what or ("stopped" if action == "stop" else "terminated")
    try:
        store.update(
            session,
            status=Status.TERMINATING if action == "terminate" else Status.STOPPING,
            idle_check=name,
            idle_check_at=now_iso(),
            status_reason=(
                f"Its container ended outside DCV Fleet: {what}."
                if session.backend == "batch"
                else f"Its instance was {what} outside DCV Fleet."
            ),
            status_detail=state,
            evidence={"trigger": "external", "instanceState": state, "decidedAt": now_iso()},
        )
    except SessionConflictError:
        return "another change won"
    payload = {
        "sessionId": session.session_id,
        "trigger": "external",
        "action": action,
        "claim": {},
    }
    workflows.start(settings.idle_state_machine_arn, name, payload)
    return f"recording an external {action}"


# -- with Batch -------------------------------------------------------------
def job_changed(  # noqa: PLR0917 (the adapters it needs, then the event)
    store: SessionStore,
    hosts: Ec2Hosts,
    jobs: BatchJobs,
    secrets: SessionSecrets,
    workflows: Workflows,
    settings: LifecycleSettings,
    detail: dict[str, Any],
    *,
    job_role_id: str,
    telemetry: Telemetry = NO_TELEMETRY,
) -> str:
    """A desktop container's job changed state (``Batch Job State Change``).

    While provisioning: once it runs, its task alone may read the session's secret (the
    provisioning workflow's poll does the same, later); when it ends, the waiting workflow fails
    at once with the reason instead of waiting for its timeout. A READY desktop whose job ended
    outside DCV Fleet becomes TERMINATED through the idle workflow, which records, publishes and
    notifies. The event is a hint: the job is described again before anything is written.
    """
    name = str(detail.get("jobName", ""))
    prefix = BatchJobs.name_for("")
    if not name.startswith(prefix):
        return "not a desktop job"
    session_id = name[len(prefix) :]
    if not session_id:
        return "not a desktop job"
    telemetry.session_found(session_id)
    session = store.get(session_id)
    job = jobs.describe(str(detail.get("jobId", "")))
    # the job the event names must be the one it describes, and the session's (once it has one)
    if (
        session is None
        or job is None
        or job.name != name
        or session.job_id not in (None, job.job_id)
    ):
        return "no session runs this job"
    if session.status == Status.PROVISIONING:
        if job.status in JOB_ENDED:
            if not session.task_token:
                return "ended; the provisioning workflow's poll will see it"
            return f"provisioning failed: {batch.fail_wait(workflows, session.task_token, job)}"
        if job.status in ("STARTING", "RUNNING") and session.job_id:
            granted = batch.grant_secret(session, job, secrets, job_role_id)
            return "secret granted to its task" if granted else "waiting for its task"
        return f"provisioning, job {job.status}"
    if job.status in JOB_ENDED and session.status == Status.READY:
        return _external(
            store,
            workflows,
            settings,
            session,
            action="terminate",
            state=batch.job_failure_detail(job),
            what=batch.job_failure_reason(job),
        )
    if job.status in JOB_ENDED and session.status == Status.TERMINATING:
        done = confirm(store, hosts, session.session_id, jobs)["done"]
        return "done" if done else "waiting"
    return f"nothing to do for a {session.status} desktop whose job is {job.status}"
