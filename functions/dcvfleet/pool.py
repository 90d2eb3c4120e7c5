"""The warm pool: hosts launched ahead of any request, one pool per profile.

A pool host is a record in the pool table (``WarmPoolTable``), keyed by its profile (partition)
and its instance id (sort key), so one Query lists a profile's pool and nothing else. The pool
has its own small table rather than items in the sessions table: the sessions table's scans (the
fleet sweep) and its indexes would otherwise have to tell pool items from sessions, and a pool
host is not anybody's desktop until it is claimed.

A host moves WARMING (launched, its agent not yet heard) → READY (EC2 says it runs; a request
can claim it now) → CLAIMED (by one session, for good: a host that served a user never returns
to the pool). In a pool that waits stopped (WarmPoolState ``stopped``), a READY host that is
made (its agent tagged it POOL_READY_TAG) moves on READY → STOPPING (being stopped: out of reach
of claims) → STOPPED (stopped to wait: claimable, the claim starts it).

Each move adds the seconds the host spent in the state it leaves to that state's total on the
record (``warmingSeconds``, ``readySeconds``, ``stoppingSeconds``, ``stoppedSeconds``), in the
same conditional write, which also requires the record's ``since`` to be the one those seconds
were counted from: the admin view prices them (dcvfleet/pool_cost.py).

A claim is one conditional write on one record, READY or STOPPED → CLAIMED with the session's id,
so two requests never get the same host: DynamoDB applies a write only if its condition holds at
that moment, and fails it with ConditionalCheckFailedException otherwise
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.SpecifyingConditions.html).
"""

from __future__ import annotations

import abc
import enum
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from dcvfleet import pool_targets, quotas
from dcvfleet.adapters import (
    OS_TAG,
    POOL_READY_TAG,
    POOL_TAG,
    SESSION_TAG,
    CapacityUnavailable,
    Ec2Hosts,
    Instance,
    QuotaExhausted,
)
from dcvfleet.config import PoolSettings
from dcvfleet.errors import LaunchError

logger = Logger()

#: The most hosts one profile's pool keeps, whatever its target says (WarmPoolSize's MaxValue).
MAX_POOL_SIZE = 20
#: A host recorded in the pool whose instance EC2 no longer lists (terminated outside DCV
#: Fleet) is dropped from the pool after this long (DescribeInstances is eventually
#: consistent: a host launched a moment ago may not be listed yet).
LOST_AFTER = timedelta(minutes=5)
#: The partition the pools' targets are kept in, one item per profile (its sort key): a profile
#: id never starts with "#", so no pool's hosts share it.
TARGETS_PARTITION = "#target"
#: A pool host still not made this long after EC2 launched (or last started) it is replaced. A
#: bare image's first boot installs a desktop, DCV and the agent: Research and Engineering
#: Studio, which makes its DCV desktops that way, quotes 10 to 15 minutes (local/sim/hosts.py,
#: BARE_BOOT_SECONDS); a host from a baked image is made in about 90 s.
MADE_WITHIN = timedelta(minutes=20)
#: The states of an instance that still belongs to the pool.
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


class PoolState(enum.StrEnum):
    WARMING = "WARMING"
    READY = "READY"
    #: Being stopped by the refill (a pool that waits stopped): not claimable until stopped.
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    CLAIMED = "CLAIMED"


#: States a request may claim (a STOPPED host is started by the claim).
CLAIMABLE = frozenset({PoolState.READY, PoolState.STOPPED})
#: States that count towards the pool's size (a CLAIMED host is somebody's desktop).
IN_POOL = frozenset({PoolState.WARMING, PoolState.READY, PoolState.STOPPING, PoolState.STOPPED})


def seconds_attribute(state: PoolState) -> str:
    """The record's attribute that totals the seconds spent in ``state`` (``readySeconds``)."""
    return f"{state.value.lower()}Seconds"


@dataclass(frozen=True)
class PoolHost:
    profile: str
    instance_id: str
    state: PoolState
    since: str
    session_id: str | None = None
    #: What the host was launched as: a request claims only a host of the type and OS it would
    #: launch, hibernation-ready if it would hibernate ("" and False: recorded before these
    #: were kept; such a host is claimed by nobody and the refill replaces it).
    instance_type: str = ""
    os: str = ""
    hibernation: bool = False
    #: Seconds spent in each state left so far (the current state's run since ``since``).
    accrued: dict[PoolState, float] = field(default_factory=dict, compare=False)

    def fits(self, *, instance_type: str, os: str, hibernate: bool) -> bool:
        """Whether a request that would launch ``instance_type`` on ``os`` (with hibernation
        configured when ``hibernate``) may take this host instead. A host launched for
        hibernation also serves a request that would not hibernate: told to stop, it stops
        (StopInstances without Hibernate) like any other."""
        return (
            self.instance_type == instance_type
            and self.os == os
            and (self.hibernation or not hibernate)
        )

    def view(self) -> dict[str, str]:
        """The host as ``GET /admin/pool`` shows it."""
        return {
            "instanceId": self.instance_id,
            "profile": self.profile,
            "state": self.state.value,
            "since": self.since,
        }


class PoolStore(abc.ABC):
    @abc.abstractmethod
    def add(self, host: PoolHost) -> None:
        """Record a newly launched host (a second record of one instance is refused)."""

    @abc.abstractmethod
    def hosts(self, profile: str) -> list[PoolHost]:
        """Every host recorded in ``profile``'s pool, claimed ones included."""

    @abc.abstractmethod
    def everything(self) -> tuple[list[PoolHost], dict[str, dict[str, Any]]]:
        """Every pool's hosts (claimed ones included) and every pool's last target, by profile
        (GET /admin/pool; the refill finds there the pools of profiles that no longer keep
        one)."""

    @abc.abstractmethod
    def forget_target(self, profile: str) -> None:
        """Drop ``profile``'s last target (its pool is gone, and so are its hosts)."""

    def mark(self, host: PoolHost, state: PoolState, at: str) -> bool:
        """Move ``host`` to ``state`` if its record is still in ``host.state`` since
        ``host.since``; False if not (someone else moved it first), and nothing written. The
        seconds from ``host.since`` to ``at`` are added to the state it leaves. Only a claim
        makes a host CLAIMED, and nothing moves it back: a host that served a user never
        returns to the pool."""
        if PoolState.CLAIMED in (host.state, state):
            return False
        return self._mark(host, state, at)

    @abc.abstractmethod
    def _mark(self, host: PoolHost, state: PoolState, at: str) -> bool:
        """One conditional write: ``host`` → ``state`` if its record is still in
        ``host.state`` since ``host.since``, adding ``_stay(host, at)`` seconds to
        ``host.state``'s total."""

    @abc.abstractmethod
    def _claim_one(self, host: PoolHost, session_id: str, at: str) -> bool:
        """One conditional write: ``host`` → CLAIMED by ``session_id`` if still claimable."""

    @abc.abstractmethod
    def remove(self, host: PoolHost) -> bool:
        """Drop ``host``'s record if it is still in ``host.state`` (one conditional delete: a
        claim made meanwhile wins, and the host stays that desktop's); False if not."""

    @abc.abstractmethod
    def record_target(self, profile: str, target: pool_targets.Target, at: str) -> None:
        """Keep what the refill sized ``profile``'s pool to at ``at`` (GET /admin/pool shows
        it). It is kept apart from the hosts: their Query of the profile never reads it."""

    @abc.abstractmethod
    def last_target(self, profile: str) -> dict[str, Any] | None:
        """The last target recorded for ``profile`` (``size``, ``state``, ``reason``), if any."""

    def claim(
        self,
        profile: str,
        session_id: str,
        at: str,
        fits: Callable[[PoolHost], bool] = lambda host: True,
    ) -> PoolHost | None:
        """Claim a host of ``profile``'s pool for ``session_id``, of those that ``fits``: a
        READY one first, then a STOPPED one, oldest first; None when none is left (the caller
        launches as before)."""
        order = {PoolState.READY: 0, PoolState.STOPPED: 1}
        candidates = sorted(
            (h for h in self.hosts(profile) if h.state in CLAIMABLE and fits(h)),
            key=lambda h: (order[h.state], h.since, h.instance_id),
        )
        for host in candidates:
            if self._claim_one(host, session_id, at):
                return replace(host, state=PoolState.CLAIMED, since=at, session_id=session_id)
        return None


class DynamoPoolStore(PoolStore):
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    @staticmethod
    def _key(profile: str, instance_id: str) -> dict[str, Any]:
        return {"profile": {"S": profile}, "instanceId": {"S": instance_id}}

    def add(self, host: PoolHost) -> None:
        item = {
            **self._key(host.profile, host.instance_id),
            "state": {"S": host.state.value},
            "since": {"S": host.since},
            "instanceType": {"S": host.instance_type},
            "os": {"S": host.os},
            "hibernation": {"BOOL": host.hibernation},
            # every state's total from the start: a move then only changes attributes
            **{seconds_attribute(s): {"N": _number(host.accrued.get(s, 0.0))} for s in IN_POOL},
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(instanceId)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ValueError(f"pool host {host.instance_id} is already recorded") from exc
            raise

    def hosts(self, profile: str) -> list[PoolHost]:
        found: list[PoolHost] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": "profile"},
            "ExpressionAttributeValues": {":p": {"S": profile}},
            "ConsistentRead": True,
        }
        while True:
            resp = self._db.query(**kwargs)
            found.extend(self._host(item) for item in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return found
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    @staticmethod
    def _host(item: dict[str, Any]) -> PoolHost:
        return PoolHost(
            profile=item["profile"]["S"],
            instance_id=item["instanceId"]["S"],
            state=PoolState(item["state"]["S"]),
            since=item["since"]["S"],
            session_id=item.get("sessionId", {}).get("S"),
            instance_type=item.get("instanceType", {}).get("S", ""),
            os=item.get("os", {}).get("S", ""),
            hibernation=bool(item.get("hibernation", {}).get("BOOL", False)),
            accrued={
                s: float(item[seconds_attribute(s)]["N"])
                for s in IN_POOL
                if seconds_attribute(s) in item
            },
        )

    @staticmethod
    def _target(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "size": int(item["size"]["N"]),
            "state": item["state"]["S"],
            "reason": item["reason"]["S"],
        }

    def everything(self) -> tuple[list[PoolHost], dict[str, dict[str, Any]]]:
        # one Scan of a small table (a few pools of at most MAX_POOL_SIZE hosts each)
        hosts: list[PoolHost] = []
        targets: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = self._db.scan(**kwargs)
            for item in page.get("Items", []):
                if item["profile"]["S"] == TARGETS_PARTITION:
                    targets[item["instanceId"]["S"]] = self._target(item)
                else:
                    hosts.append(self._host(item))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(hosts, key=lambda h: (h.profile, h.instance_id)), targets

    def forget_target(self, profile: str) -> None:
        self._db.delete_item(TableName=self._table, Key=self._key(TARGETS_PARTITION, profile))

    def _conditional_update(
        self,
        host: PoolHost,
        condition: str,
        sets: dict[str, str],
        values: dict[str, str],
        adds: dict[str, float] | None = None,
    ) -> bool:
        adds = adds or {}
        names = {f"#{k}": k for k in [*sets, *adds]} | {"#state": "state"}
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        if adds:
            # ADD on a number attribute that does not exist yet starts it from 0
            # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html#Expressions.UpdateExpressions.ADD)
            expression += " ADD " + ", ".join(f"#{k} :{k}" for k in adds)
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(host.profile, host.instance_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    **{f":{k}": {"S": v} for k, v in sets.items()},
                    **{k: {"S": v} for k, v in values.items()},
                    **{f":{k}": {"N": _number(v)} for k, v in adds.items()},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _mark(self, host: PoolHost, state: PoolState, at: str) -> bool:
        return self._conditional_update(
            host,
            "#state = :was AND #since = :wassince",
            {"state": state.value, "since": at},
            {":was": host.state.value, ":wassince": host.since},
            {seconds_attribute(host.state): _stay(host, at)},
        )

    def _claim_one(self, host: PoolHost, session_id: str, at: str) -> bool:
        # READY or STOPPED -> CLAIMED in one conditional write: of two claims, one wins
        return self._conditional_update(
            host,
            "#state IN (:ready, :stopped)",
            {"state": PoolState.CLAIMED.value, "since": at, "sessionId": session_id},
            {":ready": PoolState.READY.value, ":stopped": PoolState.STOPPED.value},
        )

    def remove(self, host: PoolHost) -> bool:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._key(host.profile, host.instance_id),
                ConditionExpression="#state = :was",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":was": {"S": host.state.value}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_target(self, profile: str, target: pool_targets.Target, at: str) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                **self._key(TARGETS_PARTITION, profile),
                "size": {"N": str(target.size)},
                "state": {"S": target.state},
                "reason": {"S": target.reason},
                "since": {"S": at},
            },
        )

    def last_target(self, profile: str) -> dict[str, Any] | None:
        item = self._db.get_item(
            TableName=self._table, Key=self._key(TARGETS_PARTITION, profile)
        ).get("Item")
        if item is None:
            return None
        return self._target(item)


class InMemoryPoolStore(PoolStore):
    """The same contract in memory, for unit tests of the domain."""

    def __init__(self) -> None:
        self._hosts: dict[tuple[str, str], PoolHost] = {}
        self._targets: dict[str, pool_targets.Target] = {}
        self._lock = threading.Lock()

    def add(self, host: PoolHost) -> None:
        with self._lock:
            key = (host.profile, host.instance_id)
            if key in self._hosts:
                raise ValueError(f"pool host {host.instance_id} is already recorded")
            self._hosts[key] = host

    def hosts(self, profile: str) -> list[PoolHost]:
        with self._lock:
            return sorted(
                (h for (p, _), h in self._hosts.items() if p == profile),
                key=lambda h: h.instance_id,
            )

    def everything(self) -> tuple[list[PoolHost], dict[str, dict[str, Any]]]:
        with self._lock:
            hosts = sorted(self._hosts.values(), key=lambda h: (h.profile, h.instance_id))
            targets = {
                p: {"size": t.size, "state": t.state, "reason": t.reason}
                for p, t in self._targets.items()
            }
        return hosts, targets

    def forget_target(self, profile: str) -> None:
        with self._lock:
            self._targets.pop(profile, None)

    def _mark(self, host: PoolHost, state: PoolState, at: str) -> bool:
        with self._lock:
            stored = self._hosts.get((host.profile, host.instance_id))
            if stored is None or (stored.state, stored.since) != (host.state, host.since):
                return False
            accrued = dict(stored.accrued)
            accrued[host.state] = accrued.get(host.state, 0.0) + _stay(host, at)
            self._hosts[(host.profile, host.instance_id)] = replace(
                stored, state=state, since=at, accrued=accrued
            )
            return True

    def _claim_one(self, host: PoolHost, session_id: str, at: str) -> bool:
        with self._lock:
            stored = self._hosts.get((host.profile, host.instance_id))
            if stored is None or stored.state not in CLAIMABLE:
                return False
            self._hosts[(host.profile, host.instance_id)] = replace(
                stored, state=PoolState.CLAIMED, since=at, session_id=session_id
            )
            return True

    def remove(self, host: PoolHost) -> bool:
        with self._lock:
            stored = self._hosts.get((host.profile, host.instance_id))
            if stored is None or stored.state != host.state:
                return False
            del self._hosts[(host.profile, host.instance_id)]
            return True

    def record_target(self, profile: str, target: pool_targets.Target, at: str) -> None:
        with self._lock:
            self._targets[profile] = target

    def last_target(self, profile: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._targets.get(profile)
        if found is None:
            return None
        return {"size": found.size, "state": found.state, "reason": found.reason}


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC)


def _stay(host: PoolHost, at: str) -> float:
    """Seconds from ``host.since`` to ``at`` (0 if ``at`` is earlier: clocks of two writers)."""
    return max(0.0, (_parse(at) - _parse(host.since)).total_seconds())


def _number(value: float) -> str:
    """A DynamoDB number: milliseconds are enough for seconds spent in a state."""
    return f"{value:.3f}"


#: How long before a moment the pool is sized for it. The refill runs every 5 minutes
#: (RefillPoolFunction's ``rate(5 minutes)``, whose runs are not aligned to the clock: a rate
#: schedule starts when the rule is created,
#: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html), so
#: a window starting at 08:00 is seen by a run between 07:50 and 07:55, and its hosts have 5 to
#: 10 minutes to launch and boot before 08:00; without the lead a run could first see the window
#: up to 5 minutes after it started, and its hosts be ready minutes later still.
PLAN_LEAD = timedelta(minutes=10)
#: The instance states that count against the account's On-Demand vCPU quota: the quotas are
#: of *running* On-Demand instances' vCPUs, so a stopped one does not count
#: (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-resource-limits.html).
QUOTA_STATES = ["pending", "running"]


@dataclass(frozen=True)
class Demand:
    """What a pool's target reads: the profile's own plan (None: WarmPoolSize hosts waiting
    WarmPoolState), the profile's request history (``history(profile, since)``: when each of
    its desktops created since then was asked for, read only when the plan has a forecast), and
    the account's On-Demand vCPU quota for the pool's instance type (``vcpu_quota(type)``; None
    when it cannot be read, and the pool is then not capped by it)."""

    plan: pool_targets.PoolPlan | None = None
    source: str = "WarmPoolSize"
    history: Callable[[str, str], Sequence[str]] = field(default=lambda profile, since: ())
    vcpu_quota: Callable[[str], int | None] = field(default=lambda instance_type: None)
    #: Why this profile keeps no pool any more (deleted, or its ``pool`` removed): its hosts
    #: are drained, the unclaimed ones terminated; None for a pool that is kept.
    drained: str | None = None


@dataclass(frozen=True)
class ProfilePool:
    """One profile's pool as the refill serves it: how its hosts are launched, and its plan."""

    settings: PoolSettings
    demand: Demand


@dataclass(frozen=True)
class Room:
    """A pool's share of its On-Demand vCPU quota: ``vcpus`` of the ``free`` vCPUs the fleet
    leaves, which ``pools`` pools of the same quota share."""

    vcpus: int
    free: int
    pools: int


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _vcpu_room(hosts: Ec2Hosts, settings: PoolSettings, quota: int) -> int:
    """The quota's vCPUs not used by the fleet's instances outside this pool (the pool's own
    hosts are what the target sizes)."""
    group = quotas.on_demand_quota(settings.instance_type)
    tag = settings.common
    used = 0
    for instance in hosts.fleet_instances(tag.fleet_tag_key, tag.fleet_tag_value, QUOTA_STATES):
        ours = instance.tags.get(POOL_TAG) == settings.profile and SESSION_TAG not in instance.tags
        if ours or quotas.on_demand_quota(instance.instance_type) != group:
            continue
        used += quotas.vcpus(instance.instance_type) or 0
    return quota - used


def wanted(
    hosts: Ec2Hosts,
    settings: PoolSettings,
    demand: Demand,
    now: str,
    *,
    share: Room | str | None = "own",
) -> pool_targets.Target:
    """The pool's target now: its plan read now and ``PLAN_LEAD`` ahead (a window or a
    forecast starts that early; of the two, the larger, and of two as large, running), capped
    by MAX_POOL_SIZE and the account's free vCPUs of the pool's quota: all of them (``share``
    "own", a pool refilled alone), its share of them (a Room), or not at all (None)."""
    if demand.drained is not None:
        return pool_targets.Target(size=0, state="running", reason=demand.drained)
    plan = demand.plan or pool_targets.PoolPlan(
        size=min(settings.size, MAX_POOL_SIZE),
        state="stopped" if settings.state == "stopped" else "running",
        maximum=MAX_POOL_SIZE,
    )
    plan = replace(plan, maximum=min(plan.maximum, MAX_POOL_SIZE))
    at = _parse(now)
    history: list[datetime] = []
    if plan.forecast is not None:
        # every hour-of-week the forecast reads, with an hour either side for a change of time
        since = at - timedelta(weeks=plan.forecast.weeks, hours=2)
        history = [_parse(t) for t in demand.history(settings.profile, _iso(since))]
    per_host = quotas.vcpus(settings.instance_type)
    room: int | None = None
    if isinstance(share, Room):
        room = share.vcpus
    elif share == "own":
        quota = demand.vcpu_quota(settings.instance_type)
        if quota is None or per_host is None:
            logger.warning(
                "pool not capped by the vCPU quota: unknown",
                quota=quotas.on_demand_quota(settings.instance_type).name,
                instance_type=settings.instance_type,
            )
        else:
            room = _vcpu_room(hosts, settings, quota)

    def read(moment: datetime) -> pool_targets.Target:
        return pool_targets.target(
            plan, moment, history=history, vcpu_room=room, vcpus_per_host=per_host or 1
        )

    current, ahead = read(at), read(at + PLAN_LEAD)
    found = current
    if (ahead.size, ahead.state == "running") > (current.size, current.state == "running"):
        minutes = int(PLAN_LEAD.total_seconds() // 60)
        found = replace(ahead, reason=f"{ahead.reason} (from {minutes} minutes before)")
    if demand.plan is None:  # no plan of the profile's own: say which parameters set it
        parameters = f"WarmPoolSize {settings.size}, WarmPoolState {settings.state}"
        found = replace(found, reason=found.reason.replace("base plan", parameters, 1))
    if isinstance(share, Room) and share.pools > 1:
        capped = f"capped by the GPU vCPU quota ({share.vcpus} vCPUs free)"
        fair = (
            f"capped by its share of the GPU vCPU quota ({share.vcpus} of the {share.free}"
            f" vCPUs free, shared by {share.pools} pools)"
        )
        found = replace(found, reason=found.reason.replace(capped, fair))
    return found


def shares(hosts: Ec2Hosts, pools: Sequence[ProfilePool], now: str) -> dict[str, Room | None]:
    """Each pool's share of its On-Demand vCPU quota (None: not capped, the quota or the type's
    vCPUs unknown). The pools of one quota (every G and VT type shares one) together never
    exceed what the fleet's other instances leave free of it, and share it fairly: one host at
    a time to each pool that wants more, in turn (by profile id), while a host fits. A pool's
    own unclaimed hosts are not counted as used: they are what its target sizes."""
    found: dict[str, Room | None] = {}
    groups: dict[str, list[ProfilePool]] = {}
    limits: dict[str, int] = {}
    for each in pools:
        instance_type = each.settings.instance_type
        group = quotas.on_demand_quota(instance_type).key
        quota = limits.get(group)
        if quota is None:
            quota = each.demand.vcpu_quota(instance_type)
        if quota is None or quotas.vcpus(instance_type) is None:
            logger.warning(
                "pool not capped by the vCPU quota: unknown",
                profile=each.settings.profile,
                quota=quotas.on_demand_quota(instance_type).name,
                instance_type=instance_type,
            )
            found[each.settings.profile] = None
            continue
        limits[group] = quota
        groups.setdefault(group, []).append(each)
    if not groups:
        return found
    tag = pools[0].settings.common
    running = hosts.fleet_instances(tag.fleet_tag_key, tag.fleet_tag_value, QUOTA_STATES)
    for group, members in groups.items():
        ours = {m.settings.profile for m in members}
        used = sum(
            quotas.vcpus(i.instance_type) or 0
            for i in running
            if quotas.on_demand_quota(i.instance_type).key == group
            and not (i.tags.get(POOL_TAG) in ours and SESSION_TAG not in i.tags)
        )
        free = max(0, limits[group] - used)
        want = {
            m.settings.profile: wanted(hosts, m.settings, m.demand, now, share=None).size
            for m in members
        }
        per_host = {
            m.settings.profile: quotas.vcpus(m.settings.instance_type) or 1 for m in members
        }
        given = dict.fromkeys(want, 0)
        left = free
        while True:
            turn = [p for p in sorted(want) if given[p] < want[p] and per_host[p] <= left]
            if not turn:
                break
            for profile in turn:
                if per_host[profile] <= left:
                    given[profile] += 1
                    left -= per_host[profile]
        for profile in want:
            found[profile] = Room(
                vcpus=given[profile] * per_host[profile], free=free, pools=len(members)
            )
    return found


def refill_all(
    store: PoolStore,
    hosts: Ec2Hosts,
    pools: Sequence[ProfilePool],
    *,
    run_id: str,
    now: str,
) -> dict[str, Any]:
    """Refill every profile's pool (``refill``), each capped by its fair share of its vCPU
    quota (``shares``). One pool's failure is logged and reported, and never stops the
    others."""
    try:
        rooms = shares(hosts, pools, now)
    except Exception as exc:  # the pools are still refilled, each capped alone
        logger.exception("vCPU quota not shared")
        rooms = {}
        failed = [{"profile": "*", "error": f"vCPU quota not shared: {type(exc).__name__}: {exc}"}]
    else:
        failed = []
    done: list[dict[str, Any]] = []
    for each in pools:
        profile = each.settings.profile
        try:
            done.append(
                refill(
                    store,
                    hosts,
                    each.settings,
                    run_id=run_id,
                    now=now,
                    demand=each.demand,
                    share=rooms.get(profile, "own"),
                )
            )
        except Exception as exc:  # one pool's failure never stops the others
            logger.exception("pool not refilled", profile=profile)
            failed.append({"profile": profile, "error": f"{type(exc).__name__}: {exc}"})
    return {"pools": done, "failed": failed}


def refill(
    store: PoolStore,
    hosts: Ec2Hosts,
    settings: PoolSettings,
    *,
    run_id: str,
    now: str,
    demand: Demand | None = None,
    share: Room | str | None = "own",
) -> dict[str, Any]:
    """Bring the profile's pool to its target: its plan's now (``wanted``; without a plan,
    WarmPoolSize), at most MAX_POOL_SIZE and what the account's vCPU quota leaves.

    First the records are made true: a pool instance EC2 has but the pool has not recorded (a
    refill that stopped between launch and record) is recorded WARMING; a recorded host whose
    instance EC2 no longer has is dropped. A host that fails its health check is replaced
    (``_replace_unhealthy``), and the hosts are made to wait as WarmPoolState says
    (``_wait_as``). Past a lowered target, the excess hosts are
    terminated. Then one host is launched per missing place, each from the profile's launch
    template, tagged as a pool host with no session, and recorded WARMING. Launching stops at
    the first refusal for capacity in every subnet or for the account's vCPU quota: the pool
    never asks past the quota, and the next run tries again. ``run_id`` (the invocation's event
    id) makes each launch's idempotency token, so a retried invocation launches nothing twice."""
    profile = settings.profile
    demand = demand or Demand()
    goal = wanted(hosts, settings, demand, now, share=share)
    goal, settings = _hibernation(hosts, settings, demand, goal)
    target = min(goal.size, MAX_POOL_SIZE)
    # the state the pool's hosts wait in now: the plan's, read from here on as settings.state
    settings = replace(settings, state=goal.state)
    store.record_target(profile, goal, now)
    recorded = {h.instance_id: h for h in store.hosts(profile)}
    tag = settings.common
    found = {
        i.instance_id: i
        for i in hosts.fleet_instances(tag.fleet_tag_key, tag.fleet_tag_value, LIVE_STATES)
        if i.tags.get(POOL_TAG) == profile
    }
    for instance_id, instance in found.items():
        if instance_id not in recorded and SESSION_TAG not in instance.tags:
            host = _as_launched(PoolHost(profile, instance_id, PoolState.WARMING, now), instance)
            store.add(host)
            recorded[instance_id] = host
            logger.warning("unrecorded pool host recorded", instance_id=instance_id)
    for instance_id, host in list(recorded.items()):
        seen = found.get(instance_id)
        # recorded before the pool kept what its hosts were launched as: learnt from EC2 (the
        # record is put again; a claim meanwhile finds none and misses, or wins and keeps it)
        if not host.instance_type and seen and host.state in IN_POOL and store.remove(host):
            learnt = _as_launched(host, seen)
            store.add(learnt)
            recorded[instance_id] = learnt
    for instance_id, host in list(recorded.items()):
        seen = found.get(instance_id)
        # its running notification came before its record (instance_changed): READY now
        running = seen is not None and seen.state == "running"
        if host.state is PoolState.WARMING and running and store.mark(host, PoolState.READY, now):
            recorded[instance_id] = replace(host, state=PoolState.READY, since=now)
    for instance_id, host in list(recorded.items()):
        lost = _parse(now) - _parse(host.since) >= LOST_AFTER
        # a claimed host's record too, once its instance is gone (its desktop ended): the claim
        # has nothing left to guard, and the table does not grow with every claim
        if instance_id not in found and lost and store.remove(host):
            del recorded[instance_id]
            logger.warning("pool host gone", instance_id=instance_id, state=host.state.value)
    replaced = _replace_unhealthy(store, hosts, recorded, found, now=now)
    retired = _retire_unfit(store, hosts, recorded, settings)
    stopping: list[str] = []
    starting: list[str] = []
    if target > 0:  # (a pool being emptied: its stopped hosts are not started to be ended)
        stopping, starting = _wait_as(store, hosts, recorded, found, settings.state, now=now)
    waiting = sorted(
        (h for h in recorded.values() if h.state in IN_POOL),
        key=lambda h: (h.state is PoolState.WARMING, h.since, h.instance_id),
        reverse=True,
    )
    # a lowered target: the excess hosts go, the newest and the not yet ready first; each
    # record is dropped before its instance is terminated, so a claim made meanwhile keeps it
    for host in waiting[: max(0, len(waiting) - target)]:
        if store.remove(host):
            hosts.terminate(host.instance_id)
            retired.append(host.instance_id)
    in_pool = len([h for h in waiting if h.instance_id not in retired])
    launched: list[str] = []
    for place in range(in_pool, target):
        made = _launch(hosts, settings, token=_token(profile, run_id, place))
        if made is None:
            break
        if made.instance_id not in recorded:  # a retried run: launched and recorded before
            store.add(
                PoolHost(
                    profile,
                    made.instance_id,
                    PoolState.WARMING,
                    now,
                    instance_type=made.instance_type,
                    os=settings.os,
                    # as EC2 says it was launched (a type or an AMI that cannot hibernate is
                    # launched without: Ec2Hosts.launch)
                    hibernation=made.hibernation_configured,
                )
            )
        launched.append(made.instance_id)
    if demand.drained is not None and not any(
        h.instance_id not in retired for h in recorded.values()
    ):
        store.forget_target(profile)  # nothing of this pool is left
    logger.info(
        "pool refilled",
        profile=profile,
        target=target,
        state=goal.state,
        reason=goal.reason,
        plan=demand.source,
        launched=launched,
        retired=retired,
        replaced=replaced,
        stopping=stopping,
        starting=starting,
    )
    return {
        "profile": profile,
        "target": target,
        "state": goal.state,
        "reason": goal.reason,
        "inPool": in_pool + len(launched),
        "launched": launched,
        "retired": retired,
        "replaced": replaced,
        "stopping": stopping,
        "starting": starting,
    }


def _replace_unhealthy(
    store: PoolStore,
    hosts: Ec2Hosts,
    recorded: dict[str, PoolHost],
    found: dict[str, Instance],
    *,
    now: str,
) -> list[dict[str, str]]:
    """Replace the unclaimed pool hosts that fail their health check; each replaced host's id
    and why, in plain words (the refill then launches one in its place).

    A host fails when EC2's status checks find it impaired (a running one:
    ``Ec2Hosts.impaired``), or when it is still not made MADE_WITHIN after EC2 launched or last
    started it (its agent never tagged it POOL_READY_TAG: the first boot's install failed, or the
    agent does not run). Its record is dropped first, by a conditional delete, so a claim made
    meanwhile wins and the host stays that desktop's; then the instance is terminated. A
    STOPPED or STOPPING host is left alone: a stopped instance has no status checks, and it was
    made before it was stopped."""
    waiting = {
        instance_id: instance
        for instance_id, host in recorded.items()
        if host.state in (PoolState.WARMING, PoolState.READY)
        and (instance := found.get(instance_id)) is not None
        and instance.state in ("pending", "running")
        and SESSION_TAG not in instance.tags
    }
    impaired = hosts.impaired(sorted(i for i, v in waiting.items() if v.state == "running"))
    replaced: list[dict[str, str]] = []
    for instance_id, instance in sorted(waiting.items()):
        if instance_id in impaired:
            reason = f"EC2's {' and '.join(impaired[instance_id])} found it impaired"
        elif (
            POOL_READY_TAG not in instance.tags
            and instance.launch_time is not None
            and _parse(now) - _parse(instance.launch_time) >= MADE_WITHIN
        ):
            minutes = int(MADE_WITHIN.total_seconds() // 60)
            reason = (
                f"not made {minutes} minutes after it was launched (its agent never tagged it"
                f" {POOL_READY_TAG})"
            )
        else:
            continue
        if not store.remove(recorded[instance_id]):
            continue  # claimed meanwhile: that desktop's now
        hosts.terminate(instance_id)
        del recorded[instance_id]
        replaced.append({"instanceId": instance_id, "reason": reason})
        logger.warning(f"pool host {instance_id} replaced: {reason}", instance_id=instance_id)
    return replaced


def _as_launched(host: PoolHost, instance: Instance) -> PoolHost:
    """``host`` with what EC2 says it was launched as. Every pool host is launched with its OS
    tag (OS_TAG); one without is from before Windows pools kept one: Linux."""
    return replace(
        host,
        instance_type=instance.instance_type,
        os=instance.tags.get(OS_TAG, "linux"),
        hibernation=instance.hibernation_configured,
    )


def _hibernation(
    hosts: Ec2Hosts, settings: PoolSettings, demand: Demand, goal: pool_targets.Target
) -> tuple[pool_targets.Target, PoolSettings]:
    """A plan whose hosts wait hibernated, at any time (its base, a window or its forecast):
    its hosts are launched with hibernation configured, which can be done at launch only
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/enabling-hibernation.html), if the
    profile's type can hibernate (``Ec2Hosts.hibernation_problem``: EC2 says so, and its RAM
    fits the root volume). If it cannot, they are launched as before, and a pool that would
    wait hibernated waits stopped instead: the target says why, in plain words. This is read
    at each refill, not when the profile is put: EC2 knows which types can hibernate, and the
    admin API does not ask it."""
    plan = demand.plan
    if plan is None:
        return goal, settings
    states = {plan.state, *(w.state for w in plan.windows)}
    if plan.forecast is not None:
        states.add(plan.forecast.state)
    if "hibernated" not in states:
        return goal, settings
    problem = hosts.hibernation_problem(settings.instance_type, settings.root_volume_gib)
    if problem is None:
        return goal, replace(settings, hibernate=True)
    logger.warning("pool hosts not launched for hibernation", profile=settings.profile, why=problem)
    if goal.state == "hibernated":
        goal = replace(
            goal, state="stopped", reason=f"{goal.reason}; {problem}: its hosts wait stopped"
        )
    return goal, settings


def _retire_unfit(
    store: PoolStore, hosts: Ec2Hosts, recorded: dict[str, PoolHost], settings: PoolSettings
) -> list[str]:
    """Terminate the unclaimed hosts no request of the profile would take now: launched as
    another type or OS than the profile's (it was changed since), or recorded before the pool
    kept what its hosts were launched as. Each record is dropped first, by a conditional
    delete, so a claim made meanwhile wins; the refill then launches fitting ones."""
    retired: list[str] = []
    for instance_id, host in sorted(recorded.items()):
        fits = (host.instance_type, host.os) == (settings.instance_type, settings.os)
        # (a record of unknown make has no instance: it is dropped once lost, LOST_AFTER)
        unknown = not host.instance_type
        if host.state not in IN_POOL or fits or unknown or not store.remove(host):
            continue
        hosts.terminate(instance_id)
        del recorded[instance_id]
        retired.append(instance_id)
        logger.info(
            "pool host retired: no longer fits its profile",
            instance_id=instance_id,
            launched_as=f"{host.instance_type or '?'} {host.os or '?'}",
            profile_launches=f"{settings.instance_type} {settings.os}",
        )
    return retired


def _wait_as(
    store: PoolStore,
    hosts: Ec2Hosts,
    recorded: dict[str, PoolHost],
    found: dict[str, Instance],
    wanted: str,
    *,
    now: str,
) -> tuple[list[str], list[str]]:
    """Make the pool's hosts wait as ``wanted`` (WarmPoolState: ``running`` or ``stopped``; a
    profile's own plan may also say ``hibernated``) says; the ids of the hosts being stopped
    (or hibernated), and of those being started.

    ``hibernated`` is ``stopped`` with StopInstances' Hibernate: the host's RAM is kept on its
    root volume, and the claim's start resumes it
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Hibernate.html).

    ``stopped``: a READY host that is made is first put out of reach of claims (READY →
    STOPPING, one conditional write: a claim made meanwhile wins, and the host stays its
    desktop's, running), then stopped; its ``stopped`` notification (or the next refill) makes
    it STOPPED, claimable again, and the claim starts it. A host is made once its agent runs:
    on a bare image its first boot installs DCV and the agent from user data, which runs at
    launch and not when a stopped instance is started again
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html), so a
    host stopped as soon as EC2 says ``running`` would never be made. EC2's own signals do not
    tell: ``running`` comes as the OS begins to boot, and the status checks say the instance is
    reachable and its hardware sound, not what user data has done
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceStatus.html).
    The agent, which user data starts last, tags its own instance POOL_READY_TAG while it waits
    for a claim (agent/dcvfleet_agent/identity.py): the instance role lets a host put that one
    tag key on itself alone (template.yaml, HostRole), so no other host can mark it made.

    ``running``: a STOPPED host is taken back (STOPPED → WARMING, conditionally again) and
    started; its ``running`` notification makes it READY."""
    stopping: list[str] = []
    starting: list[str] = []
    for instance_id, host in list(recorded.items()):
        seen = found.get(instance_id)
        if seen is None or SESSION_TAG in seen.tags:
            continue
        if host.state is PoolState.STOPPING and seen.state == "stopped":
            # its stopped notification was lost, or came before the STOPPING record
            if store.mark(host, PoolState.STOPPED, now):
                recorded[instance_id] = replace(host, state=PoolState.STOPPED, since=now)
            continue
        if wanted in ("stopped", "hibernated"):
            made = POOL_READY_TAG in seen.tags and seen.state == "running"
            if host.state is PoolState.READY and made:
                if not store.mark(host, PoolState.STOPPING, now):
                    continue  # claimed meanwhile: the claim's desktop
                recorded[instance_id] = replace(host, state=PoolState.STOPPING, since=now)
            elif not (host.state is PoolState.STOPPING and seen.state == "running"):
                continue  # (a STOPPING host still running: the stop did not reach EC2)
            if _stop(hosts, seen, hibernate=wanted == "hibernated"):
                stopping.append(instance_id)
        elif (
            host.state is PoolState.STOPPED
            and seen.state == "stopped"
            and store.mark(host, PoolState.WARMING, now)
        ):
            recorded[instance_id] = replace(host, state=PoolState.WARMING, since=now)
            hosts.start(instance_id)
            starting.append(instance_id)
    return stopping, starting


def _stop(hosts: Ec2Hosts, instance: Instance, *, hibernate: bool) -> bool:
    """Stop a pool host, hibernated if ``hibernate`` (StopInstances with Hibernate, where it was
    launched for hibernation; one that cannot, or is not yet ready to, is stopped:
    ``Ec2Hosts.stop``); False, logged, when EC2 refused (the next refill tries again: its
    record stays STOPPING)."""
    try:
        done = hosts.stop(instance, hibernate=hibernate)
        if hibernate and done != "hibernate":
            logger.info("pool host stopped, not hibernated", instance_id=instance.instance_id)
    except ClientError as exc:
        logger.warning("pool host not stopped", instance_id=instance.instance_id, error=str(exc))
        return False
    return True


def _token(profile: str, run_id: str, place: int) -> str:
    """RunInstances' idempotency token (at most 64 characters): one per run and place
    (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html)."""
    return "pool-" + hashlib.sha256(f"{profile}/{run_id}/{place}".encode()).hexdigest()[:40]


def _launch(hosts: Ec2Hosts, settings: PoolSettings, *, token: str) -> Instance | None:
    tags = {
        settings.common.fleet_tag_key: settings.common.fleet_tag_value,
        POOL_TAG: settings.profile,
        OS_TAG: settings.os,
        "Name": f"dcvfleet-pool-{settings.profile}",
    }
    for subnet_id in settings.subnet_ids:
        try:
            return hosts.launch(
                launch_template_id=settings.launch_template_id,
                instance_type=settings.instance_type,
                subnet_id=subnet_id,
                tags=tags,
                client_token=f"{token}-{subnet_id[-12:]}",
                hibernate=settings.hibernate,
            )
        except CapacityUnavailable as exc:
            logger.warning("no capacity for a pool host", attempt=str(exc))
        except (QuotaExhausted, LaunchError) as exc:
            logger.warning("pool host not launched", error=str(exc))
            return None
    return None


def instance_changed(store: PoolStore, instance: Instance, *, state: str, now: str) -> str:
    """An unclaimed pool host changed state (``EC2 Instance State-change Notification``,
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-instance-state-changes.html:
    ``detail.state`` is one of pending, running, stopping, stopped, shutting-down, terminated).

    ``running`` makes a WARMING (or STOPPED, started outside DCV Fleet) host READY; ``stopped``
    makes a STOPPING (the refill stopped it), WARMING or READY host STOPPED (claimable: the
    claim starts it); ``terminated`` drops
    its record. Each is one conditional write, so a claim made meanwhile wins and the host stays
    its desktop's. The event is a hint: ``instance`` is the host as EC2 describes it now, and
    its state must agree. EC2's status checks are not in this event; the host's own readiness
    (DCV, the agent) is proven later by the desktop's signed Host Ready. A pool host sends no
    signed event of its own: it has no session, hence no session key, until a claim."""
    profile = instance.tags.get(POOL_TAG)
    if not profile or SESSION_TAG in instance.tags:
        return "not an unclaimed pool host"
    if instance.state != state:
        return f"nothing to do: a late {state} notification for a {instance.state} instance"
    host = next((h for h in store.hosts(profile) if h.instance_id == instance.instance_id), None)
    if host is None:
        # launched a moment ago and not recorded yet: the refill records it, then sees it run
        return "pool host not recorded (yet)"
    moves = {
        "running": ({PoolState.WARMING, PoolState.STOPPED}, PoolState.READY),
        "stopped": (
            {PoolState.WARMING, PoolState.READY, PoolState.STOPPING},
            PoolState.STOPPED,
        ),
    }
    if state in moves:
        sources, target = moves[state]
        if host.state in sources and store.mark(host, target, now):
            return f"pool host {host.state.value} -> {target.value}"
    elif state == "terminated" and host.state in IN_POOL and store.remove(host):
        return f"pool host {host.state.value} gone"
    return f"nothing to do for a {host.state.value} pool host whose instance is {state}"


@dataclass(frozen=True)
class WarmPool:
    """The pools a desktop's launch may take its host from: each EC2 profile's own."""

    store: PoolStore
    #: Asks for a refill now, without waiting for it (a lost request is made good by the
    #: scheduled refill).
    refill: Callable[[], None]

    def take(
        self,
        session_id: str,
        at: str,
        *,
        profile: str,
        instance_type: str,
        os: str,
        hibernate: bool,
    ) -> PoolHost | None:
        """The host this session claimed before (a retried launch step: the claim is kept, not
        made twice), else a newly claimed one of its own profile's pool, launched as the
        session's own launch would be (``PoolHost.fits``); None when the pool has none to
        give."""
        for host in self.store.hosts(profile):
            if host.state is PoolState.CLAIMED and host.session_id == session_id:
                return host
        return self.store.claim(
            profile,
            session_id,
            at,
            fits=lambda h: h.fits(instance_type=instance_type, os=os, hibernate=hibernate),
        )


class LambdaRefill:
    """Invokes the refill function asynchronously (InvocationType Event: Lambda queues the event
    and answers at once, https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html)."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def __call__(self) -> None:
        try:
            self._lambda.invoke(FunctionName=self._function, InvocationType="Event", Payload=b"{}")
        except ClientError as exc:  # the scheduled refill makes it good
            logger.warning("pool refill not requested", error=str(exc))
