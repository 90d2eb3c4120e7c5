"""A simulated day of desktop requests against four warm pool policies (discrete events: a day
runs in well under a second). ``bench.warm`` prints it beside the local stack's measurements.

Arrivals (all seeded): a class of ``CLASS_SIZE`` users arriving uniformly between 12:55 and
13:05 (13:00 ± 5 min), plus a Poisson background whose hourly rate follows ``BACKGROUND``, a
department's business hours. Each desktop is used for ``SESSION_MINUTES`` and then ends.

The pool behaves as the product's (functions/dcvfleet/pool.py, service.py): a refill every
``REFILL_MINUTES`` (the RefillPool rule's rate) and one asynchronously after each claim (a hit);
a refill brings the pool to its target, terminating the excess (the not yet ready and the newest
first) and launching one host per missing place; a launched host is claimable only after its
own boot (a launch from the baked image); a host that waits stopped is stopped once made and
started by the claim, or by a refill whose target wants running hosts again; claims are first come, first served, a READY host before a STOPPED one,
oldest first; a host that served a user never returns to the pool. A miss launches the user's
own host from the baked image. The targets of the scheduled and forecast policies are the
product's own: ``dcvfleet.pool_targets.target`` with a ``PoolPlan``, read as the refill reads it
(``dcvfleet.pool.wanted``: now and ``PLAN_LEAD`` ahead, the larger); the forecast's plan is the
one ``PUT /admin/profiles`` makes of a profile's ``pool`` (``dcvfleet.profiles.PoolSpec``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import local  # noqa: F401  (first: it puts functions/, the dcvfleet package, on sys.path)
from dcvfleet.pool import MAX_POOL_SIZE, PLAN_LEAD
from dcvfleet.pool_targets import PoolPlan, Target, Window, target
from dcvfleet.prices import PriceTable, pinned
from dcvfleet.profiles import PoolSpec
from local.sim.hosts import BAKED_BOOT_SECONDS, BARE_BOOT_SECONDS

PoolWait = Literal["running", "stopped"]
WEEK = dt.timedelta(weeks=1)

# --- Boot delays per path (seconds), with their sources -------------------------------------
#: A cold launch that installs the GPU driver, DCV and a desktop at first boot: Research and
#: Engineering Studio, which makes its DCV desktops that way, quotes 10 to 15 minutes
#: (local/sim/hosts.py BARE_BOOT_SECONDS).
COLD_LAUNCH_SECONDS = BARE_BOOT_SECONDS
#: A launch from the baked host image: AppStream 2.0 On-Demand fleet instances, streaming
#: instances from a prebuilt image, take "one to two minutes" (FleetType,
#: https://docs.aws.amazon.com/appstream2/latest/APIReference/API_Fleet.html;
#: local/sim/hosts.py BAKED_BOOT_SECONDS).
BAKED_LAUNCH_SECONDS = BAKED_BOOT_SECONDS
#: DCV's own creation of a virtual session (its Xdcv server and the desktop session) once the
#: agent asks for it. AWS publishes no figure for it (the DCV Administrator Guide,
#: https://docs.aws.amazon.com/dcv/latest/adminguide/managing-sessions.html, gives none):
#: an assumption, a few seconds for an X server and a desktop environment's login.
DCV_SESSION_SECONDS = 3.0
#: Starting a stopped pool host that was made before it stopped (its EBS root volume already
#: has DCV and the agent; no first-boot install, no image download), until its agent runs.
#: AWS publishes no figure: the EC2 User Guide says only that starting an instance "can take a
#: few minutes" to reach running
#: (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-resuming.html). An
#: assumption: an OS boot of a made volume, 45 s; plus DCV_SESSION_SECONDS, as a stop ends
#: every DCV virtual session.
START_FROM_STOPPED_SECONDS = 45.0
#: Resuming a hibernated host: the RAM image is read back from the EBS root volume
#: (StopInstances: hibernating "does preserve data stored in RAM",
#: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_StopInstances.html) and the processes,
#: DCV's session among them, carry on. No AWS figure either (same "a few minutes" bound): an
#: assumption, 30 s. Not a pool state the product offers (PoolWait is running | stopped): shown
#: for comparison only.
HIBERNATE_RESUME_SECONDS = 30.0
#: The local stack's request -> READY for a pool hit and for a miss with boot delay 0 (the
#: control plane's own time), when this run did not measure it: docs/benchmarks.md's figures.
DEFAULT_CONTROL_PLANE_SECONDS = {"hit": 1.5, "miss": 1.3}

# --- The day -------------------------------------------------------------------------------
#: A Tuesday; the plans' time zone is UTC, so are all times here.
DAY = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
CLASS_SIZE = 30
CLASS_START = dt.time(13, 0)
CLASS_SPREAD_MINUTES = 5.0  # uniform over CLASS_START ± this
#: The background's hourly request rate by hour of day (a department's business hours): 2 per
#: hour 09:00-17:00, 1 per hour 08:00-09:00 and 17:00-19:00, 0.1 per hour otherwise.
BACKGROUND = tuple(2.0 if 9 <= h < 17 else 1.0 if h in (8, 17, 18) else 0.1 for h in range(24))
#: How long each desktop is used: a lab class and a work session alike.
SESSION_MINUTES = 120.0
#: The RefillPool rule's rate (template.yaml: rate(5 minutes)). A rate expression runs the rule
#: at regular intervals from when it was created, not at set clock times (a cron expression
#: does that: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html):
#: each simulated day draws the refills' phase (seeded), so a window's first refill comes up to
#: 5 minutes after the window starts.
REFILL_MINUTES = 5.0
#: Root volume of each host (RootVolumeSizeGiB's default), paid while it exists, running or not.
VOLUME_GB = 100
#: The instance type of the default Linux profile (LinuxInstanceType's default).
INSTANCE_TYPE = "g5.xlarge"
#: The region whose list prices the day is costed at.
REGION = "us-east-1"
#: The issue's targets for the scheduled and forecast pools.
TARGET_P95_SECONDS = 30.0
TARGET_EXTRA_SPEND = 0.15


@dataclass(frozen=True)
class Prices:
    instance_hour: float
    ebs_gb_month: float
    hours_per_month: float
    taken: str
    sources: dict[str, str]

    @property
    def volume_hour(self) -> float:
        return VOLUME_GB * self.ebs_gb_month / self.hours_per_month


def load_prices(
    instance_type: str = INSTANCE_TYPE, region: str = REGION, table: PriceTable | None = None
) -> Prices:
    """The product's pinned price table's figures (functions/dcvfleet/data/instance_types.json):
    ValueError when it has no On-Demand Linux price for ``instance_type`` or no gp3 price in
    ``region`` (a cost is never computed from a price it does not have)."""
    table = table or pinned()
    hour = table.on_demand_hour(instance_type, region, "Linux")
    if hour is None:
        raise ValueError(f"the price table has no On-Demand price for {instance_type} in {region}")
    ebs = table.ebs_gp3_gb_month(region)
    if ebs is None:
        raise ValueError(f"the price table has no gp3 price in {region}")
    pages = table.source.get("pages", {})
    return Prices(
        instance_hour=hour,
        ebs_gb_month=ebs,
        hours_per_month=table.hours_per_month,
        taken=table.taken_at,
        sources={k: str(pages[k]) for k in ("onDemandPerHour", "ebsGp3PerGbMonth") if k in pages},
    )


def arrivals(day: dt.datetime, seed: int) -> list[dt.datetime]:
    """The day's requests, sorted: the class (uniform over 13:00 ± 5 min) and the background
    (a Poisson process, hour by hour, at BACKGROUND's rate)."""
    rng = random.Random(seed)
    start = day.replace(hour=CLASS_START.hour, minute=CLASS_START.minute)
    spread = CLASS_SPREAD_MINUTES * 60
    times = [start + dt.timedelta(seconds=rng.uniform(-spread, spread)) for _ in range(CLASS_SIZE)]
    for hour, rate in enumerate(BACKGROUND):
        t = 0.0
        while rate > 0:
            t += rng.expovariate(rate / 3600)
            if t >= 3600:
                break
            times.append(day + dt.timedelta(hours=hour, seconds=t))
    return sorted(times)


def history(day: dt.datetime, seed: int, weeks: int = 4) -> list[dt.datetime]:
    """The same weekday of each of the ``weeks`` previous weeks, each drawn from the same model
    with its own seed: the forecast's request history."""
    past: list[dt.datetime] = []
    for week in range(1, weeks + 1):
        past.extend(arrivals(day - dt.timedelta(weeks=week), seed * 1000 + week))
    return past


@dataclass(frozen=True)
class Policy:
    name: str
    #: The pool's target (size, state) at a moment; None: no pool at all.
    target: Callable[[dt.datetime], Target] | None
    description: str


def refill_reads(
    plan: PoolPlan, history: Sequence[dt.datetime] = ()
) -> Callable[[dt.datetime], Target]:
    """The target as the product's refill reads ``plan`` (dcvfleet.pool.wanted): now and
    PLAN_LEAD ahead, the larger, and of two as large, the one that keeps hosts running."""

    ordered = sorted(history)
    weeks = plan.forecast.weeks if plan.forecast else 0
    margin = dt.timedelta(hours=2)  # whole hours either side, and a change of time

    def near(at: dt.datetime) -> list[dt.datetime]:
        """The past requests the target can read at ``at`` and PLAN_LEAD after: those of the
        same hours of each past week (only to keep a simulated day fast; the same target)."""
        found: list[dt.datetime] = []
        for k in range(1, weeks + 1):
            start, end = at - WEEK * k - margin, at + PLAN_LEAD - WEEK * k + margin
            found += ordered[bisect.bisect_left(ordered, start) : bisect.bisect_left(ordered, end)]
        return found

    def read(at: dt.datetime) -> Target:
        past = near(at)
        current = target(plan, at, history=past)
        ahead = target(plan, at + PLAN_LEAD, history=past)
        if (ahead.size, ahead.state == "running") > (current.size, current.state == "running"):
            return ahead
        return current

    return read


def no_pool() -> Policy:
    return Policy("(a) no pool", None, "every request launches from the baked image")


def static_pool(size: int = MAX_POOL_SIZE) -> Policy:
    plan = PoolPlan(size=size, state="running")
    return Policy(
        "(b) static pool",
        refill_reads(plan),
        f"{plan.size} running all day (the peak, capped at the pool's maximum {MAX_POOL_SIZE})",
    )


#: The class window's size in the scheduled plan: a third of the class. The refill after each
#: claim brings a new host within BAKED_LAUNCH_SECONDS, while about 5 of the class arrive (30
#: over 10 minutes), so 10 ready hosts carry the class with margin; the class's own size (capped
#: at the maximum, 20) also meets the p95 but idles 10 more hosts for a quarter of an hour.
CLASS_WINDOW_SIZE = 10


def scheduled_pool(class_window_size: int = CLASS_WINDOW_SIZE) -> Policy:
    """What an admin who knows the class would write: one running host through business hours
    for the background, more from a quarter of an hour before the class until it has arrived
    (a refill may come up to REFILL_MINUTES after the window starts), and one stopped host
    otherwise."""
    weekdays = frozenset(range(5))
    plan = PoolPlan(
        size=1,
        state="stopped",
        windows=(
            Window(weekdays, dt.time(8, 0), dt.time(19, 0), 1, "running"),
            Window(weekdays, dt.time(12, 45), dt.time(13, 5), class_window_size, "running"),
        ),
    )
    return Policy(
        "(c) scheduled pool",
        refill_reads(plan),
        f"weekdays 08:00-19:00: 1 running; 12:45-13:05: {class_window_size} running;"
        " otherwise 1 stopped",
    )


#: The forecast pool's plan as an admin writes it in the profile's ``pool``: the median of the
#: past 4 weeks' requests in each 5 minutes of the week (the RefillPool rule's rate), one host
#: running through an hour whose median is a request or more, and one host waiting stopped
#: through an hour with a request in some past week.
FORECAST_POOL = {
    "size": 0,
    "state": "running",
    "forecast": {"quantile": 0.5, "weeks": 4, "intervalMinutes": 5, "quietHours": "stopped"},
}


def forecast_pool(past: Sequence[dt.datetime]) -> Policy:
    plan = PoolSpec.model_validate(FORECAST_POOL).plan()
    return Policy(
        "(d) forecast pool",
        refill_reads(plan, past),
        "forecast: the median of 4 past weeks' requests in each 5 minutes; one host running"
        " through an hour whose median is a request or more, one stopped through an hour with a"
        " request in some week",
    )


@dataclass
class Host:
    """A pool host: launched, booting (claimable once ``made_at`` has passed), made, perhaps
    stopped, claimed at most once."""

    ident: int
    launched: float
    made_at: float
    wait_state: PoolWait
    running_since: float | None
    stopped_since: float | None = None
    claimed_at: float | None = None
    terminated_at: float | None = None
    running_seconds: float = 0.0  # idle in the pool, paid as a running instance
    stopped_seconds: float = 0.0  # idle in the pool, paid as its volume only

    def claimable(self, now: float) -> bool:
        return self.claimed_at is None and self.terminated_at is None and now >= self.made_at

    def stop(self, now: float) -> None:
        assert self.running_since is not None
        self.running_seconds += now - self.running_since
        self.running_since, self.stopped_since = None, now

    def start(self, now: float, delay: float) -> None:
        assert self.stopped_since is not None
        self.stopped_seconds += now - self.stopped_since
        self.stopped_since, self.running_since = None, now
        self.made_at = now + delay

    def leave(self, now: float) -> None:
        if self.running_since is not None:
            self.running_seconds += now - self.running_since
        if self.stopped_since is not None:
            self.stopped_seconds += now - self.stopped_since
        self.running_since = self.stopped_since = None


@dataclass(frozen=True)
class Served:
    at: float  # seconds after midnight
    wait: float  # request -> desktop ready, seconds
    path: Literal["running", "stopped", "miss"]
    host: int | None  # the pool host that served it


@dataclass
class DayResult:
    policy: Policy
    served: list[Served]
    hosts: list[Host]
    prices: Prices
    end: float
    user_running_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def waits(self) -> list[float]:
        return [s.wait for s in self.served]

    @property
    def hit_rate(self) -> float:
        return sum(1 for s in self.served if s.path != "miss") / len(self.served)

    @property
    def pool_running_hours(self) -> float:
        return sum(h.running_seconds for h in self.hosts) / 3600

    @property
    def pool_stopped_hours(self) -> float:
        return sum(h.stopped_seconds for h in self.hosts) / 3600

    @property
    def pool_cost(self) -> float:
        p = self.prices
        return self.pool_running_hours * (p.instance_hour + p.volume_hour) + (
            self.pool_stopped_hours * p.volume_hour
        )

    @property
    def user_hours(self) -> float:
        return self.user_running_seconds / 3600

    @property
    def user_cost(self) -> float:
        return self.user_hours * (self.prices.instance_hour + self.prices.volume_hour)

    @property
    def total_cost(self) -> float:
        return self.pool_cost + self.user_cost


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank, as the other benchmarks print."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def simulate(
    policy: Policy,
    requests: Sequence[dt.datetime],
    *,
    control_plane: Mapping[str, Sequence[float]],
    prices: Prices,
    seed: int = 0,
    day: dt.datetime = DAY,
) -> DayResult:
    """Replay ``requests`` (within ``day``) against ``policy``. ``control_plane`` gives samples
    of the control plane's own request -> READY seconds for a pool hit and for a miss (the local
    stack's, boot delay 0); each request draws one, on top of its path's boot delay."""
    rng = random.Random(seed)
    phase = rng.uniform(0, REFILL_MINUTES * 60)
    end = 24 * 3600.0
    events: list[tuple[float, int, str]] = []
    order = 0

    def push(at: float, kind: str) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind))

    for r in requests:
        offset = (r - day).total_seconds()
        if not 0 <= offset < end:
            raise ValueError(f"request at {r.isoformat()} is outside {day.date()}")
        push(offset, "request")
    if policy.target is not None:
        push(0.0, "refill")  # the pool as it stands at midnight
        t = phase
        while t < end:
            push(t, "refill")
            t += REFILL_MINUTES * 60
    push(end, "end")
    result = DayResult(policy, [], [], prices, end)
    hosts: list[Host] = []

    def live() -> list[Host]:
        return [h for h in hosts if h.claimed_at is None and h.terminated_at is None]

    def settle(now: float) -> None:
        # a host that waits stopped is stopped once made (its own boot done)
        for h in live():
            if h.wait_state == "stopped" and h.running_since is not None and now >= h.made_at:
                h.stop(now)

    def refill(now: float) -> None:
        assert policy.target is not None
        settle(now)
        wanted = policy.target(day + dt.timedelta(seconds=now))
        size = min(wanted.size, MAX_POOL_SIZE)
        pool = live()
        # the excess goes, the not yet ready and the newest first (pool.refill)
        pool.sort(key=lambda h: (h.claimable(now), -h.launched, -h.ident))
        for h in pool[: max(0, len(pool) - size)]:
            h.leave(now)
            h.terminated_at = now
        state = wanted.state
        if state == "hibernated":  # a profile's own plan may say so; none of these plans does
            raise ValueError("the replayed plans wait running or stopped")
        for h in live():  # the wanted state may have changed
            h.wait_state = state
            if state == "running" and h.stopped_since is not None:
                h.start(now, START_FROM_STOPPED_SECONDS)
        for _ in range(len(live()), size):
            made = now + BAKED_LAUNCH_SECONDS
            hosts.append(Host(len(hosts), now, made, state, running_since=now))
            push(made, "made")
        settle(now)

    while events:
        now, _, kind = heapq.heappop(events)
        if kind == "end":
            for h in live():
                h.leave(now)
            break
        if kind == "refill":
            refill(now)
            continue
        if kind == "made":
            settle(now)
            continue
        settle(now)
        ready = [h for h in live() if h.claimable(now)]
        ready.sort(key=lambda h: (h.running_since is None, h.made_at, h.ident))
        if ready:
            h = ready[0]
            cp = rng.choice(control_plane["hit"])
            if h.running_since is not None:
                wait, path = cp + DCV_SESSION_SECONDS, "running"
            else:
                wait, path = cp + START_FROM_STOPPED_SECONDS + DCV_SESSION_SECONDS, "stopped"
            h.leave(now)
            h.claimed_at = now
            result.served.append(Served(now, wait, path, h.ident))  # type: ignore[arg-type]
            # the user's instance from the claim: the wait (a start, or DCV) and the session
            result.user_running_seconds += wait + SESSION_MINUTES * 60
            refill(now)  # the asynchronous refill after a claim
        else:
            cp = rng.choice(control_plane["miss"])
            wait = cp + BAKED_LAUNCH_SECONDS
            result.served.append(Served(now, wait, "miss", None))
            result.user_running_seconds += wait + SESSION_MINUTES * 60
    result.hosts = hosts
    return result


@dataclass(frozen=True)
class Verdict:
    p95_ok: bool
    spend_ok: bool
    below_static: bool

    @property
    def met(self) -> bool:
        return self.p95_ok and self.spend_ok and self.below_static


def verdict(result: DayResult, baseline: DayResult, static: DayResult) -> Verdict:
    """The issue's targets for a scheduled or forecast pool: p95 over the day at most 30 s, at
    most 15 % extra spend over no pool, and much less extra spend than the static pool's (at
    most half of it)."""
    extra = extra_spend(result, baseline)
    return Verdict(
        p95_ok=percentile(result.waits(), 95) <= TARGET_P95_SECONDS,
        spend_ok=extra <= TARGET_EXTRA_SPEND,
        below_static=extra <= extra_spend(static, baseline) / 2,
    )


def extra_spend(result: DayResult, baseline: DayResult) -> float:
    return result.total_cost / baseline.total_cost - 1


def run_day(
    control_plane: Mapping[str, Sequence[float]], *, seed: int = 17, prices: Prices | None = None
) -> list[DayResult]:
    """The four policies on the same day (same arrivals, same control-plane draws)."""
    prices = prices or load_prices()
    requests = arrivals(DAY, seed)
    past = history(DAY, seed)
    policies = [no_pool(), static_pool(), scheduled_pool(), forecast_pool(past)]
    return [
        simulate(p, requests, control_plane=control_plane, prices=prices, seed=seed)
        for p in policies
    ]


def run_days(
    control_plane: Mapping[str, Sequence[float]], *, days: int, seed: int = 17
) -> list[DayResult]:
    """``days`` simulated weekdays (seeds ``seed``, ``seed + 1``...), each policy's days merged
    into one result: its figures are over every request of every day."""
    prices = load_prices()
    merged: list[DayResult] = []
    for n in range(days):
        for i, r in enumerate(run_day(control_plane, seed=seed + n, prices=prices)):
            if n == 0:
                merged.append(r)
                continue
            m = merged[i]
            base = len(m.hosts)
            m.served.extend(
                Served(s.at + n * m.end, s.wait, s.path, None if s.host is None else s.host + base)
                for s in r.served
            )
            for h in r.hosts:
                h.ident += base
            m.hosts.extend(r.hosts)
            m.user_running_seconds += r.user_running_seconds
    return merged


def as_report(results: Sequence[DayResult]) -> dict[str, Any]:
    baseline, static = results[0], results[1]
    rows: dict[str, Any] = {}
    for r in results:
        waits = r.waits()
        row: dict[str, Any] = {
            "p50": percentile(waits, 50),
            "p95": percentile(waits, 95),
            "p99": percentile(waits, 99),
            "hitRate": r.hit_rate,
            "poolRunningHours": r.pool_running_hours,
            "poolStoppedHours": r.pool_stopped_hours,
            "poolCost": r.pool_cost,
            "userHours": r.user_hours,
            "userCost": r.user_cost,
            "extraSpend": extra_spend(r, baseline),
        }
        if r.policy.name.startswith(("(c)", "(d)")):
            v = verdict(r, baseline, static)
            row["targets"] = {
                "p95": v.p95_ok,
                "extraSpend": v.spend_ok,
                "belowStatic": v.below_static,
                "met": v.met,
            }
        rows[r.policy.name] = row
    return rows
