"""The warm pool's refill: up to its target with the profile's launch template, never past the
account's vCPU quota, its records kept true to what EC2 has; and the sweep leaves pool hosts be."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from dcvfleet import pool, pool_targets
from dcvfleet.adapters import OS_TAG, POOL_TAG, SESSION_TAG
from dcvfleet.config import PoolSettings
from dcvfleet.lifecycle import sweep
from dcvfleet.pool import InMemoryPoolStore, PoolHost, PoolState
from dcvfleet.store import InMemorySessionStore
from tests.support.lifecycle import SETTINGS as LIFECYCLE
from tests.support.lifecycle import LifecycleHosts
from tests.support.service import COMMON, FLEET_TAG
from tests.support.sessions import a_session

PROFILE = "linux-workstation"
T0 = "2026-12-07T10:00:00.000Z"
LATER = "2026-12-07T10:06:00.000Z"
SETTINGS = PoolSettings(
    common=COMMON,
    pool_table="pool",
    size=2,
    state="running",
    launch_template_id="lt-linux",
    instance_type="g5.xlarge",
    subnet_ids=("subnet-a", "subnet-b"),
)


def states(store: InMemoryPoolStore) -> dict[str, PoolState]:
    return {h.instance_id: h.state for h in store.hosts(PROFILE)}


def test_the_default_size_launches_nothing() -> None:
    # Given the pool's default target, 0
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # When the pool is refilled
    out = pool.refill(store, hosts, replace(SETTINGS, size=0), run_id="run-1", now=T0)
    # Then nothing is launched or recorded
    assert hosts.attempts == []
    assert store.hosts(PROFILE) == []
    assert out == {
        "profile": PROFILE,
        "target": 0,
        "state": "running",
        "reason": "WarmPoolSize 0, WarmPoolState running",
        "inPool": 0,
        "launched": [],
        "retired": [],
        "replaced": [],
        "stopping": [],
        "starting": [],
    }


def test_a_refill_launches_tagged_pool_hosts_up_to_the_target_and_no_more() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # When an empty pool of two is refilled, then refilled again
    first = pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0)
    second = pool.refill(store, hosts, SETTINGS, run_id="run-2", now=T0)
    # Then two hosts were launched from the profile's launch template, the second run none
    assert len(first["launched"]) == 2
    assert second["launched"] == []
    assert hosts.launch_templates == ["lt-linux", "lt-linux"]
    assert states(store) == dict.fromkeys(first["launched"], PoolState.WARMING)
    # And each is tagged a fleet host of this profile's pool, with no session
    for instance_id in first["launched"]:
        tags = hosts.instances[instance_id].tags
        assert tags[FLEET_TAG[0]] == FLEET_TAG[1]
        assert tags[POOL_TAG] == PROFILE
        assert tags[OS_TAG] == "linux"
        assert SESSION_TAG not in tags
    # And a claimed host no longer counts: the next run replaces it
    assert store.claim(PROFILE, "session-1", T0) is None  # WARMING ones cannot be claimed
    store.mark(store.hosts(PROFILE)[0], PoolState.READY, T0)
    assert store.claim(PROFILE, "session-1", T0) is not None
    assert len(pool.refill(store, hosts, SETTINGS, run_id="run-3", now=T0)["launched"]) == 1


def test_a_retried_refill_launches_nothing_twice() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0)
    # Then the tokens are one per run and place, the same for a retry of the same run
    again = InMemoryPoolStore(), LifecycleHosts()
    pool.refill(*again, SETTINGS, run_id="run-1", now=T0)
    assert hosts.client_tokens == again[1].client_tokens
    assert len(set(hosts.client_tokens)) == 2
    assert all(len(token) <= 64 for token in hosts.client_tokens)


def test_a_refill_stops_at_the_vcpu_quota_and_tries_the_next_subnet_for_capacity() -> None:
    # Given no capacity in the first subnet
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    hosts.capacity = {("g5.xlarge", "subnet-b")}
    # When the pool is refilled / Then it launches in the second
    assert len(pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0)["launched"]) == 2
    assert hosts.attempts[:2] == [("g5.xlarge", "subnet-a"), ("g5.xlarge", "subnet-b")]
    # Given the account's vCPU quota refuses the type
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    hosts.over_quota = {"g5.xlarge"}
    # When the pool is refilled / Then one refusal ends the run: it asks no further
    assert pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0)["launched"] == []
    assert hosts.attempts == [("g5.xlarge", "subnet-a")]
    assert store.hosts(PROFILE) == []


def test_a_refill_records_a_pool_host_it_launched_but_never_recorded_and_drops_a_lost_one() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # Given a pool instance EC2 has and the pool never recorded (a run ended between the two),
    # and a record whose instance was terminated outside DCV Fleet
    unrecorded = hosts.add(session_id="x", **{FLEET_TAG[0]: FLEET_TAG[1], POOL_TAG: PROFILE})
    hosts.set(
        unrecorded.instance_id, tags={k: v for k, v in unrecorded.tags.items() if k != SESSION_TAG}
    )
    store.add(PoolHost(PROFILE, "i-0000000000000dead", PoolState.READY, T0))
    # When the pool is refilled a moment later / Then the lost one is kept (EC2 may lag)
    assert pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0)["launched"] == []
    assert set(states(store)) == {unrecorded.instance_id, "i-0000000000000dead"}
    # When it is refilled minutes later / Then the lost one is dropped and replaced
    out = pool.refill(store, hosts, SETTINGS, run_id="run-2", now=LATER)
    assert len(out["launched"]) == 1
    assert set(states(store)) == {unrecorded.instance_id, *out["launched"]}


def test_the_sweep_leaves_an_unclaimed_pool_host_alone_but_not_a_claimed_ones_orphan() -> None:
    # Given a running pool host with no session, and a claimed one whose session is gone
    hosts = LifecycleHosts()
    waiting = hosts.add(session_id="x", **{FLEET_TAG[0]: FLEET_TAG[1], POOL_TAG: PROFILE})
    hosts.set(waiting.instance_id, tags={k: v for k, v in waiting.tags.items() if k != SESSION_TAG})
    claimed = hosts.add(session_id="deleted", **{FLEET_TAG[0]: FLEET_TAG[1], POOL_TAG: PROFILE})
    # When the sweep looks / Then only the claimed one is an orphan
    found = sweep.find_sweep_work(InMemorySessionStore(), hosts, LIFECYCLE)["items"]
    assert found == [{"kind": "orphan", "id": claimed.instance_id}]


def test_a_lowered_target_terminates_the_excess_waiting_hosts_first_and_never_a_claimed_one() -> (
    None
):
    # Given a pool of three: two READY (one of them claimed since) and one still WARMING
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    launched = pool.refill(store, hosts, replace(SETTINGS, size=3), run_id="run-1", now=T0)[
        "launched"
    ]
    ready_a, ready_b, warming_c = launched
    for instance_id in (ready_a, ready_b):
        store.mark(PoolHost(PROFILE, instance_id, PoolState.WARMING, T0), PoolState.READY, T0)
    claimed = store.claim(PROFILE, "session-1", T0)
    assert claimed is not None
    # When the target is lowered to 1, then to 0
    one = pool.refill(store, hosts, replace(SETTINGS, size=1), run_id="run-2", now=T0)
    # Then the WARMING one goes first; the claimed one stays that desktop's
    assert one["retired"] == [warming_c]
    assert hosts.terminated == [warming_c]
    zero = pool.refill(store, hosts, replace(SETTINGS, size=0), run_id="run-3", now=T0)
    left = ({ready_a, ready_b} - {claimed.instance_id}).pop()
    assert zero["retired"] == [left]
    assert claimed.instance_id not in hosts.terminated
    assert states(store) == {claimed.instance_id: PoolState.CLAIMED}


def test_a_host_claimed_while_the_pool_shrinks_is_not_removed() -> None:
    # Given a READY host, read by a refill that means to retire it
    store = InMemoryPoolStore()
    store.add(PoolHost(PROFILE, "i-0000000000000000a", PoolState.WARMING, T0))
    store.mark(PoolHost(PROFILE, "i-0000000000000000a", PoolState.WARMING, T0), PoolState.READY, T0)
    seen = store.hosts(PROFILE)[0]
    # When a request claims it first / Then the refill's conditional removal fails
    assert store.claim(PROFILE, "session-1", T0) is not None
    assert not store.remove(seen)
    assert states(store) == {"i-0000000000000000a": PoolState.CLAIMED}


def test_a_refill_drops_the_record_of_a_claimed_host_once_its_instance_is_gone() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    pool.refill(store, hosts, replace(SETTINGS, size=1), run_id="run-1", now=T0)
    [host] = store.hosts(PROFILE)
    store.mark(host, PoolState.READY, T0)
    claimed = store.claim(PROFILE, "session-1", T0)
    assert claimed is not None
    # While its desktop runs, the claim is kept, whenever the refill runs
    hosts.settle()
    pool.refill(store, hosts, replace(SETTINGS, size=1), run_id="run-2", now=LATER)
    assert states(store)[host.instance_id] is PoolState.CLAIMED
    # When its desktop ended (its instance terminated) / Then the next refill drops the record
    hosts.terminate(host.instance_id)
    pool.refill(store, hosts, replace(SETTINGS, size=1), run_id="run-3", now=LATER)
    assert host.instance_id not in states(store)


# -- the pool's plan ------------------------------------------------------------------------------
OFFICE = pool_targets.PoolPlan(
    size=1,
    state="stopped",
    timezone="Europe/Paris",
    windows=(pool_targets.Window(frozenset(range(5)), time(8), time(18), size=5, state="running"),),
)
#: Monday 7 December 2026 in Paris (UTC+1)
BEFORE_OFFICE = "2026-12-07T06:49:00.000Z"  # 07:49
OFFICE_LEAD = "2026-12-07T06:50:00.000Z"  # 07:50, ten minutes before the window
EVENING = "2026-12-07T17:00:00.000Z"  # 18:00


def no_history(profile: str, since: str) -> list[str]:
    raise AssertionError("the history is read only for a forecast")


def test_the_refill_follows_the_profiles_schedule_from_ten_minutes_before_a_window() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    demand = pool.Demand(plan=OFFICE, history=no_history)
    # Before the window's lead: the base plan, one host waiting stopped
    out = pool.refill(store, hosts, SETTINGS, run_id="run-1", now=BEFORE_OFFICE, demand=demand)
    assert (out["target"], out["state"], out["reason"]) == (
        1,
        "stopped",
        "base plan (Europe/Paris)",
    )
    # Ten minutes before 08:00 in Paris: the window's five, running
    out = pool.refill(store, hosts, SETTINGS, run_id="run-2", now=OFFICE_LEAD, demand=demand)
    assert (out["target"], out["state"], out["reason"]) == (
        5,
        "running",
        "weekdays 08:00-18:00 Europe/Paris (from 10 minutes before)",
    )
    assert out["inPool"] == 5
    assert len(out["launched"]) == 4
    assert store.last_target(PROFILE) == {
        "size": 5,
        "state": "running",
        "reason": "weekdays 08:00-18:00 Europe/Paris (from 10 minutes before)",
    }
    # At 18:00 the window has ended: back to one, the excess retired
    out = pool.refill(store, hosts, SETTINGS, run_id="run-3", now=EVENING, demand=demand)
    assert (out["target"], out["state"], out["inPool"], len(out["retired"])) == (
        1,
        "stopped",
        1,
        4,
    )


def test_the_refill_follows_the_forecast_from_the_profiles_request_history() -> None:
    # Given the profile's requests at 13:xx on the past four Mondays: 3, 3, 0 and 6
    sessions = InMemorySessionStore()
    monday_13 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 13:00 in Paris
    for week, count in enumerate([3, 3, 0, 6], start=1):
        for i in range(count):
            at = monday_13 - timedelta(weeks=week) + timedelta(minutes=i)
            sessions.create(
                a_session(
                    f"s-{week}-{i}",
                    owner=f"u-{week}-{i}",
                    created_at=at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    extra={"profile": PROFILE},
                ),
                max_active=1,
            )
    asked: list[tuple[str, str]] = []

    def history(profile: str, since: str) -> list[str]:
        asked.append((profile, since))
        return sessions.requested_since(profile, since)

    plan = replace(OFFICE, windows=(), size=0, forecast=pool_targets.Forecast(0.5))
    demand = pool.Demand(plan=plan, history=history)
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # When the pool is refilled at 12:50 in Paris, the forecast's lead before 13:00
    out = pool.refill(
        store, hosts, SETTINGS, run_id="run-1", now="2026-12-07T11:50:00.000Z", demand=demand
    )
    # Then it holds the median of 0, 3, 3, 6, running; the history read covers the four weeks
    assert (out["target"], out["state"]) == (3, "running")
    assert out["reason"] == "forecast: p50 of 4 weeks for Mon 13:00 Europe/Paris"
    assert asked == [(PROFILE, "2026-11-09T09:50:00.000Z")]


def test_the_refill_is_capped_by_the_gpu_vcpus_the_fleet_leaves_free() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # Given a quota of 20 vCPUs, and two desktops of 4 vCPUs running (one stopped: not counted)
    for sid in ("s-1", "s-2"):
        hosts.add(session_id=sid, **{FLEET_TAG[0]: FLEET_TAG[1]})
    hosts.add(session_id="s-3", state="stopped", **{FLEET_TAG[0]: FLEET_TAG[1]})
    demand = pool.Demand(plan=replace(OFFICE, size=8, windows=()), vcpu_quota=lambda t: 20)
    # When the pool is refilled
    out = pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0, demand=demand)
    # Then it holds what the 12 free vCPUs fit: three g5.xlarge (4 vCPUs each)
    assert (out["target"], len(out["launched"])) == (3, 3)
    assert out["reason"] == "base plan; capped by the GPU vCPU quota (12 vCPUs free)"
    # And its own hosts are what it sizes, not what takes the room: the next run keeps three
    out = pool.refill(store, hosts, SETTINGS, run_id="run-2", now=T0, demand=demand)
    assert (out["target"], out["inPool"], out["retired"]) == (3, 3, [])


def test_an_unknown_quota_leaves_the_pool_uncapped_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    demand = pool.Demand(plan=replace(OFFICE, size=3, windows=()))
    out = pool.refill(store, hosts, SETTINGS, run_id="run-1", now=T0, demand=demand)
    assert out["target"] == 3
    assert "pool not capped by the vCPU quota: unknown" in caplog.text


def test_without_a_plan_the_pool_is_warm_pool_size_and_state() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    stopped = replace(SETTINGS, size=3, state="stopped")
    out = pool.refill(store, hosts, stopped, run_id="run-1", now=T0)
    assert (out["target"], out["state"], out["reason"]) == (
        3,
        "stopped",
        "WarmPoolSize 3, WarmPoolState stopped",
    )
