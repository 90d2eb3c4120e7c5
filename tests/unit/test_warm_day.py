"""The simulated day of bench/warm_day.py keeps its invariants under every policy: every request
gets a desktop, a pool host serves at most one user and only after its own boot, the pool is
refilled after each claim, and the costs add up."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from bench import warm_day
from bench.warm_day import (
    BAKED_LAUNCH_SECONDS,
    DAY,
    DCV_SESSION_SECONDS,
    SESSION_MINUTES,
    START_FROM_STOPPED_SECONDS,
    DayResult,
    arrivals,
    history,
    load_prices,
    run_day,
)
from dcvfleet.pool import MAX_POOL_SIZE

CONTROL_PLANE = {"hit": [1.0, 1.5, 2.0], "miss": [1.2, 2.5]}


@pytest.fixture(scope="module")
def day() -> list[DayResult]:
    return run_day(CONTROL_PLANE, seed=3)


def test_the_day_has_the_class_and_a_background_all_within_the_day() -> None:
    requests = arrivals(DAY, 3)
    assert requests == sorted(requests)
    in_class = [r for r in requests if abs((r - DAY.replace(hour=13)).total_seconds()) <= 300]
    assert len(in_class) >= warm_day.CLASS_SIZE
    assert len(requests) > warm_day.CLASS_SIZE  # the background
    assert all(DAY <= r < DAY.replace(day=DAY.day + 1) for r in requests)
    # the forecast's history is four earlier weeks of the same model, not this day
    past = history(DAY, 3)
    assert past
    assert all(r < DAY for r in past)
    assert arrivals(DAY, 3) == requests  # seeded


def test_every_request_gets_a_desktop_under_every_policy(day: list[DayResult]) -> None:
    requests = arrivals(DAY, 3)
    offsets = [(r - DAY).total_seconds() for r in requests]
    assert [r.policy.name[:3] for r in day] == ["(a)", "(b)", "(c)", "(d)"]
    for result in day:
        assert sorted(s.at for s in result.served) == pytest.approx(offsets), result.policy.name
        for s in result.served:
            floor = {
                "running": DCV_SESSION_SECONDS,
                "stopped": START_FROM_STOPPED_SECONDS + DCV_SESSION_SECONDS,
                "miss": BAKED_LAUNCH_SECONDS,
            }[s.path]
            assert s.wait >= floor + 1.0, (result.policy.name, s)  # + the control plane's


def test_a_pool_host_serves_one_user_at_most_and_only_after_its_own_boot(
    day: list[DayResult],
) -> None:
    for result in day:
        served_by = [s.host for s in result.served if s.host is not None]
        assert len(served_by) == len(set(served_by)), result.policy.name
        hosts = {h.ident: h for h in result.hosts}
        for s in result.served:
            if s.host is None:
                assert s.path == "miss"
                continue
            host = hosts[s.host]
            assert host.claimed_at == s.at
            assert host.terminated_at is None
            assert s.at >= host.launched + BAKED_LAUNCH_SECONDS
        claimed = [h for h in result.hosts if h.claimed_at is not None]
        assert len(claimed) == len(served_by)


def test_no_pool_misses_every_request_and_a_pool_is_refilled_after_each_claim(
    day: list[DayResult],
) -> None:
    none, static = day[0], day[1]
    assert none.hosts == []
    assert none.hit_rate == 0
    assert none.pool_cost == 0
    launched_at = sorted(h.launched for h in static.hosts)
    for s in static.served:
        if s.host is not None:  # the asynchronous refill launched a host at the claim
            assert s.at in launched_at
    # the static pool never holds more than its size
    size = MAX_POOL_SIZE
    for s in static.served:
        waiting = [
            h
            for h in static.hosts
            if h.launched <= s.at
            and (h.claimed_at is None or h.claimed_at > s.at)
            and (h.terminated_at is None or h.terminated_at > s.at)
        ]
        assert len(waiting) <= size


def test_the_costs_add_up(day: list[DayResult]) -> None:
    prices = load_prices()
    volume_hour = warm_day.VOLUME_GB * prices.ebs_gb_month / prices.hours_per_month
    for result in day:
        users = sum(s.wait + SESSION_MINUTES * 60 for s in result.served) / 3600
        assert result.user_hours == pytest.approx(users)
        assert result.user_cost == pytest.approx(users * (prices.instance_hour + volume_hour))
        running = sum(h.running_seconds for h in result.hosts) / 3600
        stopped = sum(h.stopped_seconds for h in result.hosts) / 3600
        assert result.pool_cost == pytest.approx(
            running * (prices.instance_hour + volume_hour) + stopped * volume_hour
        )
        assert result.total_cost == pytest.approx(result.pool_cost + result.user_cost)
        # a pool host is paid from its launch until it is claimed, terminated, or the day ends
        for h in result.hosts:
            until = h.claimed_at or h.terminated_at or result.end
            assert h.running_seconds + h.stopped_seconds == pytest.approx(until - h.launched)
    static = day[1]
    assert static.pool_running_hours == pytest.approx(MAX_POOL_SIZE * 24)


def test_the_scheduled_pool_waits_stopped_outside_its_windows(day: list[DayResult]) -> None:
    scheduled = day[2]
    assert scheduled.pool_stopped_hours > 0
    stopped_hits = [s for s in scheduled.served if s.path == "stopped"]
    night = [s for s in scheduled.served if not 8 * 3600 <= s.at < 19 * 3600]
    assert all(s.path != "running" for s in night)
    assert all(not 8 * 3600 <= s.at < 19 * 3600 for s in stopped_hits)


def test_the_targets_verdict_follows_the_figures(day: list[DayResult]) -> None:
    report = warm_day.as_report(day)
    for name, row in report.items():
        if "targets" not in row:
            continue
        targets = row["targets"]
        assert targets["p95"] == (row["p95"] <= warm_day.TARGET_P95_SECONDS)
        assert targets["extraSpend"] == (row["extraSpend"] <= warm_day.TARGET_EXTRA_SPEND)
        static_extra = report["(b) static pool"]["extraSpend"]
        assert targets["belowStatic"] == (row["extraSpend"] <= static_extra / 2)
        assert targets["met"] == (
            targets["p95"] and targets["extraSpend"] and targets["belowStatic"]
        )
        assert not math.isnan(row["extraSpend"]), name


def test_prices_come_from_the_pinned_table_and_an_unknown_type_is_refused() -> None:
    prices = load_prices()
    assert prices.instance_hour > 0
    assert prices.ebs_gb_month > 0
    assert prices.taken
    assert all(u.startswith("https://aws.amazon.com/") for u in prices.sources.values())
    with pytest.raises(ValueError, match=r"no On-Demand price for p5\.48xlarge"):
        load_prices("p5.48xlarge")


def test_a_pool_host_is_claimable_only_once_its_own_boot_is_done() -> None:
    # the static pool's first refill launches its hosts at midnight: they boot for
    # BAKED_LAUNCH_SECONDS, so a request 30 s later misses and one after the boot hits
    early = DAY + dt.timedelta(seconds=30)
    later = DAY + dt.timedelta(seconds=BAKED_LAUNCH_SECONDS + 30)
    result = warm_day.simulate(
        warm_day.static_pool(), [early, later], control_plane=CONTROL_PLANE, prices=load_prices()
    )
    assert [s.path for s in result.served] == ["miss", "running"]


def test_the_scheduled_and_forecast_policies_take_their_targets_from_the_product() -> None:
    import dcvfleet.pool_targets as product

    assert vars(warm_day)["target"] is product.target  # the product's code, not a copy of it
    scheduled = warm_day.scheduled_pool().target
    assert scheduled is not None
    at = DAY.replace(hour=12, minute=50)
    assert (scheduled(at).size, scheduled(at).state) == (warm_day.CLASS_WINDOW_SIZE, "running")
    assert (scheduled(DAY.replace(hour=10)).size, scheduled(DAY.replace(hour=10)).state) == (
        1,
        "running",
    )
    assert (scheduled(DAY.replace(hour=3)).size, scheduled(DAY.replace(hour=3)).state) == (
        1,
        "stopped",
    )
    saturday = DAY + dt.timedelta(days=4, hours=12, minutes=50)
    assert scheduled(saturday).state == "stopped"
    # the forecast wants the class's hosts before the class, from the past weeks' requests
    forecast = warm_day.forecast_pool(history(DAY, 3)).target
    assert forecast is not None
    assert forecast(DAY.replace(hour=12, minute=30)).size > forecast(DAY.replace(hour=3)).size


def test_the_policies_read_their_plans_as_the_refill_does_ahead_by_plan_lead() -> None:
    # the refill reads a plan now and PLAN_LEAD (10 min) ahead (dcvfleet.pool.wanted): the
    # scheduled pool's 12:45 window is served from 12:35
    from dcvfleet.pool import PLAN_LEAD

    scheduled = warm_day.scheduled_pool().target
    assert scheduled is not None
    before = DAY.replace(hour=12, minute=45) - PLAN_LEAD
    assert scheduled(before).size == warm_day.CLASS_WINDOW_SIZE
    assert scheduled(before - dt.timedelta(minutes=1)).size == 1


def test_the_forecast_pools_plan_is_one_a_profile_can_hold() -> None:
    from dcvfleet.profiles import PoolSpec

    plan = PoolSpec.model_validate(warm_day.FORECAST_POOL).plan()
    assert plan.forecast is not None
    assert plan.forecast.interval == dt.timedelta(minutes=warm_day.REFILL_MINUTES)
    assert plan.forecast.quiet == "stopped"


def test_the_forecast_pool_meets_the_issues_targets_over_ten_days() -> None:
    # half of what `python -m bench.warm --no-stack` simulates (20 weekdays from seed 17)
    control_plane = {k: [v] for k, v in warm_day.DEFAULT_CONTROL_PLANE_SECONDS.items()}
    report = warm_day.as_report(warm_day.run_days(control_plane, days=10))
    forecast = report["(d) forecast pool"]
    assert forecast["p95"] <= warm_day.TARGET_P95_SECONDS, forecast
    assert forecast["extraSpend"] <= warm_day.TARGET_EXTRA_SPEND, forecast
    assert forecast["extraSpend"] <= report["(b) static pool"]["extraSpend"] / 2, forecast
    assert forecast["targets"]["met"]
