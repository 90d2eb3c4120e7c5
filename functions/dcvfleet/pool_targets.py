"""A warm pool's target: how many hosts it keeps, and in which state, at a given moment.

A profile's pool plan (``PoolPlan``) has a base size and state, scheduled windows in a time zone
("weekdays 08:00-18:00 Europe/Paris: 5 running"), optionally a forecast from the profile's own
request history (a quantile, per hour of the week, of the past weeks' requests), and a maximum.
``target`` reads the plan at one moment and says what the pool should hold then, and why, in
plain words. It is pure: the caller reads the history and the account's free vCPUs.

Times of day are wall-clock times in the plan's zone (``zoneinfo``, the IANA database): a window
08:00-18:00 starts at 08:00 on the clock in Paris, in winter and in summer. On the day the clocks
go forward, a time that does not exist (02:30 in Europe/Paris) is passed at once: a window from
02:30 has started at 03:00. On the day they go back, the repeated hour is inside a window twice.
A forecast counts requests by their wall-clock hour too, so an hour-of-week keeps its meaning
across a change of time (the repeated hour counts the requests of both).

What a forecast counts decides what the pool costs. A pool is refilled after each claim, so it
needs as many hosts at once as requests come while a taken host is replaced, not as many as the
whole hour brings: sized to an hour's count, a class of 30 arriving over ten minutes keeps 20
hosts idle for the rest of that hour and the one before. A forecast may therefore count per
``interval`` of the week (5 minutes: the requests expected before the next scheduled refill),
while each hour-of-week whose quantile is at least one request keeps at least one host, and an
hour with requests in some past week but a quantile of none may keep one host waiting in a
cheaper state (``quiet``: stopped, paying only its volume).
"""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: How a pool's hosts wait: running, stopped, or hibernated (where the type can hibernate: the
#: refill checks, and a pool whose type cannot waits stopped instead).
PoolWait = Literal["running", "stopped", "hibernated"]
POOL_WAITS: tuple[str, ...] = get_args(PoolWait)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The most past weeks a forecast reads (a year).
MAX_FORECAST_WEEKS = 52
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
WEEK = timedelta(weeks=1)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timeZone: {name!r} is not a known IANA time zone (e.g. Europe/Paris, UTC)"
        ) from None


def _hhmm(at: datetime.time) -> str:
    return at.strftime("%H:%M")


def _check_state(state: str, field: str) -> None:
    if state not in POOL_WAITS:
        raise ValueError(f"{field}: {state!r} is not one of {', '.join(POOL_WAITS)}")


@dataclass(frozen=True)
class Window:
    """A scheduled window, in the plan's time zone. ``days`` are the days it starts on; a window
    whose ``end`` is not after its ``start`` runs past midnight into the next day."""

    days: frozenset[int]  # 0 = Monday ... 6 = Sunday
    start: datetime.time  # inclusive
    end: datetime.time  # exclusive; end <= start means it runs past midnight
    size: int
    state: PoolWait

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("days: a window needs at least one day")
        if any(not isinstance(d, int) or not 0 <= d <= 6 for d in self.days):
            raise ValueError(f"days: {sorted(self.days)} must be 0 (Monday) to 6 (Sunday)")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("from, to: times of day in the plan's time zone, without a zone")
        if self.start == self.end:
            raise ValueError(
                f"to: a window must not end when it starts ({_hhmm(self.start)}); "
                "for a whole day use 00:00 to 23:59"
            )
        if self.size < 0:
            raise ValueError(f"size: {self.size} is below 0")
        _check_state(self.state, "state")

    @property
    def past_midnight(self) -> bool:
        return self.end <= self.start

    def contains(self, local: datetime.datetime) -> bool:
        """Whether the wall-clock time ``local`` (naive, in the plan's zone) is inside."""
        clock, day = local.time(), local.weekday()
        if not self.past_midnight:
            return day in self.days and self.start <= clock < self.end
        return (day in self.days and clock >= self.start) or (
            (day - 1) % 7 in self.days and clock < self.end
        )

    def describe(self, timezone: str) -> str:
        """``weekdays 08:00-18:00 Europe/Paris``."""
        return f"{describe_days(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)} {timezone}"


def describe_days(days: frozenset[int]) -> str:
    if days == frozenset(range(7)):
        return "every day"
    if days == frozenset(range(5)):
        return "weekdays"
    if days == frozenset({5, 6}):
        return "weekends"
    return ", ".join(DAY_NAMES[d] for d in sorted(days))


@dataclass(frozen=True)
class Forecast:
    """From the profile's own request history: for the hour of the week ahead, the ``quantile``
    of the requests counted in that hour-of-week in each of the past ``weeks`` weeks."""

    quantile: float  # e.g. 0.9: the 90th percentile of past weeks' counts
    weeks: int = 4  # how many past weeks of the same hour-of-week it reads
    lead: timedelta = timedelta(minutes=10)  # hosts are wanted this long before the hour
    state: PoolWait = "running"
    #: The span requests are counted over (a whole number of minutes dividing an hour): the
    #: pool holds the quantile of the requests of that interval of the week in past weeks, and
    #: at least one host through an hour whose own quantile is at least one request.
    interval: timedelta = HOUR
    #: The state of the one host kept through an hour with a request in some past week but a
    #: quantile of none (None: no host then).
    quiet: PoolWait | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quantile, bool) or not 0 < self.quantile <= 1:
            raise ValueError(f"forecast.quantile: {self.quantile} is not in (0, 1]")
        if not 1 <= self.weeks <= MAX_FORECAST_WEEKS:
            raise ValueError(f"forecast.weeks: {self.weeks} is not 1 to {MAX_FORECAST_WEEKS}")
        if not timedelta(0) <= self.lead < HOUR:
            raise ValueError(f"forecast.lead: {self.lead} is not from 0 to under an hour")
        _check_state(self.state, "forecast.state")
        whole = timedelta(0) < self.interval <= HOUR and not self.interval % MINUTE
        if not whole or HOUR % self.interval:
            raise ValueError(
                f"forecast.interval: {self.interval} is not a whole number of minutes dividing"
                " an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)"
            )
        if self.quiet is not None:
            _check_state(self.quiet, "forecast.quiet")

    def label(self) -> str:
        """``p90 of 4 weeks``."""
        percent = Fraction(str(self.quantile)) * 100
        shown = f"{float(percent):g}" if percent.denominator != 1 else str(percent.numerator)
        return f"p{shown} of {self.weeks} week{'s' if self.weeks != 1 else ''}"

    @property
    def hourly(self) -> bool:
        return self.interval == HOUR


@dataclass(frozen=True)
class PoolPlan:
    size: int  # outside every window (the base target)
    state: PoolWait  # the base state
    timezone: str = "UTC"  # IANA name (zoneinfo)
    windows: tuple[Window, ...] = ()
    forecast: Forecast | None = None
    maximum: int = 20  # never more hosts than this

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size: {self.size} is below 0")
        _check_state(self.state, "state")
        zone(self.timezone)
        if self.maximum < 0:
            raise ValueError(f"maximum: {self.maximum} is below 0")

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)


@dataclass(frozen=True)
class Target:
    size: int
    state: PoolWait
    reason: str  # plain words


def _local(at: datetime.datetime, tz: ZoneInfo) -> datetime.datetime:
    """``at`` on the plan's wall clock (naive)."""
    return at.astimezone(tz).replace(tzinfo=None)


def _hour(local: datetime.datetime) -> datetime.datetime:
    return local.replace(minute=0, second=0, microsecond=0)


def quantile(counts: Sequence[int], q: float) -> int:
    """The ``q`` quantile of ``counts`` (linear between the two nearest ranks, as NumPy's and
    R's default), rounded up; 0 for no counts. Exact: ``q`` is read as the decimal it is
    written as (0.9 is nine tenths), so a whole quantile is not rounded up past itself."""
    if not 0 < q <= 1:
        raise ValueError(f"quantile: {q} is not in (0, 1]")
    if not counts:
        return 0
    ordered = sorted(counts)
    position = Fraction(str(q)) * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return math.ceil(value)


def _slot(local: datetime.datetime, interval: timedelta) -> datetime.datetime:
    """The start of the ``interval`` of the hour containing ``local``."""
    minutes = int(interval.total_seconds() // 60)
    return local.replace(minute=local.minute // minutes * minutes, second=0, microsecond=0)


def hour_counts(
    history: Sequence[datetime.datetime], tz: ZoneInfo, interval: timedelta = HOUR
) -> Counter[datetime.datetime]:
    """Requests per wall-clock hour (naive, in ``tz``), or per ``interval`` of each hour."""
    found: Counter[datetime.datetime] = Counter()
    for at in history:
        if at.tzinfo is None:
            raise ValueError(f"history: {at.isoformat()} has no time zone")
        found[_slot(_local(at, tz), interval)] += 1
    return found


def forecast_size(
    forecast: Forecast, hour: datetime.datetime, counts: Counter[datetime.datetime]
) -> int:
    """The forecast for the wall-clock hour ``hour``: the quantile of its counts in each of the
    past ``weeks`` weeks (a week without a request counts 0)."""
    past = [counts.get(hour - WEEK * k, 0) for k in range(1, forecast.weeks + 1)]
    return quantile(past, forecast.quantile)


def _forecast(
    forecast: Forecast,
    history: Sequence[datetime.datetime],
    tz: ZoneInfo,
    local: datetime.datetime,
    ahead: datetime.datetime,
) -> tuple[int, PoolWait, str] | None:
    """The forecast's size, state and reason (without the zone) for the intervals containing
    ``local`` and ``ahead`` (the larger); None when it keeps no host."""
    seen = []
    for at in history:
        if at.tzinfo is None:
            raise ValueError(f"history: {at.isoformat()} has no time zone")
        seen.append(_local(at, tz))
    hours = Counter(_hour(t) for t in seen)
    slots = hours if forecast.hourly else Counter(_slot(t, forecast.interval) for t in seen)
    label = forecast.label()
    best: tuple[int, PoolWait, str] | None = None
    for moment in dict.fromkeys([local, ahead]):
        hour, slot = _hour(moment), _slot(moment, forecast.interval)
        size = forecast_size(forecast, slot, slots)
        name = slot.strftime("%a %H:%M" if not forecast.hourly else "%a %H:00")
        found: tuple[int, PoolWait, str] | None = None
        if size > 0:
            per = "" if forecast.hourly else f" ({_minutes(forecast.interval)})"
            found = (size, forecast.state, f"forecast: {label} for {name}{per}")
        elif forecast_size(forecast, hour, hours) > 0:
            found = (
                1,
                forecast.state,
                f"forecast: {label} for {hour.strftime('%a %H:00')}: a request in the hour",
            )
        elif forecast.quiet is not None and any(
            hours.get(hour - WEEK * k, 0) for k in range(1, forecast.weeks + 1)
        ):
            found = (
                1,
                forecast.quiet,
                f"forecast: a request in {hour.strftime('%a %H:00')} in some of the past"
                f" {forecast.weeks} weeks, one host waiting {forecast.quiet}",
            )
        if found is not None and (
            best is None or (found[0], found[1] == "running") > (best[0], best[1] == "running")
        ):
            best = found
    return best


def _minutes(interval: timedelta) -> str:
    return f"{int(interval.total_seconds() // 60)}-minute intervals"


def target(
    plan: PoolPlan,
    at: datetime.datetime,
    *,
    history: Sequence[datetime.datetime] = (),
    vcpu_room: int | None = None,
    vcpus_per_host: int = 4,
) -> Target:
    """What the pool should hold at ``at`` (timezone-aware).

    The window containing ``at`` (the largest if several) sets size and state, else the base.
    With a forecast, the size is at least the forecast's for the hour-of-week containing ``at``
    and for the one starting within the forecast's ``lead`` of it (its state then the
    forecast's, when it raises the size). Then the size is capped by ``maximum``, and by
    ``vcpu_room // vcpus_per_host`` when ``vcpu_room`` (the account's free GPU vCPUs) is given.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at: {at.isoformat()} has no time zone")
    if vcpus_per_host < 1:
        raise ValueError(f"vcpus_per_host: {vcpus_per_host} is below 1")
    tz = plan.zone
    local = _local(at, tz)
    inside = [w for w in plan.windows if w.contains(local)]
    if inside:
        # the largest; of two as large, one that keeps hosts running
        window = max(inside, key=lambda w: (w.size, w.state == "running"))
        size, state, reason = window.size, window.state, window.describe(plan.timezone)
    else:
        size, state = plan.size, plan.state
        reason = f"base plan ({plan.timezone})" if plan.windows else "base plan"
    if plan.forecast is not None:
        found = _forecast(plan.forecast, history, tz, local, _local(at + plan.forecast.lead, tz))
        if found is not None and found[0] > size:
            size, state = found[0], found[1]
            reason = f"{found[2]} {plan.timezone}"
    if size > plan.maximum:
        size, reason = plan.maximum, f"{reason}; capped by the maximum ({plan.maximum})"
    if vcpu_room is not None and size > max(0, vcpu_room) // vcpus_per_host:
        free = max(0, vcpu_room)
        size = free // vcpus_per_host
        reason = f"{reason}; capped by the GPU vCPU quota ({free} vCPUs free)"
    return Target(size=size, state=state, reason=reason)
