"""Releases of the desktop container image, from an application build to the current release.

A build dropped in the builds bucket starts the release workflow (statemachines/
release_image.asl.json): the image is built and pushed by CodeBuild, a new job definition
revision runs it, a smoke-test desktop on that revision must reach READY, and only then does the
release parameter (which SubmitJob reads) name it. Anything failing leaves the current release
as it was. Desktops already running keep the revision they were started on. The newest
``releases_to_keep`` promoted releases stay available to return to (``activate``); older ones
are retired and their job definition revisions deregistered.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet import batch
from dcvfleet.adapters import (
    BatchJobs,
    HostCommands,
    ImageBuilds,
    ReleaseRecords,
    Releases,
    SessionSecrets,
    Workflows,
)
from dcvfleet.config import ReleaseSettings
from dcvfleet.errors import (
    HostCommandError,
    InvalidRequestError,
    ReleaseConflictError,
    ReleaseNotFoundError,
    SessionConflictError,
    SmokeTestFailedError,
)
from dcvfleet.model import Session, Status
from dcvfleet.sessions import cause_message, provisioning_input
from dcvfleet.store import SessionStore, now_iso

logger = Logger(child=True)

#: builds/<version>.tar.gz (or .zip) in the builds bucket; the version names the release.
BUILD_KEY = re.compile(r"^builds/(?P<version>[0-9A-Za-z][0-9A-Za-z._-]{0,63})\.(?:tar\.gz|zip)$")
SMOKE_OWNER = "dcvfleet-release"
#: A release's statuses, in the order a successful one goes through them.
BUILDING, TESTING, CURRENT, AVAILABLE, FAILED, RETIRED = (
    "BUILDING",
    "TESTING",
    "CURRENT",
    "AVAILABLE",
    "FAILED",
    "RETIRED",
)


@dataclass(frozen=True)
class Build:
    release: str
    artifact: str  # s3://bucket/key


def parse_build(bucket: str, key: str) -> Build:
    match = BUILD_KEY.match(key)
    if not match:
        raise InvalidRequestError(
            f"key: {key!r} is not builds/<version>.tar.gz or builds/<version>.zip"
        )
    return Build(release=match["version"], artifact=f"s3://{bucket}/{key}")


def ubuntu_snapshot(moment: datetime) -> str:
    """The Ubuntu archive snapshot id (YYYYMMDDTHHMMSSZ) of the start of ``moment``'s UTC day,
    which the image build installs every package from (container/Dockerfile, UBUNTU_SNAPSHOT;
    https://documentation.ubuntu.com/server/how-to/software/snapshot-service). Each release
    takes the day it begins: its image gets that day's security updates, and no build depends
    on a snapshot old enough for the service to have dropped it."""
    return moment.astimezone(UTC).strftime("%Y%m%dT000000Z")


def begin(
    records: ReleaseRecords,
    bucket: str,
    key: str,
    execution: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """Record a new release as BUILDING; a version that was released before is refused."""
    build = parse_build(bucket, key)
    snapshot = ubuntu_snapshot(now or datetime.now(UTC))
    records.create(
        build.release,
        {
            "status": BUILDING,
            "artifact": build.artifact,
            "execution": execution,
            "ubuntuSnapshot": snapshot,
        },
    )
    logger.info(
        "release begun", release=build.release, artifact=build.artifact, ubuntu_snapshot=snapshot
    )
    return {"release": build.release, "artifact": build.artifact, "ubuntuSnapshot": snapshot}


def register(
    records: ReleaseRecords,
    images: ImageBuilds,
    releases: Releases,
    settings: ReleaseSettings,
    release: str,
) -> dict[str, str]:
    """A new revision of the desktop job definition on the release's image (the built tag)."""
    record = records.require(release)
    if record.get("jobDefinition"):
        return {"jobDefinition": record["jobDefinition"], "image": record["image"]}
    image = images.image_uri(settings.repository_uri, release)
    current = releases.current()
    definition = images.register_revision(current.job_definition, image, release)
    records.update(release, status=TESTING, image=image, jobDefinition=definition)
    logger.info("job definition registered", release=release, job_definition=definition)
    return {"jobDefinition": definition, "image": image}


def start_smoke(
    sessions: SessionStore,
    records: ReleaseRecords,
    workflows: Workflows,
    settings: ReleaseSettings,
    release: str,
) -> dict[str, str]:
    """A smoke-test desktop on the release's revision, through the real provisioning workflow."""
    record = records.require(release)
    if record.get("smokeSessionId"):
        return {"sessionId": record["smokeSessionId"]}
    # A UUID like every desktop's (the agent's events must carry one, and the Batch job is named
    # after it), one per workflow execution: a retried step finds the same desktop.
    session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{record['execution']}#smoke-test"))
    created = now_iso()
    session = Session(
        session_id=session_id,
        owner=SMOKE_OWNER,
        backend="batch",
        os="linux",
        instance_type=settings.smoke_instance_type,
        status=Status.PROVISIONING,
        created_at=created,
        updated_at=created,
        execution_arn=workflows.execution_arn(settings.provision_state_machine_arn, session_id),
        extra={"username": "smoketest", "jobDefinition": record["jobDefinition"]},
    )
    sessions.create(session, max_active=1_000_000)  # not a user's desktop: no per-user limit
    records.update(release, smokeSessionId=session_id)
    workflows.start(settings.provision_state_machine_arn, session_id, provisioning_input(session))
    return {"sessionId": session_id}


#: ``glxinfo -B``'s lines that name who renders OpenGL (Mesa's glxinfo, as every distribution
#: ships it: "OpenGL vendor string: NVIDIA Corporation", "OpenGL renderer string: ...").
GL_LINE = re.compile(r"^OpenGL (vendor|renderer) string:[ \t]*(.*?)[ \t]*$", re.M)


def gl_renderer(glxinfo: str) -> tuple[str, str]:
    """(vendor, renderer) from ``glxinfo -B``'s output; empty strings for a line it lacks."""
    found: dict[str, str] = dict(GL_LINE.findall(glxinfo))
    return found.get("vendor", ""), found.get("renderer", "")


def check_session_gpu(
    commands: HostCommands,
    jobs: BatchJobs,
    settings: ReleaseSettings,
    session: Session,
) -> str:
    """The smoke-test desktop's OpenGL must be the NVIDIA GPU's, as the DCV session's own
    clients see it (``glxinfo -B`` inside the session, through DCV-GL): an image whose session
    renders in software (Mesa's llvmpipe) would hand every user a desktop without its GPU.
    Returns the renderer; raises SmokeTestFailedError otherwise."""
    job = jobs.describe(session.job_id) if session.job_id else None
    if job is None or not job.task_arn:
        raise SmokeTestFailedError("the smoke-test desktop's container could not be found")
    instance_id = session.instance_id  # recorded by the provisioning workflow
    if not instance_id:
        raise SmokeTestFailedError("the smoke-test desktop's instance could not be found")
    try:
        output = commands.session_renderer(
            instance_id,
            settings.session_renderer_document,
            session.dcv_session_id or "desktop",
            task_arn=job.task_arn,
        )
    except HostCommandError as exc:
        raise SmokeTestFailedError(
            f"OpenGL in the smoke-test desktop's session could not be checked: {exc.message}"
        ) from exc
    vendor, renderer = gl_renderer(output)
    if "NVIDIA" not in vendor.upper():
        raise SmokeTestFailedError(
            "the smoke-test desktop's session does not render OpenGL on the NVIDIA GPU "
            f"(glxinfo -B: vendor {vendor or 'none'!r}, renderer {renderer or 'none'!r})"
        )
    return renderer


def check_smoke(
    sessions: SessionStore,
    records: ReleaseRecords,
    release: str,
    *,
    commands: HostCommands | None = None,
    jobs: BatchJobs | None = None,
    settings: ReleaseSettings | None = None,
) -> dict[str, Any]:
    """``done`` once the smoke-test desktop is READY and its session's OpenGL is the NVIDIA
    GPU's (when ``commands``, ``jobs`` and ``settings`` are given, as the workflow's handler
    gives them); raises when it failed."""
    session_id = records.require(release).get("smokeSessionId", "")
    session = sessions.get(session_id) if session_id else None
    if session is None:
        raise SmokeTestFailedError(f"the smoke-test desktop {session_id or '(none)'} is gone")
    if session.status == Status.READY:
        if commands is not None and jobs is not None and settings is not None:
            renderer = check_session_gpu(commands, jobs, settings, session)
            records.update(release, smokeRenderer=renderer)
            return {"done": True, "sessionId": session_id, "renderer": renderer}
        return {"done": True, "sessionId": session_id}
    if session.status != Status.PROVISIONING:
        raise SmokeTestFailedError(
            f"the smoke-test desktop is {session.status}: {session.status_reason or 'no reason'}"
        )
    return {"done": False, "sessionId": session_id}


def end_smoke(
    sessions: SessionStore,
    records: ReleaseRecords,
    jobs: BatchJobs,
    secrets: SessionSecrets,
    release: str,
) -> dict[str, bool]:
    """The smoke-test desktop has done its job: end its container, delete its secret."""
    session_id = records.require(release).get("smokeSessionId", "")
    session = sessions.get(session_id) if session_id else None
    if session is None:
        return {"ended": False}
    batch.end_job(jobs, session, f"DCV Fleet: smoke test of release {release} done")
    secrets.delete(session_id)
    try:
        if session.status == Status.READY:
            session = sessions.update(session, status=Status.TERMINATING)
            sessions.update(session, status=Status.TERMINATED, connection_url=None)
        elif session.status == Status.PROVISIONING:
            reason = f"Smoke test of release {release} ended before it was ready."
            sessions.update(session, status=Status.FAILED, status_reason=reason, task_token=None)
    except SessionConflictError:  # its provisioning is still writing: the sweep ends it
        logger.warning("smoke-test desktop left for the sweep", session_id=session_id)
    return {"ended": True}


def promote(
    records: ReleaseRecords,
    releases: Releases,
    images: ImageBuilds,
    settings: ReleaseSettings,
    release: str,
) -> dict[str, Any]:
    """Make the tested release current, then retire what is beyond the last N."""
    record = records.require(release)
    if record["status"] not in (TESTING, CURRENT):
        raise ReleaseConflictError(f"release {release} is {record['status']}, not TESTING")
    _make_current(records, releases, release, record)
    retired = _retire(records, images, settings.releases_to_keep)
    logger.info("release promoted", release=release, retired=retired)
    return {"release": release, "retired": retired}


def _make_current(
    records: ReleaseRecords, releases: Releases, release: str, record: dict[str, str]
) -> None:
    releases.publish(release, record["image"], record["jobDefinition"])
    for other in records.list():
        if other["release"] != release and other["status"] == CURRENT:
            records.update(other["release"], status=AVAILABLE)
    records.update(release, status=CURRENT, promotedAt=now_iso(), reason="")


def _retire(records: ReleaseRecords, images: ImageBuilds, keep: int) -> list[str]:
    kept = [r for r in records.list() if r["status"] in (CURRENT, AVAILABLE)]
    kept.sort(key=lambda r: r.get("promotedAt", ""), reverse=True)
    retired = []
    for old in kept[keep:]:
        if old["status"] == CURRENT:
            continue
        images.deregister_revision(old["jobDefinition"])
        records.update(old["release"], status=RETIRED)
        retired.append(old["release"])
    return retired


def fail(
    records: ReleaseRecords,
    images: ImageBuilds,
    release: str,
    error: dict[str, Any] | None,
) -> dict[str, str]:
    """The release did not make it: record why; the current release is untouched."""
    error = error or {}
    reason = f"{error.get('Error', 'States.TaskFailed')}: {cause_message(error.get('Cause', ''))}"
    record = records.get(release)
    if record is None:
        return {"release": release, "reason": reason}
    if record.get("jobDefinition") and record["status"] in (BUILDING, TESTING):
        images.deregister_revision(record["jobDefinition"])
    if record["status"] in (BUILDING, TESTING):
        records.update(release, status=FAILED, reason=reason)
    logger.warning("release failed", release=release, reason=reason)
    return {"release": release, "reason": reason}


def reject(error: dict[str, Any] | None) -> dict[str, str]:
    """Why a build was refused before it became a release (a bad key, a version released
    before), as the operators should read it."""
    error = error or {}
    return {"reason": cause_message(error.get("Cause", "")) or str(error.get("Error", "refused"))}


def activate(records: ReleaseRecords, releases: Releases, release: str) -> dict[str, str]:
    """Return to an earlier release (or re-assert the current one): an admin's rollback."""
    record = records.get(release)
    if record is None:
        raise ReleaseNotFoundError(f"release {release} does not exist")
    if record["status"] not in (CURRENT, AVAILABLE):
        raise ReleaseConflictError(
            f"release {release} is {record['status']}; only a CURRENT or AVAILABLE one can be "
            "made current"
        )
    _make_current(records, releases, release, record)
    logger.info("release activated", release=release)
    return {"release": release, "status": CURRENT}
