"""Lambda settings, parsed once from the environment into a typed structure that fails fast."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dcvfleet.errors import ConfigurationError


def _get(env: Mapping[str, str], key: str, default: str | None = None) -> str:
    value = env.get(key, default)
    if value is None or value == "":
        raise ConfigurationError(f"{key}: environment variable is required")
    return value


def _int(env: Mapping[str, str], key: str, default: str | None = None) -> int:
    raw = _get(env, key, default)
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{key}: {raw!r} is not an integer") from exc


def _list(env: Mapping[str, str], key: str, default: str | None = None) -> tuple[str, ...]:
    return tuple(x.strip() for x in _get(env, key, default).split(",") if x.strip())


#: The tag that marks every host, volume, job and secret of a fleet (its value is the
#: FleetTagValue parameter). A constant: IAM conditions name it (aws:ResourceTag/dcvfleet:fleet),
#: and CloudFormation cannot make a condition key of a parameter.
FLEET_TAG_KEY = "dcvfleet:fleet"


@dataclass(frozen=True)
class CommonSettings:
    table_name: str
    event_bus_name: str
    fleet_tag_value: str
    fleet_tag_key: str = FLEET_TAG_KEY

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CommonSettings:
        return cls(
            table_name=_get(env, "SESSIONS_TABLE"),
            event_bus_name=_get(env, "EVENT_BUS_NAME"),
            fleet_tag_value=_get(env, "FLEET_TAG_VALUE"),
        )


@dataclass(frozen=True)
class ApiSettings:
    common: CommonSettings
    state_machine_arn: str
    max_active_sessions: int
    allowed_instance_types: tuple[str, ...]
    default_instance_types: Mapping[str, str]
    enabled_backends: tuple[str, ...]
    batch_instance_types: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        return cls(
            common=CommonSettings.from_env(env),
            state_machine_arn=_get(env, "PROVISION_STATE_MACHINE_ARN"),
            max_active_sessions=_int(env, "MAX_ACTIVE_SESSIONS_PER_USER", "1"),
            allowed_instance_types=_list(env, "ALLOWED_INSTANCE_TYPES"),
            # WINDOWS_INSTANCE_TYPE is empty when the fleet has no Windows desktops.
            default_instance_types={
                "linux": _get(env, "LINUX_INSTANCE_TYPE"),
                **(
                    {"windows": env["WINDOWS_INSTANCE_TYPE"]}
                    if env.get("WINDOWS_INSTANCE_TYPE")
                    else {}
                ),
            },
            enabled_backends=_list(env, "ENABLED_BACKENDS", "ec2"),
            batch_instance_types=_list(env, "BATCH_INSTANCE_TYPES", "GPU"),
        )


@dataclass(frozen=True)
class LaunchSettings:
    common: CommonSettings
    launch_templates: Mapping[str, str]
    subnet_ids: tuple[str, ...]
    fallback_instance_types: tuple[str, ...]
    #: HostRole's id: a host's AWS identity is "<role id>:<instance id>" (aws:userid).
    host_role_id: str
    #: The operators' topic (OperatorTopic): told when the account's vCPU quota refuses a launch.
    operator_topic_arn: str = ""
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LaunchSettings:
        return cls(
            common=CommonSettings.from_env(env),
            # WINDOWS_LAUNCH_TEMPLATE_ID is empty when the fleet has no Windows desktops.
            launch_templates={
                "linux": _get(env, "LINUX_LAUNCH_TEMPLATE_ID"),
                **(
                    {"windows": env["WINDOWS_LAUNCH_TEMPLATE_ID"]}
                    if env.get("WINDOWS_LAUNCH_TEMPLATE_ID")
                    else {}
                ),
            },
            subnet_ids=_list(env, "SUBNET_IDS"),
            fallback_instance_types=_list(env, "FALLBACK_INSTANCE_TYPES", ","),
            host_role_id=_get(env, "HOST_ROLE_ID"),
            operator_topic_arn=env.get("OPERATOR_TOPIC_ARN", ""),
            region=_get(env, "AWS_REGION", "us-east-1"),
        )


@dataclass(frozen=True)
class ReadySettings:
    common: CommonSettings
    dcv_port: int
    connection_address: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReadySettings:
        address = _get(env, "CONNECTION_ADDRESS", "public")
        if address not in ("public", "private"):
            raise ConfigurationError(f"CONNECTION_ADDRESS: {address!r} is not public or private")
        return cls(
            common=CommonSettings.from_env(env),
            dcv_port=_int(env, "DCV_PORT", "8443"),
            connection_address=address,
        )


@dataclass(frozen=True)
class BatchSettings:
    """The batch backend: one DCV container per desktop, a Batch job in one queue."""

    common: CommonSettings
    job_queue: str
    release_parameter: str
    job_role_id: str
    capacity_timeout_seconds: int
    instance_types: tuple[str, ...]
    max_session_seconds: int
    region: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchSettings:
        return cls(
            common=CommonSettings.from_env(env),
            job_queue=_get(env, "JOB_QUEUE"),
            release_parameter=_get(env, "RELEASE_PARAMETER"),
            job_role_id=_get(env, "JOB_ROLE_ID"),
            capacity_timeout_seconds=_int(env, "BATCH_CAPACITY_TIMEOUT_SECONDS", "600"),
            instance_types=_list(env, "BATCH_INSTANCE_TYPES", "GPU"),
            max_session_seconds=_int(env, "MAX_SESSION_MINUTES", "0") * 60,
            region=_get(env, "AWS_REGION", "us-east-1"),
        )


@dataclass(frozen=True)
class ReleaseSettings:
    """The release workflow: build, register, smoke-test, promote."""

    releases_table: str
    release_parameter: str
    repository_uri: str
    releases_to_keep: int
    provision_state_machine_arn: str
    smoke_instance_type: str
    #: The SSM document that runs ``glxinfo -B`` in a batch desktop's DCV session.
    session_renderer_document: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReleaseSettings:
        return cls(
            releases_table=_get(env, "RELEASES_TABLE"),
            release_parameter=_get(env, "RELEASE_PARAMETER"),
            repository_uri=_get(env, "IMAGE_REPOSITORY_URI"),
            releases_to_keep=_int(env, "RELEASES_TO_KEEP", "5"),
            provision_state_machine_arn=_get(env, "PROVISION_STATE_MACHINE_ARN"),
            smoke_instance_type=_list(env, "BATCH_INSTANCE_TYPES", "GPU")[0],
            session_renderer_document=_get(env, "SESSION_RENDERER_DOCUMENT"),
        )


IDLE_ACTIONS = ("stop", "hibernate", "terminate")
#: The narrowest window around now an agent event's sentAt must fall in (see
#: LifecycleSettings.agent_event_window_seconds).
AGENT_EVENT_MIN_WINDOW_SECONDS = 30
ORPHAN_ACTIONS = ("stop", "terminate", "report")


def _bool(env: Mapping[str, str], key: str, default: str) -> bool:
    raw = _get(env, key, default).strip().lower()
    if raw not in ("true", "false"):
        raise ConfigurationError(f"{key}: {raw!r} is not true or false")
    return raw == "true"


def _choice(env: Mapping[str, str], key: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = _get(env, key, default)
    if raw not in allowed:
        raise ConfigurationError(f"{key}: {raw!r} is not one of {', '.join(allowed)}")
    return raw


@dataclass(frozen=True)
class LifecycleSettings:
    """The idle workflow, the sweep and the stop/resume/delete calls."""

    common: CommonSettings
    idle_state_machine_arn: str
    provision_state_machine_arn: str
    idle_timeout_seconds: int
    idle_grace_seconds: int
    idle_action: str
    dry_run: bool
    heartbeat_timeout_seconds: int
    max_session_seconds: int
    host_ready_timeout_seconds: int
    orphan_action: str
    max_active_sessions: int
    list_connections_document: str
    notify_document: str
    list_container_connections_document: str
    notify_container_document: str
    batch_capacity_timeout_seconds: int = 600
    heartbeat_interval_seconds: int = 60

    @property
    def agent_event_window_seconds(self) -> int:
        """How far an agent event's ``sentAt`` may be from now, either way, to be accepted: two
        heartbeat intervals (an event older than that is stale, or a replay), and never less
        than AGENT_EVENT_MIN_WINDOW_SECONDS, which covers what delays an event short of an
        outage: the agent's retries of a failed delivery (back-off up to 30 s) and Lambda's
        queue of asynchronous invocations. Clock skew is small: hosts keep time from the Amazon
        Time Sync Service, as Lambda does."""
        return max(2 * self.heartbeat_interval_seconds, AGENT_EVENT_MIN_WINDOW_SECONDS)

    @property
    def stale_check_seconds(self) -> int:
        """An idle check older than this is taken to have died without ending (a new may start)."""
        return self.idle_grace_seconds + 900

    @property
    def stuck_provisioning_seconds(self) -> int:
        """A provisioning with no progress for this long is stuck (its workflow would have timed
        out by now)."""
        return self.host_ready_timeout_seconds + 600

    def stuck_provisioning_seconds_for(self, backend: str) -> int:
        """As ``stuck_provisioning_seconds``; a batch desktop's job may first wait up to
        BatchCapacityTimeoutSeconds for GPU capacity, its record unchanged meanwhile."""
        waits = self.batch_capacity_timeout_seconds if backend == "batch" else 0
        return self.stuck_provisioning_seconds + waits

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LifecycleSettings:
        return cls(
            common=CommonSettings.from_env(env),
            idle_state_machine_arn=_get(env, "IDLE_STATE_MACHINE_ARN"),
            provision_state_machine_arn=_get(env, "PROVISION_STATE_MACHINE_ARN"),
            idle_timeout_seconds=_int(env, "IDLE_TIMEOUT_SECONDS", "1800"),
            idle_grace_seconds=_int(env, "IDLE_GRACE_SECONDS", "300"),
            idle_action=_choice(env, "IDLE_ACTION", "stop", IDLE_ACTIONS),
            dry_run=_bool(env, "DRY_RUN", "false"),
            heartbeat_timeout_seconds=_int(env, "HEARTBEAT_TIMEOUT_SECONDS", "300"),
            max_session_seconds=_int(env, "MAX_SESSION_MINUTES", "0") * 60,
            host_ready_timeout_seconds=_int(env, "HOST_READY_TIMEOUT_SECONDS", "900"),
            orphan_action=_choice(env, "ORPHAN_ACTION", "stop", ORPHAN_ACTIONS),
            max_active_sessions=_int(env, "MAX_ACTIVE_SESSIONS_PER_USER", "1"),
            list_connections_document=_get(env, "LIST_CONNECTIONS_DOCUMENT"),
            notify_document=_get(env, "NOTIFY_DOCUMENT"),
            list_container_connections_document=_get(env, "LIST_CONTAINER_CONNECTIONS_DOCUMENT"),
            notify_container_document=_get(env, "NOTIFY_CONTAINER_DOCUMENT"),
            heartbeat_interval_seconds=_int(env, "HEARTBEAT_INTERVAL_SECONDS", "60"),
            batch_capacity_timeout_seconds=_int(env, "BATCH_CAPACITY_TIMEOUT_SECONDS", "600"),
        )


#: The warm pool's states (the WarmPoolState parameter).
POOL_STATES = ("running", "stopped")
#: The profile whose pool WarmPoolSize sets: the default Linux EC2 workstation.
DEFAULT_POOL_PROFILE = "linux-workstation"


@dataclass(frozen=True)
class PoolSettings:
    """One profile's warm pool: its hosts' launch template (its OS's), instance type (the
    profile's default) and whether they are launched for hibernation; WarmPoolSize and
    WarmPoolState for the default Linux EC2 profile when it has no plan of its own."""

    common: CommonSettings
    pool_table: str
    size: int
    state: str
    launch_template_id: str
    instance_type: str
    subnet_ids: tuple[str, ...]
    profile: str = DEFAULT_POOL_PROFILE
    os: str = "linux"
    #: Launch the hosts with hibernation configured (it cannot be enabled later).
    hibernate: bool = False
    #: The fleet's launch templates by OS (a Windows one only where WindowsAmiId is set).
    launch_templates: Mapping[str, str] = field(default_factory=dict)
    #: The hosts' root volume (RootVolumeSizeGiB): a hibernated host's RAM is written there.
    root_volume_gib: int = 0

    def for_profile(
        self, profile: str, *, os: str, instance_type: str, hibernate: bool
    ) -> PoolSettings:
        """The pool of another EC2 profile: its OS's launch template, its type; ConfigurationError
        when the fleet has no launch template for that OS."""
        template = self.launch_templates.get(os)
        if not template:
            raise ConfigurationError(
                f"profile {profile!r}: this fleet has no {os} launch template for its pool"
            )
        return replace(
            self,
            profile=profile,
            os=os,
            instance_type=instance_type,
            hibernate=hibernate,
            launch_template_id=template,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PoolSettings:
        size = _int(env, "WARM_POOL_SIZE", "0")
        if size < 0:
            raise ConfigurationError(f"WARM_POOL_SIZE: {size} is below 0")
        linux = _get(env, "LINUX_LAUNCH_TEMPLATE_ID")
        return cls(
            common=CommonSettings.from_env(env),
            pool_table=_get(env, "POOL_TABLE"),
            size=size,
            state=_choice(env, "WARM_POOL_STATE", "running", POOL_STATES),
            launch_template_id=linux,
            instance_type=_get(env, "LINUX_INSTANCE_TYPE"),
            subnet_ids=_list(env, "SUBNET_IDS"),
            # the default profile's hosts hibernate-ready when the fleet's idle action says so
            hibernate=env.get("IDLE_ACTION", "stop") == "hibernate",
            root_volume_gib=_int(env, "ROOT_VOLUME_SIZE_GIB", "0"),
            launch_templates={
                "linux": linux,
                # WINDOWS_LAUNCH_TEMPLATE_ID is empty when the fleet has no Windows desktops.
                **(
                    {"windows": env["WINDOWS_LAUNCH_TEMPLATE_ID"]}
                    if env.get("WINDOWS_LAUNCH_TEMPLATE_ID")
                    else {}
                ),
            },
        )
