"""The batch backend: a desktop is one DCV container, run as an AWS Batch job.

Provisioning submits the job (SubmitJob has no idempotency token: a retried step finds the job by
its name first), then polls it until its container has a host: a job left RUNNABLE past the
capacity timeout means there is no GPU capacity, and is cancelled by compensation. Once the
job's ECS task is known, the session's secret is tagged so that this task alone can read it
(READER_TAG). The agent in the container then reports Host Ready like any host; its claim is
checked against the job's own container instance.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet import estimates
from dcvfleet.adapters import (
    JOB_ENDED,
    JOB_WAITING,
    OWNER_TAG,
    SESSION_TAG,
    BatchJob,
    BatchJobs,
    Release,
    Releases,
    SessionSecrets,
    Workflows,
)
from dcvfleet.config import BatchSettings
from dcvfleet.errors import InsufficientCapacityError, JobFailedError, SessionConflictError
from dcvfleet.model import Session, Status
from dcvfleet.overtaken import undone_if_overtaken
from dcvfleet.session_profile import IDLE_TIMEOUT_ENV, IDLE_TIMEOUT_KEY, max_session_seconds
from dcvfleet.store import SessionStore, update_provisioning

logger = Logger(child=True)

#: The desktop container's exit codes (container/README.md) and what they mean to a user.
EXIT_REASONS = {
    64: "its container is misconfigured",
    65: "its credentials could not be read",
    66: "its user account could not be created",
    67: "DCV did not start in its container",
    68: "the application could not be launched",
}
#: Batch/ECS reasons a job fails with before its container ran, in a user's words.
START_FAILURES = {
    "CannotPullContainerError": "its image could not be pulled",
    "CannotStartContainerError": "its container could not be started",
    "ResourceInitializationError": "its container could not be set up",
    "OutOfMemoryError": "it ran out of memory",
}


def job_failure_reason(job: BatchJob) -> str:
    """Why a job ended, in words a user understands (``job_failure_detail``: what Batch said)."""
    if job.status == "SUCCEEDED" or job.exit_code == 0:
        return "its desktop session ended (the application quit)"
    if job.exit_code is not None and job.exit_code in EXIT_REASONS:
        return EXIT_REASONS[job.exit_code]
    text = f"{job.container_reason} {job.status_reason}"
    for marker, reason in START_FAILURES.items():
        if marker in text:
            return reason
    if "timeout" in text.lower() and "duration" in text.lower():
        return "it reached the maximum session length"
    if job.exit_code is not None:
        return "the program in its container stopped with an error"
    return "it stopped unexpectedly"


def job_failure_detail(job: BatchJob) -> str:
    """What Batch says about a job's end, for operators."""
    parts = [f"job {job.job_id} {job.status}"]
    if job.exit_code is not None:
        parts.append(f"exit code {job.exit_code}")
    parts += [r for r in (job.status_reason, job.container_reason) if r]
    return "; ".join(parts)


def job_failed(job: BatchJob | None, job_id: str | None = None) -> JobFailedError:
    """The error of a job that ended (or is gone): a user's reason, then Batch's detail."""
    if job is None:
        return JobFailedError(f"its job no longer exists\njob {job_id or '(none)'} not found")
    return JobFailedError(f"{job_failure_reason(job)}\n{job_failure_detail(job)}")


def _require_batch(store: SessionStore, session_id: str) -> Session:
    session = store.require(session_id)
    if session.backend != "batch":
        raise SessionConflictError(f"session {session_id} is not a batch desktop")
    if session.status != Status.PROVISIONING:
        raise SessionConflictError(f"session {session_id} is {session.status}, not provisioning")
    return session


def submit_job(
    store: SessionStore,
    jobs: BatchJobs,
    releases: Releases,
    settings: BatchSettings,
    *,
    session_id: str,
    secret_arn: str,
) -> dict[str, str]:
    """Submit the session's container job on the current release; a retried step finds it."""
    session = _require_batch(store, session_id)
    if session.job_id:
        return {"jobId": session.job_id, "release": str(session.extra.get("release", ""))}
    release = releases.current()
    if session.extra.get("jobDefinition"):  # a release's smoke test runs its candidate revision
        release = Release(
            release=f"candidate:{session.extra['jobDefinition']}",
            image="",
            job_definition=str(session.extra["jobDefinition"]),
        )
    found = jobs.find(session_id)
    if found is not None:
        job_id = found.job_id
    else:
        job_id = jobs.submit(
            session_id,
            release.job_definition,
            environment={
                "DCVFLEET_SESSION_ID": session_id,
                "DCVFLEET_SECRET_ARN": secret_arn,
                # the desktop's own idle timeout (its profile's), which wins over the image's
                **(
                    {IDLE_TIMEOUT_ENV: session.extra[IDLE_TIMEOUT_KEY]}
                    if IDLE_TIMEOUT_KEY in session.extra
                    else {}
                ),
            },
            timeout_seconds=max_session_seconds(session.extra, settings.max_session_seconds),
            tags={
                settings.common.fleet_tag_key: settings.common.fleet_tag_value,
                SESSION_TAG: session_id,
                OWNER_TAG: session.owner,
            },
        )
    record_path = estimates.recorder(store, session.extra, "batch")
    # SubmitJob may return after the desktop was cancelled: then nobody else will end the job
    with undone_if_overtaken(
        store, session_id, "job", lambda: jobs.terminate(job_id, "DCV Fleet: desktop cancelled")
    ):
        update_provisioning(
            store,
            session_id,
            job_id=job_id,
            extra=lambda extra: {**record_path(extra), "release": release.release},
        )
    logger.info("job submitted", session_id=session_id, job_id=job_id, release=release.release)
    return {"jobId": job_id, "release": release.release}


def check_job(
    store: SessionStore,
    jobs: BatchJobs,
    secrets: SessionSecrets,
    settings: BatchSettings,
    session_id: str,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Where is the session's job? ``started`` once its container has a host (the secret is
    then readable by that task alone); raises when it ended or waited past the capacity timeout.
    """
    session = _require_batch(store, session_id)
    job = jobs.describe(session.job_id or "") if session.job_id else None
    if job is None or job.status in JOB_ENDED:
        raise job_failed(job, session.job_id)
    waited = (time.time() if now is None else now) - job.created_at
    if job.status in JOB_WAITING:
        if waited > settings.capacity_timeout_seconds:
            types = ", ".join(settings.instance_types)
            minutes = settings.capacity_timeout_seconds / 60
            raise InsufficientCapacityError(
                f"no GPU capacity for {types} in {settings.region} within {minutes:g} min"
            )
        return {"started": False, "jobStatus": job.status, "waitedSeconds": int(waited)}
    grant_secret(session, job, secrets, settings.job_role_id)
    instance_id = jobs.instance_of(job)
    if instance_id and instance_id != session.instance_id:
        update_provisioning(store, session_id, step="capacity", instance_id=instance_id)
    return {"started": True, "jobStatus": job.status, "instanceId": instance_id or ""}


def grant_secret(
    session: Session, job: BatchJob, secrets: SessionSecrets, job_role_id: str
) -> bool:
    """Tag the session's secret for the job's task (its role session); False before it has one."""
    if not job.task_id or not session.secret_arn:
        return False
    secrets.grant_reader(session.secret_arn, f"{job_role_id}:{job.task_id}")
    return True


def host_of_claim(session: Session, jobs: BatchJobs, claimed_instance: str) -> str | None:
    """Why a batch Host Ready claim is false, or None when the job runs on that instance."""
    job = jobs.describe(session.job_id or "") if session.job_id else None
    if job is None:
        return f"session {session.session_id} has no job"
    if job.status not in ("STARTING", "RUNNING"):
        return f"job {job.job_id} is {job.status}, not running"
    instance_id = jobs.instance_of(job)
    if instance_id != claimed_instance:
        return f"instance {claimed_instance} is not the host of job {job.job_id}"
    return None


def fail_wait(workflows: Workflows, task_token: str, job: BatchJob | None) -> str:
    """Fail the provisioning workflow waiting for Host Ready: its job ended (or vanished)."""
    error = job_failed(job)
    workflows.fail(task_token, error)
    return error.message.replace("\n", ": ", 1)


def end_job(jobs: BatchJobs, session: Session, reason: str) -> bool:
    """Cancel or end the session's job (found by name when the record never got its id);
    True when it had one that had not ended yet."""
    job = jobs.describe(session.job_id) if session.job_id else jobs.find(session.session_id)
    if job is None or job.status in JOB_ENDED:
        return False
    jobs.terminate(job.job_id, reason)
    logger.info("job ended", session_id=session.session_id, job_id=job.job_id, reason=reason)
    return True


def job_ended(jobs: BatchJobs, session: Session) -> bool:
    if not session.job_id:
        return True
    job = jobs.describe(session.job_id)
    return job is None or job.status in JOB_ENDED
