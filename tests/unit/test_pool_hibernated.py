"""A profile's pool that waits hibernated: where its type can hibernate (EC2 says so and its RAM
fits the root volume), its hosts are launched with hibernation configured, made, then stopped
with Hibernate; a claim starts (resumes) them, and a desktop whose idle action is hibernate may
take one. Where the type cannot, the pool waits stopped instead and its target says why."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from dcvfleet import pool, pool_targets, profiles, service
from dcvfleet.adapters import POOL_READY_TAG, Ec2Hosts
from dcvfleet.config import PoolSettings
from dcvfleet.errors import ConfigurationError, InvalidRequestError
from dcvfleet.model import CreateSessionRequest
from dcvfleet.pool import InMemoryPoolStore, PoolState, WarmPool
from dcvfleet.session_profile import IDLE_ACTION_KEY
from tests.support.lifecycle import Fleet, LifecycleHosts
from tests.support.service import (
    ALICE,
    API,
    COMMON,
    LAUNCH,
    REQUESTED,
    SECRET_ARN,
    FakeWorkflows,
)

PROFILE = "linux-workstation"
T0 = "2026-12-07T10:00:00.000Z"
SETTINGS = PoolSettings(
    common=COMMON,
    pool_table="pool",
    size=0,
    state="running",
    launch_template_id="lt-linux",
    instance_type=REQUESTED,
    subnet_ids=("subnet-a",),
    root_volume_gib=100,
)
HIBERNATED = pool.Demand(
    plan=pool_targets.PoolPlan(size=1, state="hibernated"), source="the admin profile"
)


def refill(store: InMemoryPoolStore, hosts: LifecycleHosts, run: str) -> dict[str, Any]:
    return pool.refill(store, hosts, SETTINGS, run_id=run, now=T0, demand=HIBERNATED)


def states(store: InMemoryPoolStore) -> dict[str, PoolState]:
    return {h.instance_id: h.state for h in store.hosts(PROFILE)}


def hibernated_host(store: InMemoryPoolStore, hosts: LifecycleHosts) -> str:
    """A hibernated pool's host, launched, made and hibernated: STOPPED."""
    launched = refill(store, hosts, "run-1")["launched"]
    assert len(launched) == 1
    instance_id = str(launched[0])
    hosts.settle()  # pending -> running: READY
    assert refill(store, hosts, "run-2")["stopping"] == []  # not made yet: left running
    hosts.set(instance_id, tags={**hosts.instances[instance_id].tags, POOL_READY_TAG: "true"})
    assert refill(store, hosts, "run-3")["stopping"] == [instance_id]
    hosts.settle()  # stopping -> stopped
    refill(store, hosts, "run-4")
    assert states(store) == {instance_id: PoolState.STOPPED}
    return instance_id


def test_a_hibernated_pools_host_is_launched_for_hibernation_made_then_hibernated() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    instance_id = hibernated_host(store, hosts)
    # it was launched with hibernation configured, and stopped with Hibernate, once
    assert hosts.hibernation == [True]
    assert hosts.stops == [(instance_id, "hibernate")]
    assert [c.get("Hibernate") for c in hosts.ec2.calls] == [True]
    assert [h.hibernation for h in store.hosts(PROFILE)] == [True]
    assert store.last_target(PROFILE) == {
        "size": 1,
        "state": "hibernated",
        "reason": "base plan",
    }


def test_a_type_that_cannot_hibernate_waits_stopped_and_says_why() -> None:
    store, hosts = InMemoryPoolStore(), LifecycleHosts()
    hosts.cannot_hibernate[REQUESTED] = f"{REQUESTED} cannot hibernate (EC2 does not support it)"
    instance_id = hibernated_host(store, hosts)
    # launched without hibernation, and stopped plainly
    assert hosts.hibernation == [False]
    assert hosts.stops == [(instance_id, "stop")]
    assert store.last_target(PROFILE) == {
        "size": 1,
        "state": "stopped",
        "reason": f"base plan; {REQUESTED} cannot hibernate (EC2 does not support it): its"
        " hosts wait stopped",
    }


def test_a_desktop_that_hibernates_takes_and_resumes_a_hibernated_pools_host() -> None:
    fleet = Fleet()
    store = InMemoryPoolStore()
    instance_id = hibernated_host(store, fleet.hosts)
    # Given a request of a profile whose idle action is hibernate
    session = service.create_session(
        fleet.store,
        FakeWorkflows(),
        API,
        ALICE,
        CreateSessionRequest(backend="ec2", os="linux", instance_type=REQUESTED),
    )
    fleet.store.update(session, extra={**session.extra, IDLE_ACTION_KEY: "hibernate"})
    service.create_credentials(fleet.store, fleet.secrets, COMMON, session.session_id)
    # When its host is launched / Then it is the hibernated pool host, started (resumed)
    out = service.launch_instance(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        LAUNCH,
        session.session_id,
        secret_arn=SECRET_ARN,
        warm_pool=WarmPool(store, lambda: None),
    )
    assert out["instanceId"] == instance_id
    assert fleet.hosts.starts == [instance_id]
    assert fleet.hosts.instances[instance_id].hibernation_configured


@pytest.mark.parametrize(
    ("instance_type", "root_gib", "problem"),
    [
        ("m5.large", 100, None),
        (
            "m5.large",
            8,
            "m5.large's 8 GiB of RAM do not fit on its 8 GiB root volume (RootVolumeSizeGiB)",
        ),
        ("g5.xlarge", 100, "g5.xlarge cannot hibernate (EC2 does not support it for that type)"),
    ],
)
def test_whether_a_type_can_hibernate_is_read_from_describe_instance_types(
    moto_endpoint: str, instance_type: str, root_gib: int, problem: str | None
) -> None:
    hosts = Ec2Hosts(boto3.client("ec2", region_name="us-east-1"))
    assert hosts.hibernation_problem(instance_type, root_gib) == problem


def test_a_profile_may_ask_its_pool_to_wait_hibernated_in_its_base_and_windows() -> None:
    spec = profiles.parse_spec(
        {
            "name": "CAD",
            "backend": "ec2",
            "os": "windows",
            "instanceTypes": ["m5.xlarge"],
            "idle": {"timeoutSeconds": 900, "action": "stop"},
            "pool": {
                "size": 1,
                "state": "hibernated",
                "schedule": [
                    {
                        "days": ["mon"],
                        "from": "08:00",
                        "to": "18:00",
                        "size": 3,
                        "state": "hibernated",
                    }
                ],
            },
        }
    )
    assert spec.pool is not None
    plan = spec.pool.plan()
    assert (plan.state, plan.windows[0].state) == ("hibernated", "hibernated")
    with pytest.raises(InvalidRequestError, match=r"pool\.state: Input should be 'running', "):
        profiles.parse_spec({**spec.model_dump(), "pool": {"size": 1, "state": "asleep"}})


def test_warm_pool_state_stays_running_or_stopped() -> None:
    # the template parameter's contract: hibernated is for profiles' own plans
    with pytest.raises(ConfigurationError, match="WARM_POOL_STATE: 'hibernated' is not one of"):
        PoolSettings.from_env(
            {
                "SESSIONS_TABLE": "s",
                "EVENT_BUS_NAME": "b",
                "FLEET_TAG_VALUE": "f",
                "POOL_TABLE": "p",
                "LINUX_LAUNCH_TEMPLATE_ID": "lt",
                "LINUX_INSTANCE_TYPE": "g5.xlarge",
                "SUBNET_IDS": "subnet-a",
                "WARM_POOL_STATE": "hibernated",
            }
        )
