"""Warm Batch capacity: a batch profile's ``pool`` keeps instances of the fleet's compute
environment running ahead of any request, by the profile's plan.

A batch desktop is a container on a whole GPU instance that the compute environment launches
when a job needs one (docs/host-batch-instance.md). A profile's ``pool`` (the same plan as an
EC2 profile's: size, schedule, timeZone, forecast, maximum; read by ``pool_targets.target``)
counts warm *instances*: idle instances the compute environment keeps running, so that a job is
placed on one at once instead of waiting for an instance to launch and boot.

The refill (``handlers.pool.refill``, every 5 minutes, reading the plan ``pool.PLAN_LEAD``
ahead) sets the compute environment's ``minvCpus``:

    minvCpus = max(floor, sum(warm instances x vCPUs of the profile's instance type)
                          + the busy desktops' instances x vCPUs)

capped at the environment's ``maxvCpus``; ``floor`` is BatchMinVcpus (what the template sets).
When every window has closed the warm part is 0 and ``minvCpus`` is set back to the floor.
The busy desktops (the queue's STARTING and RUNNING jobs, one per instance) are added because
Batch counts every instance against ``minvCpus``, busy or idle: without them, a desktop that
starts would use up a warm instance and none would be left for the next request.

What Batch does with it (https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResourceUpdate.html):
``minvCpus`` is "the minimum number of vCPUs that an environment should maintain (even if the
compute environment is DISABLED)". Changing only ``minvCpus`` is a *scaling update*: the fastest
kind, it "doesn't require replacing existing instances" and works "with any service role type
and allocation strategy" (https://docs.aws.amazon.com/batch/latest/userguide/scaling-updates.html),
so it applies to the On-Demand environment (BEST_FIT_PROGRESSIVE) and the Spot one
(SPOT_PRICE_CAPACITY_OPTIMIZED) alike. Changed together with other settings it would be an
*infrastructure update* (which needs BEST_FIT_PROGRESSIVE or a SPOT_* strategy and may replace
instances, https://docs.aws.amazon.com/batch/latest/userguide/infrastructure-updates.html):
the refill changes nothing else. ``desiredvCpus`` is left to Batch, as AWS recommends ("We
recommend not using desiredvCpus to initiate a scaling update as AWS Batch will dynamically
adjust desiredvCpus. Instead you should update minvCpus.").

The environment kept warm is the one the job queue tries first (the Spot one when BatchUseSpot,
else the On-Demand one): "Compute environments are tried in ascending order"
(https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeEnvironmentOrder.html).

A batch pool waits ``running`` only: a stopped instance is not a container instance a job can be
placed on, and Batch stops none (``profiles.pool_problem`` refuses another state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from dcvfleet import pool_targets, quotas

logger = Logger(child=True)

#: How long before a moment the warm capacity is sized for it (as the EC2 pool's PLAN_LEAD:
#: the refill runs every 5 minutes; an instance takes minutes to launch and join the cluster).
PLAN_LEAD = timedelta(minutes=10)
#: The jobs that hold an instance: placed on it (STARTING) or running there.
BUSY_STATUSES = ("STARTING", "RUNNING")


@dataclass(frozen=True)
class WarmPlan:
    """One batch profile's plan: its id, its pool plan, and its default instance type (the
    first of its ``instanceTypes``), whose vCPUs one warm instance counts."""

    profile: str
    plan: pool_targets.PoolPlan
    instance_type: str
    source: str = "template"  # or "admin"


@dataclass(frozen=True)
class Environment:
    """A compute environment as DescribeComputeEnvironments shows it."""

    arn: str
    status: str  # CREATING, UPDATING, DELETING, DELETED, VALID, INVALID
    min_vcpus: int
    max_vcpus: int


class ComputeEnvironments:
    """The fleet's Batch compute environment and job queue (the Batch API)."""

    def __init__(self, batch: Any, job_queue: str) -> None:
        self._batch = batch
        self.job_queue = job_queue

    def describe(self, arn: str) -> Environment | None:
        found = self._batch.describe_compute_environments(computeEnvironments=[arn])
        for raw in found.get("computeEnvironments", []):
            resources = raw.get("computeResources") or {}
            return Environment(
                arn=str(raw["computeEnvironmentArn"]),
                status=str(raw.get("status", "VALID")),
                min_vcpus=int(resources.get("minvCpus", 0)),
                max_vcpus=int(resources.get("maxvCpus", 0)),
            )
        return None

    def set_min_vcpus(self, arn: str, vcpus: int) -> None:
        """A scaling update: ``minvCpus`` and nothing else."""
        self._batch.update_compute_environment(
            computeEnvironment=arn, computeResources={"minvCpus": vcpus}
        )

    def busy(self) -> int:
        """The queue's jobs that hold an instance (STARTING or RUNNING)."""
        count = 0
        for status in BUSY_STATUSES:
            kwargs: dict[str, Any] = {"jobQueue": self.job_queue, "jobStatus": status}
            while True:
                page = self._batch.list_jobs(**kwargs)
                count += len(page.get("jobSummaryList", []))
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        return count


@dataclass(frozen=True)
class ProfileWarmth:
    """What one profile's plan asks for now."""

    profile: str
    instances: int
    vcpus_each: int
    reason: str

    @property
    def vcpus(self) -> int:
        return self.instances * self.vcpus_each


@dataclass(frozen=True)
class Goal:
    """The compute environment's ``minvCpus`` the plans ask for, and why."""

    min_vcpus: int
    warm_instances: int
    busy: int
    profiles: tuple[ProfileWarmth, ...]
    capped: bool  # by the environment's maxvCpus


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC)


def profile_warmth(
    plan: WarmPlan, now: str, history: Callable[[str, str], Sequence[str]]
) -> ProfileWarmth:
    """The warm instances ``plan`` asks for now: its target now and ``PLAN_LEAD`` ahead, the
    larger (a window or a forecast starts that early), never above its maximum."""
    at = _parse(now)
    past: list[datetime] = []
    if plan.plan.forecast is not None:
        since = at - timedelta(weeks=plan.plan.forecast.weeks, hours=2)
        past = [_parse(t) for t in history(plan.profile, _iso(since))]
    vcpus_each = quotas.vcpus(plan.instance_type) or 1
    current = pool_targets.target(plan.plan, at, history=past)
    ahead = pool_targets.target(plan.plan, at + PLAN_LEAD, history=past)
    found = current
    if ahead.size > current.size:
        minutes = int(PLAN_LEAD.total_seconds() // 60)
        found = replace(ahead, reason=f"{ahead.reason} (from {minutes} minutes before)")
    return ProfileWarmth(plan.profile, found.size, vcpus_each, found.reason)


def goal(
    warmth: Iterable[ProfileWarmth], *, busy: int, floor: int, environment: Environment
) -> Goal:
    """The ``minvCpus`` to set: the warm instances' vCPUs plus (while any is wanted) the busy
    desktops' instances' vCPUs (each counted at the largest vCPUs of the warm profiles' types),
    at least the floor, never above the environment's ``maxvCpus``."""
    found = tuple(warmth)
    warm = sum(w.instances for w in found)
    wanted = floor
    if warm:
        biggest = max(w.vcpus_each for w in found if w.instances)
        wanted = max(floor, sum(w.vcpus for w in found) + busy * biggest)
    capped = wanted > environment.max_vcpus
    return Goal(
        min_vcpus=max(0, min(wanted, environment.max_vcpus)),
        warm_instances=warm,
        busy=busy if warm else 0,
        profiles=found,
        capped=capped,
    )


@dataclass(frozen=True)
class WarmSettings:
    """BATCH_WARM_COMPUTE_ENVIRONMENT (the ARN of the environment the queue tries first),
    BATCH_MIN_VCPUS (BatchMinVcpus: the floor) and JOB_QUEUE."""

    compute_environment: str
    floor_vcpus: int
    job_queue: str

    @classmethod
    def from_env(cls, env: dict[str, str] | Any) -> WarmSettings | None:
        """None when the fleet has no batch compute environment to keep warm."""
        arn = str(env.get("BATCH_WARM_COMPUTE_ENVIRONMENT", "")).strip()
        if not arn:
            return None
        floor = int(env.get("BATCH_MIN_VCPUS", "0") or 0)
        if floor < 0:
            raise ValueError(f"BATCH_MIN_VCPUS: {floor} is below 0")
        return cls(arn, floor, str(env.get("JOB_QUEUE", "")))


@dataclass(frozen=True)
class Demand:
    """The batch profiles' plans and their request history (``history(profile, since)``)."""

    plans: Sequence[WarmPlan] = ()
    history: Callable[[str, str], Sequence[str]] = field(default=lambda profile, since: ())


def refill(
    environments: ComputeEnvironments, settings: WarmSettings, demand: Demand, *, now: str
) -> dict[str, Any]:
    """Set the compute environment's ``minvCpus`` to what the batch profiles' plans ask for
    now (``goal``). Nothing is called when it already holds that value, or when the
    environment is not VALID (being created or updated: Batch refuses an update then, and the
    next run tries again). A refusal is reported, never raised: the EC2 pools' refill is done."""
    environment = environments.describe(settings.compute_environment)
    if environment is None:
        logger.warning("batch compute environment not found", arn=settings.compute_environment)
        return {"environment": settings.compute_environment, "changed": False, "error": "absent"}
    warmth = [profile_warmth(p, now, demand.history) for p in demand.plans]
    busy = environments.busy() if any(w.instances for w in warmth) else 0
    found = goal(warmth, busy=busy, floor=settings.floor_vcpus, environment=environment)
    report: dict[str, Any] = {
        "environment": environment.arn,
        "minvCpus": found.min_vcpus,
        "was": environment.min_vcpus,
        "warmInstances": found.warm_instances,
        "busy": found.busy,
        "capped": found.capped,
        "profiles": {w.profile: {"instances": w.instances, "reason": w.reason} for w in warmth},
        "changed": False,
    }
    if found.min_vcpus == environment.min_vcpus:
        return report
    if environment.status != "VALID":
        logger.info("batch compute environment busy", status=environment.status)
        return {**report, "error": f"environment {environment.status}"}
    try:
        environments.set_min_vcpus(environment.arn, found.min_vcpus)
    except ClientError as exc:
        logger.warning("batch minvCpus not set", error=str(exc), minvCpus=found.min_vcpus)
        return {**report, "error": exc.response["Error"].get("Message", str(exc))}
    logger.info("batch minvCpus set", **{k: v for k, v in report.items() if k != "profiles"})
    return {**report, "changed": True}
