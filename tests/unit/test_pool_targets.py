"""A pool's target from its plan: windows in a time zone (past midnight, across changes of
time), a forecast from the request history, the maximum and the account's free GPU vCPUs."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcvfleet.pool_targets import Forecast, PoolPlan, Target, Window, quantile, target

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
WEEKDAYS = frozenset(range(5))
OFFICE = Window(WEEKDAYS, time(8), time(18), size=5, state="running")
PLAN = PoolPlan(size=1, state="stopped", timezone="Europe/Paris", windows=(OFFICE,))


def paris(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


# -- windows ---------------------------------------------------------------------------------
def test_a_weekday_window_in_paris_sets_size_and_state_by_the_paris_clock() -> None:
    # Monday 7 December 2026, 08:00 in Paris is 07:00 UTC
    assert target(PLAN, datetime(2026, 12, 7, 7, 0, tzinfo=UTC)) == Target(
        5, "running", "weekdays 08:00-18:00 Europe/Paris"
    )
    assert target(PLAN, datetime(2026, 12, 7, 6, 59, tzinfo=UTC)) == Target(
        1, "stopped", "base plan (Europe/Paris)"
    )
    # the end is exclusive
    assert target(PLAN, paris(2026, 12, 7, 18, 0)).size == 1
    # Saturday
    assert target(PLAN, paris(2026, 12, 12, 10, 0)).size == 1


def test_a_window_past_midnight_runs_into_the_next_day() -> None:
    night = Window(frozenset({4}), time(22), time(2), size=3, state="running")  # Friday night
    plan = PoolPlan(size=0, state="running", timezone="Europe/Paris", windows=(night,))
    assert target(plan, paris(2026, 12, 11, 21, 59)).size == 0  # Friday
    assert target(plan, paris(2026, 12, 11, 22, 0)).size == 3
    assert target(plan, paris(2026, 12, 12, 1, 59)).size == 3  # Saturday, still Friday's night
    assert target(plan, paris(2026, 12, 12, 2, 0)).size == 0
    assert target(plan, paris(2026, 12, 12, 23, 0)).size == 0  # Saturday's own night: none
    assert target(plan, paris(2026, 12, 10, 1, 0)).size == 0  # Thursday early: no Wednesday


def test_the_largest_of_two_windows_wins() -> None:
    lunch = Window(WEEKDAYS, time(12), time(14), size=8, state="running")
    plan = PoolPlan(size=1, state="stopped", timezone="Europe/Paris", windows=(OFFICE, lunch))
    assert target(plan, paris(2026, 12, 7, 13, 0)) == Target(
        8, "running", "weekdays 12:00-14:00 Europe/Paris"
    )
    assert target(plan, paris(2026, 12, 7, 15, 0)).size == 5


def test_the_day_the_clocks_go_forward_in_paris() -> None:
    # Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC)
    early = Window(frozenset({6}), time(2, 30), time(4), size=2, state="running")
    plan = PoolPlan(size=0, state="running", timezone="Europe/Paris", windows=(early, OFFICE))
    assert target(plan, datetime(2026, 3, 29, 0, 59, tzinfo=UTC)).size == 0  # 01:59 CET
    # 02:30 never shows on the clock: the window has started when it jumps to 03:00
    assert target(plan, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)).size == 2  # 03:00 CEST
    assert target(plan, datetime(2026, 3, 29, 2, 0, tzinfo=UTC)).size == 0  # 04:00 CEST
    # the next morning, the office window opens at 08:00 summer time: 06:00 UTC, not 07:00
    assert target(plan, datetime(2026, 3, 30, 6, 0, tzinfo=UTC)).size == 5
    assert target(plan, datetime(2026, 3, 30, 5, 59, tzinfo=UTC)).size == 0


def test_the_day_the_clocks_go_back_in_paris() -> None:
    # Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00-03:00 comes twice
    repeated = Window(frozenset({6}), time(2), time(3), size=2, state="running")
    plan = PoolPlan(size=0, state="running", timezone="Europe/Paris", windows=(repeated, OFFICE))
    assert target(plan, datetime(2026, 10, 24, 23, 59, tzinfo=UTC)).size == 0  # 01:59 CEST
    assert target(plan, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)).size == 2  # 02:30 CEST
    assert target(plan, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)).size == 2  # 02:30 CET
    assert target(plan, datetime(2026, 10, 25, 2, 0, tzinfo=UTC)).size == 0  # 03:00 CET
    # the next morning 08:00 is winter time: 07:00 UTC
    assert target(plan, datetime(2026, 10, 26, 6, 59, tzinfo=UTC)).size == 0
    assert target(plan, datetime(2026, 10, 26, 7, 0, tzinfo=UTC)).size == 5


# -- the forecast ------------------------------------------------------------------------------
def weekly(at: datetime, per_week: list[int]) -> Iterator[datetime]:
    """``per_week[k]`` requests in the hour of ``at``, k + 1 weeks earlier."""
    for k, count in enumerate(per_week):
        for i in range(count):
            yield at - timedelta(weeks=k + 1) + timedelta(minutes=i % 60)


def test_the_forecast_is_the_quantile_of_past_weeks_with_empty_weeks_counted_zero() -> None:
    monday_13 = paris(2026, 12, 7, 13, 0)
    # four weeks: 6, nothing, 2, nothing
    history = list(weekly(monday_13, [6, 0, 2, 0]))
    plan = PoolPlan(size=0, state="stopped", timezone="Europe/Paris", forecast=Forecast(0.9))
    # counts 0, 0, 2, 6: the 90th percentile is 2 + 0.7 * 4 = 4.8, rounded up
    assert target(plan, monday_13 + timedelta(minutes=20), history=history) == Target(
        5, "running", "forecast: p90 of 4 weeks for Mon 13:00 Europe/Paris"
    )
    # the median of 0, 0, 2, 6 is 1
    median = PoolPlan(size=0, state="stopped", timezone="Europe/Paris", forecast=Forecast(0.5))
    assert target(median, monday_13, history=history).size == 1
    # an hour with no history: the base plan
    assert target(plan, monday_13 + timedelta(hours=3), history=history) == Target(
        0, "stopped", "base plan"
    )


def test_the_forecast_asks_for_the_next_hour_its_lead_ahead() -> None:
    monday_13 = paris(2026, 12, 7, 13, 0)
    history = list(weekly(monday_13, [4, 4, 4, 4]))
    plan = PoolPlan(size=0, state="stopped", timezone="Europe/Paris", forecast=Forecast(1.0))
    assert target(plan, monday_13 - timedelta(minutes=11), history=history).size == 0
    assert target(plan, monday_13 - timedelta(minutes=10), history=history).size == 4
    assert target(plan, monday_13 + timedelta(minutes=59), history=history).size == 4
    assert target(plan, monday_13 + timedelta(minutes=60), history=history).size == 0


def test_the_forecast_only_raises_a_window_size() -> None:
    monday_13 = paris(2026, 12, 7, 13, 0)
    history = list(weekly(monday_13, [2, 2, 2, 2]))
    plan = PoolPlan(
        size=1, state="stopped", timezone="Europe/Paris", windows=(OFFICE,), forecast=Forecast(1)
    )
    assert target(plan, monday_13, history=history) == Target(
        5, "running", "weekdays 08:00-18:00 Europe/Paris"
    )


def test_the_forecast_counts_by_the_wall_clock_across_a_change_of_time() -> None:
    # Monday 30 March 2026 09:00 CEST (07:00 UTC); a week earlier 09:00 CET was 08:00 UTC
    plan = PoolPlan(size=0, state="running", timezone="Europe/Paris", forecast=Forecast(1, 1))
    history = [datetime(2026, 3, 23, 8, 15, tzinfo=UTC)] * 3
    assert target(plan, datetime(2026, 3, 30, 7, 0, tzinfo=UTC), history=history).size == 3
    assert target(plan, datetime(2026, 3, 30, 8, 0, tzinfo=UTC), history=history).size == 0


def class_weeks(monday_1255: datetime, per_week: int = 15) -> list[datetime]:
    """Four past weeks, each with ``per_week`` requests between 12:55 and 13:00 (a class)."""
    return [
        monday_1255 - timedelta(weeks=k) + timedelta(seconds=20 * i)
        for k in range(1, 5)
        for i in range(per_week)
    ]


def test_a_forecast_per_interval_wants_a_classs_hosts_only_around_its_minutes() -> None:
    # Given four past Mondays, each with a class of 15 arriving 12:55-13:00 in Paris
    monday_1255 = paris(2026, 12, 7, 12, 55)
    history = class_weeks(monday_1255)
    per_hour = PoolPlan(0, "stopped", "Europe/Paris", forecast=Forecast(0.5, lead=timedelta(0)))
    five = Forecast(0.5, lead=timedelta(0), interval=timedelta(minutes=5))
    per_5 = PoolPlan(0, "stopped", "Europe/Paris", forecast=five)
    # Then counted per hour, the class's 15 hosts are wanted from 12:00, idle for 55 minutes
    assert target(per_hour, paris(2026, 12, 7, 12, 0), history=history).size == 15
    # While counted per 5 minutes they are wanted for those minutes
    assert target(per_5, monday_1255, history=history) == Target(
        15, "running", "forecast: p50 of 4 weeks for Mon 12:55 (5-minute intervals) Europe/Paris"
    )
    # and the rest of that hour keeps one host running, as an hour with requests
    assert target(per_5, paris(2026, 12, 7, 12, 0), history=history) == Target(
        1, "running", "forecast: p50 of 4 weeks for Mon 12:00: a request in the hour Europe/Paris"
    )
    # and an hour without any, none
    assert target(per_5, paris(2026, 12, 7, 13, 0), history=history).size == 0


def test_an_hour_with_a_request_in_some_week_keeps_one_host_waiting_quiet() -> None:
    # Given one request at 03:10 on one of the four past Mondays: a median of none
    history = [paris(2026, 11, 16, 3, 10)]
    five = timedelta(minutes=5)
    quiet = Forecast(0.5, lead=timedelta(0), interval=five, quiet="stopped")
    plan = PoolPlan(0, "running", "Europe/Paris", forecast=quiet)
    # Then that hour keeps one host waiting stopped, and the hour after none
    assert target(plan, paris(2026, 12, 7, 3, 30), history=history) == Target(
        1,
        "stopped",
        "forecast: a request in Mon 03:00 in some of the past 4 weeks, one host waiting stopped"
        " Europe/Paris",
    )
    assert target(plan, paris(2026, 12, 7, 4, 30), history=history).size == 0
    # and without a quiet state, no host
    loud = PoolPlan(0, "running", "Europe/Paris", forecast=Forecast(0.5, interval=five))
    assert target(loud, paris(2026, 12, 7, 3, 30), history=history).size == 0


# -- the caps ----------------------------------------------------------------------------------
def test_the_maximum_and_the_free_gpu_vcpus_cap_the_size() -> None:
    big = PoolPlan(size=30, state="running", maximum=20)
    at = datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert target(big, at) == Target(20, "running", "base plan; capped by the maximum (20)")
    assert target(big, at, vcpu_room=64) == Target(
        16,
        "running",
        "base plan; capped by the maximum (20); capped by the GPU vCPU quota (64 vCPUs free)",
    )
    assert target(big, at, vcpu_room=10, vcpus_per_host=8).size == 1
    assert target(big, at, vcpu_room=-4).size == 0  # more running than the quota
    assert target(big, at, vcpu_room=1000).size == 20


# -- a bad plan --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PoolPlan(1, "running", timezone="Mars/Olympus"), "timeZone: 'Mars/Olympus'"),
        (lambda: PoolPlan(1, "running", timezone="../etc/passwd"), "timeZone:"),
        (lambda: PoolPlan(-1, "running"), "size: -1 is below 0"),
        (lambda: PoolPlan(1, "asleep"), "state: 'asleep' is not one of"),  # type: ignore[arg-type]
        (lambda: PoolPlan(1, "running", maximum=-1), "maximum: -1 is below 0"),
        (lambda: Window(WEEKDAYS, time(8), time(8), 1, "running"), "to: a window must not end"),
        (lambda: Window(WEEKDAYS, time(8), time(9), -2, "running"), "size: -2 is below 0"),
        (lambda: Window(frozenset(), time(8), time(9), 1, "running"), "days: a window needs"),
        (lambda: Window(frozenset({7}), time(8), time(9), 1, "running"), "days: [7]"),
        (lambda: Forecast(0), "forecast.quantile: 0 is not in (0, 1]"),
        (lambda: Forecast(1.5), "forecast.quantile: 1.5 is not in (0, 1]"),
        (lambda: Forecast(0.9, weeks=0), "forecast.weeks: 0"),
        (lambda: Forecast(0.9, lead=timedelta(hours=1)), "forecast.lead:"),
        (lambda: Forecast(0.9, interval=timedelta(minutes=7)), "forecast.interval: 0:07:00"),
        (lambda: Forecast(0.9, interval=timedelta(seconds=90)), "forecast.interval:"),
        (lambda: Forecast(0.9, interval=timedelta(hours=2)), "forecast.interval:"),
        (lambda: Forecast(0.9, quiet="asleep"), "forecast.quiet: 'asleep'"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at: .* has no time zone"):
        target(PLAN, datetime(2026, 12, 7, 10))


def test_zones_resolve_without_the_system_database() -> None:
    # the Lambda runtime's image may carry no /usr/share/zoneinfo: the tzdata package does
    zoneinfo.reset_tzpath(to=[])
    try:
        zoneinfo.ZoneInfo.clear_cache()
        assert target(PLAN, datetime(2026, 12, 7, 7, 0, tzinfo=UTC)).size == 5
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


# -- properties --------------------------------------------------------------------------------
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
times = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def plans(draw: st.DrawFn) -> PoolPlan:
    found = []
    for _ in range(draw(st.integers(0, 3))):
        start, end = draw(times), draw(times)
        if start == end:
            continue
        found.append(
            Window(
                draw(st.frozensets(st.integers(0, 6), min_size=1)),
                start,
                end,
                draw(st.integers(0, 40)),
                draw(st.sampled_from(["running", "stopped"])),
            )
        )
    forecast = draw(
        st.none()
        | st.builds(
            Forecast,
            quantile=st.floats(0.01, 1.0),
            weeks=st.integers(1, 8),
            lead=st.integers(0, 59).map(lambda m: timedelta(minutes=m)),
        )
    )
    return PoolPlan(
        size=draw(st.integers(0, 40)),
        state=draw(st.sampled_from(["running", "stopped"])),
        timezone=draw(zones),
        windows=tuple(found),
        forecast=forecast,
        maximum=draw(st.integers(0, 25)),
    )


@settings(max_examples=150, deadline=None)
@given(
    plan=plans(),
    at=moments,
    history=st.lists(moments, max_size=40),
    room=st.none() | st.integers(-8, 200),
    per_host=st.integers(1, 16),
)
def test_the_target_never_passes_its_caps(
    plan: PoolPlan, at: datetime, history: list[datetime], room: int | None, per_host: int
) -> None:
    found = target(plan, at, history=history, vcpu_room=room, vcpus_per_host=per_host)
    assert 0 <= found.size <= plan.maximum
    if room is not None:
        assert found.size * per_host <= max(0, room)
    assert found.reason
    # the caps only lower the size: without them, it is the window's or the base's or more
    uncapped = PoolPlan(
        plan.size, plan.state, plan.timezone, plan.windows, plan.forecast, maximum=10**6
    )
    free = target(uncapped, at, history=history).size
    local = at.astimezone(plan.zone).replace(tzinfo=None)
    inside = [w.size for w in plan.windows if w.contains(local)]
    assert free >= (max(inside) if inside else plan.size)
    assert target(plan, at, history=history).size == min(free, plan.maximum)


@settings(max_examples=150, deadline=None)
@given(plan=plans(), at=moments, history=st.lists(moments, max_size=40))
def test_the_history_order_does_not_matter(
    plan: PoolPlan, at: datetime, history: list[datetime]
) -> None:
    assert target(plan, at, history=history) == target(plan, at, history=history[::-1])


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 50), min_size=1, max_size=12),
    low=st.floats(0.01, 1.0),
    high=st.floats(0.01, 1.0),
)
def test_the_quantile_lies_within_the_counts_and_grows_with_q(
    counts: list[int], low: float, high: float
) -> None:
    low, high = sorted((low, high))
    assert min(counts) <= quantile(counts, low) <= quantile(counts, high) <= max(counts)
    assert quantile(counts, 1.0) == max(counts)
    assert quantile([c * 1 for c in [counts[0]] * len(counts)], low) == counts[0]


def test_the_quantile_of_no_weeks_is_zero_and_whole_values_are_not_rounded_up() -> None:
    assert quantile([], 0.9) == 0
    # 11 counts 0..10: the 90th percentile is exactly 9 (a float 0.9 would make it 9.000...1)
    assert quantile(list(range(11)), 0.9) == 9


@settings(max_examples=100, deadline=None)
@given(plan=plans(), at=moments)
def test_a_window_sets_the_target_at_its_first_minute_on_the_plans_clock(
    plan: PoolPlan, at: datetime
) -> None:
    for window in plan.windows:
        local = at.astimezone(plan.zone)
        day = next(
            local + timedelta(days=d) for d in range(7) if (local.weekday() + d) % 7 in window.days
        )
        start = datetime.combine(day.date(), window.start, tzinfo=plan.zone)
        if start.astimezone(UTC).astimezone(plan.zone).replace(tzinfo=None) != start.replace(
            tzinfo=None
        ):
            continue  # a wall-clock time that does not exist that day (clocks going forward)
        found = target(plan, start)
        biggest = max(w.size for w in plan.windows if w.contains(start.replace(tzinfo=None)))
        assert found.size >= min(biggest, plan.maximum)
