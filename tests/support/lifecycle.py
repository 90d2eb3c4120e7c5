"""The desktop lifecycle's fakes and the fleet under test, on top of tests/support/service.py.

The hosts' instances change state when stopped or started (a stop goes through the real
Ec2Hosts.stop over a stub EC2 client, so its hibernate fallback is the real one), the live check on
a host answers a chosen number of connections or fails, and Step Functions records what was
started and stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dcvfleet import service
from dcvfleet.adapters import HostCommands, Instance
from dcvfleet.config import LifecycleSettings
from dcvfleet.errors import (
    HostCommandError,
)
from dcvfleet.lifecycle import idle, reconcile, triggers, user_requests
from dcvfleet.model import CreateSessionRequest, Session
from dcvfleet.service import HostReadyClaim
from dcvfleet.sessions import Caller
from dcvfleet.store import InMemorySessionStore
from tests.support.service import (
    ALICE,
    API,
    COMMON,
    LAUNCH,
    READY_PUBLIC,
    REQUESTED,
    SECRET_ARN,
    STATE_MACHINE,
    FakeHosts,
    FakeSecrets,
    FakeWorkflows,
)

IDLE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:idle"
LIST_CONNECTIONS = "dcvfleet-ListConnections"
NOTIFY = "dcvfleet-NotifyUsers"
SETTINGS = LifecycleSettings(
    common=COMMON,
    idle_state_machine_arn=IDLE_MACHINE,
    provision_state_machine_arn=STATE_MACHINE,
    idle_timeout_seconds=1800,
    idle_grace_seconds=300,
    idle_action="stop",
    dry_run=False,
    heartbeat_timeout_seconds=300,
    max_session_seconds=0,
    host_ready_timeout_seconds=900,
    orphan_action="stop",
    max_active_sessions=1,
    list_connections_document=LIST_CONNECTIONS,
    notify_document=NOTIFY,
    list_container_connections_document="dcvfleet-list-container-connections",
    notify_container_document="dcvfleet-notify-container-users",
)
BOB = Caller(sub="sub-bob", username="bob", email="bob@example.com")


# -- fakes --------------------------------------------------------------------------------------
def client_error(code: str, operation: str = "StopInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, operation)


class StubEc2:
    """The EC2 client under Ec2Hosts.stop: records StopInstances, refuses hibernation when told."""

    def __init__(
        self,
        on_stop: Callable[[str], None] | None = None,
        refuse_hibernate_with: str | None = None,
    ) -> None:
        self.on_stop = on_stop
        self.refuse_hibernate_with = refuse_hibernate_with
        self.calls: list[dict[str, Any]] = []

    def stop_instances(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if kwargs.get("Hibernate") and self.refuse_hibernate_with:
            raise client_error(self.refuse_hibernate_with)
        for instance_id in kwargs["InstanceIds"]:
            if self.on_stop is not None:
                self.on_stop(instance_id)
        return {"StoppingInstances": [{"InstanceId": i} for i in kwargs["InstanceIds"]]}


class LifecycleHosts(FakeHosts):
    """FakeHosts whose instances stop (through the real Ec2Hosts.stop), start and are listed."""

    def __init__(self) -> None:
        super().__init__()
        self.ec2 = StubEc2(on_stop=lambda instance_id: self.set(instance_id, state="stopping"))
        self._ec2 = self.ec2
        #: (instance id, what Ec2Hosts.stop says it did: "stop" or "hibernate")
        self.stops: list[tuple[str, str]] = []
        self.starts: list[str] = []
        self._lock = threading.Lock()

    def stop(self, instance: Instance, *, hibernate: bool) -> str:
        with self._lock:
            done = super().stop(instance, hibernate=hibernate)
            self.stops.append((instance.instance_id, done))
            return done

    def start(self, instance_id: str) -> None:
        self.starts.append(instance_id)
        self.set(instance_id, state="pending")

    def fleet_instances(self, tag_key: str, tag_value: str, states: list[str]) -> list[Instance]:
        return [
            i
            for i in self.instances.values()
            if i.tags.get(tag_key) == tag_value and i.state in states
        ]

    def settle(self) -> None:
        """Every instance between states reaches the next one, as EC2 would a little later."""
        after = {"stopping": "stopped", "pending": "running", "shutting-down": "terminated"}
        for instance in list(self.instances.values()):
            if instance.state in after:
                self.set(instance.instance_id, state=after[instance.state])


class FakeCommands(HostCommands):
    """SSM Run Command on a host: a live connection count (or a failure) and in-session notices."""

    def __init__(self, connections: int | HostCommandError = 0) -> None:
        super().__init__(ssm=None)
        self.connections = connections
        self.notify_fails_with: HostCommandError | None = None
        self.checks: list[tuple[str, str, str]] = []
        self.notices: list[tuple[str, str, str, str]] = []
        self.tasks: list[str | None] = []  # the container each command ran in (batch desktops)

    def list_connections(
        self,
        instance_id: str,
        document: str,
        dcv_session_id: str,
        *,
        platform: str,
        task_arn: str | None = None,
    ) -> int:
        self.checks.append((instance_id, document, dcv_session_id))
        self.tasks.append(task_arn)
        if isinstance(self.connections, HostCommandError):
            raise self.connections
        return self.connections

    def notify(
        self,
        instance_id: str,
        document: str,
        dcv_session_id: str,
        message: str,
        *,
        platform: str,
        task_arn: str | None = None,
    ) -> None:
        self.notices.append((instance_id, document, dcv_session_id, message))
        self.tasks.append(task_arn)
        if self.notify_fails_with is not None:
            raise self.notify_fails_with


class LifecycleWorkflows(FakeWorkflows):
    """FakeWorkflows that also stops executions, and is safe to start from many threads."""

    def __init__(self, start_fails_with: Exception | None = None) -> None:
        super().__init__(start_fails_with)
        self.stopped: list[tuple[str, str]] = []
        self._start_lock = threading.Lock()

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        with self._start_lock:
            return super().start(state_machine_arn, name, payload)

    def stop(self, execution_arn: str, cause: str) -> bool:
        self.stopped.append((execution_arn, cause))
        return True

    def idle_checks(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, p) for arn, name, p in self.started if arn == IDLE_MACHINE]


class RacyStore(InMemorySessionStore):
    """Every read yields to the other threads, so racing read-then-write callers interleave."""

    def get(self, session_id: str) -> Session | None:
        found = super().get(session_id)
        time.sleep(0.0005)
        return found


# -- the fleet under test and its helpers ---------------------------------------------------------
@dataclass
class Fleet:
    store: InMemorySessionStore = field(default_factory=InMemorySessionStore)
    hosts: LifecycleHosts = field(default_factory=LifecycleHosts)
    secrets: FakeSecrets = field(default_factory=FakeSecrets)
    workflows: LifecycleWorkflows = field(default_factory=LifecycleWorkflows)
    commands: FakeCommands = field(default_factory=FakeCommands)
    settings: LifecycleSettings = SETTINGS

    # Given steps ------------------------------------------------------------------------------
    def provisioning(self, caller: Caller = ALICE) -> tuple[Session, Instance]:
        """A session through the real provisioning steps up to a launched, running host."""
        session = service.create_session(
            self.store,
            FakeWorkflows(),
            API,
            caller,
            CreateSessionRequest(backend="ec2", os="linux", instance_type=REQUESTED),
        )
        sid = session.session_id
        service.create_credentials(self.store, self.secrets, COMMON, sid)
        out = service.launch_instance(
            self.store, self.hosts, self.secrets, LAUNCH, sid, secret_arn=SECRET_ARN
        )
        self.hosts.set(
            out["instanceId"],
            state="running",
            public_dns="ec2-203-0-113-10.compute-1.amazonaws.com",
            public_ip="203.0.113.10",
        )
        return self.store.require(sid), self.hosts.instances[out["instanceId"]]

    def ready(self, caller: Caller = ALICE) -> Session:
        """A READY desktop (its agent reported DCV session "console")."""
        session, instance = self.provisioning(caller)
        self.host_ready(session.session_id, instance.instance_id)
        return self.store.require(session.session_id)

    def host_ready(self, session_id: str, instance_id: str) -> None:
        claim = HostReadyClaim(
            instance_id=instance_id, session_id=session_id, dcv_session_id="console"
        )
        service.accept_host_ready(self.store, self.hosts, FakeWorkflows(), claim)
        service.mark_ready(self.store, self.hosts, READY_PUBLIC, session_id)

    def stopped(self, caller: Caller = ALICE) -> Session:
        """A desktop the user stopped, all the way to STOPPED."""
        session = self.ready(caller)
        self.stop_by_user(session.session_id)
        return self.store.require(session.session_id)

    def stop_by_user(self, session_id: str, caller: Caller = ALICE) -> None:
        """The user's stop, and the idle workflow it starts, to the end."""
        name = self.request_stop(session_id, caller)
        self.act(session_id, name, trigger="user", requested_action="stop", reason="requested")
        self.hosts.settle()
        assert idle.confirm(self.store, self.hosts, session_id) == {"done": True}

    def instance(self, session_id: str) -> Instance:
        instance_id = self.store.require(session_id).instance_id
        assert instance_id is not None
        return self.hosts.instances[instance_id]

    # the calls under test, with the workflow's usual arguments ---------------------------------
    def check(
        self, session_id: str, trigger: str = "idle", claim: dict[str, Any] | None = None
    ) -> str:
        """start_idle_check; returns the idle workflow execution now holding the slot."""
        idle.start_idle_check(
            self.store, self.workflows, self.settings, session_id, trigger=trigger, claim=claim
        )
        execution = self.store.require(session_id).idle_check
        assert execution is not None
        return execution

    def verify(
        self,
        session_id: str,
        execution: str,
        *,
        trigger: str = "idle",
        phase: str = "verify",
        claim: dict[str, Any] | None = None,
    ) -> idle.Verdict:
        return idle.verify(
            self.store,
            self.hosts,
            self.commands,
            self.settings,
            session_id=session_id,
            execution=execution,
            trigger=trigger,
            claim=claim or {},
            phase=phase,
        )

    def warn(
        self,
        session_id: str,
        execution: str,
        *,
        trigger: str = "idle",
        reason: str = "nobody used it",
    ) -> dict[str, Any]:
        return idle.warn(
            self.store,
            self.commands,
            self.settings,
            session_id=session_id,
            execution=execution,
            trigger=trigger,
            reason=reason,
        )

    def act(
        self,
        session_id: str,
        execution: str,
        *,
        trigger: str = "idle",
        requested_action: str | None = None,
        reason: str = "no one has used it for 30 min",
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return idle.act(
            self.store,
            self.hosts,
            self.secrets,
            self.settings,
            session_id=session_id,
            execution=execution,
            trigger=trigger,
            requested_action=requested_action,
            reason=reason,
            evidence=evidence if evidence is not None else {"connections": 0},
        )

    def instance_changed(self, instance_id: str, state: str) -> str:
        """An EC2 state change of ``instance_id`` arriving (reconcile.instance_changed)."""
        return reconcile.instance_changed(
            self.store, self.hosts, self.workflows, self.settings, instance_id, state=state
        )

    def request_stop(self, session_id: str, caller: Caller = ALICE, action: str = "stop") -> str:
        user_requests.request_stop(
            self.store, self.workflows, self.settings, caller, session_id, action=action
        )
        name = self.store.require(session_id).idle_check
        assert name is not None
        return name


def ago(seconds: float) -> str:
    return triggers.iso(datetime.now(UTC) - timedelta(seconds=seconds))
