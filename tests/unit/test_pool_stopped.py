"""A pool that waits stopped (WarmPoolState ``stopped``): the refill stops a pool host only once
its agent has tagged it made (POOL_READY_TAG), never a claimed one nor one still being made;
its stopped notification makes it STOPPED (claimable: the claim starts it); and a pool that
waits running again starts its stopped hosts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dcvfleet import pool
from dcvfleet.adapters import POOL_READY_TAG
from dcvfleet.config import PoolSettings
from dcvfleet.pool import InMemoryPoolStore, PoolState
from tests.support.lifecycle import LifecycleHosts
from tests.support.service import COMMON

PROFILE = "linux-workstation"
T0 = "2026-12-07T10:00:00.000Z"
STOPPED_POOL = PoolSettings(
    common=COMMON,
    pool_table="pool",
    size=1,
    state="stopped",
    launch_template_id="lt-linux",
    instance_type="g5.xlarge",
    subnet_ids=("subnet-a",),
)


def states(store: InMemoryPoolStore) -> dict[str, PoolState]:
    return {h.instance_id: h.state for h in store.hosts(PROFILE)}


def refill(
    store: InMemoryPoolStore, hosts: LifecycleHosts, run: str, state: str = "stopped"
) -> dict[str, Any]:
    return pool.refill(store, hosts, replace(STOPPED_POOL, state=state), run_id=run, now=T0)


def made(hosts: LifecycleHosts, instance_id: str) -> None:
    """The host's agent runs and tags its own instance (agent/dcvfleet_agent/identity.py)."""
    hosts.set(instance_id, tags={**hosts.instances[instance_id].tags, POOL_READY_TAG: "true"})


def one_running_host(store: InMemoryPoolStore, hosts: LifecycleHosts) -> str:
    """A pool of one, launched and running: READY (claimable), not made yet."""
    [instance_id] = refill(store, hosts, "run-1")["launched"]
    hosts.settle()  # pending -> running
    assert refill(store, hosts, "run-2")["stopping"] == []
    assert states(store) == {instance_id: PoolState.READY}
    return instance_id


def test_a_host_still_being_made_is_not_stopped_though_ec2_says_it_runs() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # Given a pool host EC2 says runs, whose agent has not run yet (first boot installing)
    instance_id = one_running_host(store, hosts)
    # When the pool is refilled again / Then it is left running, READY
    assert refill(store, hosts, "run-3")["stopping"] == []
    assert hosts.stops == []
    assert hosts.instances[instance_id].state == "running"


def test_a_made_host_is_stopped_then_stopped_and_claimable_and_its_claim_starts_it() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_running_host(store, hosts)
    # Given its agent tagged it made
    made(hosts, instance_id)
    # When the pool is refilled / Then it is stopped (never hibernated), out of claims' reach
    out = refill(store, hosts, "run-3")
    assert out["stopping"] == [instance_id]
    assert out["launched"] == []  # a stopping host still counts towards the pool
    assert hosts.stops == [(instance_id, "stop")]
    assert states(store) == {instance_id: PoolState.STOPPING}
    assert store.claim(PROFILE, "session-1", T0) is None
    # When EC2 has stopped it and its notification is lost / Then the next refill records it
    hosts.settle()
    refill(store, hosts, "run-4")
    assert states(store) == {instance_id: PoolState.STOPPED}
    assert len(hosts.stops) == 1
    # And a claim takes it
    claimed = store.claim(PROFILE, "session-1", T0)
    assert claimed is not None
    assert claimed.instance_id == instance_id


def test_a_host_claimed_before_the_refill_marks_it_is_never_stopped() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_running_host(store, hosts)
    made(hosts, instance_id)
    # Given a request claimed the READY host (its tags not yet on the instance)
    assert store.claim(PROFILE, "session-1", T0) is not None
    # When the pool is refilled / Then the claimed host is not stopped: a new one is launched
    out = refill(store, hosts, "run-3")
    assert out["stopping"] == []
    assert hosts.stops == []
    assert len(out["launched"]) == 1


def test_a_stopped_host_whose_stop_did_not_reach_ec2_is_stopped_by_the_next_refill() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_running_host(store, hosts)
    made(hosts, instance_id)
    [host] = store.hosts(PROFILE)
    # Given a run that recorded STOPPING and ended before its StopInstances
    assert store.mark(host, PoolState.STOPPING, T0)
    # When the pool is refilled / Then it stops the host
    assert refill(store, hosts, "run-3")["stopping"] == [instance_id]
    assert hosts.stops == [(instance_id, "stop")]


def test_the_stopped_notification_makes_a_stopping_host_stopped() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_running_host(store, hosts)
    made(hosts, instance_id)
    refill(store, hosts, "run-3")
    hosts.settle()
    # When EC2 says it stopped (its state-change notification)
    said = pool.instance_changed(
        store, hosts.instances[instance_id], state="stopped", now="2026-12-07T10:01:00.000Z"
    )
    # Then its record is STOPPED
    assert said == "pool host STOPPING -> STOPPED"
    assert states(store) == {instance_id: PoolState.STOPPED}


def test_a_pool_that_waits_running_again_starts_its_stopped_hosts() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_running_host(store, hosts)
    made(hosts, instance_id)
    refill(store, hosts, "run-3")
    hosts.settle()
    refill(store, hosts, "run-4")
    assert states(store) == {instance_id: PoolState.STOPPED}
    # When the pool is to wait running / Then the host is taken back and started
    out = refill(store, hosts, "run-5", state="running")
    assert out["starting"] == [instance_id]
    assert hosts.starts == [instance_id]
    assert states(store) == {instance_id: PoolState.WARMING}
    # And once it runs it is READY, and stays running
    hosts.settle()
    assert refill(store, hosts, "run-6", state="running")["stopping"] == []
    assert states(store) == {instance_id: PoolState.READY}
    assert len(hosts.stops) == 1


def test_a_pool_that_waits_running_never_stops_a_made_host() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    [instance_id] = refill(store, hosts, "run-1", state="running")["launched"]
    hosts.settle()
    made(hosts, instance_id)
    out = refill(store, hosts, "run-2", state="running")
    assert out["stopping"] == []
    assert hosts.stops == []
    assert states(store) == {instance_id: PoolState.READY}
