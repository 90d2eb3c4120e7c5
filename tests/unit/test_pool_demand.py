"""What the refill reads on AWS: every EC2 profile's own pool plan (an admin's profile wins over
DesktopProfiles; the default Linux profile without one: WarmPoolSize and WarmPoolState), with
its OS's launch template, type and hibernation; the pools to drain; each profile's request
history from the sessions table's creation-time index; and the account's GPU vCPU quota."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from dcvfleet import aws, pool, profiles
from dcvfleet.adapters import Ec2Hosts
from dcvfleet.config import PoolSettings
from dcvfleet.handlers import pool as handler
from dcvfleet.pool import PoolHost, PoolState
from dcvfleet.store import DynamoSessionStore
from local.emulator.service_quotas import service_quota_patches, set_ec2_quota
from tests.support.emulator import ACCOUNT, REGION
from tests.support.handlers import HANDLER_ENV
from tests.support.sessions import a_session
from tests.support.tables import create_sessions_table, create_table

PROFILE = "linux-workstation"
PARAMETER = "/stack/desktop-profiles"
POOL = {"size": 2, "state": "stopped", "timeZone": "Europe/Paris"}


def linux(pool: dict[str, Any] | None, name: str = "Linux workstation") -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": ["g5.xlarge"],
        "idle": {"timeoutSeconds": 900, "action": "stop"},
    }
    return {**body, "pool": pool} if pool else body


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    env = {
        **HANDLER_ENV,
        "POOL_TABLE": "pool",
        "PROFILES_TABLE": "profiles",
        "DESKTOP_PROFILES_PARAMETER": PARAMETER,
        "LINUX_LAUNCH_TEMPLATE_ID": "lt-linux",
        "SUBNET_IDS": "subnet-a",
        "WARM_POOL_SIZE": "1",
        "AWS_DEFAULT_REGION": REGION,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for owner, attribute, replacement in service_quota_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    aws.reset_clients()
    with mock_aws():
        db = aws.client("dynamodb")
        create_table(db, "ProfilesTable", "profiles")
        create_sessions_table(db, "sessions")
        aws.client("ssm").put_parameter(Name=PARAMETER, Type="String", Value="[]")
        yield env
    aws.reset_clients()


def settings(env: dict[str, Any]) -> PoolSettings:
    return PoolSettings.from_env(env)


def served(env: dict[str, Any]) -> dict[str, pool.ProfilePool]:
    found, failed, complete = handler.plans(settings(env))
    assert (failed, complete) == ([], True)
    return {p.settings.profile: p for p in found}


def template(*definitions: dict[str, Any]) -> None:
    aws.client("ssm").put_parameter(
        Name=PARAMETER, Type="String", Value=json.dumps(list(definitions)), Overwrite=True
    )


def test_without_a_pool_of_its_own_the_profile_has_warm_pool_size(stack: dict[str, Any]) -> None:
    [default] = served(stack).values()
    assert (default.settings.profile, default.settings.size) == (PROFILE, 1)
    assert (default.demand.plan, default.demand.source) == (None, "WarmPoolSize")


def test_the_template_profiles_pool_plan_is_read_and_an_admins_profile_wins(
    stack: dict[str, Any],
) -> None:
    template({**linux(POOL), "id": PROFILE})
    demand = served(stack)[PROFILE].demand
    assert demand.plan is not None
    assert (demand.plan.size, demand.plan.state, demand.plan.timezone) == (
        2,
        "stopped",
        "Europe/Paris",
    )
    assert demand.source == f"the template profile {PROFILE}"
    # an admin puts the profile without a pool: WarmPoolSize again
    records = profiles.ProfileRecords(aws.client("dynamodb"), "profiles")
    records.put(PROFILE, profiles.parse_spec(linux(None, "Mine")), by="boss")
    assert served(stack)[PROFILE].demand.plan is None
    # and with one of its own: that one
    records.put(PROFILE, profiles.parse_spec(linux({"size": 4})), by="boss")
    demand = served(stack)[PROFILE].demand
    assert demand.plan is not None
    assert (demand.plan.size, demand.source) == (4, f"the admin profile {PROFILE}")


def windows(pool_: dict[str, Any] | None, action: str = "stop") -> dict[str, Any]:
    return {
        **linux(pool_),
        "name": "Windows CAD",
        "os": "windows",
        "instanceTypes": ["g4dn.2xlarge", "g4dn.xlarge"],
        "idle": {"timeoutSeconds": 900, "action": action},
    }


def test_every_ec2_profile_with_a_pool_is_served_with_its_os_template_type_and_hibernation(
    stack: dict[str, Any],
) -> None:
    batch = {
        **linux(None),
        "backend": "batch",
        "instanceTypes": ["GPU"],
        "idle": {"timeoutSeconds": 900, "action": "terminate"},
    }
    template({**linux(None), "id": PROFILE}, {**batch, "id": "quick"})
    records = profiles.ProfileRecords(aws.client("dynamodb"), "profiles")
    records.put("cad", profiles.parse_spec(windows({"size": 3}, action="hibernate")), by="boss")
    records.put("plain", profiles.parse_spec(linux(None, "No pool")), by="boss")
    found = served({**stack, "WINDOWS_LAUNCH_TEMPLATE_ID": "lt-windows"})
    # the default profile (WarmPoolSize) and the one with a pool; not the batch one, nor one
    # without a pool
    assert sorted(found) == ["cad", PROFILE]
    cad = found["cad"].settings
    assert (cad.os, cad.launch_template_id, cad.instance_type, cad.hibernate) == (
        "windows",
        "lt-windows",
        "g4dn.2xlarge",
        True,
    )
    assert found["cad"].demand.source == "the admin profile cad"
    linux_ = found[PROFILE].settings
    assert (linux_.os, linux_.launch_template_id, linux_.hibernate) == ("linux", "lt-linux", False)


def test_a_windows_pool_on_a_fleet_without_windows_is_reported_and_the_others_served(
    stack: dict[str, Any],
) -> None:
    records = profiles.ProfileRecords(aws.client("dynamodb"), "profiles")
    records.put("cad", profiles.parse_spec(windows({"size": 3})), by="boss")
    found, failed, complete = handler.plans(settings(stack))
    assert [p.settings.profile for p in found] == [PROFILE]
    assert failed == [
        {
            "profile": "cad",
            "error": "profile 'cad': this fleet has no windows launch template for its pool",
        }
    ]
    assert complete


def test_the_pool_of_a_profile_that_keeps_none_is_drained_only_when_every_profile_was_read(
    stack: dict[str, Any],
) -> None:
    db = aws.client("dynamodb")
    create_table(db, "WarmPoolTable", "pool")
    store = pool.DynamoPoolStore(db, "pool")
    store.add(PoolHost("gone", "i-0000000000000000a", PoolState.READY, "2026-12-07T10:00:00.000Z"))
    hosts = Ec2Hosts(aws.client("ec2"))
    found, _, complete = handler.plans(settings(stack))
    assert complete
    [drained] = handler.drained(settings(stack), found, store, hosts)
    assert drained.settings.profile == "gone"
    assert (
        drained.demand.drained == "profile gone keeps no warm pool (deleted, or its pool removed)"
    )
    # an admins' profile that cannot be read: no pool is drained on a guess
    db.put_item(TableName="profiles", Item={"id": {"S": "broken"}, "spec": {"S": "{}"}})
    found, failed, complete = handler.plans(settings(stack))
    assert not complete
    assert [f["profile"] for f in failed] == ["the admins' profiles"]
    assert [p.settings.profile for p in found] == []


def test_the_history_is_the_profiles_requests_from_the_sessions_table(
    stack: dict[str, Any],
) -> None:
    sessions = DynamoSessionStore(aws.client("dynamodb"), "sessions")
    sessions.create(
        a_session("s-1", created_at="2026-12-01T12:00:00.000Z", extra={"profile": PROFILE}),
        max_active=5,
    )
    sessions.create(
        a_session("s-2", created_at="2026-12-01T12:01:00.000Z", extra={"profile": "cad"}),
        max_active=5,
    )
    demand = served(stack)[PROFILE].demand
    assert list(demand.history(PROFILE, "2026-11-01T00:00:00.000Z")) == ["2026-12-01T12:00:00.000Z"]


def test_the_gpu_vcpu_quota_is_read_from_service_quotas(stack: dict[str, Any]) -> None:
    set_ec2_quota(ACCOUNT, REGION, "L-DB2E81BA", 48)
    assert handler.vcpu_quota("g5.xlarge") == 48
    # a quota DCV Fleet knows no code of: unknown, and the pool is not capped by it
    assert handler.vcpu_quota("x2idn.16xlarge") is None
