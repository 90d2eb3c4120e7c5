"""What each warm pool host has cost so far, at the pinned table's list prices (dcvfleet/prices.py).

A pool host's record totals the seconds it spent in each state it left (dcvfleet/pool.py); the
state it is in counts from its ``since`` to now. While WARMING, READY or STOPPING it is priced as
a running instance (its type's On-Demand hour) plus its root volume; while STOPPED, as its root
volume only (gp3 GB-month over the table's hours per month). That is an upper bound of EC2's
bill: EC2 bills neither a ``pending`` instance nor one ``stopping`` to stop
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html), and a WARMING
record may start with a pending instance and a STOPPING one end with a stopping instance.

A price the table does not have gives no cost (None: "price unknown"), never 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from dcvfleet.pool import IN_POOL, PoolHost, PoolState
from dcvfleet.prices import OperatingSystem, PriceTable

#: The pool states in which the host's instance runs (and is paid for by the hour).
RUNNING = frozenset({PoolState.WARMING, PoolState.READY, PoolState.STOPPING})


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Rates:
    """The hourly prices a pool's hosts are costed at; None where the table has none."""

    instance_type: str
    region: str
    volume_gib: int
    instance_hour: float | None
    volume_hour: float | None
    taken_at: str

    @classmethod
    def of(
        cls,
        table: PriceTable,
        instance_type: str,
        region: str,
        volume_gib: int,
        os: OperatingSystem = "Linux",
    ) -> Rates:
        return cls(
            instance_type,
            region,
            volume_gib,
            table.on_demand_hour(instance_type, region, os),
            table.volume_hour(region, volume_gib),
            table.taken_at,
        )


@dataclass(frozen=True)
class HostCost:
    running_seconds: float
    stopped_seconds: float
    usd: float | None  # None: a price it needs is unknown


def seconds_so_far(host: PoolHost, now: str) -> dict[PoolState, float]:
    """Seconds spent in each pool state up to ``now``: the record's totals, and the current
    state's run since ``host.since``."""
    spent = {s: host.accrued.get(s, 0.0) for s in IN_POOL}
    if host.state in IN_POOL:
        spent[host.state] += max(0.0, (_parse(now) - _parse(host.since)).total_seconds())
    return spent


def host_cost(host: PoolHost, now: str, rates: Rates) -> HostCost:
    spent = seconds_so_far(host, now)
    running = sum(v for s, v in spent.items() if s in RUNNING)
    stopped = spent[PoolState.STOPPED]
    usd: float | None = None
    if rates.volume_hour is not None and (rates.instance_hour is not None or running == 0):
        instance = (rates.instance_hour or 0.0) * running / 3600
        usd = instance + rates.volume_hour * (running + stopped) / 3600
    return HostCost(running, stopped, usd)


def total(costs: Iterable[HostCost]) -> float | None:
    """The sum, or None when any host's cost is unknown (a partial sum would read low)."""
    found = [c.usd for c in costs]
    if any(c is None for c in found):
        return None
    return sum(c for c in found if c is not None)
