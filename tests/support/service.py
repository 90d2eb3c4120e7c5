"""The provisioning path's adapters as hand-written fakes, and the settings unit tests run with.

The fakes keep the state the real adapters would see (instances, secrets, parked tokens) and
record what was asked of them, so each test can say what happened rather than which call was made.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from typing import Any

from dcvfleet.adapters import (
    LIVE_STATES,
    SESSION_TAG,
    CapacityUnavailable,
    Ec2Hosts,
    Instance,
    OperatorNotices,
    QuotaExhausted,
    SessionSecrets,
    Workflows,
)
from dcvfleet.config import ApiSettings, CommonSettings, LaunchSettings, ReadySettings
from dcvfleet.sessions import Caller
from dcvfleet.telemetry import Telemetry

FLEET_TAG = ("dcvfleet:fleet", "test-fleet")
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:provision"
REQUESTED = "g5.xlarge"
FALLBACKS = ("g5.2xlarge", "g4dn.xlarge")
SUBNETS = ("subnet-a", "subnet-b")
ALICE = Caller(sub="sub-alice", username="Alice.Smith", email="alice@example.com")


# -- fakes --------------------------------------------------------------------------------------
class FakeHosts(Ec2Hosts):
    """EC2 as the service sees it: capacity per (instance type, subnet), tagged instances."""

    def __init__(self, capacity: set[tuple[str, str]] | None = None) -> None:
        #: (type, subnet) pairs with capacity; None means capacity everywhere.
        self.capacity = capacity
        self.instances: dict[str, Instance] = {}
        self.attempts: list[tuple[str, str]] = []
        self.client_tokens: list[str] = []
        #: whether each launch asked for hibernation (the desktop's idle action is hibernate)
        self.hibernation: list[bool] = []
        self.launch_templates: list[str] = []
        self.terminated: list[str] = []
        self.refuse_with: Exception | None = None
        #: Instance types EC2 refuses for the account's vCPU quota (VcpuLimitExceeded).
        self.over_quota: set[str] = set()
        #: Instance id -> the status checks EC2 finds impaired (DescribeInstanceStatus), and the
        #: instance ids each DescribeInstanceStatus asked about.
        self.impaired_checks: dict[str, list[str]] = {}
        self.status_asked: list[list[str]] = []
        #: Instance type -> why it cannot hibernate (the others can).
        self.cannot_hibernate: dict[str, str] = {}
        self._ids = itertools.count(1)

    def hibernation_problem(self, instance_type: str, root_volume_gib: int) -> str | None:
        return self.cannot_hibernate.get(instance_type)

    def add(self, *, session_id: str, state: str = "running", **tags: str) -> Instance:
        instance = Instance(
            instance_id=f"i-{next(self._ids):017x}",
            state=state,
            instance_type=REQUESTED,
            tags={SESSION_TAG: session_id, **tags},
            public_dns="ec2-203-0-113-10.compute-1.amazonaws.com",
            public_ip="203.0.113.10",
            private_ip="10.0.1.23",
        )
        self.instances[instance.instance_id] = instance
        return instance

    def set(self, instance_id: str, **changes: Any) -> None:
        self.instances[instance_id] = replace(self.instances[instance_id], **changes)

    def describe(self, instance_id: str) -> Instance | None:
        return self.instances.get(instance_id)

    def find_by_session(self, session_id: str) -> list[Instance]:
        return [
            i
            for i in self.instances.values()
            if i.tags.get(SESSION_TAG) == session_id and i.state in LIVE_STATES
        ]

    def launch(
        self,
        *,
        launch_template_id: str,
        instance_type: str,
        subnet_id: str,
        tags: dict[str, str],
        client_token: str,
        hibernate: bool = False,
    ) -> Instance:
        self.attempts.append((instance_type, subnet_id))
        self.hibernation.append(hibernate)
        self.client_tokens.append(client_token)
        self.launch_templates.append(launch_template_id)
        if self.refuse_with is not None:
            raise self.refuse_with
        if instance_type in self.over_quota:
            raise QuotaExhausted(
                "VcpuLimitExceeded",
                instance_type,
                subnet_id,
                "You have requested more vCPU capacity than your current vCPU limit of 0 allows",
            )
        if self.capacity is not None and (instance_type, subnet_id) not in self.capacity:
            raise CapacityUnavailable(
                f"InsufficientInstanceCapacity: {instance_type} in {subnet_id}"
            )
        instance = Instance(
            instance_id=f"i-{next(self._ids):017x}",
            state="pending",
            instance_type=instance_type,
            tags=dict(tags),
            public_dns=None,
            public_ip=None,
            private_ip="10.0.1.23",
            hibernation_configured=hibernate,
        )
        self.instances[instance.instance_id] = instance
        return instance

    def terminate(self, instance_id: str) -> None:
        self.terminated.append(instance_id)
        if instance_id in self.instances:
            self.set(instance_id, state="terminated")

    def tag(self, instance_id: str, tags: dict[str, str]) -> None:
        """CreateTags: adds ``tags``, overwriting a key the instance has."""
        self.set(instance_id, tags={**self.instances[instance_id].tags, **tags})

    def start(self, instance_id: str) -> None:
        self.set(instance_id, state="pending")

    def impaired(self, instance_ids: list[str]) -> dict[str, list[str]]:
        self.status_asked.append(list(instance_ids))
        return {i: self.impaired_checks[i] for i in instance_ids if i in self.impaired_checks}


class FakeSecrets(SessionSecrets):
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.deletes: list[bool] = []
        self.readers: dict[str, str] = {}

    def create(self, session_id: str, username: str, tags: dict[str, str]) -> str:
        self.secrets[session_id] = {"username": username, "tags": dict(tags)}
        return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:dcvfleet/{session_id}"

    def grant_reader(self, secret_arn: str, reader: str) -> None:
        self.readers[secret_arn] = reader

    def delete(self, session_id: str) -> bool:
        deleted = self.secrets.pop(session_id, None) is not None
        self.deletes.append(deleted)
        return deleted


class FakeWorkflows(Workflows):
    def __init__(self, start_fails_with: Exception | None = None) -> None:
        self.start_fails_with = start_fails_with
        self.started: list[tuple[str, str, dict[str, Any]]] = []
        self.succeeded: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        if self.start_fails_with is not None:
            raise self.start_fails_with
        self.started.append((state_machine_arn, name, payload))
        return self.execution_arn(state_machine_arn, name)

    def succeed(self, task_token: str, output: dict[str, Any]) -> bool:
        with self._lock:
            self.succeeded.append((task_token, output))
        return True


class FakeOperators(OperatorNotices):
    """The operators' topic: what was published to it."""

    def __init__(self, fails_with: Exception | None = None) -> None:
        super().__init__(None, "arn:aws:sns:eu-west-1:123456789012:dcvfleet-OperatorTopic-X")
        self.fails_with = fails_with
        self.published: list[tuple[str, str]] = []

    def publish(self, subject: str, message: str) -> None:
        self.published.append((subject, message))
        if self.fails_with is not None:
            raise self.fails_with


class CountingTelemetry(Telemetry):
    def __init__(self) -> None:
        self.quotas: list[str] = []

    def vcpu_quota_exceeded(self, quota: str) -> None:
        self.quotas.append(quota)


# -- settings -----------------------------------------------------------------------------------
COMMON = CommonSettings(
    table_name="sessions",
    event_bus_name="fleet",
    fleet_tag_key=FLEET_TAG[0],
    fleet_tag_value=FLEET_TAG[1],
)
API = ApiSettings(
    common=COMMON,
    state_machine_arn=STATE_MACHINE,
    max_active_sessions=1,
    allowed_instance_types=(REQUESTED, *FALLBACKS),
    default_instance_types={"linux": REQUESTED, "windows": "g4dn.xlarge"},
    enabled_backends=("ec2",),
)
LAUNCH = LaunchSettings(
    common=COMMON,
    launch_templates={"linux": "lt-linux", "windows": "lt-windows"},
    subnet_ids=SUBNETS,
    fallback_instance_types=FALLBACKS,
    host_role_id="AROAHOSTROLE",
)
READY_PUBLIC = ReadySettings(common=COMMON, dcv_port=8443, connection_address="public")
READY_PRIVATE = replace(READY_PUBLIC, connection_address="private")
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dcvfleet/s"
