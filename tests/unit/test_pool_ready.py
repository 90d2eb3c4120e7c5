"""A pool host becomes READY when EC2 says it runs (its state-change notification), STOPPED when
stopped, and leaves the pool when terminated; a claimed host's record never moves back.
EC2's events: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-instance-state-changes.html
"""

from __future__ import annotations

from dcvfleet import pool
from dcvfleet.adapters import OS_TAG, POOL_TAG
from dcvfleet.config import PoolSettings
from dcvfleet.lifecycle import reconcile
from dcvfleet.pool import InMemoryPoolStore, PoolHost, PoolState
from dcvfleet.store import InMemorySessionStore
from tests.support.lifecycle import SETTINGS as LIFECYCLE
from tests.support.lifecycle import LifecycleHosts, LifecycleWorkflows
from tests.support.service import COMMON
from tests.support.template import TEMPLATE

PROFILE = "linux-workstation"
T0 = "2026-12-07T10:00:00.000Z"


def pool_host(hosts: LifecycleHosts, store: InMemoryPoolStore, state: PoolState) -> str:
    instance = hosts.launch(
        launch_template_id="lt-linux",
        instance_type="g5.xlarge",
        subnet_id="subnet-a",
        tags={POOL_TAG: PROFILE, OS_TAG: "linux"},
        client_token="t",
    )
    store.add(PoolHost(PROFILE, instance.instance_id, state, T0))
    return instance.instance_id


def notify(hosts: LifecycleHosts, store: InMemoryPoolStore, instance_id: str, state: str) -> str:
    hosts.set(instance_id, state=state)
    return reconcile.instance_changed(
        InMemorySessionStore(),
        hosts,
        LifecycleWorkflows(),
        LIFECYCLE,
        instance_id,
        state=state,
        pool_store=store,
    )


def state_of(store: InMemoryPoolStore, instance_id: str) -> PoolState | None:
    return next((h.state for h in store.hosts(PROFILE) if h.instance_id == instance_id), None)


def test_a_running_pool_host_becomes_ready_and_claimable() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = pool_host(hosts, store, PoolState.WARMING)
    assert store.claim(PROFILE, "s-1", T0) is None  # WARMING: not claimable
    # When EC2 says it is running
    outcome = notify(hosts, store, instance_id, "running")
    # Then it is READY, and a request can claim it
    assert outcome == "pool host WARMING -> READY"
    assert state_of(store, instance_id) is PoolState.READY
    claimed = store.claim(PROFILE, "s-1", T0)
    assert claimed is not None
    assert claimed.instance_id == instance_id


def test_a_stopped_pool_host_waits_stopped_and_a_terminated_one_leaves_the_pool() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = pool_host(hosts, store, PoolState.READY)
    assert notify(hosts, store, instance_id, "stopped") == "pool host READY -> STOPPED"
    assert state_of(store, instance_id) is PoolState.STOPPED
    assert notify(hosts, store, instance_id, "running") == "pool host STOPPED -> READY"
    assert notify(hosts, store, instance_id, "terminated") == "pool host READY gone"
    assert state_of(store, instance_id) is None


def test_a_late_notification_or_a_claimed_host_changes_no_record() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = pool_host(hosts, store, PoolState.WARMING)
    # a running notification delivered after the host was stopped: EC2's state is the fact
    hosts.set(instance_id, state="stopped")
    late = reconcile.instance_changed(
        InMemorySessionStore(),
        hosts,
        LifecycleWorkflows(),
        LIFECYCLE,
        instance_id,
        state="running",
        pool_store=store,
    )
    assert late.startswith("nothing to do: a late running notification")
    assert state_of(store, instance_id) is PoolState.WARMING
    # a claimed host (its record CLAIMED, the session tag not on it yet) stays CLAIMED
    notify(hosts, store, instance_id, "running")
    assert store.claim(PROFILE, "s-1", T0) is not None
    assert notify(hosts, store, instance_id, "stopped").startswith("nothing to do for a CLAIMED")
    assert notify(hosts, store, instance_id, "terminated").startswith("nothing to do")
    assert state_of(store, instance_id) is PoolState.CLAIMED


def test_a_running_notification_before_the_record_is_caught_up_by_the_refill() -> None:
    settings = PoolSettings(
        common=COMMON,
        pool_table="pool",
        size=1,
        state="running",
        launch_template_id="lt-linux",
        instance_type="g5.xlarge",
        subnet_ids=("subnet-a",),
    )
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    launched = pool.refill(store, hosts, settings, run_id="r1", now=T0)["launched"]
    # its running notification came before its record: the record is still WARMING
    hosts.settle()
    assert state_of(store, launched[0]) is PoolState.WARMING
    pool.refill(store, hosts, settings, run_id="r2", now=T0)
    assert state_of(store, launched[0]) is PoolState.READY


def test_the_instance_state_rule_hands_running_pool_hosts_to_a_function_that_reads_the_pool() -> (
    None
):
    function = TEMPLATE["Resources"]["InstanceStateFunction"]["Properties"]
    pattern = function["Events"]["InstanceStateChange"]["Properties"]["Pattern"]
    assert "running" in pattern["detail"]["state"]
    assert "POOL_TABLE" in function["Environment"]["Variables"]
