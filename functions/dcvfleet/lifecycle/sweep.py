"""The fleet sweep (statemachines/sweep_fleet.asl.json): what it finds, and what it does about
each finding."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet.adapters import (
    BATCH_INSTANCE_TAG,
    POOL_TAG,
    SESSION_TAG,
    BatchJobs,
    Ec2Hosts,
    SessionSecrets,
    Workflows,
)
from dcvfleet.compensation import compensate
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import (
    ClaimRejectedError,
    SessionConflictError,
    SessionNotFoundError,
)
from dcvfleet.lifecycle.idle import start_idle_check
from dcvfleet.lifecycle.triggers import (
    AUTOMATIC_TRIGGERS,
    parse_time,
    stale,
    utc_now,
)
from dcvfleet.model import ACTIVE, BACKENDS, Status
from dcvfleet.session_profile import max_session_seconds
from dcvfleet.store import SessionStore, now_iso
from dcvfleet.telemetry import NO_TELEMETRY, Telemetry

logger = Logger(child=True)

SWEPT = frozenset({Status.READY, Status.PROVISIONING, Status.STOPPING, Status.TERMINATING})
#: The most findings one sweep acts on (the rest wait for the next sweep): the sweep workflow's
#: Map over them, and the list of their outcomes it carries, stay within Step Functions' quotas
#: (25,000 history events, 256 KiB of state data; tools/workflow_quotas.py checks both).
MAX_SWEEP_ITEMS = 250
#: The longest outcome line one finding reports.
MAX_SWEEP_OUTCOME_CHARACTERS = 200


def find_sweep_work(
    store: SessionStore,
    hosts: Ec2Hosts,
    settings: LifecycleSettings,
    *,
    telemetry: Telemetry = NO_TELEMETRY,
) -> dict[str, Any]:
    """What the sweep must act on, as a list of ``{"kind", "id"}`` items; and how many sessions
    of each backend are READY (reported for every backend, none included)."""
    now = utc_now()
    sessions = store.scan_by_status(SWEPT)
    ready_by_backend = Counter(s.backend for s in sessions if s.status == Status.READY)
    for backend in BACKENDS:
        telemetry.active_sessions(backend, ready_by_backend[backend])
    items: list[dict[str, str]] = []
    live: set[str] = set()
    for session in sessions:
        live.add(session.session_id)
        age = now - parse_time(session.updated_at)
        if session.status == Status.READY:
            ready = parse_time(session.ready_at or session.updated_at)
            # heartbeats outlive a stop and resume: one from before the desktop last became READY
            # says nothing about its agent now, so silence counts from the later of the two
            beat = session.last_heartbeat_at
            heard = max(ready, parse_time(beat)) if beat else ready
            if session.idle_check and not stale(session, settings):
                continue
            # the desktop's own maximum length (its profile's; the fleet's before profiles)
            limit = max_session_seconds(session.extra, settings.max_session_seconds)
            if limit and now - ready >= timedelta(seconds=limit):
                items.append({"kind": "max-lifetime", "id": session.session_id})
            elif now - heard >= timedelta(seconds=settings.heartbeat_timeout_seconds):
                items.append({"kind": "agent-silent", "id": session.session_id})
        elif session.status == Status.PROVISIONING:
            if age >= timedelta(seconds=settings.stuck_provisioning_seconds_for(session.backend)):
                items.append({"kind": "stuck-provisioning", "id": session.session_id})
        elif age >= timedelta(seconds=settings.stale_check_seconds):
            items.append({"kind": "stuck-stopping", "id": session.session_id})
    tag = settings.common
    for instance in hosts.fleet_instances(tag.fleet_tag_key, tag.fleet_tag_value, ["running"]):
        if BATCH_INSTANCE_TAG in instance.tags:
            continue  # Batch's compute environment owns it, and scales it in when its jobs end
        if POOL_TAG in instance.tags and SESSION_TAG not in instance.tags:
            continue  # a warm pool's host, waiting for a request: the pool's refill owns it
        if instance.tags.get(SESSION_TAG) not in live:
            items.append({"kind": "orphan", "id": instance.instance_id})
    counts: dict[str, int] = {}
    for item in items:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    logger.info("sweep found", counts=counts, sessions=len(sessions))
    if len(items) > MAX_SWEEP_ITEMS:
        logger.warning(
            "sweep acts on the first findings; the next sweep finds the rest",
            found=len(items),
            acting_on=MAX_SWEEP_ITEMS,
        )
    return {"items": items[:MAX_SWEEP_ITEMS], "counts": counts}


def sweep_item(
    store: SessionStore,
    hosts: Ec2Hosts,
    secrets: SessionSecrets,
    workflows: Workflows,
    settings: LifecycleSettings,
    *,
    kind: str,
    item_id: str,
    jobs: BatchJobs | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
) -> dict[str, str]:
    """Act on one finding of the sweep; the outcome is a short report line."""
    try:
        if kind in ("agent-silent", "max-lifetime"):
            outcome = start_idle_check(store, workflows, settings, item_id, trigger=kind)
        elif kind == "stuck-provisioning":
            outcome = _fail_stuck(
                store, hosts, secrets, workflows, item_id, jobs=jobs, telemetry=telemetry
            )
        elif kind == "stuck-stopping":
            outcome = _redrive(store, workflows, settings, item_id)
        elif kind == "orphan":
            outcome = _orphan(store, hosts, settings, item_id)
        else:
            raise ValueError(f"unknown sweep finding {kind!r}")
    except (ClaimRejectedError, SessionConflictError, SessionNotFoundError) as exc:
        outcome = f"skipped: {exc.message}"
    logger.info("sweep item", kind=kind, id=item_id, outcome=outcome)
    return {"kind": kind, "id": item_id, "outcome": outcome[:MAX_SWEEP_OUTCOME_CHARACTERS]}


def _fail_stuck(
    store: SessionStore,
    hosts: Ec2Hosts,
    secrets: SessionSecrets,
    workflows: Workflows,
    session_id: str,
    *,
    jobs: BatchJobs | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
) -> str:
    session = store.require(session_id)
    if session.status != Status.PROVISIONING:
        return f"skipped: it is {session.status}"
    if session.execution_arn:
        workflows.stop(session.execution_arn, "stuck in provisioning; failed by the fleet sweep")
    resumed = "-resume-" in (session.execution_arn or "")
    compensate(
        store,
        hosts,
        secrets,
        session_id,
        {"Error": "HostNotReadyError", "Cause": "no progress past the provisioning timeout"},
        resume=resumed,
        jobs=jobs,
        telemetry=telemetry,
    )
    return "compensated"


def _redrive(
    store: SessionStore, workflows: Workflows, settings: LifecycleSettings, session_id: str
) -> str:
    """A stop or termination whose workflow never finished: start it again."""
    session = store.require(session_id)
    if session.status not in (Status.STOPPING, Status.TERMINATING):
        return f"skipped: it is {session.status}"
    action = "terminate" if session.status == Status.TERMINATING else "stop"
    name = f"{session_id}-redrive-{session.version + 1}"
    trigger = (session.evidence or {}).get("trigger", "user")
    store.update(session, idle_check=name, idle_check_at=now_iso())
    workflows.start(
        settings.idle_state_machine_arn,
        name,
        {
            "sessionId": session_id,
            "trigger": "user" if trigger in AUTOMATIC_TRIGGERS else trigger,
            "action": action,
            "claim": {},
        },
    )
    return f"{action} started again"


def _orphan(
    store: SessionStore, hosts: Ec2Hosts, settings: LifecycleSettings, instance_id: str
) -> str:
    instance = hosts.describe(instance_id)
    if instance is None or instance.state != "running":
        return "skipped: no longer running"
    session_id = instance.tags.get(SESSION_TAG)
    session = store.get(session_id) if session_id else None
    if session is not None and session.status in ACTIVE:
        return f"skipped: session {session_id} is {session.status}"
    if settings.orphan_action == "terminate":
        hosts.terminate(instance_id)
        return "terminated"
    if settings.orphan_action == "stop":
        hosts.stop(instance, hibernate=False)
        return "stopped"
    return "reported"
