"""The warm pool's refill: up to its target with the profile's launch template, never past the
account's vCPU quota, its records kept true to what EC2 has; and the sweep leaves pool hosts be."""

from __future__ import annotations

from dataclasses import replace

from dcvfleet import pool
from dcvfleet.adapters import OS_TAG, POOL_TAG, SESSION_TAG
from dcvfleet.config import PoolSettings
from dcvfleet.lifecycle import sweep
from dcvfleet.pool import InMemoryPoolStore, PoolHost, PoolState
from dcvfleet.store import InMemorySessionStore
from tests.support.lifecycle import SETTINGS as LIFECYCLE
from tests.support.lifecycle import LifecycleHosts
from tests.support.service import COMMON, FLEET_TAG

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
