"""Warm Batch capacity: a batch profile's ``pool`` (its instances wait running, other states are
refused), and the refill setting the compute environment's ``minvCpus`` from the batch profiles'
plans, on the schedule and back to BatchMinVcpus when the window closes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from dcvfleet import aws, batch_warm, pool, profiles
from dcvfleet.config import PoolSettings
from dcvfleet.errors import ConfigurationError, InvalidRequestError
from dcvfleet.handlers import pool as handler
from dcvfleet.profiles import FleetChoices, InMemoryProfileRecords, Profiles
from local.emulator.batch import batch_cloudformation_patches, batch_scaling_patches
from local.emulator.hooks import SimulatorHooks
from tests.support.emulator import REGION
from tests.support.handlers import HANDLER_ENV
from tests.support.properties import LambdaContext
from tests.support.tables import create_sessions_table, create_table

PARAMETER = "/stack/desktop-profiles"
#: weekdays 08:00-18:00 in Paris: 2 warm instances; otherwise none
OFFICE: dict[str, Any] = {
    "size": 0,
    "timeZone": "Europe/Paris",
    "schedule": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "18:00", "size": 2}
    ],
}
MONDAY_NOON_PARIS = "2026-12-07T11:00:00.000Z"  # 12:00 in Paris (CET)
MONDAY_NIGHT_PARIS = "2026-12-07T20:00:00.000Z"
FLEET = FleetChoices(
    allowed_instance_types=("g5.xlarge",),
    default_instance_types={"linux": "g5.xlarge"},
    enabled_backends=("ec2", "batch"),
    batch_instance_types=("g4dn.xlarge", "g4dn.2xlarge"),
    idle_timeout_seconds=3600,
    idle_action="terminate",
    max_session_minutes=720,
)


def batch_profile(pool: dict[str, Any] | None, types: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Batch session",
        "backend": "batch",
        "os": "linux",
        "instanceTypes": types or ["g4dn.2xlarge"],
        "idle": {"timeoutSeconds": 900, "action": "terminate"},
    }
    return {**body, "pool": pool} if pool is not None else body


# -- a batch profile's pool ----------------------------------------------------------------------
def test_a_batch_profile_may_carry_a_pool_whose_instances_wait_running() -> None:
    (found,) = profiles.parse_definitions(json.dumps([{**batch_profile(OFFICE), "id": "render"}]))
    assert found.pool is not None
    assert found.pool.plan().windows[0].size == 2
    fleet = Profiles(profiles.default_definitions(FLEET), InMemoryProfileRecords())
    put = fleet.put("render", profiles.parse_spec(batch_profile(OFFICE)), FLEET, "boss")
    assert put.pool is not None


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({**OFFICE, "state": "stopped"}, "pool.state: a batch profile's warm instances wait"),
        (
            {**OFFICE, "schedule": [{**OFFICE["schedule"][0], "state": "stopped"}]},
            "pool.schedule.0.state: a batch profile's warm instances wait running ('stopped'",
        ),
    ],
)
def test_a_batch_pool_that_would_wait_stopped_is_refused_naming_the_field(
    pool: dict[str, Any], message: str
) -> None:
    fleet = Profiles(profiles.default_definitions(FLEET), InMemoryProfileRecords())
    with pytest.raises(InvalidRequestError) as caught:
        fleet.put("render", profiles.parse_spec(batch_profile(pool)), FLEET, "boss")
    assert caught.value.message.startswith(message), caught.value.message
    with pytest.raises(ConfigurationError) as refused:
        profiles.parse_definitions(json.dumps([{**batch_profile(pool), "id": "render"}]))
    assert refused.value.message.startswith(f"DesktopProfiles[0] (render).{message}")


# -- the minvCpus the plans ask for ---------------------------------------------------------------
ENVIRONMENT = batch_warm.Environment("arn:ce", "VALID", min_vcpus=0, max_vcpus=64)


def warmth(
    instances: int, vcpus_each: int = 8, profile: str = "render"
) -> batch_warm.ProfileWarmth:
    return batch_warm.ProfileWarmth(profile, instances, vcpus_each, "test")


def test_min_vcpus_are_the_warm_instances_and_the_busy_ones_at_least_the_floor() -> None:
    two = batch_warm.goal([warmth(2)], busy=0, floor=0, environment=ENVIRONMENT)
    assert (two.min_vcpus, two.warm_instances) == (16, 2)
    # a desktop that started holds its instance: two stay idle
    assert batch_warm.goal([warmth(2)], busy=1, floor=0, environment=ENVIRONMENT).min_vcpus == 24
    # two profiles: each instance at its own type's vCPUs; busy ones at the largest
    both = batch_warm.goal(
        [warmth(1, 4, "a"), warmth(2, 8, "b")], busy=1, floor=0, environment=ENVIRONMENT
    )
    assert both.min_vcpus == 4 + 16 + 8
    # the floor (BatchMinVcpus) is the least
    assert batch_warm.goal([warmth(1)], busy=0, floor=32, environment=ENVIRONMENT).min_vcpus == 32


def test_with_no_warm_instance_wanted_min_vcpus_go_back_to_the_floor_busy_or_not() -> None:
    found = batch_warm.goal([warmth(0)], busy=5, floor=4, environment=ENVIRONMENT)
    assert (found.min_vcpus, found.busy) == (4, 0)


def test_min_vcpus_never_exceed_the_environments_max_vcpus() -> None:
    found = batch_warm.goal([warmth(20)], busy=3, floor=0, environment=ENVIRONMENT)
    assert (found.min_vcpus, found.capped) == (64, True)


def test_a_window_is_read_ten_minutes_ahead() -> None:
    plan = batch_warm.WarmPlan(
        "render", profiles.parse_spec(batch_profile(OFFICE)).pool.plan(), "g4dn.2xlarge"
    )
    before = batch_warm.profile_warmth(plan, "2026-12-07T06:49:00.000Z", lambda p, s: ())
    ahead = batch_warm.profile_warmth(plan, "2026-12-07T06:51:00.000Z", lambda p, s: ())
    assert before.instances == 0
    assert (ahead.instances, ahead.vcpus_each) == (2, 8)
    assert ahead.reason == "weekdays 08:00-18:00 Europe/Paris (from 10 minutes before)"


# -- the refill against the Batch API -------------------------------------------------------------
@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A compute environment (maxvCpus 64, minvCpus 0), its queue, the profiles table and
    DesktopProfiles; Batch's scaling updates as AWS applies them (BATCH_SCALING_UPDATES)."""
    for owner, name, value in [
        *batch_cloudformation_patches(),
        *batch_scaling_patches(SimulatorHooks()),
    ]:
        monkeypatch.setattr(owner, name, value)
    aws.reset_clients()
    with mock_aws():
        ec2 = aws.client("ec2")
        aws.client("iam").create_instance_profile(InstanceProfileName="batch-instances")
        environment = aws.client("batch").create_compute_environment(
            computeEnvironmentName="desktops",
            type="MANAGED",
            computeResources={
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": 64,
                "instanceTypes": ["g4dn.xlarge", "g4dn.2xlarge"],
                "subnets": [ec2.describe_subnets()["Subnets"][0]["SubnetId"]],
                "securityGroupIds": [
                    ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
                ],
                "instanceRole": "batch-instances",
            },
        )["computeEnvironmentArn"]
        queue = aws.client("batch").create_job_queue(
            jobQueueName="desktops",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )["jobQueueArn"]
        db = aws.client("dynamodb")
        create_table(db, "ProfilesTable", "profiles")
        create_sessions_table(db, "sessions")
        aws.client("ssm").put_parameter(
            Name=PARAMETER,
            Type="String",
            Value=json.dumps([{**batch_profile(OFFICE), "id": "render"}]),
        )
        env = {
            **HANDLER_ENV,
            "PROFILES_TABLE": "profiles",
            "DESKTOP_PROFILES_PARAMETER": PARAMETER,
            "BATCH_WARM_COMPUTE_ENVIRONMENT": environment,
            "BATCH_MIN_VCPUS": "0",
            "JOB_QUEUE": queue,
            "AWS_DEFAULT_REGION": REGION,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env
    aws.reset_clients()


def min_vcpus(arn: str) -> int:
    (found,) = aws.client("batch").describe_compute_environments(computeEnvironments=[arn])[
        "computeEnvironments"
    ]
    return int(found["computeResources"]["minvCpus"])


def refill(env: dict[str, Any], now: str) -> dict[str, Any]:
    settings = batch_warm.WarmSettings.from_env(env)
    assert settings is not None
    pool_env = {**env, "POOL_TABLE": "pool", "LINUX_LAUNCH_TEMPLATE_ID": "lt", "SUBNET_IDS": "a"}
    demand = handler.batch_demand(PoolSettings.from_env(pool_env))
    return batch_warm.refill(
        batch_warm.ComputeEnvironments(aws.client("batch"), settings.job_queue),
        settings,
        demand,
        now=now,
    )


def test_the_refill_keeps_the_windows_instances_warm_then_sets_min_vcpus_back(
    fleet: dict[str, Any],
) -> None:
    arn = fleet["BATCH_WARM_COMPUTE_ENVIRONMENT"]
    noon = refill(fleet, MONDAY_NOON_PARIS)
    assert noon["changed"]
    assert noon["warmInstances"] == 2
    assert noon["profiles"]["render"] == {
        "instances": 2,
        "reason": "weekdays 08:00-18:00 Europe/Paris",
    }
    assert min_vcpus(arn) == 16  # 2 x g4dn.2xlarge (8 vCPUs)
    assert refill(fleet, MONDAY_NOON_PARIS)["changed"] is False  # already so: no call
    night = refill(fleet, MONDAY_NIGHT_PARIS)
    assert (night["changed"], night["was"], night["minvCpus"]) == (True, 16, 0)
    assert min_vcpus(arn) == 0


def test_an_admins_batch_profile_wins_over_the_templates(fleet: dict[str, Any]) -> None:
    records = profiles.ProfileRecords(aws.client("dynamodb"), "profiles")
    records.put("render", profiles.parse_spec(batch_profile({**OFFICE, "size": 1})), "boss")
    night = refill(fleet, MONDAY_NIGHT_PARIS)
    assert night["profiles"]["render"]["instances"] == 1
    assert min_vcpus(fleet["BATCH_WARM_COMPUTE_ENVIRONMENT"]) == 8


def test_min_vcpus_are_capped_at_the_environments_max_vcpus_on_batch_too(
    fleet: dict[str, Any],
) -> None:
    arn = fleet["BATCH_WARM_COMPUTE_ENVIRONMENT"]
    aws.client("batch").update_compute_environment(
        computeEnvironment=arn, computeResources={"maxvCpus": 8}
    )
    # the plan asks 16; capped at maxvCpus 8, which Batch accepts
    assert refill(fleet, MONDAY_NOON_PARIS)["minvCpus"] == 8
    assert min_vcpus(arn) == 8


def test_without_a_compute_environment_to_keep_warm_there_are_no_warm_settings() -> None:
    assert batch_warm.WarmSettings.from_env({"BATCH_WARM_COMPUTE_ENVIRONMENT": ""}) is None
    with pytest.raises(ValueError, match="BATCH_MIN_VCPUS: -1 is below 0"):
        batch_warm.WarmSettings.from_env(
            {"BATCH_WARM_COMPUTE_ENVIRONMENT": "a", "BATCH_MIN_VCPUS": "-1"}
        )


# -- what the refill does when Batch cannot take the update ---------------------------------------
def _stubbed(status: str) -> tuple[Any, Stubber]:
    """A Batch client answering as botocore's Stubber is told: one environment in ``status``
    (minvCpus 0 of 64) and no busy desktop."""
    client = boto3.client("batch", region_name=REGION)
    stub = Stubber(client)
    stub.add_response(
        "describe_compute_environments",
        {
            "computeEnvironments": [
                {
                    "computeEnvironmentName": "desktops",
                    "computeEnvironmentArn": "arn:ce",
                    "status": status,
                    "computeResources": {
                        "type": "EC2",
                        "minvCpus": 0,
                        "maxvCpus": 64,
                        "subnets": [],
                        "instanceRole": "r",
                    },
                }
            ]
        },
        {"computeEnvironments": ["arn:ce"]},
    )
    for job_status in batch_warm.BUSY_STATUSES:
        stub.add_response(
            "list_jobs", {"jobSummaryList": []}, {"jobQueue": "queue", "jobStatus": job_status}
        )
    return client, stub


def _plans() -> batch_warm.Demand:
    spec = profiles.parse_spec(batch_profile({"size": 1}))
    assert spec.pool is not None
    return batch_warm.Demand(plans=[batch_warm.WarmPlan("render", spec.pool.plan(), "g5.xlarge")])


def test_an_environment_being_updated_is_left_alone_and_the_next_run_tries_again() -> None:
    client, stub = _stubbed("UPDATING")
    settings = batch_warm.WarmSettings("arn:ce", 0, "queue")
    with stub:  # no UpdateComputeEnvironment is stubbed: calling it would fail the test
        found = batch_warm.refill(
            batch_warm.ComputeEnvironments(client, "queue"),
            settings,
            _plans(),
            now=MONDAY_NOON_PARIS,
        )
    assert (found["changed"], found["minvCpus"], found["error"]) == (
        False,
        4,
        "environment UPDATING",
    )


def test_a_refused_update_is_reported_not_raised() -> None:
    client, stub = _stubbed("VALID")
    stub.add_client_error(
        "update_compute_environment",
        service_error_code="ClientException",
        service_message="Cannot update, compute environment is being modified",
        expected_params={"computeEnvironment": "arn:ce", "computeResources": {"minvCpus": 4}},
    )
    settings = batch_warm.WarmSettings("arn:ce", 0, "queue")
    with stub:
        found = batch_warm.refill(
            batch_warm.ComputeEnvironments(client, "queue"),
            settings,
            _plans(),
            now=MONDAY_NOON_PARIS,
        )
    assert found["changed"] is False
    assert found["error"] == "Cannot update, compute environment is being modified"


def test_a_refill_that_could_not_read_every_profile_leaves_the_batch_capacity_as_it_is(
    fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile that could not be read might be the one keeping instances warm: the refill
    then says why and leaves minvCpus alone rather than lower it from the profiles it read."""
    # Given the render profile keeps 2 warm instances at noon, and then the template's
    # profiles cannot be read
    environment = fleet["BATCH_WARM_COMPUTE_ENVIRONMENT"]
    warm = refill(fleet, MONDAY_NOON_PARIS)["minvCpus"]
    assert warm > 0
    assert min_vcpus(environment) == warm
    monkeypatch.setenv("DESKTOP_PROFILES_PARAMETER", "/stack/no-such-parameter")
    monkeypatch.setattr(pool, "refill_all", lambda *a, **k: {"pools": [], "failed": []})
    monkeypatch.setattr(handler, "drained", lambda *a, **k: [])
    pool_env = {"POOL_TABLE": "pool", "LINUX_LAUNCH_TEMPLATE_ID": "lt", "SUBNET_IDS": "a"}
    for key, value in pool_env.items():
        monkeypatch.setenv(key, value)
    # When the refill runs at night, when the plan would set it back to BatchMinVcpus
    monkeypatch.setattr(handler, "now_iso", lambda: MONDAY_NIGHT_PARIS)
    result = handler.refill({"id": "e-1"}, LambdaContext())  # type: ignore[arg-type]
    # Then it says what it could not read, and the warm capacity is left as it was
    assert [f["profile"] for f in result["failed"]] == ["DesktopProfiles"], result
    assert "batch" not in result
    assert min_vcpus(environment) == warm
