"""Desktop profiles: validation that names the profile and field, the defaults built from the
fleet's parameters, what follows from a profile, who may use it, and the admins' profiles."""

from __future__ import annotations

import json
from datetime import time, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dcvfleet import pool_targets, profiles
from dcvfleet.errors import (
    ConfigurationError,
    InvalidRequestError,
    ProfileConflictError,
    ProfileNotFoundError,
)
from dcvfleet.handlers.profiles_check import handler as check_handler
from dcvfleet.profiles import (
    FleetChoices,
    InMemoryProfileRecords,
    Profiles,
)
from tests.support.properties import LambdaContext
from tests.support.tables import table_properties

CONTEXT = LambdaContext()

FLEET = FleetChoices(
    allowed_instance_types=("g5.xlarge", "g4dn.xlarge", "g6.xlarge"),
    default_instance_types={"linux": "g4dn.xlarge"},
    enabled_backends=("ec2", "batch"),
    batch_instance_types=("g5.xlarge",),
    idle_timeout_seconds=3600,
    idle_action="stop",
    max_session_minutes=720,
)


def spec(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "CAD workstation",
        "description": "For CAD.",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": ["g5.xlarge"],
        "idle": {"timeoutSeconds": 900, "action": "stop"},
        "maxSessionHours": 8,
        "groups": ["cad"],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (spec(idle={"timeoutSeconds": 900, "action": "pause"}), "idle.action: Input should be"),
        (spec(idle={"timeoutSeconds": 5, "action": "stop"}), "idle.timeoutSeconds: Input should"),
        (spec(instanceTypes=[]), "instanceTypes: List should have at least 1 item"),
        (spec(name="x" * 61), "name: String should have at most 60 characters"),
        (spec(name="two\nlines"), "name: String should match pattern"),
        (spec(colour="red"), "colour: unknown field"),
        (spec(backend="batch"), "idle.action: a batch desktop's container ends"),
        (spec(maxSessionHours=0), "maxSessionHours: Input should be greater than 0"),
        (spec(instanceTypes=["g5.xlarge", "g5.xlarge"]), "instanceTypes: names a type twice"),
        ({k: v for k, v in spec().items() if k != "idle"}, "idle: is required"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        profiles.parse_spec(body)
    assert caught.value.message.startswith(message), caught.value.message


def test_the_parameter_names_the_profile_and_field_at_fault() -> None:
    good = {**spec(), "id": "cad"}
    bad = {**spec(idle={"timeoutSeconds": 900, "action": "pause"}), "id": "render"}
    with pytest.raises(ConfigurationError) as caught:
        profiles.parse_definitions(json.dumps([good, bad]))
    assert caught.value.message.startswith("DesktopProfiles[1] (render).idle.action: ")
    with pytest.raises(ConfigurationError, match=r"DesktopProfiles: not valid JSON"):
        profiles.parse_definitions('[{"id": "cad",}]')
    with pytest.raises(ConfigurationError, match=r"must be a JSON list"):
        profiles.parse_definitions('{"id": "cad"}')
    with pytest.raises(ConfigurationError, match=r"DesktopProfiles\[1\] \(cad\)\.id: 'cad' is"):
        profiles.parse_definitions(json.dumps([good, good]))
    with pytest.raises(ConfigurationError, match=r"DesktopProfiles\[0\] \(Bad Id\)\.id: "):
        profiles.parse_definitions(json.dumps([{**good, "id": "Bad Id"}]))


def test_a_parameter_profile_the_fleet_cannot_run_is_refused() -> None:
    outside = {**spec(instanceTypes=["p5.48xlarge"]), "id": "big"}
    with pytest.raises(ConfigurationError) as caught:
        profiles.template_definitions(json.dumps([outside]), FLEET)
    assert caught.value.message == (
        "DesktopProfiles[0] (big).instanceTypes: 'p5.48xlarge' is not one of the fleet's "
        "AllowedInstanceTypes (g5.xlarge, g4dn.xlarge, g6.xlarge)"
    )
    windows = {**spec(os="windows"), "id": "win"}
    with pytest.raises(ConfigurationError, match=r"\(win\)\.os: Windows desktops are not set"):
        profiles.template_definitions(json.dumps([windows]), FLEET)


def test_the_defaults_mirror_the_fleet_parameters() -> None:
    found = {d.id: d for d in profiles.template_definitions("", FLEET)}
    assert sorted(found) == ["linux-session", "linux-workstation"]  # no WindowsAmiId
    linux = found["linux-workstation"]
    assert linux.instanceTypes == ["g4dn.xlarge", "g5.xlarge", "g6.xlarge"]  # default first
    assert linux.idle.model_dump() == {"timeoutSeconds": 3600, "action": "stop"}
    assert linux.maxSessionHours == 12
    assert found["linux-session"].backend == "batch"
    assert found["linux-session"].idle.action == "terminate"
    with_windows = FleetChoices(
        **{
            **FLEET.__dict__,
            "default_instance_types": {"linux": "g5.xlarge", "windows": "g5.xlarge"},
        }
    )
    ids = [d.id for d in profiles.default_definitions(with_windows)]
    assert ids == ["linux-workstation", "linux-session", "windows-workstation"]
    no_limit = FleetChoices(
        **{**FLEET.__dict__, "max_session_minutes": 0, "enabled_backends": ("ec2",)}
    )
    (only,) = profiles.default_definitions(no_limit)
    assert only.maxSessionHours is None
    ninety = FleetChoices(**{**FLEET.__dict__, "max_session_minutes": 90})
    assert profiles.default_definitions(ninety)[0].maxSessionHours == 1.5


def test_what_follows_from_a_profile() -> None:
    keep = profiles.describe(profiles.ProfileDefinition(**spec(), id="cad"), "admin")
    assert keep.keepsFiles is True
    assert keep.whenStopped == profiles.KEPT
    gone = profiles.ProfileDefinition(
        **spec(idle={"timeoutSeconds": 900, "action": "terminate"}), id="x"
    )
    assert profiles.describe(gone, "admin").keepsFiles is False
    batch = profiles.default_definitions(FLEET)[1]
    described = profiles.describe(batch, "template").model_dump()
    assert described["keepsFiles"] is False
    assert described["whenStopped"] == "It ends when you stop it; nothing is kept."
    assert described["source"] == "template"


def test_who_may_use_a_profile() -> None:
    records = InMemoryProfileRecords()
    fleet = Profiles(profiles.default_definitions(FLEET), records)
    fleet.put("cad", profiles.parse_spec(spec()), FLEET, by="boss")
    everyone = [p.id for p in fleet.open_to(set())]
    assert everyone == ["linux-workstation", "linux-session"]
    assert "cad" in [p.id for p in fleet.open_to({"cad"})]
    assert "cad" in [p.id for p in fleet.open_to({"admins"})]
    assert [p.id for p in fleet.all()] == ["linux-workstation", "linux-session", "cad"]


def test_an_admin_profile_wins_over_the_template_one_and_deleting_it_restores_it() -> None:
    records = InMemoryProfileRecords()
    fleet = Profiles(profiles.default_definitions(FLEET), records)
    changed = spec(name="Linux (short)", groups=[], instanceTypes=["g4dn.xlarge"])
    fleet.put("linux-workstation", profiles.parse_spec(changed), FLEET, by="boss")
    linux = fleet.all()[0]
    assert (linux.id, linux.name, linux.source) == ("linux-workstation", "Linux (short)", "admin")
    fleet.delete("linux-workstation")
    assert fleet.all()[0].source == "template"
    with pytest.raises(ProfileConflictError, match="DesktopProfiles"):
        fleet.delete("linux-workstation")
    with pytest.raises(ProfileNotFoundError):
        fleet.delete("nothing")


def test_an_admin_profile_the_fleet_cannot_run_is_refused() -> None:
    fleet = Profiles([], InMemoryProfileRecords())
    with pytest.raises(InvalidRequestError, match=r"^instanceTypes: 'p5.48xlarge' is not one"):
        fleet.put("big", profiles.parse_spec(spec(instanceTypes=["p5.48xlarge"])), FLEET, "boss")


def test_a_request_is_matched_to_a_profile_open_to_the_caller() -> None:
    open_ = Profiles(profiles.default_definitions(FLEET), InMemoryProfileRecords()).open_to(set())
    chosen, kind = profiles.choose(
        open_, profile_id="linux-workstation", backend=None, os=None, instance_type=None
    )
    assert (chosen.id, kind) == ("linux-workstation", "g4dn.xlarge")
    chosen, kind = profiles.choose(
        open_, profile_id=None, backend="batch", os="linux", instance_type=None
    )
    assert (chosen.id, kind) == ("linux-session", "g5.xlarge")
    with pytest.raises(InvalidRequestError) as caught:
        profiles.choose(open_, profile_id="cad", backend=None, os=None, instance_type=None)
    assert caught.value.message == "profile: no profile 'cad' is open to you"
    with pytest.raises(InvalidRequestError) as caught:
        profiles.choose(
            open_, profile_id=None, backend="ec2", os="linux", instance_type="p5.48xlarge"
        )
    assert caught.value.message == (
        "instanceType: 'p5.48xlarge' is not allowed by profile 'linux-workstation' "
        "(g4dn.xlarge, g5.xlarge, g6.xlarge)"
    )
    with pytest.raises(InvalidRequestError, match=r"^os: no profile open to you runs windows on"):
        profiles.choose(open_, profile_id=None, backend="ec2", os="windows", instance_type=None)
    ec2_only = [p for p in open_ if p.backend == "ec2"]
    with pytest.raises(InvalidRequestError, match=r"^backend: no profile open to you runs on"):
        profiles.choose(ec2_only, profile_id=None, backend="batch", os="linux", instance_type=None)


def test_a_desktop_keeps_a_snapshot_of_its_profile() -> None:
    cad = profiles.parse_spec(spec())
    kept = profiles.snapshot(cad, "cad", "  My CAD box ")
    assert kept == {
        "profile": "cad",
        "profileName": "CAD workstation",
        "name": "My CAD box",
        "idleTimeoutSeconds": "900",
        "idleAction": "stop",
        "maxSessionHours": "8",
    }
    assert profiles.snapshot(cad, "cad", None)["name"] == "CAD workstation"
    assert profiles.idle_timeout_seconds(kept, 1800) == 900
    assert profiles.idle_action(kept, "terminate") == "stop"
    assert profiles.max_session_seconds(kept, 60) == 8 * 3600
    unlimited = profiles.snapshot(profiles.parse_spec(spec(maxSessionHours=None)), "cad", None)
    assert profiles.max_session_seconds(unlimited, 60) == 0


def test_a_desktop_made_before_profiles_gets_the_fleet_policy_and_a_plain_name() -> None:
    assert profiles.session_view("ec2", "linux", {}) == {
        "profile": "linux-workstation",
        "profileName": "Linux workstation",
        "name": "Linux desktop",
    }
    assert profiles.idle_timeout_seconds({}, 1800) == 1800
    assert profiles.idle_action({}, "hibernate") == "hibernate"
    assert profiles.max_session_seconds({}, 43200) == 43200
    assert profiles.session_view("ec2", "linux", {"hidden": "true"})["hidden"] is True


def test_the_deploy_time_check_fails_naming_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SESSIONS_TABLE": "t",
        "EVENT_BUS_NAME": "b",
        "FLEET_TAG_VALUE": "f",
        "PROVISION_STATE_MACHINE_ARN": "arn",
        "ALLOWED_INSTANCE_TYPES": "g5.xlarge,g4dn.xlarge",
        "LINUX_INSTANCE_TYPE": "g5.xlarge",
        "WINDOWS_INSTANCE_TYPE": "",
        "ENABLED_BACKENDS": "ec2,batch",
        "BATCH_INSTANCE_TYPES": "g5.xlarge",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bad = json.dumps([{**spec(groups="cad"), "id": "cad"}])
    with pytest.raises(ConfigurationError, match=r"^DesktopProfiles\[0\] \(cad\)\.groups: "):
        check_handler({"RequestType": "Update", "ResourceProperties": {"Profiles": bad}}, CONTEXT)
    ok = check_handler({"RequestType": "Create", "ResourceProperties": {"Profiles": ""}}, CONTEXT)
    assert ok["Reason"] == "2 profile(s): linux-workstation, linux-session"
    assert check_handler(
        {"RequestType": "Delete", "ResourceProperties": {"Profiles": bad}}, CONTEXT
    )


def test_the_admins_profiles_are_kept_in_the_table_the_template_declares() -> None:
    declared = table_properties("ProfilesTable")
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="profiles",
            AttributeDefinitions=declared["AttributeDefinitions"],
            KeySchema=declared["KeySchema"],
            BillingMode="PAY_PER_REQUEST",
        )
        records = profiles.ProfileRecords(db, "profiles")
        fleet = Profiles(profiles.default_definitions(FLEET), records)
        put = fleet.put("cad", profiles.parse_spec(spec()), FLEET, by="boss")
        assert [d.model_dump() for d in records.list()] == [
            {
                k: v
                for k, v in put.model_dump().items()
                if k not in ("keepsFiles", "whenStopped", "source")
            }
        ]
        item = db.get_item(TableName="profiles", Key={"id": {"S": "cad"}})["Item"]
        assert item["updatedBy"] == {"S": "boss"}
        fleet.delete("cad")
        assert records.list() == []
        assert records.delete("cad") is False


# -- a profile's warm pool -----------------------------------------------------------------------
OFFICE_POOL: dict[str, Any] = {
    "size": 1,
    "state": "stopped",
    "timeZone": "Europe/Paris",
    "schedule": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "18:00", "size": 5}
    ],
    "forecast": {"quantile": 0.9, "weeks": 6},
    "maximum": 8,
}


def test_a_pool_plan_reads_as_the_targets_plan() -> None:
    plan = profiles.parse_spec(spec(pool=OFFICE_POOL)).pool
    assert plan is not None
    assert plan.plan() == pool_targets.PoolPlan(
        size=1,
        state="stopped",
        timezone="Europe/Paris",
        windows=(pool_targets.Window(frozenset(range(5)), time(8), time(18), 5, "running"),),
        forecast=pool_targets.Forecast(quantile=0.9, weeks=6, lead=timedelta(0)),
        maximum=8,
    )
    # a forecast per 5 minutes, with one host waiting stopped through quiet hours
    five = {"quantile": 0.5, "weeks": 4, "intervalMinutes": 5, "quietHours": "stopped"}
    quiet = profiles.parse_spec(spec(pool={**OFFICE_POOL, "forecast": five})).pool
    assert quiet is not None
    assert quiet.plan().forecast == pool_targets.Forecast(
        quantile=0.5,
        weeks=4,
        lead=timedelta(0),
        interval=timedelta(minutes=5),
        quiet="stopped",
    )
    # a profile without one reads as before: no pool field at all
    assert "pool" not in profiles.parse_spec(spec()).model_dump()


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({**OFFICE_POOL, "timeZone": "Europe/Pariss"}, "pool.timeZone: 'Europe/Pariss' is not"),
        ({**OFFICE_POOL, "size": -1}, "pool.size: Input should be greater than or equal to 0"),
        ({**OFFICE_POOL, "size": 21}, "pool.size: Input should be less than or equal to 20"),
        ({**OFFICE_POOL, "state": "asleep"}, "pool.state: Input should be 'running', 'stopped' or"),
        ({**OFFICE_POOL, "forecast": {"quantile": 0}}, "pool.forecast.quantile: Input should be"),
        ({**OFFICE_POOL, "forecast": {"quantile": 1.2}}, "pool.forecast.quantile: Input should"),
        ({**OFFICE_POOL, "forecast": {"quantile": 0.9, "weeks": 0}}, "pool.forecast.weeks: "),
        (
            {**OFFICE_POOL, "forecast": {"quantile": 0.9, "intervalMinutes": 7}},
            "pool.forecast.intervalMinutes: Input should be 1, 2, 3,",
        ),
        (
            {**OFFICE_POOL, "forecast": {"quantile": 0.9, "quietHours": "asleep"}},
            "pool.forecast.quietHours: Input should be 'running', 'stopped' or 'hibernated'",
        ),
        (
            {
                **OFFICE_POOL,
                "schedule": [{"days": ["mon"], "from": "08:00", "to": "08:00", "size": 1}],
            },
            "pool.schedule.0.to: a window must not end when it starts (08:00)",
        ),
        (
            {
                **OFFICE_POOL,
                "schedule": [{"days": ["mon"], "from": "8:00", "to": "18:00", "size": 1}],
            },
            "pool.schedule.0.from: String should match pattern",
        ),
        (
            {
                **OFFICE_POOL,
                "schedule": [{"days": ["lun"], "from": "08:00", "to": "18:00", "size": 1}],
            },
            "pool.schedule.0.days.0: Input should be 'mon'",
        ),
        (
            {
                **OFFICE_POOL,
                "schedule": [{"days": ["mon", "mon"], "from": "08:00", "to": "09:00", "size": 1}],
            },
            "pool.schedule.0.days: names a day twice",
        ),
        ({**OFFICE_POOL, "colour": "red"}, "pool.colour: unknown field"),
    ],
)
def test_a_bad_pool_plan_is_refused_naming_the_field(pool: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        profiles.parse_spec(spec(pool=pool), "linux-workstation")
    assert caught.value.message.startswith(f"linux-workstation.{message}"), caught.value.message


def test_every_ec2_profile_may_carry_a_pool_and_a_batch_profile_only_running_warm_instances() -> (
    None
):
    # through the API: an EC2 profile of any id and OS
    fleet = Profiles(profiles.default_definitions(FLEET), InMemoryProfileRecords())
    put = fleet.put("cad", profiles.parse_spec(spec(pool=OFFICE_POOL)), FLEET, "boss")
    assert put.pool is not None
    assert put.pool.size == 1
    # through DesktopProfiles
    other = {**spec(pool=OFFICE_POOL), "id": "cad"}
    assert profiles.parse_definitions(json.dumps([other]))[0].pool is not None
    batch = {
        **spec(backend="batch", idle={"timeoutSeconds": 900, "action": "terminate"}),
        "id": "quick",
        "pool": OFFICE_POOL,
    }
    with pytest.raises(
        ConfigurationError,
        match=r"^DesktopProfiles\[0\] \(quick\)\.pool\.state: a batch profile's warm instances",
    ):
        profiles.parse_definitions(json.dumps([batch]))
    body = {k: v for k, v in batch.items() if k != "id"}
    with pytest.raises(InvalidRequestError, match=r"^pool\.state: a batch profile's warm"):
        fleet.put("quick", profiles.parse_spec(body), FLEET, "boss")
    # a batch profile's pool of running windows is its warm instances (dcvfleet.batch_warm)
    running = {**OFFICE_POOL, "state": "running", "schedule": []}
    warm = fleet.put("quick", profiles.parse_spec({**body, "pool": running}), FLEET, "boss")
    assert warm.pool is not None


def test_a_pool_plan_is_kept_in_the_admins_table_as_put() -> None:
    declared = table_properties("ProfilesTable")
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="profiles",
            AttributeDefinitions=declared["AttributeDefinitions"],
            KeySchema=declared["KeySchema"],
            BillingMode="PAY_PER_REQUEST",
        )
        records = profiles.ProfileRecords(db, "profiles")
        fleet = Profiles(profiles.default_definitions(FLEET), records)
        fleet.put("linux-workstation", profiles.parse_spec(spec(pool=OFFICE_POOL)), FLEET, "boss")
        item = db.get_item(TableName="profiles", Key={"id": {"S": "linux-workstation"}})["Item"]
        stored = json.loads(item["spec"]["S"])["pool"]
        assert stored["schedule"][0] == {**OFFICE_POOL["schedule"][0], "state": "running"}
        (kept,) = records.list()
        assert kept.pool is not None
        assert kept.pool.plan().windows[0].start == time(8)
