"""Desktop profiles: what a user may ask for, by name, and the policy a desktop of each gets.

A profile says which backend and OS a desktop runs, on which instance types, who may use it
(Cognito groups), how long it may sit idle and what then happens to it, and how long it may
run at most. The fleet's profiles come from two places:

- the template's ``DesktopProfiles`` parameter (``DESKTOP_PROFILES``, a JSON list); when it is
  empty, the defaults below, built from the fleet's other parameters, mirror what a fleet
  offered before profiles (a Linux workstation, a batch Linux session, a Windows workstation
  where WindowsAmiId is set);
- the profiles administrators put through the API, kept in the profiles table
  (``PROFILES_TABLE``), which win over a template profile of the same id.

Profiles are validated by the pydantic models here (the API's OpenAPI document shows them);
the message of a bad one names the profile and the field. A desktop keeps a snapshot of its
profile's idle policy and maximum length (``snapshot``): a later change of the profile does
not change a desktop that exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dcvfleet import pool_targets
from dcvfleet.config import IDLE_ACTIONS, ApiSettings
from dcvfleet.errors import (
    ConfigurationError,
    InvalidRequestError,
    ProfileConflictError,
    ProfileNotFoundError,
)
from dcvfleet.session_profile import (  # noqa: F401 - re-exported: what a desktop keeps
    HIDDEN_KEY,
    IDLE_ACTION_KEY,
    IDLE_TIMEOUT_ENV,
    IDLE_TIMEOUT_KEY,
    IDLE_TIMEOUT_TAG,
    MAX_HOURS_KEY,
    NAME_KEY,
    PROFILE_KEY,
    PROFILE_NAME_KEY,
    idle_action,
    idle_timeout_seconds,
    max_session_seconds,
    session_view,
)

#: A profile's id: short, lower-case, safe in a URL path and a DynamoDB key.
PROFILE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
#: An EC2 instance type (family, generation and options, a dot, a size); a batch profile may
#: also name Batch's own "GPU"-style instance families, as BatchInstanceTypes does.
PROFILE_INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*(\.[a-z0-9]+)?$|^GPU$"
#: A Cognito group name: 1-128 letters, marks, symbols, numbers or punctuation, no spaces
#: (GroupName, https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateGroup.html).
GROUP_PATTERN = r"^[^\s\x00-\x1f\x7f]{1,128}$"
ADMINS_GROUP = "admins"
#: The idle timeout's bounds, as the template's IdleTimeoutSeconds parameter's.
MIN_IDLE_SECONDS, MAX_IDLE_SECONDS = 10, 86400
#: The longest a desktop may be allowed to run: a year.
MAX_SESSION_HOURS = 8760
#: The most profiles a fleet holds (GET /profiles answers them all in one page).
MAX_PROFILES = 50

IdleAction = Literal["stop", "hibernate", "terminate"]
Name = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[^\x00-\x1f\x7f]+$")]
Description = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
InstanceType = Annotated[str, Field(max_length=32, pattern=PROFILE_INSTANCE_TYPE_PATTERN)]
Group = Annotated[str, Field(pattern=GROUP_PATTERN)]


class IdlePolicy(BaseModel):
    """After how long without use a desktop is idle, and what then happens to it."""

    model_config = ConfigDict(extra="forbid")
    timeoutSeconds: int = Field(
        ge=MIN_IDLE_SECONDS,
        le=MAX_IDLE_SECONDS,
        description="a desktop unused for this long is warned, then given the action",
    )
    action: IdleAction = Field(
        description="stop (files kept), hibernate (memory kept too; falls back to stop), or "
        "terminate (the desktop and its disk end)"
    )


#: The most hosts a profile's pool keeps (the WarmPoolSize parameter's MaxValue).
MAX_POOL_SIZE = 20
PoolWait = Literal["running", "stopped", "hibernated"]
WAITS = "running, stopped or hibernated (where its type can hibernate; else stopped)"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
PoolSize = Annotated[int, Field(ge=0, le=MAX_POOL_SIZE)]


class PoolWindowSpec(BaseModel):
    """A scheduled window of a profile's pool, on the plan's time zone's clock."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)
    days: list[Day] = Field(min_length=1, max_length=7, description="the days it starts on")
    start: ClockTime = Field(alias="from", description="HH:MM, when it starts")
    end: ClockTime = Field(
        alias="to", description="HH:MM, when it ends; earlier than from: the next day"
    )
    size: PoolSize = Field(description="the hosts the pool keeps during the window")
    state: PoolWait = Field("running", description=f"how they wait: {WAITS}")


class PoolForecastSpec(BaseModel):
    """A pool that follows the profile's own request history."""

    model_config = ConfigDict(extra="forbid")
    quantile: Annotated[float, Field(gt=0, le=1)] = Field(
        description="e.g. 0.9: for each hour of the week, the 90th percentile of the requests "
        "counted in that hour in each past week"
    )
    weeks: Annotated[int, Field(ge=1, le=pool_targets.MAX_FORECAST_WEEKS)] = Field(
        4, description="how many past weeks it reads"
    )
    intervalMinutes: Literal[1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60] = Field(
        60,
        description="the span requests are counted over: the pool holds the quantile of the"
        " requests of that interval of the week (5: the requests expected before the next"
        " scheduled refill), and at least one host through an hour whose quantile is a request",
    )
    quietHours: PoolWait | None = Field(
        None,
        description="an hour with a request in some past week but a quantile of none keeps one"
        " host waiting so (stopped: only its volume is paid); none by default",
    )


class PoolSpec(BaseModel):
    """A profile's warm pool: hosts launched ahead of any request, by plan."""

    model_config = ConfigDict(extra="forbid")
    size: PoolSize = Field(description="the hosts it keeps outside every window")
    state: PoolWait = Field("running", description=f"how they wait: {WAITS}")
    timeZone: str = Field(
        "UTC", max_length=64, description="the IANA time zone of the schedule, e.g. Europe/Paris"
    )
    schedule: list[PoolWindowSpec] = Field(default_factory=list, max_length=20)
    forecast: PoolForecastSpec | None = Field(
        None, description="at least the forecast of the profile's requests in the hour ahead"
    )
    maximum: PoolSize = Field(MAX_POOL_SIZE, description="never more hosts than this")

    @model_validator(mode="after")
    def _consistent(self) -> PoolSpec:
        try:
            pool_targets.zone(self.timeZone)
        except ValueError as exc:
            raise ValueError(f"pool.{exc}") from None
        for index, window in enumerate(self.schedule):
            where = f"pool.schedule.{index}"
            if len(set(window.days)) != len(window.days):
                raise ValueError(f"{where}.days: names a day twice")
            if window.start == window.end:
                raise ValueError(
                    f"{where}.to: a window must not end when it starts ({window.start}); for a "
                    "whole day use 00:00 to 23:59"
                )
        return self

    def plan(self) -> pool_targets.PoolPlan:
        """The plan ``pool_targets.target`` reads."""
        return pool_targets.PoolPlan(
            size=self.size,
            state=self.state,
            timezone=self.timeZone,
            windows=tuple(
                pool_targets.Window(
                    days=frozenset(pool_targets.DAY_NAMES.index(d) for d in w.days),
                    start=time.fromisoformat(w.start),
                    end=time.fromisoformat(w.end),
                    size=w.size,
                    state=w.state,
                )
                for w in self.schedule
            ),
            forecast=(
                pool_targets.Forecast(
                    quantile=self.forecast.quantile,
                    weeks=self.forecast.weeks,
                    # the refill already reads the plan 10 minutes ahead (pool.PLAN_LEAD): a
                    # lead of the forecast's own would want its hosts 20 minutes early
                    lead=timedelta(0),
                    interval=timedelta(minutes=self.forecast.intervalMinutes),
                    quiet=self.forecast.quietHours,
                )
                if self.forecast
                else None
            ),
            maximum=self.maximum,
        )


class ProfileSpec(BaseModel):
    """A profile as an administrator puts it (PUT /admin/profiles/{id}): no id, nothing
    derived."""

    model_config = ConfigDict(extra="forbid")
    name: Name = Field(description="plain words, shown to users")
    description: Description = Field("", description="one line, shown to users")
    backend: Literal["ec2", "batch"] = Field(
        description="ec2: a GPU instance of the user's own; batch: a container on a shared one"
    )
    os: Literal["linux", "windows"]
    instanceTypes: list[InstanceType] = Field(
        min_length=1, max_length=20, description="the types allowed; the first is the default"
    )
    idle: IdlePolicy
    maxSessionHours: Annotated[float, Field(gt=0, le=MAX_SESSION_HOURS)] | None = Field(
        None, description="a desktop READY this long is warned and stopped; null: no limit"
    )
    groups: list[Group] = Field(
        default_factory=list,
        max_length=20,
        description="Cognito groups that may use it; empty: every signed-in user",
    )
    pool: PoolSpec | None = Field(
        None,
        exclude_if=lambda value: value is None,  # a profile without one reads as before
        description="its warm pool (an EC2 profile's hosts, a batch profile's warm "
        "instances); none: no pool, except the default Linux "
        "EC2 profile's, which the WarmPoolSize and WarmPoolState parameters then set",
    )

    @field_validator("name", "description")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        return value.strip()

    @field_validator("maxSessionHours")
    @classmethod
    def _whole_when_whole(cls, value: float | None) -> float | None:
        return int(value) if value is not None and float(value).is_integer() else value

    @model_validator(mode="after")
    def _consistent(self) -> ProfileSpec:
        if not self.name:
            raise ValueError("name: must not be blank")
        if self.backend == "batch" and self.os != "linux":
            raise ValueError("os: a batch desktop runs linux")
        if self.backend == "batch" and self.idle.action != "terminate":
            raise ValueError(
                "idle.action: a batch desktop's container ends when it stops, so its action "
                "is terminate"
            )
        if len(set(self.instanceTypes)) != len(self.instanceTypes):
            raise ValueError("instanceTypes: names a type twice")
        return self


class ProfileDefinition(ProfileSpec):
    """A profile in the template's DesktopProfiles parameter: the spec and its id."""

    id: str = Field(pattern=PROFILE_ID_PATTERN)


class Profile(ProfileDefinition):
    """A profile as the API answers it: with what follows from it, and where it is defined."""

    keepsFiles: bool = Field(description="whether a stopped desktop keeps its files")
    whenStopped: str = Field(description="what stopping it means, in plain words")
    source: Literal["template", "admin"]


class ProfileList(BaseModel):
    items: list[Profile]


#: What a user reads about stopping a desktop of each kind.
KEPT = "Your files are kept: start it again and carry on where you left off."
NOT_KEPT = "It ends when you stop it; nothing is kept."
ENDS_WHEN_IDLE = (
    "Your files are kept while it runs, but it is deleted with its disk when nobody uses it."
)


def keeps_files(spec: ProfileSpec) -> bool:
    return spec.backend == "ec2" and spec.idle.action != "terminate"


def when_stopped(spec: ProfileSpec) -> str:
    if spec.backend == "batch":
        return NOT_KEPT
    return KEPT if keeps_files(spec) else ENDS_WHEN_IDLE


def describe(definition: ProfileDefinition, source: Literal["template", "admin"]) -> Profile:
    """The API's view of a profile."""
    return Profile(
        **definition.model_dump(),
        keepsFiles=keeps_files(definition),
        whenStopped=when_stopped(definition),
        source=source,
    )


# -- validation with a message naming the profile and the field ----------------------------------
def _message(error: ValidationError, where: str) -> str:
    """``where.field: what is wrong`` for the first of pydantic's errors."""
    first = error.errors()[0]
    path = ".".join(str(p) for p in first.get("loc", ()))
    kind = first.get("type", "")
    text = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "value_error" and ": " in text:  # our own: names its field already
        path, _, text = text.partition(": ")
    elif kind == "extra_forbidden":
        text = "unknown field"
    elif kind == "missing":
        text = "is required"
    return f"{'.'.join(p for p in (where, path) if p)}: {text}"


def parse_spec(body: Any, where: str = "") -> ProfileSpec:
    """An administrator's profile (PUT /admin/profiles/{id}), or InvalidRequestError naming the
    field."""
    try:
        return ProfileSpec.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(_message(exc, where)) from None


def parse_definitions(text: str) -> list[ProfileDefinition]:
    """The DesktopProfiles parameter: a JSON list of profiles, each with a unique id; or
    ConfigurationError naming the profile (its id, else its place) and the field."""
    if not text.strip():
        return []
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"DesktopProfiles: not valid JSON ({exc})") from None
    if not isinstance(raw, list):
        raise ConfigurationError("DesktopProfiles: must be a JSON list of profiles")
    if len(raw) > MAX_PROFILES:
        raise ConfigurationError(f"DesktopProfiles: at most {MAX_PROFILES} profiles")
    found: list[ProfileDefinition] = []
    for index, item in enumerate(raw):
        label = f"DesktopProfiles[{index}]"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            label = f"DesktopProfiles[{index}] ({item['id'][:40]})"
        try:
            definition = ProfileDefinition.model_validate(item)
        except ValidationError as exc:
            raise ConfigurationError(_message(exc, label)) from None
        if any(d.id == definition.id for d in found):
            raise ConfigurationError(f"{label}.id: {definition.id!r} is defined twice")
        problem = pool_problem(definition.id, definition)
        if problem:
            raise ConfigurationError(f"{label}.{problem}")
        found.append(definition)
    return found


# -- the template's profiles ---------------------------------------------------------------------
@dataclass(frozen=True)
class FleetChoices:
    """The fleet's parameters the default profiles are built from."""

    allowed_instance_types: tuple[str, ...]
    default_instance_types: Mapping[str, str]
    enabled_backends: tuple[str, ...]
    batch_instance_types: tuple[str, ...]
    idle_timeout_seconds: int
    idle_action: str
    max_session_minutes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FleetChoices:
        api = ApiSettings.from_env(env)
        action = env.get("IDLE_ACTION", "stop")
        if action not in IDLE_ACTIONS:
            raise ConfigurationError(f"IDLE_ACTION: {action!r} is not one of {IDLE_ACTIONS}")
        try:
            timeout = int(env.get("IDLE_TIMEOUT_SECONDS", "1800"))
            minutes = int(env.get("MAX_SESSION_MINUTES", "0"))
        except ValueError as exc:
            raise ConfigurationError(f"idle or lifetime setting is not an integer: {exc}") from exc
        return cls(
            allowed_instance_types=api.allowed_instance_types,
            default_instance_types=api.default_instance_types,
            enabled_backends=api.enabled_backends,
            batch_instance_types=api.batch_instance_types,
            idle_timeout_seconds=timeout,
            idle_action=action,
            max_session_minutes=minutes,
        )


def _first(default: str, allowed: Iterable[str]) -> list[str]:
    return [default, *(t for t in allowed if t != default)]


def default_definitions(fleet: FleetChoices) -> list[ProfileDefinition]:
    """What a fleet offers without a DesktopProfiles parameter: its choices before profiles."""
    minutes = fleet.max_session_minutes
    hours = (minutes // 60 if minutes % 60 == 0 else minutes / 60) if minutes > 0 else None
    idle = {"timeoutSeconds": fleet.idle_timeout_seconds, "action": fleet.idle_action}
    keeps = " Stopping it keeps your files." if idle["action"] != "terminate" else ""

    def workstation(os_: str, profile_id: str, name: str, what: str) -> dict[str, Any]:
        return {
            "id": profile_id,
            "name": name,
            "description": what + keeps,
            "backend": "ec2",
            "os": os_,
            "instanceTypes": _first(
                fleet.default_instance_types[os_], fleet.allowed_instance_types
            ),
            "idle": idle,
            "maxSessionHours": hours,
        }

    found = []
    if "ec2" in fleet.enabled_backends and "linux" in fleet.default_instance_types:
        found.append(
            workstation(
                "linux",
                "linux-workstation",
                "Linux workstation",
                "A GPU desktop of your own for 3D work.",
            )
        )
    if "batch" in fleet.enabled_backends:
        found.append(
            {
                "id": "linux-session",
                "name": "Linux session",
                "description": "A GPU desktop for a quick task. It ends when you stop it; "
                "nothing is kept.",
                "backend": "batch",
                "os": "linux",
                "instanceTypes": list(fleet.batch_instance_types) or ["GPU"],
                "idle": {**idle, "action": "terminate"},
                "maxSessionHours": hours,
            }
        )
    if "ec2" in fleet.enabled_backends and "windows" in fleet.default_instance_types:
        found.append(
            workstation(
                "windows",
                "windows-workstation",
                "Windows workstation",
                "A Windows GPU desktop of your own.",
            )
        )
    return [ProfileDefinition.model_validate(d) for d in found]


def template_definitions(text: str, fleet: FleetChoices) -> list[ProfileDefinition]:
    """The template's profiles: DesktopProfiles, or the defaults when it is empty; each
    checked against what the fleet can run."""
    found = parse_definitions(text) or default_definitions(fleet)
    for index, definition in enumerate(found):
        problem = fleet_problem(definition, fleet)
        if problem:
            raise ConfigurationError(f"DesktopProfiles[{index}] ({definition.id}).{problem}")
    return found


def pool_problem(profile_id: str, spec: ProfileSpec) -> str | None:
    """Why this profile may not carry its ``pool`` (``field: why``), or None. Every EC2 profile
    may keep one (its hosts are launched from its OS's launch template, as its type); a batch
    profile's is warm instances of its compute environment, which wait running."""
    if spec.pool is None or spec.backend == "ec2":
        return None
    return _batch_pool_problem(spec.pool)


def _batch_pool_problem(pool: PoolSpec) -> str | None:
    """Why a batch profile may not carry this ``pool``, or None: its pool is warm instances of
    its compute environment (dcvfleet.batch_warm), which wait running, so every state it names
    must be ``running``."""
    if pool.state != "running":
        return (
            f"pool.state: a batch profile's warm instances wait running ({pool.state!r} is "
            "not served: a job is placed only on a running instance)"
        )
    for index, window in enumerate(pool.schedule):
        if window.state != "running":
            return (
                f"pool.schedule.{index}.state: a batch profile's warm instances wait running "
                f"({window.state!r} is not served: a job is placed only on a running instance)"
            )
    return None


def fleet_problem(spec: ProfileSpec, fleet: FleetChoices) -> str | None:
    """What this fleet cannot run of a profile (``field: why``), or None."""
    if spec.backend not in fleet.enabled_backends:
        return f"backend: {spec.backend!r} is not enabled on this fleet"
    if spec.os not in fleet.default_instance_types:
        return (
            "os: Windows desktops are not set up in this fleet "
            "(an administrator turns them on with the WindowsAmiId parameter)"
        )
    allowed = fleet.allowed_instance_types if spec.backend == "ec2" else fleet.batch_instance_types
    outside = [t for t in spec.instanceTypes if t not in allowed]
    if outside:
        return (
            f"instanceTypes: {outside[0]!r} is not one of the fleet's "
            f"{'AllowedInstanceTypes' if spec.backend == 'ec2' else 'BatchInstanceTypes'} "
            f"({', '.join(allowed)})"
        )
    return None


# -- the admins' profiles ------------------------------------------------------------------------
class ProfileRecords:
    """The profiles administrators put: one DynamoDB item each (key ``id``), the spec as JSON."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def list(self) -> list[ProfileDefinition]:
        found: list[ProfileDefinition] = []
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = self._db.scan(**kwargs)
            for item in page.get("Items", []):
                spec = json.loads(item["spec"]["S"])
                found.append(ProfileDefinition.model_validate({**spec, "id": item["id"]["S"]}))
            if "LastEvaluatedKey" not in page:
                return sorted(found, key=lambda d: d.id)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, profile_id: str) -> ProfileDefinition | None:
        """The admins' profile of this id, if any."""
        item = self._db.get_item(
            TableName=self._table, Key={"id": {"S": profile_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return ProfileDefinition.model_validate({**json.loads(item["spec"]["S"]), "id": profile_id})

    def put(self, profile_id: str, spec: ProfileSpec, by: str) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "id": {"S": profile_id},
                "spec": {"S": spec.model_dump_json()},
                "updatedAt": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
                "updatedBy": {"S": by},
            },
        )

    def delete(self, profile_id: str) -> bool:
        """Delete an admin's profile; False when there was none."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"id": {"S": profile_id}},
                ConditionExpression="attribute_exists(id)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


class InMemoryProfileRecords(ProfileRecords):
    """The same contract in memory, for unit tests."""

    def __init__(self) -> None:
        self.items: dict[str, ProfileDefinition] = {}

    def list(self) -> list[ProfileDefinition]:
        return sorted(self.items.values(), key=lambda d: d.id)

    def get(self, profile_id: str) -> ProfileDefinition | None:
        return self.items.get(profile_id)

    def put(self, profile_id: str, spec: ProfileSpec, by: str) -> None:
        self.items[profile_id] = ProfileDefinition(**spec.model_dump(), id=profile_id)

    def delete(self, profile_id: str) -> bool:
        return self.items.pop(profile_id, None) is not None


# -- the fleet's profiles, and a caller's --------------------------------------------------------
class Profiles:
    """The fleet's profiles: the template's, with the admins' put over them."""

    def __init__(self, template: Sequence[ProfileDefinition], records: ProfileRecords) -> None:
        self._template = list(template)
        self._records = records

    def all(self) -> list[Profile]:
        admins = {d.id: d for d in self._records.list()}
        out = [
            describe(admins.pop(d.id), "admin") if d.id in admins else describe(d, "template")
            for d in self._template
        ]
        return out + [describe(d, "admin") for d in admins.values()]

    def open_to(self, groups: set[str]) -> list[Profile]:
        """The profiles a member of ``groups`` may use: those without groups, those sharing one
        with the caller, and every one for an administrator."""
        return [p for p in self.all() if may_use(p, groups)]

    def put(self, profile_id: str, spec: ProfileSpec, fleet: FleetChoices, by: str) -> Profile:
        problem = fleet_problem(spec, fleet) or pool_problem(profile_id, spec)
        if problem:
            raise InvalidRequestError(problem)
        if profile_id not in {p.id for p in self.all()} and len(self.all()) >= MAX_PROFILES:
            raise ProfileConflictError(f"a fleet holds at most {MAX_PROFILES} profiles")
        self._records.put(profile_id, spec, by)
        return describe(ProfileDefinition(**spec.model_dump(), id=profile_id), "admin")

    def delete(self, profile_id: str) -> None:
        if self._records.delete(profile_id):
            return
        if any(d.id == profile_id for d in self._template):
            raise ProfileConflictError(
                f"profile {profile_id!r} is defined in the template's DesktopProfiles "
                "parameter; change the parameter to remove it"
            )
        raise ProfileNotFoundError(f"profile {profile_id!r} does not exist")


def may_use(profile: ProfileSpec, groups: set[str]) -> bool:
    return not profile.groups or ADMINS_GROUP in groups or bool(set(profile.groups) & groups)


def choose(
    open_profiles: Sequence[Profile],
    *,
    profile_id: str | None,
    backend: str | None,
    os: str | None,
    instance_type: str | None,
) -> tuple[Profile, str]:
    """The profile a POST /sessions body names (``profile``), or the first one a raw body
    (``backend``, ``os``, ``instanceType``) matches; and the instance type to launch.
    InvalidRequestError naming the field otherwise."""
    if profile_id is not None:
        found = next((p for p in open_profiles if p.id == profile_id), None)
        if found is None:
            raise InvalidRequestError(f"profile: no profile {profile_id!r} is open to you")
        if backend is not None and backend != found.backend:
            raise InvalidRequestError(f"backend: profile {found.id!r} runs {found.backend}")
        if os is not None and os != found.os:
            raise InvalidRequestError(f"os: profile {found.id!r} runs {found.os}")
        candidates = [found]
    else:
        candidates = [p for p in open_profiles if p.backend == backend and p.os == os]
        if not candidates and any(p.backend == backend for p in open_profiles):
            raise InvalidRequestError(f"os: no profile open to you runs {os} on {backend}")
        if not candidates:
            raise InvalidRequestError(f"backend: no profile open to you runs on {backend}")
    if instance_type is None:
        return candidates[0], candidates[0].instanceTypes[0]
    for candidate in candidates:
        if instance_type in candidate.instanceTypes:
            return candidate, instance_type
    first = candidates[0]
    raise InvalidRequestError(
        f"instanceType: {instance_type!r} is not allowed by profile {first.id!r} "
        f"({', '.join(first.instanceTypes)})"
    )


# -- what a desktop keeps of its profile ---------------------------------------------------------
def snapshot(profile: ProfileSpec, profile_id: str, name: str | None) -> dict[str, str]:
    """What a new desktop keeps of its profile: its id and name, the desktop's own name, and
    the idle policy and maximum length it is held to (a later edit of the profile does not
    change them)."""
    kept = {
        PROFILE_KEY: profile_id,
        PROFILE_NAME_KEY: profile.name,
        NAME_KEY: (name or "").strip() or profile.name,
        IDLE_TIMEOUT_KEY: str(profile.idle.timeoutSeconds),
        IDLE_ACTION_KEY: profile.idle.action,
    }
    if profile.maxSessionHours is not None:
        kept[MAX_HOURS_KEY] = f"{profile.maxSessionHours:g}"
    return kept


def check_parameter(
    event: dict[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The DesktopProfilesCheck custom resource (through ``dcvfleet.custom_resource``): the
    stack's DesktopProfiles, checked when it is created or changed. A bad profile raises, and
    CloudFormation fails the stack operation with this message as its reason
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)."""
    if event.get("RequestType") == "Delete":
        return {"Reason": "nothing to undo"}
    text = str(event.get("ResourceProperties", {}).get("Profiles", ""))
    found = template_definitions(
        text, FleetChoices.from_env(os.environ if environ is None else environ)
    )
    return {
        "Reason": f"{len(found)} profile(s): {', '.join(d.id for d in found)}"[:200],
        "PhysicalResourceId": "desktop-profiles",
    }
