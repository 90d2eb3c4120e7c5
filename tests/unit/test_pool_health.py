"""A pool host that fails its health check is replaced: EC2's status checks find it impaired, or
it is still not made (its agent never tagged it dcvfleet:pool-ready) 20 minutes after its
launch. Its record is dropped by a conditional delete (a claim made first wins), the instance
terminated, and the refill launches another in its place; the refill's result and log say which
host was replaced and why."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from dcvfleet import pool
from dcvfleet.adapters import POOL_READY_TAG, Ec2Hosts
from dcvfleet.config import PoolSettings
from dcvfleet.pool import InMemoryPoolStore, PoolState
from tests.support.lifecycle import LifecycleHosts
from tests.support.service import COMMON

PROFILE = "linux-workstation"
LAUNCHED = "2026-12-07T10:00:00+00:00"
T0 = "2026-12-07T10:00:00.000Z"
AT_19_MIN = "2026-12-07T10:19:59.000Z"
AT_20_MIN = "2026-12-07T10:20:00.000Z"
SETTINGS = PoolSettings(
    common=COMMON,
    pool_table="pool",
    size=1,
    state="running",
    launch_template_id="lt-linux",
    instance_type="g5.xlarge",
    subnet_ids=("subnet-a",),
)


def states(store: InMemoryPoolStore) -> dict[str, PoolState]:
    return {h.instance_id: h.state for h in store.hosts(PROFILE)}


def refill(store: InMemoryPoolStore, hosts: LifecycleHosts, run: str, now: str) -> dict[str, Any]:
    return pool.refill(store, hosts, SETTINGS, run_id=run, now=now)


def one_ready_host(store: InMemoryPoolStore, hosts: LifecycleHosts, *, made: bool) -> str:
    """A pool of one, running (READY), launched at LAUNCHED; tagged made by its agent or not."""
    [instance_id] = refill(store, hosts, "run-1", T0)["launched"]
    hosts.settle()
    tags = hosts.instances[instance_id].tags
    hosts.set(
        instance_id,
        launch_time=LAUNCHED,
        tags={**tags, POOL_READY_TAG: "true"} if made else tags,
    )
    assert refill(store, hosts, "run-2", T0)["replaced"] == []
    assert states(store) == {instance_id: PoolState.READY}
    return instance_id


def test_a_host_ec2_finds_impaired_is_terminated_and_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_ready_host(store, hosts, made=True)
    # Given EC2's status checks find the running host impaired
    hosts.impaired_checks[instance_id] = ["instance status check"]
    # When the pool is refilled
    out = refill(store, hosts, "run-3", AT_19_MIN)
    # Then it is terminated, its record dropped, and another launched in its place
    assert out["replaced"] == [
        {"instanceId": instance_id, "reason": "EC2's instance status check found it impaired"}
    ]
    assert hosts.terminated == [instance_id]
    [new] = out["launched"]
    assert states(store) == {new: PoolState.WARMING}
    assert out["inPool"] == 1
    # And the log says so in plain words
    assert f"pool host {instance_id} replaced: EC2's instance status check" in caplog.text


def test_a_host_not_made_20_minutes_after_its_launch_is_replaced_not_before() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    # Given a running host its agent never tagged made
    instance_id = one_ready_host(store, hosts, made=False)
    # When the pool is refilled just before 20 minutes / Then it is kept
    assert refill(store, hosts, "run-3", AT_19_MIN)["replaced"] == []
    # When it is refilled at 20 minutes / Then it is replaced
    out = refill(store, hosts, "run-4", AT_20_MIN)
    assert out["replaced"] == [
        {
            "instanceId": instance_id,
            "reason": "not made 20 minutes after it was launched (its agent never tagged it"
            " dcvfleet:pool-ready)",
        }
    ]
    assert hosts.terminated == [instance_id]
    assert len(out["launched"]) == 1


def test_a_made_healthy_host_is_kept_however_old() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_ready_host(store, hosts, made=True)
    out = refill(store, hosts, "run-3", "2026-12-08T10:00:00.000Z")
    assert out["replaced"] == []
    assert hosts.terminated == []
    assert states(store) == {instance_id: PoolState.READY}
    # and only running hosts' status checks were asked for
    assert hosts.status_asked[-1] == [instance_id]


def test_a_claim_made_before_the_replacement_wins() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_ready_host(store, hosts, made=True)
    hosts.impaired_checks[instance_id] = ["system status check"]
    # Given the refill read the host READY, then a request claimed it
    [seen] = store.hosts(PROFILE)
    assert store.claim(PROFILE, "session-1", T0) is not None
    recorded = {instance_id: seen}
    found = {instance_id: hosts.instances[instance_id]}
    # When the health check replaces what it read
    replaced = pool._replace_unhealthy(store, hosts, recorded, found, now=AT_19_MIN)
    # Then the claim wins: nothing is terminated, the record stays CLAIMED
    assert replaced == []
    assert hosts.terminated == []
    assert states(store) == {instance_id: PoolState.CLAIMED}


def test_a_stopped_host_is_not_checked_nor_replaced_for_its_age() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = one_ready_host(store, hosts, made=False)
    hosts.set(instance_id, state="stopped")
    [host] = store.hosts(PROFILE)
    assert store.mark(host, PoolState.STOPPED, T0)
    out = refill(store, hosts, "run-3", AT_20_MIN)
    assert out["replaced"] == []
    assert hosts.status_asked[-1] == []


def test_the_status_checks_are_read_from_describe_instance_status(moto_endpoint: str) -> None:
    """Ec2Hosts.impaired against the emulator: DescribeInstanceStatus with IncludeAllInstances
    answers for the instances asked, and a healthy one (moto's are all "ok") is not impaired;
    an id EC2 does not know reports none rather than failing the refill."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2)["Instances"]
    ]
    ec2.stop_instances(InstanceIds=[ids[1]])
    hosts = Ec2Hosts(ec2)
    assert hosts.impaired(ids) == {}
    answered = ec2.describe_instance_status(InstanceIds=ids, IncludeAllInstances=True)
    assert {s["InstanceId"] for s in answered["InstanceStatuses"]} == set(ids)
    assert hosts.impaired(["i-00000000000000000"]) == {}
    assert hosts.impaired([ids[0], "i-00000000000000000"]) == {}
    assert hosts.impaired([]) == {}


def test_an_instance_gone_meanwhile_leaves_the_others_checked() -> None:
    class Answer:
        def describe_instance_status(self, **kwargs: Any) -> dict[str, Any]:
            if "i-gone" in kwargs["InstanceIds"]:
                raise ClientError(
                    {"Error": {"Code": "InvalidInstanceID.NotFound", "Message": "gone"}},
                    "DescribeInstanceStatus",
                )
            return {
                "InstanceStatuses": [
                    {"InstanceId": i, "InstanceStatus": {"Status": "impaired"}}
                    for i in kwargs["InstanceIds"]
                ]
            }

    assert Ec2Hosts(Answer()).impaired(["i-1", "i-gone"]) == {"i-1": ["instance status check"]}


def test_each_impaired_check_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer's shape as EC2 documents it (InstanceStatus, SystemStatus, AttachedEbsStatus:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceStatus.html)."""

    class Answer:
        def describe_instance_status(self, **kwargs: Any) -> dict[str, Any]:
            assert kwargs == {"InstanceIds": ["i-1", "i-2", "i-3"], "IncludeAllInstances": True}
            return {
                "InstanceStatuses": [
                    {
                        "InstanceId": "i-1",
                        "SystemStatus": {"Status": "impaired"},
                        "InstanceStatus": {"Status": "impaired"},
                    },
                    {
                        "InstanceId": "i-2",
                        "SystemStatus": {"Status": "ok"},
                        "InstanceStatus": {"Status": "initializing"},
                        "AttachedEbsStatus": {"Status": "impaired"},
                    },
                    {
                        "InstanceId": "i-3",
                        "SystemStatus": {"Status": "insufficient-data"},
                        "InstanceStatus": {"Status": "ok"},
                    },
                ]
            }

    assert Ec2Hosts(Answer()).impaired(["i-1", "i-2", "i-3"]) == {
        "i-1": ["system status check", "instance status check"],
        "i-2": ["attached EBS status check"],
    }


def test_the_bound_is_later_than_a_bare_hosts_first_boot() -> None:
    from local.sim.hosts import BARE_BOOT_SECONDS

    assert pool.MADE_WITHIN.total_seconds() > BARE_BOOT_SECONDS
