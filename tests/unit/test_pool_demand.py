"""What the refill reads for its target on AWS: the default Linux profile's own pool plan (an
admin's profile wins over DesktopProfiles; neither: WarmPoolSize and WarmPoolState), its request
history from the sessions table's creation-time index, and the account's GPU vCPU quota."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from dcvfleet import aws, profiles
from dcvfleet.config import PoolSettings
from dcvfleet.handlers import pool as handler
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


def test_without_a_pool_of_its_own_the_profile_has_warm_pool_size(stack: dict[str, Any]) -> None:
    demand = handler.demand(settings(stack))
    assert (demand.plan, demand.source) == (None, "WarmPoolSize")


def test_the_template_profiles_pool_plan_is_read_and_an_admins_profile_wins(
    stack: dict[str, Any],
) -> None:
    template = [{**linux(POOL), "id": PROFILE}]
    aws.client("ssm").put_parameter(
        Name=PARAMETER, Type="String", Value=json.dumps(template), Overwrite=True
    )
    demand = handler.demand(settings(stack))
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
    assert handler.demand(settings(stack)).plan is None
    # and with one of its own: that one
    records.put(PROFILE, profiles.parse_spec(linux({"size": 4})), by="boss")
    demand = handler.demand(settings(stack))
    assert demand.plan is not None
    assert (demand.plan.size, demand.source) == (4, f"the admin profile {PROFILE}")


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
    demand = handler.demand(settings(stack))
    assert list(demand.history(PROFILE, "2026-11-01T00:00:00.000Z")) == ["2026-12-01T12:00:00.000Z"]


def test_the_gpu_vcpu_quota_is_read_from_service_quotas(stack: dict[str, Any]) -> None:
    set_ec2_quota(ACCOUNT, REGION, "L-DB2E81BA", 48)
    assert handler.vcpu_quota("g5.xlarge") == 48
    # a quota DCV Fleet knows no code of: unknown, and the pool is not capped by it
    assert handler.vcpu_quota("x2idn.16xlarge") is None
