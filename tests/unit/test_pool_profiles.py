"""A warm pool per EC2 profile: each pool's hosts launched as its profile's desktops are (its
OS's launch template, its type, its hibernation setting) and tagged with it; every pool refilled
in one run, one pool's failure never stopping the others; the pools of one vCPU quota sharing
what the fleet leaves free of it, fairly; and the pool of a profile that keeps none any more
drained, its unclaimed hosts terminated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from dcvfleet import pool, pool_targets
from dcvfleet.adapters import OS_TAG, POOL_TAG, SESSION_TAG
from dcvfleet.config import PoolSettings
from dcvfleet.pool import InMemoryPoolStore, PoolHost, PoolState, ProfilePool
from tests.support.lifecycle import LifecycleHosts
from tests.support.service import COMMON, FLEET_TAG

T0 = "2026-12-07T10:00:00.000Z"
LINUX = PoolSettings(
    common=COMMON,
    pool_table="pool",
    size=0,
    state="running",
    launch_template_id="lt-linux",
    instance_type="g5.xlarge",
    subnet_ids=("subnet-a",),
    launch_templates={"linux": "lt-linux", "windows": "lt-windows"},
)
WINDOWS = LINUX.for_profile(
    "windows-cad", os="windows", instance_type="g4dn.2xlarge", hibernate=False
)


def plan(size: int, state: pool_targets.PoolWait = "running") -> pool.Demand:
    return pool.Demand(
        plan=pool_targets.PoolPlan(size=size, state=state),
        source="the admin profile",
        vcpu_quota=lambda instance_type: None,
    )


def quota(size: int, vcpus: int) -> pool.Demand:
    return replace(plan(size), vcpu_quota=lambda instance_type: vcpus)


def by_profile(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    done = out["pools"]
    assert isinstance(done, list)
    return {p["profile"]: p for p in done}


def test_each_profiles_pool_is_launched_as_its_desktops_are_and_tagged_with_it() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    pools = [
        ProfilePool(replace(LINUX, size=1), pool.Demand()),
        ProfilePool(WINDOWS, plan(2)),
    ]
    # When every pool is refilled
    out = pool.refill_all(store, hosts, pools, run_id="run-1", now=T0)
    assert out["failed"] == []
    done = by_profile(out)
    # Then each pool launched its own hosts from its OS's launch template, as its type
    assert [len(done[p]["launched"]) for p in ("linux-workstation", "windows-cad")] == [1, 2]
    assert sorted(hosts.launch_templates) == ["lt-linux", "lt-windows", "lt-windows"]
    for profile, os, instance_type in (
        ("linux-workstation", "linux", "g5.xlarge"),
        ("windows-cad", "windows", "g4dn.2xlarge"),
    ):
        for host in store.hosts(profile):
            instance = hosts.instances[host.instance_id]
            assert (instance.instance_type, instance.tags[OS_TAG]) == (instance_type, os)
            assert instance.tags[POOL_TAG] == profile
            assert instance.tags[FLEET_TAG[0]] == FLEET_TAG[1]
            assert SESSION_TAG not in instance.tags
            # And the record keeps what it was launched as, which the claim matches
            assert (host.instance_type, host.os, host.hibernation) == (instance_type, os, False)


def test_a_profile_whose_desktops_hibernate_has_pool_hosts_launched_for_hibernation() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    hibernating = replace(WINDOWS, hibernate=True)
    pool.refill_all(store, hosts, [ProfilePool(hibernating, plan(1))], run_id="r", now=T0)
    assert hosts.hibernation == [True]
    assert [h.hibernation for h in store.hosts("windows-cad")] == [True]


class FailingHistory:
    """A forecast's history that cannot be read (DynamoDB throttled, say)."""

    def __call__(self, profile: str, since: str) -> Sequence[str]:
        raise RuntimeError("ProvisionedThroughputExceededException")


def test_one_pools_failure_never_stops_the_others() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    broken = replace(
        plan(1),
        plan=pool_targets.PoolPlan(
            size=1, state="running", forecast=pool_targets.Forecast(quantile=0.9)
        ),
        history=FailingHistory(),
    )
    pools = [
        ProfilePool(
            LINUX.for_profile("a-broken", os="linux", instance_type="g5.xlarge", hibernate=False),
            broken,
        ),
        ProfilePool(WINDOWS, plan(1)),
    ]
    out = pool.refill_all(store, hosts, pools, run_id="run-1", now=T0)
    # Then the broken pool is reported, and the next one refilled all the same
    assert out["failed"] == [
        {"profile": "a-broken", "error": "RuntimeError: ProvisionedThroughputExceededException"}
    ]
    assert len(by_profile(out)["windows-cad"]["launched"]) == 1


def test_pools_of_one_quota_share_its_free_vcpus_fairly_and_never_exceed_them() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # Given a G quota of 36 vCPUs, a desktop of 4 vCPUs running (32 free), and two pools
    # that want 10 hosts each: g5.xlarge (4 vCPUs) and g4dn.2xlarge (8 vCPUs)
    hosts.add(session_id="s-1", **{FLEET_TAG[0]: FLEET_TAG[1]})
    pools = [
        ProfilePool(LINUX, quota(10, 36)),
        ProfilePool(WINDOWS, quota(10, 36)),
    ]
    out = by_profile(pool.refill_all(store, hosts, pools, run_id="run-1", now=T0))
    # Then they take a host each in turn while one fits: 4 and 2, 16 + 16 = the 32 free
    # vCPUs (a third g4dn.2xlarge did not fit beside the third g5.xlarge)
    linux, windows = out["linux-workstation"], out["windows-cad"]
    assert (linux["target"], windows["target"]) == (4, 2)
    used = 4 * len(linux["launched"]) + 8 * len(windows["launched"])
    assert used <= 32
    assert windows["reason"] == (
        "base plan; capped by its share of the GPU vCPU quota (16 of the 32 vCPUs free, "
        "shared by 2 pools)"
    )
    # And the next run, with the pools' own hosts running, keeps the same shares
    out = by_profile(pool.refill_all(store, hosts, pools, run_id="run-2", now=T0))
    assert (out["linux-workstation"]["target"], out["windows-cad"]["target"]) == (4, 2)
    assert out["linux-workstation"]["retired"] == out["windows-cad"]["retired"] == []


def test_a_pool_that_wants_little_leaves_the_rest_of_the_quota_to_the_others() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    pools = [ProfilePool(LINUX, quota(1, 40)), ProfilePool(WINDOWS, quota(10, 40))]
    out = by_profile(pool.refill_all(store, hosts, pools, run_id="run-1", now=T0))
    # 4 vCPUs for the Linux pool's one host, the 36 left fit four g4dn.2xlarge
    assert (out["linux-workstation"]["target"], out["windows-cad"]["target"]) == (1, 4)


def test_a_profile_that_keeps_no_pool_any_more_is_drained_and_its_claimed_hosts_kept() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    pool.refill_all(store, hosts, [ProfilePool(WINDOWS, plan(3))], run_id="run-1", now=T0)
    first, second, third = sorted(h.instance_id for h in store.hosts("windows-cad"))
    for host in store.hosts("windows-cad"):
        assert store.mark(host, PoolState.READY, T0)
        hosts.set(host.instance_id, state="running")
    claimed = store.claim("windows-cad", "session-1", T0, fits=lambda h: True)
    assert claimed is not None
    assert claimed.instance_id == first
    assert store.mark(
        next(h for h in store.hosts("windows-cad") if h.instance_id == third),
        PoolState.STOPPED,
        T0,
    )
    hosts.set(third, state="stopped")
    # When the profile's pool is removed
    drained = ProfilePool(
        WINDOWS, pool.Demand(drained="profile windows-cad keeps no warm pool (deleted)")
    )
    out = by_profile(pool.refill_all(store, hosts, [drained], run_id="run-2", now=T0))
    # Then its unclaimed hosts are terminated, the stopped one never started first
    assert sorted(out["windows-cad"]["retired"]) == [second, third]
    assert hosts.starts == []
    assert out["windows-cad"]["launched"] == []
    assert out["windows-cad"]["reason"] == "profile windows-cad keeps no warm pool (deleted)"
    # And the claimed one is that desktop's still
    assert [h.instance_id for h in store.hosts("windows-cad")] == [claimed.instance_id]
    assert claimed.instance_id not in hosts.terminated
    assert store.last_target("windows-cad") is not None
    # And once its desktop has ended, nothing of the pool is left, its target neither
    hosts.set(claimed.instance_id, state="terminated")
    later = "2026-12-07T10:06:00.000Z"
    pool.refill_all(store, hosts, [drained], run_id="run-3", now=later)
    assert store.hosts("windows-cad") == []
    assert store.last_target("windows-cad") is None


def test_a_profile_given_another_type_has_its_unclaimed_hosts_replaced() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    pool.refill_all(store, hosts, [ProfilePool(WINDOWS, plan(1))], run_id="run-1", now=T0)
    [old] = [h.instance_id for h in store.hosts("windows-cad")]
    bigger = replace(WINDOWS, instance_type="g4dn.4xlarge")
    out = by_profile(
        pool.refill_all(store, hosts, [ProfilePool(bigger, plan(1))], run_id="run-2", now=T0)
    )
    assert out["windows-cad"]["retired"] == [old]
    assert old in hosts.terminated
    launched = out["windows-cad"]["launched"]
    assert isinstance(launched, list)
    assert [hosts.instances[i].instance_type for i in launched] == ["g4dn.4xlarge"]


def test_a_host_recorded_before_pools_kept_their_make_learns_it_from_ec2() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    waiting = hosts.add(
        session_id="x", **{FLEET_TAG[0]: FLEET_TAG[1], POOL_TAG: "linux-workstation"}
    )
    hosts.set(waiting.instance_id, tags={k: v for k, v in waiting.tags.items() if k != SESSION_TAG})
    store.add(PoolHost("linux-workstation", waiting.instance_id, PoolState.READY, T0))
    pool.refill_all(
        store,
        hosts,
        [ProfilePool(replace(LINUX, size=1, instance_type=waiting.instance_type), pool.Demand())],
        run_id="r",
        now=T0,
    )
    [host] = store.hosts("linux-workstation")
    assert (host.instance_id, host.state) == (waiting.instance_id, PoolState.READY)
    assert (host.instance_type, host.os) == (waiting.instance_type, "linux")
    assert host.fits(instance_type=waiting.instance_type, os="linux", hibernate=False)
