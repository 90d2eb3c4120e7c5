"""The provisioning path's domain operations, on the in-memory store and hand-written fakes.

The fakes (tests/support/service.py) keep the state the real adapters would see (instances, secrets, parked tokens) and
record what was asked of them, so each test can say what happened rather than which call was made.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dcvfleet import compensation, events, service, sessions
from dcvfleet.adapters import (
    OWNER_TAG,
    SECRET_TAG,
    SESSION_TAG,
    EventKeys,
    Instance,
)
from dcvfleet.config import ApiSettings, LaunchSettings, ReadySettings
from dcvfleet.errors import (
    ClaimRejectedError,
    GpuQuotaError,
    InsufficientCapacityError,
    InvalidRequestError,
    LaunchError,
    SessionNotFoundError,
    all_error_classes,
    user_message_for,
)
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.service import HostReadyClaim
from dcvfleet.sessions import Caller
from dcvfleet.store import InMemorySessionStore
from tests.support.concurrency import run_together
from tests.support.service import (
    ALICE,
    API,
    COMMON,
    FALLBACKS,
    FLEET_TAG,
    LAUNCH,
    READY_PRIVATE,
    READY_PUBLIC,
    REQUESTED,
    SECRET_ARN,
    STATE_MACHINE,
    SUBNETS,
    CountingTelemetry,
    FakeHosts,
    FakeOperators,
    FakeSecrets,
    FakeWorkflows,
)


def request(os: str = "linux", instance_type: str | None = REQUESTED) -> CreateSessionRequest:
    return CreateSessionRequest(backend="ec2", os=os, instance_type=instance_type)


def launch(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, **options: Any
) -> dict[str, Any]:
    """launch_instance of the session's host with fresh credentials, as the workflow runs it,
    with ``settings`` (LAUNCH unless given) and any other options."""
    settings: LaunchSettings = options.pop("settings", LAUNCH)
    return service.launch_instance(
        store, hosts, FakeSecrets(), settings, session.session_id, secret_arn=SECRET_ARN, **options
    )


def new_session(store: InMemorySessionStore, instance_type: str = REQUESTED) -> Session:
    return service.create_session(
        store, FakeWorkflows(), API, ALICE, request(instance_type=instance_type)
    )


def launched_session(
    store: InMemorySessionStore, hosts: FakeHosts, state: str = "running"
) -> tuple[Session, Instance]:
    """A PROVISIONING session whose host was launched and recorded, waiting for its agent."""
    session = new_session(store)
    out = launch(store, hosts, session)
    hosts.set(
        out["instanceId"],
        state=state,
        public_dns="ec2-203-0-113-10.compute-1.amazonaws.com",
        public_ip="203.0.113.10",
    )
    return store.require(session.session_id), hosts.instances[out["instanceId"]]


def claim_for(session: Session, instance: Instance, dcv: str = "console") -> HostReadyClaim:
    return HostReadyClaim(
        instance_id=instance.instance_id, session_id=session.session_id, dcv_session_id=dcv
    )


# -- create_session / get_session -----------------------------------------------------------
def test_create_session_stores_a_provisioning_session_and_starts_its_workflow(
    store: InMemorySessionStore, workflows: FakeWorkflows
) -> None:
    # When alice asks for a Windows desktop without naming an instance type
    session = service.create_session(
        store, workflows, API, ALICE, request(os="windows", instance_type=None)
    )
    # Then it is stored as PROVISIONING with the os's default type, counted, and its workflow runs
    stored = store.require(session.session_id)
    assert stored.status is Status.PROVISIONING
    assert stored.instance_type == "g4dn.xlarge"
    assert stored.owner == ALICE.sub
    assert stored.extra == {"username": ALICE.username}
    assert stored.execution_arn == (
        f"arn:aws:states:us-east-1:123456789012:execution:provision:{session.session_id}"
    )
    assert store.active_count(ALICE.sub) == 1
    assert workflows.started == [
        (
            STATE_MACHINE,
            session.session_id,
            {
                "sessionId": session.session_id,
                "owner": ALICE.sub,
                "backend": "ec2",
                "os": "windows",
                "instanceType": "g4dn.xlarge",
                "resume": False,
            },
        )
    ]


@pytest.mark.parametrize(
    ("bad_request", "field"),
    [
        (CreateSessionRequest(backend="batch", os="linux", instance_type=None), "backend: "),
        (
            CreateSessionRequest(backend="ec2", os="linux", instance_type="p5.48xlarge"),
            "instanceType: ",
        ),
    ],
    ids=["backend-not-enabled", "instance-type-not-allowed"],
)
def test_create_session_refuses_what_the_fleet_does_not_offer_naming_the_field(
    store: InMemorySessionStore,
    workflows: FakeWorkflows,
    bad_request: CreateSessionRequest,
    field: str,
) -> None:
    # When alice asks for something the fleet is not configured to offer
    with pytest.raises(InvalidRequestError) as raised:
        service.create_session(store, workflows, API, ALICE, bad_request)
    # Then the error names the field, and nothing is stored, counted or started
    assert str(raised.value).startswith(field)
    assert store.list_by_owner(ALICE.sub) == []
    assert store.active_count(ALICE.sub) == 0
    assert workflows.started == []


def test_a_windows_desktop_on_a_fleet_without_windows_is_refused_plainly(
    store: InMemorySessionStore, workflows: FakeWorkflows
) -> None:
    # Given a fleet deployed with WindowsAmiId "" (the template then gives the API an empty
    # WINDOWS_INSTANCE_TYPE)
    linux_only = ApiSettings.from_env(
        {
            "SESSIONS_TABLE": "sessions",
            "EVENT_BUS_NAME": "fleet",
            "FLEET_TAG_VALUE": FLEET_TAG[1],
            "PROVISION_STATE_MACHINE_ARN": STATE_MACHINE,
            "ALLOWED_INSTANCE_TYPES": ",".join((REQUESTED, *FALLBACKS)),
            "LINUX_INSTANCE_TYPE": REQUESTED,
            "WINDOWS_INSTANCE_TYPE": "",
            "ENABLED_BACKENDS": "ec2,batch",
        }
    )
    # When alice asks for a Windows desktop
    with pytest.raises(InvalidRequestError) as raised:
        service.create_session(store, workflows, linux_only, ALICE, request(os="windows"))
    # Then she is told Windows is not set up here (and the admin which parameter turns it on),
    # and nothing is stored, counted or started
    assert str(raised.value) == (
        "os: Windows desktops are not set up in this fleet "
        "(an administrator turns them on with the WindowsAmiId parameter)"
    )
    assert store.list_by_owner(ALICE.sub) == []
    assert store.active_count(ALICE.sub) == 0
    assert workflows.started == []
    # and the fleet's options offer Linux only
    offered = service.options(linux_only)
    assert offered["os"] == {"ec2": ["linux"], "batch": ["linux"]}
    assert offered["defaultInstanceTypes"] == {"linux": REQUESTED}
    # while a fleet with Windows still offers it
    assert service.options(API)["os"] == {"ec2": ["linux", "windows"]}


def test_create_session_marks_the_session_failed_when_its_workflow_cannot_start(
    store: InMemorySessionStore,
) -> None:
    # Given Step Functions refuses to start the workflow
    broken = FakeWorkflows(start_fails_with=RuntimeError("ExecutionLimitExceeded"))
    # When alice asks for a desktop
    with pytest.raises(RuntimeError, match="ExecutionLimitExceeded"):
        service.create_session(store, broken, API, ALICE, request())
    # Then her session is FAILED with a reason, no longer counted, and she can ask again
    [failed] = store.list_by_owner(ALICE.sub)
    assert failed.status is Status.FAILED
    assert failed.status_reason == "The desktop could not be requested. Try again."
    assert store.active_count(ALICE.sub) == 0
    again = service.create_session(store, FakeWorkflows(), API, ALICE, request())
    assert store.require(again.session_id).status is Status.PROVISIONING


def test_get_session_hides_other_users_sessions(store: InMemorySessionStore) -> None:
    # Given alice's session
    session = new_session(store)
    bob = Caller(sub="sub-bob", username="bob")
    # Then alice reads it, and bob is told it does not exist (as for an unknown id)
    assert sessions.get_session(store, ALICE, session.session_id) == session
    with pytest.raises(SessionNotFoundError):
        sessions.get_session(store, bob, session.session_id)
    with pytest.raises(SessionNotFoundError):
        sessions.get_session(store, ALICE, "no-such-session")


# -- create_credentials ---------------------------------------------------------------------
def test_create_credentials_makes_a_tagged_secret_and_records_only_its_arn(
    store: InMemorySessionStore,
) -> None:
    # Given a new session of alice
    session = new_session(store)
    secrets = FakeSecrets()
    # When its credentials are made
    out = service.create_credentials(store, secrets, COMMON, session.session_id)
    # Then the secret has an OS-safe user name and the fleet's tags, and the record holds its ARN
    made = secrets.secrets[session.session_id]
    assert made["username"] == "dcvalicesmith"
    assert made["tags"] == {
        SESSION_TAG: session.session_id,
        OWNER_TAG: ALICE.sub,
        FLEET_TAG[0]: FLEET_TAG[1],
    }
    assert store.require(session.session_id).secret_arn == out["secretArn"]


# -- launch_instance ------------------------------------------------------------------------
def every_attempt_in_order() -> list[tuple[str, str]]:
    return [(t, s) for s in SUBNETS for t in (REQUESTED, *FALLBACKS)]


def test_launch_tries_every_type_in_the_first_subnet_then_in_the_second(
    store: InMemorySessionStore,
) -> None:
    # Given capacity only for the last fallback type, and only in the second subnet
    hosts = FakeHosts(capacity={("g4dn.xlarge", "subnet-b")})
    session = new_session(store)
    secrets = FakeSecrets()
    # When the host is launched
    out = service.launch_instance(
        store, hosts, secrets, LAUNCH, session.session_id, secret_arn=SECRET_ARN
    )
    # Then types were tried requested-first in subnet-a, then the same order in subnet-b
    assert hosts.attempts == every_attempt_in_order()
    assert len(set(hosts.client_tokens)) == len(hosts.attempts)
    # And the host that launched is the one on the record
    [instance] = hosts.instances.values()
    assert out == {"instanceId": instance.instance_id, "instanceType": "g4dn.xlarge"}
    stored = store.require(session.session_id)
    assert (stored.instance_id, stored.instance_type) == (instance.instance_id, "g4dn.xlarge")
    assert stored.status is Status.PROVISIONING
    # And that host, as its role's session names it, is the one reader of the secret
    assert secrets.readers == {SECRET_ARN: f"AROAHOSTROLE:{instance.instance_id}"}


def test_launch_stops_at_the_first_type_with_capacity(store: InMemorySessionStore) -> None:
    # Given capacity for the first fallback in the first subnet (and for everything later)
    hosts = FakeHosts(capacity={("g5.2xlarge", "subnet-a"), *every_attempt_in_order()[2:]})
    session = new_session(store)
    # When the host is launched
    out = launch(store, hosts, session)
    # Then nothing after the first success was tried, and exactly one host exists
    assert hosts.attempts == [("g5.xlarge", "subnet-a"), ("g5.2xlarge", "subnet-a")]
    assert out["instanceType"] == "g5.2xlarge"
    assert len(hosts.instances) == 1


def test_launch_of_the_requested_type_needs_no_fallback_and_tags_the_host(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given capacity everywhere
    session = new_session(store)
    # When the host is launched
    out = launch(store, hosts, session)
    # Then the requested type in the first subnet is launched from the os's template, tagged
    assert hosts.attempts == [(REQUESTED, "subnet-a")]
    assert hosts.launch_templates == ["lt-linux"]
    tags = hosts.instances[out["instanceId"]].tags
    assert tags[SESSION_TAG] == session.session_id
    assert tags[OWNER_TAG] == ALICE.sub
    assert tags[SECRET_TAG] == SECRET_ARN
    assert tags[FLEET_TAG[0]] == FLEET_TAG[1]


def test_launch_does_not_try_a_type_twice_when_the_request_is_also_a_fallback(
    store: InMemorySessionStore,
) -> None:
    # Given a request for a type that is also a fallback, and no capacity anywhere
    hosts = FakeHosts(capacity=set())
    session = new_session(store, instance_type="g5.2xlarge")
    # When the host is launched
    with pytest.raises(InsufficientCapacityError):
        launch(store, hosts, session)
    # Then each distinct type was tried once per subnet, the requested one first
    assert hosts.attempts == [(t, s) for s in SUBNETS for t in ("g5.2xlarge", "g4dn.xlarge")]


def test_launch_without_capacity_anywhere_names_every_type_and_subnet(
    store: InMemorySessionStore,
) -> None:
    # Given no capacity for any type in any subnet
    hosts = FakeHosts(capacity=set())
    session = new_session(store)
    # When the host is launched
    with pytest.raises(InsufficientCapacityError) as raised:
        launch(store, hosts, session)
    # Then every combination was tried, and the error names the types and the subnets
    assert hosts.attempts == every_attempt_in_order()
    message = str(raised.value)
    for name in (REQUESTED, *FALLBACKS, *SUBNETS):
        assert name in message
    # And no host and no instance id are left behind
    assert hosts.instances == {}
    assert store.require(session.session_id).instance_id is None


def test_launch_stops_at_an_error_that_is_not_about_capacity(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given EC2 refuses the launch for a reason other than capacity
    hosts.refuse_with = LaunchError("InvalidParameterValue: bad template")
    session = new_session(store)
    # When the host is launched / Then the error surfaces at once, without fallback
    with pytest.raises(LaunchError, match="bad template"):
        launch(store, hosts, session)
    assert hosts.attempts == [(REQUESTED, "subnet-a")]


G_TYPES = {REQUESTED, *FALLBACKS, "g6.xlarge"}
IN_EU = replace(LAUNCH, region="eu-west-1")


def test_a_vcpu_quota_refusal_is_tried_once_fails_plainly_and_tells_the_operators(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given a new account: EC2 refuses every G type for its vCPU quota (0), in every subnet
    hosts.over_quota = set(G_TYPES)
    operators, telemetry = FakeOperators(), CountingTelemetry()
    session = new_session(store)
    # When the host is launched
    with pytest.raises(GpuQuotaError) as raised:
        launch(store, hosts, session, settings=IN_EU, operators=operators, telemetry=telemetry)
    # Then EC2 was asked once: every fallback is a G type, under the same quota, in any subnet
    assert hosts.attempts == [(REQUESTED, "subnet-a")]
    assert hosts.instances == {}
    # And the user reads, in plain words, that GPU desktops are not enabled (the error's own
    # message, for operators, names the quota)
    assert user_message_for("GpuQuotaError", str(raised.value)) == (
        "GPU desktops are not enabled in this AWS account yet. Your administrator has been told."
    )
    assert "L-DB2E81BA" in str(raised.value)
    # And the operators were told once: the quota, its code, the account, the Region, and how
    # to ask for more (the console page and the AWS CLI command)
    ((subject, message),) = operators.published
    assert "L-DB2E81BA" in subject
    assert "eu-west-1" in subject
    assert "Running On-Demand G and VT instances (L-DB2E81BA)" in message
    assert "account 123456789012, Region eu-west-1" in message
    assert (
        "https://eu-west-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/"
        "L-DB2E81BA?region=eu-west-1"
    ) in message
    assert (
        "aws service-quotas request-service-quota-increase --region eu-west-1 "
        "--service-code ec2 --quota-code L-DB2E81BA --desired-value 16"
    ) in message
    assert "One g5.xlarge desktop needs 4 vCPUs" in message
    assert session.session_id in message
    assert telemetry.quotas == ["L-DB2E81BA"]


def test_a_g_quota_refusal_still_tries_a_fallback_of_another_family(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given the G quota is used up, and the fallbacks hold a P type (another quota)
    hosts.over_quota = set(G_TYPES)
    settings = replace(LAUNCH, fallback_instance_types=("g4dn.xlarge", "p3.2xlarge"))
    operators = FakeOperators()
    session = new_session(store)
    # When the host is launched
    out = launch(store, hosts, session, settings=settings, operators=operators)
    # Then the other G type was skipped, and the P type launched in the first subnet
    assert hosts.attempts == [(REQUESTED, "subnet-a"), ("p3.2xlarge", "subnet-a")]
    assert out["instanceType"] == "p3.2xlarge"
    # And nobody is told of a desktop that launched
    assert operators.published == []


def test_a_quota_refusal_and_no_capacity_elsewhere_fails_for_capacity_and_tells_of_the_quota(
    store: InMemorySessionStore,
) -> None:
    # Given the G quota is used up, and the P fallback has no capacity in any subnet
    hosts = FakeHosts(capacity=set())
    hosts.over_quota = set(G_TYPES)
    settings = replace(LAUNCH, fallback_instance_types=("g4dn.xlarge", "p3.2xlarge"))
    operators, telemetry = FakeOperators(), CountingTelemetry()
    session = new_session(store)
    # When the host is launched
    with pytest.raises(InsufficientCapacityError) as raised:
        launch(store, hosts, session, settings=settings, operators=operators, telemetry=telemetry)
    # Then the G quota was asked once, the P type in each subnet; the error names what had no
    # capacity (the user may try again later), and the operators still hear of the quota
    assert hosts.attempts == [
        (REQUESTED, "subnet-a"),
        ("p3.2xlarge", "subnet-a"),
        ("p3.2xlarge", "subnet-b"),
    ]
    assert str(raised.value) == "no capacity for p3.2xlarge in subnet-a, subnet-b"
    ((_, message),) = operators.published
    assert "L-DB2E81BA" in message
    assert "L-417A185B" not in message
    assert telemetry.quotas == ["L-DB2E81BA"]


def test_a_quota_refusal_fails_the_same_when_the_operators_cannot_be_told(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given the G quota is used up and the operators' topic refuses the message
    hosts.over_quota = set(G_TYPES)
    operators = FakeOperators(fails_with=RuntimeError("AuthorizationError"))
    session = new_session(store)
    # When the host is launched / Then the desktop fails for its quota all the same
    with pytest.raises(GpuQuotaError):
        launch(store, hosts, session, operators=operators)
    assert len(operators.published) == 1
    assert hosts.attempts == [(REQUESTED, "subnet-a")]


def test_a_retried_launch_reuses_the_host_already_tagged_for_the_session(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given an earlier attempt launched a host for the session but died before recording it
    session = new_session(store)
    earlier = hosts.add(session_id=session.session_id, state="pending")
    # When the step is retried, twice
    first = launch(store, hosts, session)
    second = launch(store, hosts, session)
    # Then no second host is launched, and the record names the earlier one
    assert hosts.attempts == []
    assert first == second == {"instanceId": earlier.instance_id, "instanceType": REQUESTED}
    assert store.require(session.session_id).instance_id == earlier.instance_id


# -- accept_host_ready ----------------------------------------------------------------------
def _unknown_session(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    return replace(claim_for(session, instance), session_id="not-a-session")


def _not_provisioning(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    store.update(session, status=Status.FAILED, status_reason="gave up")
    return claim_for(session, instance)


def _other_instance(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    # even a running instance tagged for this session is refused unless it is the recorded one
    other = hosts.add(session_id=session.session_id)
    return claim_for(session, other)


def _stopped_instance(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    hosts.set(instance.instance_id, state="stopped")
    return claim_for(session, instance)


def _pending_instance(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    hosts.set(instance.instance_id, state="pending")
    return claim_for(session, instance)


def _vanished_instance(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    del hosts.instances[instance.instance_id]
    return claim_for(session, instance)


def _tagged_for_another_session(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    hosts.set(instance.instance_id, tags={**instance.tags, SESSION_TAG: "another-session"})
    return claim_for(session, instance)


def _untagged_instance(
    store: InMemorySessionStore, hosts: FakeHosts, session: Session, instance: Instance
) -> HostReadyClaim:
    hosts.set(instance.instance_id, tags={})
    return claim_for(session, instance)


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_unknown_session, "unknown session"),
        (_not_provisioning, "not provisioning"),
        (_other_instance, "is not the host of session"),
        (_stopped_instance, "is stopped, not running"),
        (_pending_instance, "is pending, not running"),
        (_vanished_instance, "is missing, not running"),
        (_tagged_for_another_session, "not tagged for this session"),
        (_untagged_instance, "not tagged for this session"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_accept_host_ready_rejects_a_claim_that_does_not_match(
    store: InMemorySessionStore,
    hosts: FakeHosts,
    workflows: FakeWorkflows,
    forge: Any,
    reason: str,
) -> None:
    # Given a session waiting for its host, with its workflow's token parked
    session, instance = launched_session(store, hosts)
    service.await_host_ready(store, workflows, session.session_id, "token-1")
    claim = forge(store, hosts, store.require(session.session_id), instance)
    before = store.get(session.session_id)
    # When an agent's claim that does not match the record or the instance arrives
    with pytest.raises(ClaimRejectedError, match=reason):
        service.accept_host_ready(store, hosts, workflows, claim)
    # Then the record is unchanged and the workflow is not woken
    assert store.get(session.session_id) == before
    assert workflows.succeeded == []


def test_accept_host_ready_completes_the_parked_token_for_a_matching_claim(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given a session waiting for its host, with its workflow's token parked
    session, instance = launched_session(store, hosts)
    assert service.await_host_ready(store, workflows, session.session_id, "token-1") is False
    # When the host's agent claims DCV is ready
    woke = service.accept_host_ready(store, hosts, workflows, claim_for(session, instance))
    # Then the workflow is completed with the verified host, and the record keeps the DCV id
    assert woke is True
    assert workflows.succeeded == [
        ("token-1", {"instanceId": instance.instance_id, "dcvSessionId": "console"})
    ]
    stored = store.require(session.session_id)
    assert stored.dcv_session_id == "console"
    assert stored.status is Status.PROVISIONING


def test_await_host_ready_completes_at_once_when_the_claim_came_first(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given the agent's claim arrived before the workflow parked its token
    session, instance = launched_session(store, hosts)
    early = service.accept_host_ready(store, hosts, workflows, claim_for(session, instance))
    assert early is False
    assert workflows.succeeded == []
    # When the workflow parks its token
    woke = service.await_host_ready(store, workflows, session.session_id, "token-1")
    # Then it is completed at once, exactly once
    assert woke is True
    assert workflows.succeeded == [
        ("token-1", {"instanceId": instance.instance_id, "dcvSessionId": "console"})
    ]


def test_a_duplicate_claim_before_the_token_is_parked_writes_nothing(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given a claim already accepted while no token is parked
    session, instance = launched_session(store, hosts)
    service.accept_host_ready(store, hosts, workflows, claim_for(session, instance))
    before = store.require(session.session_id)
    # When the agent repeats it / Then nothing is written or woken
    assert service.accept_host_ready(store, hosts, workflows, claim_for(session, instance)) is False
    assert store.require(session.session_id) == before
    assert workflows.succeeded == []


#: Rounds of the race below; each one lets the thread scheduler pick a different winner.
RACE_ROUNDS = 40


def race_claim_against_token(
    hosts: FakeHosts,
) -> tuple[InMemorySessionStore, Session, FakeWorkflows]:
    """One waiting session; its agent's claim and its workflow's token arrive at the same moment."""
    store = InMemorySessionStore()
    workflows = FakeWorkflows()
    session, instance = launched_session(store, hosts)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(step: Any) -> None:
        start.wait()
        try:
            step()
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    claim = claim_for(session, instance)
    steps = [
        lambda: service.accept_host_ready(store, hosts, workflows, claim),
        lambda: service.await_host_ready(store, workflows, session.session_id, "token-1"),
    ]
    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    return store, session, workflows


def test_when_claim_and_token_race_exactly_one_path_completes_the_workflow(
    hosts: FakeHosts,
) -> None:
    for round_number in range(RACE_ROUNDS):
        # Given a waiting session / When the claim and the token arrive at the same moment
        store, session, workflows = race_claim_against_token(hosts)
        # Then the workflow was completed exactly once, whichever path came second
        assert len(workflows.succeeded) == 1, f"round {round_number}: {workflows.succeeded}"
        assert store.require(session.session_id).dcv_session_id == "console"


# -- mark_ready -----------------------------------------------------------------------------
def _verified(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> tuple[Session, Instance]:
    session, instance = launched_session(store, hosts)
    service.await_host_ready(store, workflows, session.session_id, "token-1")
    service.accept_host_ready(store, hosts, workflows, claim_for(session, instance, "console"))
    return store.require(session.session_id), instance


@pytest.mark.parametrize(
    ("settings", "host"),
    [
        (READY_PUBLIC, "ec2-203-0-113-10.compute-1.amazonaws.com"),
        (READY_PRIVATE, "10.0.1.23"),
    ],
    ids=["public-dns", "private-ip"],
)
def test_mark_ready_publishes_the_connection_url_and_moves_to_ready(
    store: InMemorySessionStore,
    hosts: FakeHosts,
    workflows: FakeWorkflows,
    settings: ReadySettings,
    host: str,
) -> None:
    # Given a session whose host's claim was verified
    session, _ = _verified(store, hosts, workflows)
    # When it is marked ready
    out = service.mark_ready(store, hosts, settings, session.session_id)
    # Then the URL points at the configured address, port and DCV session
    url = f"https://{host}:8443/#console"
    assert out["connectionUrl"] == url
    stored = store.require(session.session_id)
    assert stored.status is Status.READY
    assert stored.connection_url == url
    assert stored.task_token is None
    assert store.active_count(ALICE.sub) == 1


def test_mark_ready_falls_back_to_the_public_ip_without_a_public_name(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given a verified host with a public IP but no public DNS name
    session, instance = _verified(store, hosts, workflows)
    hosts.set(instance.instance_id, public_dns=None)
    # When it is marked ready / Then the URL uses the public IP
    out = service.mark_ready(store, hosts, READY_PUBLIC, session.session_id)
    assert out["connectionUrl"] == "https://203.0.113.10:8443/#console"


# -- compensate -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            {
                "Error": "InsufficientCapacityError",
                "Cause": json.dumps({"errorMessage": "no capacity for g5.xlarge in subnet-a"}),
            },
            InsufficientCapacityError.user_message,  # the types and subnets: statusDetail
        ),
        (
            {"Error": "States.Timeout", "Cause": "timed out"},
            "The desktop did not become ready in time.",
        ),
        (
            {
                "Error": "LaunchError",
                "Cause": json.dumps({"errorMessage": "InvalidParameterValue: lt-0abc internal"}),
            },
            LaunchError.user_message,
        ),
        ({"Error": "KeyError", "Cause": "Traceback ..."}, "The desktop could not be prepared."),
        (None, "The desktop could not be prepared."),
    ],
    ids=["capacity", "timeout", "launch", "unexpected-error", "no-error"],
)
def test_compensate_undoes_provisioning_and_marks_failed_with_a_readable_reason(
    store: InMemorySessionStore,
    hosts: FakeHosts,
    workflows: FakeWorkflows,
    error: dict[str, Any] | None,
    reason: str,
) -> None:
    # Given a session with a secret, its host, and a stray host from an earlier attempt
    secrets = FakeSecrets()
    session, instance = launched_session(store, hosts)
    service.create_credentials(store, secrets, COMMON, session.session_id)
    stray = hosts.add(session_id=session.session_id, state="stopped")
    unrelated = hosts.add(session_id="someone-else")
    service.await_host_ready(store, workflows, session.session_id, "token-1")
    # When the workflow compensates
    out = compensation.compensate(store, hosts, secrets, session.session_id, error)
    # Then every host of the session is terminated, and only those
    assert sorted(out["terminated"]) == sorted([instance.instance_id, stray.instance_id])
    assert sorted(hosts.terminated) == sorted(out["terminated"])
    assert hosts.instances[unrelated.instance_id].state == "running"
    # And the secret is gone, and the session is FAILED with the user's reason, no longer counted
    assert secrets.secrets == {}
    stored = store.require(session.session_id)
    assert stored.status is Status.FAILED
    assert stored.status_reason == reason
    assert out["reason"] == reason
    assert stored.task_token is None
    assert store.active_count(ALICE.sub) == 0


@pytest.mark.parametrize(
    ("caught", "named", "cause"),
    [
        ("HostNotReadyError", "HostNotReadyError", "no verified Host Ready event"),
        ("States.Timeout", "WorkflowStepError", "States.Timeout: no verified Host Ready event"),
        ("States.TaskFailed", "WorkflowStepError", "States.TaskFailed: no verified Host Ready event"),
        ("States.Permissions", "WorkflowStepError", "States.Permissions: no verified Host Ready event"),
        ("Lambda.ServiceException", "WorkflowStepError", "Lambda.ServiceException: no verified Host Ready event"),
        ("KeyError", "WorkflowStepError", "KeyError: no verified Host Ready event"),
        ("InsufficientCapacityError", "InsufficientCapacityError", "no verified Host Ready event"),
    ],
)  # fmt: skip
def test_compensate_names_the_error_the_execution_fails_with_by_a_class_in_code(
    store: InMemorySessionStore, hosts: FakeHosts, caught: str, named: str, cause: str
) -> None:
    # Given a provisioning that failed with any error its Catch can see (States.* included)
    session, _ = launched_session(store, hosts)
    error = {"Error": caught, "Cause": "no verified Host Ready event"}
    # When it compensates, fresh or on a resume, or late (already READY)
    for resume in (False, True):
        out = compensation.compensate(
            store, hosts, FakeSecrets(), session.session_id, error, resume=resume
        )
        # Then the error its Fail state reports is a class here, never a reserved States.* name
        # (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html),
        # and the cause says exactly what was caught
        assert out["error"] in {c.__name__ for c in all_error_classes()}
        assert (out["error"], out.get("cause")) == (named, cause)


def test_compensate_twice_has_nothing_left_to_do_the_second_time(
    store: InMemorySessionStore, hosts: FakeHosts
) -> None:
    # Given a session compensated once after a timeout
    secrets = FakeSecrets()
    session, _ = launched_session(store, hosts)
    service.create_credentials(store, secrets, COMMON, session.session_id)
    error = {"Error": "States.Timeout"}
    compensation.compensate(store, hosts, secrets, session.session_id, error)
    after_first = store.require(session.session_id)
    # When it is compensated again
    out = compensation.compensate(store, hosts, secrets, session.session_id, error)
    # Then nothing is terminated or deleted, and the record is still the same FAILED one
    assert out["terminated"] == []
    assert secrets.deletes == [True, False]
    assert store.require(session.session_id) == after_first
    assert after_first.status is Status.FAILED
    assert after_first.status_reason is not None
    assert "did not become ready in time" in after_first.status_reason


def test_compensate_marks_failed_only_a_session_still_provisioning(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given a session already READY (a late compensation)
    session, _ = _verified(store, hosts, workflows)
    service.mark_ready(store, hosts, READY_PUBLIC, session.session_id)
    before = store.require(session.session_id)
    # When compensation runs / Then the record is not overwritten
    compensation.compensate(
        store, hosts, FakeSecrets(), session.session_id, {"Error": "States.Timeout"}
    )
    assert store.require(session.session_id) == before


def test_a_late_compensation_leaves_a_ready_desktop_running_with_its_secret(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given a READY desktop with its credentials
    secrets = FakeSecrets()
    session, instance = _verified(store, hosts, workflows)
    service.create_credentials(store, secrets, COMMON, session.session_id)
    service.mark_ready(store, hosts, READY_PUBLIC, session.session_id)
    # When a compensation for it arrives anyway
    out = compensation.compensate(
        store, hosts, secrets, session.session_id, {"Error": "RuntimeError"}
    )
    # Then neither its host nor its secret is touched
    assert out["terminated"] == []
    assert hosts.terminated == []
    assert secrets.deletes == []
    assert hosts.describe(instance.instance_id).state == "running"  # type: ignore[union-attr]


def test_a_retried_mark_ready_returns_the_same_url_without_a_second_write(
    store: InMemorySessionStore, hosts: FakeHosts, workflows: FakeWorkflows
) -> None:
    # Given a session marked READY once
    session, _ = _verified(store, hosts, workflows)
    first = service.mark_ready(store, hosts, READY_PUBLIC, session.session_id)
    version = store.require(session.session_id).version
    # When the step is retried (its first answer was lost)
    again = service.mark_ready(store, hosts, READY_PUBLIC, session.session_id)
    # Then it answers the same and writes nothing
    assert again == first
    assert store.require(session.session_id).version == version


def test_launch_tokens_are_stable_per_attempt_and_fit_ec2s_limit() -> None:
    token = service.launch_token("3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f", "subnet-a", "g5.xlarge")
    assert token == service.launch_token(
        "3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f", "subnet-a", "g5.xlarge"
    )
    assert token != service.launch_token(
        "3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f", "subnet-b", "g5.xlarge"
    )
    assert len(token) <= 64


def test_the_owner_of_instances_is_found_by_user_name_e_mail_or_sub(
    store: InMemorySessionStore,
) -> None:
    session = new_session(store)
    name, email = session.owner_name, session.owner_email
    assert name
    for user in (name, session.owner, *([email] if email else [])):
        assert service.owner_sub(store, user) == session.owner
    assert service.owner_sub(store, "someone-else") == "someone-else"


# -- authenticate_agent_event: signed, fresh, and newer than the last one accepted -------------
EVENT_KEY = "e" * 64
NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
WINDOW = 120  # two heartbeat intervals of 60 s


class FakeKeys(EventKeys):
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def key(self, secret_arn: str) -> str | None:
        return self.keys.get(secret_arn)


def signed_event(session: Session, sent_at: datetime, **fields: Any) -> dict[str, Any]:
    """A Host Heartbeat of the session's host, signed with its key, sent at ``sent_at``."""
    detail: dict[str, Any] = {
        "sessionId": session.session_id,
        "instanceId": "i-0123456789abcdef0",
        "sentAt": sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "idle": False,
        **fields,
    }
    return {**detail, "signature": events.signature(EVENT_KEY, "Host Heartbeat", detail)}


@pytest.fixture
def keyed(store: InMemorySessionStore) -> tuple[Session, FakeKeys]:
    session = new_session(store)
    session = store.update(session, secret_arn=SECRET_ARN)
    keys = FakeKeys()
    keys.keys[SECRET_ARN] = EVENT_KEY
    return session, keys


def authenticate(
    store: InMemorySessionStore, keys: FakeKeys, detail: dict[str, Any], now: datetime = NOW
) -> Session:
    return service.authenticate_agent_event(
        store, keys, "Host Heartbeat", detail, window_seconds=WINDOW, now=now
    )


def test_a_fresh_signed_event_is_accepted_and_its_replay_is_refused(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys]
) -> None:
    # Given an event the session's host signed a second ago
    session, keys = keyed
    detail = signed_event(session, NOW - timedelta(seconds=1))
    # When it arrives, Then it is accepted
    assert authenticate(store, keys, detail).session_id == session.session_id
    # When the very same event (same signature) is sent again, within the window
    with pytest.raises(ClaimRejectedError) as replayed:
        authenticate(store, keys, dict(detail), now=NOW + timedelta(seconds=5))
    # Then it is refused, saying why and naming the session; the record is as it was
    assert str(replayed.value).startswith("sentAt: ")
    assert "not newer than the last event accepted" in str(replayed.value)
    assert session.session_id in str(replayed.value)
    assert store.require(session.session_id) == session


@pytest.mark.parametrize(
    "off",
    [timedelta(seconds=-WINDOW - 1), timedelta(seconds=WINDOW + 1), timedelta(days=-365)],
    ids=["just-too-old", "just-too-far-ahead", "a-year-old"],
)
def test_an_event_sent_outside_the_window_is_refused_and_takes_no_place(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys], off: timedelta
) -> None:
    # Given a correctly signed event whose sentAt is outside two heartbeat intervals of now
    session, keys = keyed
    stale = signed_event(session, NOW + off)
    # When it arrives / Then it is refused for its sentAt
    with pytest.raises(ClaimRejectedError, match=r"^sentAt: .* outside the 120 s window"):
        authenticate(store, keys, stale)
    # And it left no mark: a fresh event from just before it is still accepted
    assert authenticate(store, keys, signed_event(session, NOW - timedelta(seconds=WINDOW)))


def test_an_event_at_the_edges_of_the_window_is_accepted(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys]
) -> None:
    session, keys = keyed
    assert authenticate(store, keys, signed_event(session, NOW - timedelta(seconds=WINDOW)))
    assert authenticate(store, keys, signed_event(session, NOW + timedelta(seconds=WINDOW)))


def test_an_event_older_than_the_last_one_accepted_is_refused(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys]
) -> None:
    # Given an event of the session's host accepted, sent 10 s ago
    session, keys = keyed
    authenticate(store, keys, signed_event(session, NOW - timedelta(seconds=10)))
    # When one it sent earlier (20 s ago, still within the window) arrives after it
    older = signed_event(session, NOW - timedelta(seconds=20), idle=True)
    # Then it is refused; a newer one is accepted
    with pytest.raises(ClaimRejectedError, match="not newer than the last event accepted"):
        authenticate(store, keys, older)
    assert authenticate(store, keys, signed_event(session, NOW - timedelta(seconds=9)))


def test_a_sent_at_changed_after_signing_is_refused_for_its_signature(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys]
) -> None:
    # Given an old signed event whose sentAt someone moved to now
    session, keys = keyed
    old = signed_event(session, NOW - timedelta(hours=1))
    refreshed = {**old, "sentAt": "2026-12-07T12:00:00.000Z"}
    # When it arrives / Then the signature, which covers sentAt, refuses it
    with pytest.raises(ClaimRejectedError, match=r"^signature: not made with"):
        authenticate(store, keys, refreshed)


def test_a_sent_at_that_is_not_a_utc_time_is_refused(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys]
) -> None:
    session, keys = keyed
    detail = {"sessionId": session.session_id, "sentAt": "2026-12-07T12:00:00"}
    detail["signature"] = events.signature(EVENT_KEY, "Host Heartbeat", detail)
    with pytest.raises(ClaimRejectedError, match="is not a UTC time"):
        authenticate(store, keys, detail)


def test_concurrent_copies_of_one_signed_event_are_accepted_exactly_once(
    store: InMemorySessionStore, keyed: tuple[Session, FakeKeys]
) -> None:
    # Given eight copies of one signed event, delivered at the same moment
    session, keys = keyed
    detail = signed_event(session, NOW)
    copies = 8
    outcomes: list[str] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            authenticate(store, keys, dict(detail))
            outcome = "accepted"
        except ClaimRejectedError as exc:
            outcome = exc.message
        with lock:
            outcomes.append(outcome)

    run_together(deliver, copies, timeout=10)
    # Then exactly one is accepted; every other one is refused as not newer
    assert outcomes.count("accepted") == 1, outcomes
    assert all("not newer" in o for o in outcomes if o != "accepted"), outcomes
