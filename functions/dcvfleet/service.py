"""Domain operations of the provisioning path. Pure of environment and client construction."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from dcvfleet import batch, estimates, events, limits, pool, quotas
from dcvfleet.adapters import (
    BATCH_INSTANCE_TAG,
    JOB_ENDED,
    OS_TAG,
    OWNER_TAG,
    POOL_TAG,
    SECRET_TAG,
    SESSION_TAG,
    BatchJobs,
    CapacityUnavailable,
    Ec2Hosts,
    EventKeys,
    FleetEvents,
    Instance,
    OperatorNotices,
    QuotaExhausted,
    SessionSecrets,
    UserNotifications,
    Workflows,
    dcv_username,
)
from dcvfleet.config import ApiSettings, CommonSettings, LaunchSettings, ReadySettings
from dcvfleet.errors import (
    ClaimRejectedError,
    GpuQuotaError,
    InstanceBusyError,
    InstanceGoneError,
    InsufficientCapacityError,
    InvalidRequestError,
    SessionConflictError,
    StatusConflictError,
)
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.overtaken import undone_if_overtaken
from dcvfleet.session_profile import (
    IDLE_ACTION_KEY,
    IDLE_TIMEOUT_KEY,
    IDLE_TIMEOUT_TAG,
    session_view,
)
from dcvfleet.sessions import Caller, get_session, ready_view, start_provisioning
from dcvfleet.store import SessionStore, now_iso, reached
from dcvfleet.store import update_provisioning as _update_while_provisioning
from dcvfleet.telemetry import NO_TELEMETRY, Telemetry

logger = Logger(child=True)


# -- API ---------------------------------------------------------------------------------------
def create_session(
    store: SessionStore,
    workflows: Workflows,
    settings: ApiSettings,
    caller: Caller,
    request: CreateSessionRequest,
) -> Session:
    if request.backend not in settings.enabled_backends:
        raise InvalidRequestError(f"backend: {request.backend!r} is not enabled on this fleet")
    if request.os not in settings.default_instance_types:
        raise InvalidRequestError(
            "os: Windows desktops are not set up in this fleet "
            "(an administrator turns them on with the WindowsAmiId parameter)"
        )
    if request.backend == "batch":
        instance_type = _batch_instance_type(settings, request)
    else:
        instance_type = request.instance_type or settings.default_instance_types[request.os]
    if request.backend != "batch" and instance_type not in settings.allowed_instance_types:
        allowed = ", ".join(settings.allowed_instance_types)
        raise InvalidRequestError(f"instanceType: {instance_type!r} is not one of {allowed}")
    session_id = str(uuid.uuid4())
    created = now_iso()
    session = Session(
        session_id=session_id,
        owner=caller.sub,
        owner_email=caller.email,
        backend=request.backend,
        os=request.os,
        instance_type=instance_type,
        status=Status.PROVISIONING,
        created_at=created,
        updated_at=created,
        execution_arn=Workflows.execution_arn(settings.state_machine_arn, session_id),
        extra={"username": caller.username, **request.profile},
    )
    store.create(session, settings.max_active_sessions)
    start_provisioning(store, workflows, settings.state_machine_arn, session_id, session)
    return session


@dataclass(frozen=True)
class NotificationSubscription:
    """A user's address, just subscribed to their own notifications: SNS has sent it a
    confirmation e-mail, whose link the user must follow once."""

    email: str
    subscription_arn: str

    @property
    def message(self) -> str:
        return (
            f"We sent a message to {self.email}: follow its confirmation link once, and you will "
            "be e-mailed when a desktop of yours is ready, cannot be started, is about to stop "
            "because nobody uses it, or has stopped."
        )


def subscribe_owner(
    store: SessionStore, notifications: UserNotifications, caller: Caller
) -> NotificationSubscription | None:
    """Subscribe the caller's e-mail address (their ID token's ``email``) to their own
    notifications, once per address: None when they have no address or it is subscribed
    already. An address changed in Cognito is subscribed on the next request, and the old one
    unsubscribed."""
    if not caller.email:
        return None
    previous = store.notification_address(caller.sub)
    if previous is not None and previous.email == caller.email:
        return None
    arn = notifications.subscribe(caller.email, caller.sub)
    store.record_notification_address(caller.sub, caller.email, arn)
    logger.info("notifications subscribed", subscription=arn)
    if previous is not None and previous.subscription != arn:
        # the old address may no longer be theirs to read: it gets nothing more of this user's
        deleted = notifications.unsubscribe(previous.subscription)
        if not deleted:
            logger.warning(
                "the previous address's subscription could not be deleted",
                subscription=previous.subscription,
            )
    return NotificationSubscription(email=caller.email, subscription_arn=arn)


def _batch_instance_type(settings: ApiSettings, request: CreateSessionRequest) -> str:
    """A container desktop runs Linux on whichever GPU type its compute environment launches."""
    types = settings.batch_instance_types
    if request.os != "linux":
        raise InvalidRequestError("os: a batch desktop runs linux")
    if request.instance_type and request.instance_type not in types:
        raise InvalidRequestError(
            f"instanceType: a batch desktop runs on its compute environment's types "
            f"({', '.join(types)}), not {request.instance_type!r}"
        )
    return request.instance_type or (types[0] if types else "GPU")


CREDENTIALS_REVEALED = "Session Credentials Revealed"
#: A desktop in these statuses has no credentials to reveal.
NO_CREDENTIALS = frozenset({Status.TERMINATING, Status.TERMINATED, Status.FAILED})
#: GET /admin/instances?state=... -> the EC2 states it covers.
INSTANCE_STATES = {
    "running": ["pending", "running"],
    "stopped": ["stopping", "stopped"],
    "terminated": ["shutting-down", "terminated"],
}


def reveal_credentials(  # noqa: PLR0917 (the adapters it needs, then the request)
    store: SessionStore,
    secrets: SessionSecrets,
    events: FleetEvents,
    caller: Caller,
    session_id: str,
    request: dict[str, str],
) -> dict[str, str]:
    """GET /sessions/{id}/credentials: the owner's DCV user name and password. Each reveal is
    published as an audit event (without the password) before the password is returned."""
    session = get_session(store, caller, session_id)
    found = None
    if session.secret_arn and session.status not in NO_CREDENTIALS:
        found = secrets.read(session.secret_arn)
    if found is None:
        raise StatusConflictError(
            f"the desktop is {session.status} and has no credentials"
            + (" yet" if session.status == Status.PROVISIONING else ""),
            session.status.value,
        )
    events.publish(
        CREDENTIALS_REVEALED,
        {
            "sessionId": session_id,
            "owner": session.owner,
            "revealedTo": caller.username,
            "revealedAt": now_iso(),
            **request,
        },
    )
    logger.info("credentials revealed", audit=True, session_id=session_id, to=caller.username)
    return found


def options(settings: ApiSettings) -> dict[str, Any]:
    """GET /options: what a user may ask for on this fleet."""
    os_by_backend = {"ec2": ["linux", "windows"], "batch": ["linux"]}
    types = {
        "ec2": list(settings.allowed_instance_types),
        "batch": list(settings.batch_instance_types),
    }
    return {
        "backends": list(settings.enabled_backends),
        "os": {
            b: [o for o in os_by_backend[b] if o in settings.default_instance_types]
            for b in settings.enabled_backends
        },
        "instanceTypes": {b: types[b] for b in settings.enabled_backends},
        "defaultInstanceTypes": dict(settings.default_instance_types),
        "maxActiveSessions": settings.max_active_sessions,
    }


def owner_sub(store: SessionStore, user: str) -> str:
    """The sub of the user a user name, e-mail or sub names, from their desktops (instances are
    tagged with the sub); ``user`` itself when no desktop names them."""
    found, _ = store.page(status=None, user=user, limit=1, after=None)
    return found[0].owner if found else user


def fleet_instances(
    hosts: Ec2Hosts,
    settings: CommonSettings,
    *,
    state: str | None,
    owner: str | None,
    limit: int,
    token: str | None,
    store: SessionStore | None = None,
) -> dict[str, Any]:
    """GET /admin/instances: one page of the fleet's instances (the fleet tag), by state; with
    the ``store``, each desktop's owner's name and each Batch instance's desktops."""
    filters = {f"tag:{settings.fleet_tag_key}": [settings.fleet_tag_value]}
    if state is not None:
        filters["instance-state-name"] = INSTANCE_STATES[state]
    if owner:
        filters[f"tag:{OWNER_TAG}"] = [owner]
    found, next_token = hosts.fleet_page(filters, limit, token)
    instances = []
    for instance in found:
        view = {
            "instanceId": instance.instance_id,
            "instanceType": instance.instance_type,
            "state": instance.state,
            "backend": "batch" if BATCH_INSTANCE_TAG in instance.tags else "ec2",
            "launchTime": instance.launch_time,
            "sessionId": instance.tags.get(SESSION_TAG),
            "owner": instance.tags.get(OWNER_TAG),
            "privateIpAddress": instance.private_ip,
            "availabilityZone": instance.availability_zone,
        }
        instances.append({k: v for k, v in view.items() if v is not None})
    if store is not None:
        _add_desktops(store, instances)
    return {"instances": instances, **({"nextToken": next_token} if next_token else {})}


def _add_desktops(store: SessionStore, instances: list[dict[str, Any]]) -> None:
    """Each instance's owner's name, and each Batch instance's desktops, from the session
    records: the owner's name is looked up rather than tagged on the instance at launch, so it
    is right for instances launched before, for Batch's own instances (never tagged by DCV
    Fleet), and never exposed in tags to whoever may describe instances."""
    sessions = store.get_many([str(i["sessionId"]) for i in instances if i.get("sessionId")])
    batch_ids = [str(i["instanceId"]) for i in instances if i["backend"] == "batch"]
    on = store.batch_desktops(batch_ids)
    for view in instances:
        session = sessions.get(str(view.get("sessionId", "")))
        name = session.to_admin_api().get("ownerName") if session else None
        if name:
            view["ownerName"] = name
        if view["backend"] == "batch":
            view["desktops"] = [
                {
                    "sessionId": s.session_id,
                    "name": limits.desktop_name(s),
                    "owner": s.owner,
                    **({"ownerName": n} if (n := s.to_admin_api().get("ownerName")) else {}),
                    "status": s.status.value,
                }
                for s in on.get(str(view["instanceId"]), [])
            ]


# -- provisioning workflow steps ---------------------------------------------------------------
def create_credentials(
    store: SessionStore, secrets: SessionSecrets, settings: CommonSettings, session_id: str
) -> dict[str, str]:
    session = store.require(session_id)
    if session.status != Status.PROVISIONING:  # cancelled before its credentials were made
        raise SessionConflictError(f"session {session_id} is {session.status}, not provisioning")
    username = dcv_username(session.extra.get("username", ""))
    arn = secrets.create(
        session_id,
        username,
        tags={
            SESSION_TAG: session_id,
            OWNER_TAG: session.owner,
            settings.fleet_tag_key: settings.fleet_tag_value,
        },
    )
    with undone_if_overtaken(store, session_id, "secret", lambda: secrets.delete(session_id)):
        _update_while_provisioning(store, session_id, step="credentials", secret_arn=arn)
    return {"secretArn": arn}


def launch_instance(
    store: SessionStore,
    hosts: Ec2Hosts,
    secrets: SessionSecrets,
    settings: LaunchSettings,
    session_id: str,
    *,
    secret_arn: str,
    operators: OperatorNotices | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
    warm_pool: pool.WarmPool | None = None,
) -> dict[str, str]:
    """Launch the session's host, falling back through instance types, then subnets; then let
    that host, and no other, read the session's secret. A desktop the warm pool serves takes a
    pool host instead when one is claimable (``_from_pool``); the rest of the provisioning is the
    same either way.

    A type EC2 refuses for the account's vCPU quota (VcpuLimitExceeded) is not tried again, nor is
    any type counted against the same quota, in any subnet: the quota is the account's, per
    Region and per group of families (every G type shares one). When nothing launched and a quota
    refused, the operators are told, once, which quota and how to raise it; when every type was
    refused for its quota, the desktop fails with GpuQuotaError (the user reads that GPU desktops
    are not enabled yet), else with InsufficientCapacityError."""
    session = store.require(session_id)
    if session.status != Status.PROVISIONING:  # cancelled before its host was launched
        raise SessionConflictError(f"session {session_id} is {session.status}, not provisioning")
    existing = hosts.find_by_session(session_id)
    path: estimates.StartPath | None = None  # a retried step keeps the path it recorded
    if existing:  # a retried step: the earlier attempt launched it (or handed a pool host over)
        instance = existing[0]
        if instance.state == "stopped" and POOL_TAG in instance.tags:
            hosts.start(instance.instance_id)  # handed over, and not started before it stopped
    else:
        pooled = _from_pool(session, hosts, settings, secret_arn, warm_pool) if warm_pool else None
        if pooled:
            path = "pool-stopped" if pooled.state == "stopped" else "pool"
        instance = pooled or _launch_new(
            session, hosts, settings, secret_arn, operators=operators, telemetry=telemetry
        )
        path = path or "launch"
    # RunInstances may return after the desktop was cancelled: then nobody else will end it
    with undone_if_overtaken(
        store, session_id, "instance", lambda: hosts.terminate(instance.instance_id)
    ):
        secrets.grant_reader(secret_arn, f"{settings.host_role_id}:{instance.instance_id}")
        _update_while_provisioning(
            store,
            session_id,
            step="capacity",
            instance_id=instance.instance_id,
            instance_type=instance.instance_type,
            extra=estimates.recorder(store, session.extra, path) if path else None,
        )
    if path in ("pool", "pool-stopped") and warm_pool is not None:
        _hand_over(session, hosts, instance, warm_pool, settings=settings, secret_arn=secret_arn)
    return {"instanceId": instance.instance_id, "instanceType": instance.instance_type}


def _from_pool(
    session: Session,
    hosts: Ec2Hosts,
    settings: LaunchSettings,
    secret_arn: str,
    warm: pool.WarmPool,
) -> Instance | None:
    """The session's host from the warm pool, or None (a miss: launch as before).

    The claim is one conditional write (``pool.PoolStore.claim``): two desktops never get one
    host, and a claimed host never returns to the pool (a cancel terminates it as it would a
    launched one). The host is handed over (``_hand_over``) once the record names it and the
    session's secret is readable by it. A desktop takes a host of its own profile's pool only,
    launched as its own launch would be: the same type and OS, and hibernation configured if it
    should hibernate (hibernation can only be enabled at launch:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/enabling-hibernation.html)."""
    if session.backend != "ec2":
        return None
    profile = str(session_view(session.backend, session.os, session.extra)["profile"])
    host = warm.take(
        session.session_id,
        now_iso(),
        profile=profile,
        instance_type=session.instance_type,
        os=session.os,
        hibernate=session.extra.get(IDLE_ACTION_KEY) == "hibernate",
    )
    if host is None:
        logger.info("warm pool miss", session_id=session.session_id, profile=profile)
        return None
    instance = hosts.describe(host.instance_id)
    if instance is None or instance.state not in ("pending", "running", "stopped"):
        # gone since it was recorded: its record stays CLAIMED (never claimable again)
        logger.warning("claimed pool host is gone", instance_id=host.instance_id)
        return None
    logger.info("warm pool hit", session_id=session.session_id, instance_id=host.instance_id)
    return instance


def _hand_over(
    session: Session,
    hosts: Ec2Hosts,
    instance: Instance,
    warm: pool.WarmPool,
    *,
    settings: LaunchSettings,
    secret_arn: str,
) -> None:
    """Give a claimed pool host to its desktop: the tags a launch would have given it, its
    session's among them, which its waiting agent binds to at once. Only now, with the record
    naming the host and the session's secret readable by it: an agent that binds sooner would
    find no secret to read, and its Host Ready would be refused as not from the desktop's host.
    A STOPPED host is started (after the tags: its agent reads them as it starts). Then the pool
    is refilled, without waiting. A retried step does it again, to the same effect."""
    hosts.tag(instance.instance_id, _launch_tags(session, settings, secret_arn))
    if instance.state == "stopped":
        hosts.start(instance.instance_id)
    warm.refill()


def _launch_tags(session: Session, settings: LaunchSettings, secret_arn: str) -> dict[str, str]:
    session_id = session.session_id
    return {
        settings.common.fleet_tag_key: settings.common.fleet_tag_value,
        SESSION_TAG: session_id,
        OWNER_TAG: session.owner,
        OS_TAG: session.os,
        SECRET_TAG: secret_arn,
        "Name": f"dcvfleet-{session_id[:8]}",
        # the desktop's own idle timeout, which its agent reads from its tags (a desktop made
        # before profiles has none: its agent keeps the fleet's, IdleTimeoutSeconds)
        **(
            {IDLE_TIMEOUT_TAG: session.extra[IDLE_TIMEOUT_KEY]}
            if IDLE_TIMEOUT_KEY in session.extra
            else {}
        ),
    }


def _launch_new(
    session: Session,
    hosts: Ec2Hosts,
    settings: LaunchSettings,
    secret_arn: str,
    *,
    operators: OperatorNotices | None,
    telemetry: Telemetry,
) -> Instance:
    session_id = session.session_id
    types = list(dict.fromkeys([session.instance_type, *settings.fallback_instance_types]))
    tags = _launch_tags(session, settings, secret_arn)
    hibernate = session.extra.get(IDLE_ACTION_KEY) == "hibernate"
    #: quota key -> (the quota, EC2's first refusal under it)
    refused: dict[str, tuple[quotas.Quota, QuotaExhausted]] = {}
    for subnet_id, instance_type in itertools.product(settings.subnet_ids, types):
        quota = quotas.on_demand_quota(instance_type)
        if quota.key in refused:
            continue  # no subnet and no type of the same quota can launch either
        try:
            return hosts.launch(
                launch_template_id=settings.launch_templates[session.os],
                instance_type=instance_type,
                subnet_id=subnet_id,
                tags=tags,
                client_token=launch_token(session_id, subnet_id, instance_type),
                hibernate=hibernate,
            )
        except CapacityUnavailable as exc:
            logger.warning("no capacity", attempt=str(exc), session_id=session_id)
        except QuotaExhausted as exc:
            logger.warning(
                "vCPU quota exhausted",
                attempt=str(exc),
                quota=quota.name,
                quota_code=quota.code,
                session_id=session_id,
            )
            refused[quota.key] = (quota, exc)
    if not refused:
        raise InsufficientCapacityError(
            f"no capacity for {', '.join(types)} in {', '.join(settings.subnet_ids)}"
        )
    for quota, _ in refused.values():
        telemetry.vcpu_quota_exceeded(quota.key)
    topic = operators.topic_arn if operators is not None else settings.operator_topic_arn
    report = _quota_report(session_id, settings, types, refused, account=_account_of(topic))
    _tell_operators(operators, report, session_id)
    left = [t for t in types if quotas.on_demand_quota(t).key not in refused]
    if not left:
        raise GpuQuotaError(report[1].split("\n", 1)[0])
    raise InsufficientCapacityError(
        f"no capacity for {', '.join(left)} in {', '.join(settings.subnet_ids)}"
    )


def _quota_report(
    session_id: str,
    settings: LaunchSettings,
    types: list[str],
    refused: dict[str, tuple[quotas.Quota, QuotaExhausted]],
    *,
    account: str,
) -> tuple[str, str]:
    """The operators' notice (subject, message): each quota that refused, its code, the account
    and Region, and how to ask for more."""
    region = settings.region
    where = f"account {account}, Region {region}" if account else f"Region {region}"
    names = ", ".join(f"{q.name} ({q.code})" if q.code else q.name for q, _ in refused.values())
    lines = [
        f"EC2 vCPU quota exhausted in {where}: {names}. Desktops of "
        f"{', '.join(types)} cannot be launched until it is raised.",
        "",
    ]
    for quota, exc in refused.values():
        lines += [
            f"Quota: {quota.name}",
            f"  code: {quota.code or 'see the Service Quotas console'} (service code ec2)",
            f"  Region: {region}",
            f"  refused: {exc.instance_type} in {exc.subnet_id}: {exc.code} {exc.message}".rstrip(),
        ]
        lines += [
            f"  {line}"
            for line in quotas.increase_advice(quota, region, exc.instance_type).split("\n")
        ]
        lines.append("")
    lines.append(
        f"Desktop {session_id} could not be launched (the requested type and its fallbacks: "
        f"{', '.join(types)}; subnets: {', '.join(settings.subnet_ids)}; a type under a quota "
        "that refused is not tried again). A new AWS account's quota for GPU instances is "
        "0 vCPUs."
    )
    subject = f"DCV Fleet: EC2 vCPU quota exhausted in {region} ({', '.join(refused)})"
    return subject, "\n".join(lines)


def _account_of(arn: str) -> str:
    """The account of an ARN (arn:partition:service:region:account:resource)."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def _tell_operators(
    operators: OperatorNotices | None, report: tuple[str, str], session_id: str
) -> None:
    subject, message = report
    if operators is None or not operators.topic_arn:
        logger.error("operators not told: no operator topic", session_id=session_id, notice=message)
        return
    try:
        operators.publish(subject, message)
    except Exception:  # the desktop fails either way; the metric and this log still tell
        logger.exception("operators could not be told", session_id=session_id, notice=message)
        return
    logger.info("operators told", session_id=session_id, subject=subject)


def resume_instance(store: SessionStore, hosts: Ec2Hosts, session_id: str) -> dict[str, str]:
    """Start a resumed desktop's own instance again (same disk); a retried step finds it started."""
    session = store.require(session_id)
    if session.status != Status.PROVISIONING or not session.instance_id:
        raise SessionConflictError(f"session {session_id} is {session.status}, not resuming")
    instance = hosts.describe(session.instance_id)
    if instance is None or instance.state in ("shutting-down", "terminated"):
        raise InstanceGoneError(f"instance {session.instance_id} no longer exists")
    if instance.tags.get(SESSION_TAG) != session_id:
        raise InstanceGoneError(f"instance {session.instance_id} is not tagged for this session")
    if instance.state == "stopping":
        raise InstanceBusyError(f"instance {session.instance_id} is still stopping")
    if instance.state == "stopped":
        hosts.start(instance.instance_id)
    _update_while_provisioning(
        store, session_id, step="capacity", extra=estimates.recorder(store, session.extra, "resume")
    )
    return {"instanceId": instance.instance_id, "instanceType": instance.instance_type}


def launch_token(session_id: str, subnet_id: str, instance_type: str) -> str:
    """RunInstances' idempotency token: the same for a retry of the same attempt (<= 64 chars)."""
    digest = hashlib.sha256(f"{session_id}/{subnet_id}/{instance_type}".encode()).hexdigest()
    return f"{session_id[:24]}-{digest[:32]}"


def await_host_ready(
    store: SessionStore,
    workflows: Workflows,
    session_id: str,
    task_token: str,
    jobs: BatchJobs | None = None,
) -> bool:
    """Park the workflow's task token on the record; complete at once if the host already spoke,
    or fail at once if a batch desktop's job already ended (its state change, seen before the
    token was parked, could not)."""
    session = _update_while_provisioning(store, session_id, task_token=task_token)
    if session.dcv_session_id:
        return workflows.succeed(task_token, _ready_output(session))
    if session.backend == "batch" and jobs is not None and session.job_id:
        job = jobs.describe(session.job_id)
        if job is None or job.status in JOB_ENDED:
            batch.fail_wait(workflows, task_token, job)
            return True
    return False


def _ready_output(session: Session) -> dict[str, str]:
    return {"instanceId": session.instance_id or "", "dcvSessionId": session.dcv_session_id or ""}


@dataclass(frozen=True)
class HostReadyClaim:
    instance_id: str
    session_id: str
    dcv_session_id: str

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> HostReadyClaim:
        return cls(
            instance_id=detail["instanceId"],
            session_id=detail["sessionId"],
            dcv_session_id=detail["dcvSessionId"],
        )


def authenticate_agent_event(
    store: SessionStore,
    keys: EventKeys,
    detail_type: str,
    detail: dict[str, Any],
    *,
    window_seconds: int,
    now: datetime | None = None,
) -> Session:
    """An agent event speaks for its session only when signed with that session's event key,
    which only the session's own host (or container) can read: a host cannot make the control
    plane act on another host's session. Returns the session.

    The signature covers ``sentAt``, so a signed event cannot be made to look fresh: it is
    accepted only while ``sentAt`` is within ``window_seconds`` of now (either way: clock skew),
    and only if it is newer than every event accepted from the session before (one conditional
    write, so that of two copies delivered at once exactly one passes). A replayed, stale or
    out-of-order event is refused here and changes nothing."""
    session_id = detail["sessionId"]
    session = store.get(session_id)
    if session is None:
        raise ClaimRejectedError(f"unknown session {session_id}")
    if "signature" not in detail:
        raise ClaimRejectedError(
            f"signature: is required (session {session_id}'s event key signs its events)"
        )
    key = keys.key(session.secret_arn) if session.secret_arn else None
    if key is None:
        raise ClaimRejectedError(f"session {session_id} has no event key to check a signature")
    if not events.signed_by(key, detail_type, detail):
        raise ClaimRejectedError(f"signature: not made with session {session_id}'s event key")
    sent_at = _sent_at(detail, session_id)
    moment = now or datetime.now(UTC)
    off = (moment - sent_at).total_seconds()
    if abs(off) > window_seconds:
        when = f"{off:.0f} s ago" if off > 0 else f"{-off:.0f} s ahead of this clock"
        raise ClaimRejectedError(
            f"sentAt: {detail['sentAt']} ({when}) is outside the {window_seconds} s window "
            f"events of session {session_id} must arrive in (a late or replayed event)"
        )
    if not store.accept_agent_event(session_id, round(sent_at.timestamp() * 1000)):
        raise ClaimRejectedError(
            f"sentAt: {detail['sentAt']} is not newer than the last event accepted from session "
            f"{session_id} (a replayed or out-of-order event)"
        )
    return session


def _sent_at(detail: dict[str, Any], session_id: str) -> datetime:
    raw = detail.get("sentAt")
    try:
        parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ClaimRejectedError(f"sentAt: {raw!r} of session {session_id} is not a UTC time")
    return parsed


def accept_host_ready(
    store: SessionStore,
    hosts: Ec2Hosts,
    workflows: Workflows,
    claim: HostReadyClaim,
    jobs: BatchJobs | None = None,
) -> bool:
    """Check an agent's claim against the record and the instance (for a batch desktop: the
    instance its job's container runs on), then wake the workflow.

    Returns True when the waiting workflow was completed by this call.
    """
    session = store.get(claim.session_id)
    if session is None:
        raise ClaimRejectedError(f"unknown session {claim.session_id}")
    if session.status != Status.PROVISIONING:
        raise ClaimRejectedError(
            f"session {claim.session_id} is {session.status}, not provisioning"
        )
    if session.backend == "batch":
        if jobs is None:
            raise ClaimRejectedError(f"session {claim.session_id} is a batch desktop")
        wrong = batch.host_of_claim(session, jobs, claim.instance_id)
        if wrong:
            raise ClaimRejectedError(wrong)
    elif session.instance_id != claim.instance_id:
        raise ClaimRejectedError(
            f"instance {claim.instance_id} is not the host of session {claim.session_id}"
        )
    instance = hosts.describe(claim.instance_id)
    if instance is None or instance.state != "running":
        state = instance.state if instance else "missing"
        raise ClaimRejectedError(f"instance {claim.instance_id} is {state}, not running")
    if session.backend != "batch" and instance.tags.get(SESSION_TAG) != claim.session_id:
        raise ClaimRejectedError(f"instance {claim.instance_id} is not tagged for this session")
    if session.dcv_session_id == claim.dcv_session_id and not session.task_token:
        return False  # a duplicate before the workflow parked its token
    updated = _update_while_provisioning(
        store,
        claim.session_id,
        step="booted",
        dcv_session_id=claim.dcv_session_id,
        instance_id=claim.instance_id,
    )
    if updated.task_token:
        return workflows.succeed(updated.task_token, _ready_output(updated))
    return False


def connection_url(host: str, port: int, dcv_session_id: str) -> str:
    return f"https://{host}:{port}/#{dcv_session_id}"


def mark_ready(
    store: SessionStore,
    hosts: Ec2Hosts,
    settings: ReadySettings,
    session_id: str,
    *,
    telemetry: Telemetry = NO_TELEMETRY,
) -> dict[str, str]:
    """Publish the verified host's connection URL and move the session to READY; the time it
    took is reported once, by the call that made it READY."""
    session = store.require(session_id)
    if session.status == Status.READY and session.connection_url:
        return ready_view(session)  # a retried step: already done (and already counted)
    if not session.instance_id or not session.dcv_session_id:
        raise SessionConflictError(f"session {session_id} has no verified host")
    instance = hosts.describe(session.instance_id)
    if instance is None or instance.state != "running":
        raise SessionConflictError(f"instance {session.instance_id} is no longer running")
    if settings.connection_address == "public":
        host = instance.public_dns or instance.public_ip or instance.private_ip
    else:
        host = instance.private_ip
    if not host:
        raise SessionConflictError(f"instance {session.instance_id} has no address")
    url = connection_url(host, settings.dcv_port, session.dcv_session_id)
    ready_at = now_iso()
    store.update(
        session,
        status=Status.READY,
        connection_url=url,
        instance_type=instance.instance_type,  # a batch desktop's: the type Batch launched
        task_token=None,
        ready_at=ready_at,
        status_reason=None,
        status_detail=None,
        progress=reached(session, "ready"),
    )
    telemetry.session_ready(_seconds_between(session.resumed_at or session.created_at, ready_at))
    return ready_view(store.require(session_id))


def _seconds_between(start: str, end: str) -> float:
    """Seconds from one record time (ISO 8601, ``Z``) to a later one; never negative."""
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0.0, elapsed.total_seconds())
