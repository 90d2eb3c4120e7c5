"""The session store contract, run against both stores: in memory, and DynamoDB under moto.

The DynamoDB table is created from the SessionsTable declaration in template.yaml, so a change
to the table's key or index there is a change to what these tests run against.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from dcvfleet import aws
from dcvfleet.errors import SessionConflictError, SessionLimitExceededError
from dcvfleet.model import Session, Status
from dcvfleet.store import (
    DynamoSessionStore,
    InMemorySessionStore,
    NotificationAddress,
    SessionStore,
)
from local.emulator import dynamodb
from tests.support.concurrency import run_together
from tests.support.sessions import a_session as build_session
from tests.support.tables import create_sessions_table

TABLE_NAME = "dcvfleet-sessions"


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(params=["in-memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[SessionStore]:
    if request.param == "in-memory":
        yield InMemorySessionStore()
        return
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        create_sessions_table(dynamodb, TABLE_NAME)
        yield DynamoSessionStore(dynamodb, TABLE_NAME)


@pytest.fixture
def serializable_moto_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto's writes the isolation DynamoDB documents, with the local stack's own
    workaround (DDB_ATOMIC_WRITES in local/emulator/dynamodb.py), undone after the test."""
    for name, replacement in dynamodb.atomic_dynamodb_writes().items():
        monkeypatch.setattr(DynamoDBBackend, name, replacement)


def a_session(owner: str = "alice", created_at: str = "2025-03-01T10:00:00.000Z") -> Session:
    return build_session(
        str(uuid.uuid4()),
        owner=owner,
        status=Status.PROVISIONING,
        created_at=created_at,
        extra={"username": owner},
    )


def a_session_with_every_field() -> Session:
    return replace(
        a_session(),
        owner_email="alice@example.com",
        instance_id="i-0123456789abcdef0",
        job_id="job-1",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:dcvfleet/s-AbCdEf",
        dcv_session_id="console",
        connection_url="https://ec2-1-2-3-4.compute-1.amazonaws.com:8443/#console",
        status_reason="still booting",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:provision:s",
        task_token="token-1",
        ready_at="2025-03-01T10:01:00.000Z",
        idle_check="idle-1",
        idle_check_at="2025-03-01T11:00:00.000Z",
        evidence={"connections": 0, "lastDisconnectAt": "2025-03-01T10:30:00Z", "cpu": 2.5},
        extra={"username": "alice", "note": "GPU desktop"},
    )


def _created(store: SessionStore) -> Session:
    session = a_session()
    store.create(session, max_active=1)
    return session


# -- create, get, list --------------------------------------------------------------------------
def test_create_then_get_round_trips_every_field(store: SessionStore) -> None:
    # Given a session with every optional field set
    session = a_session_with_every_field()
    # When it is created and read back
    store.create(session, max_active=1)
    found = store.get(session.session_id)
    # Then the stored record equals what was written, field for field
    assert found == session
    assert store.active_count("alice") == 1


def test_get_of_an_unknown_session_is_none(store: SessionStore) -> None:
    # Given an owner with one session (and so a counter record)
    store.create(a_session(), max_active=1)
    # When unknown ids are read, including the id of the counter record itself
    # Then there is no session
    assert store.get(str(uuid.uuid4())) is None
    assert store.get("user#alice") is None


def test_list_by_owner_returns_only_the_owners_sessions_newest_first(
    store: SessionStore,
) -> None:
    # Given three sessions of alice created at different times, and one of bob
    oldest = a_session(created_at="2025-03-01T08:00:00.000Z")
    newest = a_session(created_at="2025-03-01T10:00:00.000Z")
    middle = a_session(created_at="2025-03-01T09:00:00.000Z")
    for session in (oldest, newest, middle):
        store.create(session, max_active=5)
    store.create(a_session(owner="bob"), max_active=5)
    # When alice's sessions are listed
    listed = store.list_by_owner("alice")
    # Then they are hers alone, newest first
    assert [s.session_id for s in listed] == [
        newest.session_id,
        middle.session_id,
        oldest.session_id,
    ]
    assert store.list_by_owner("carol") == []


# -- the per-user limit -------------------------------------------------------------------------
def test_limit_refuses_the_session_beyond_the_limit_and_stores_nothing(
    store: SessionStore,
) -> None:
    # Given alice has as many active sessions as the limit allows
    for _ in range(2):
        store.create(a_session(), max_active=2)
    # When she asks for one more
    refused = a_session()
    with pytest.raises(SessionLimitExceededError, match="at most 2 active"):
        store.create(refused, max_active=2)
    # Then nothing of it is stored, her count is unchanged, and bob is not affected
    assert store.get(refused.session_id) is None
    assert store.active_count("alice") == 2
    assert len(store.list_by_owner("alice")) == 2
    store.create(a_session(owner="bob"), max_active=2)
    assert store.active_count("bob") == 1


def test_creating_an_existing_session_id_is_a_conflict(store: SessionStore) -> None:
    # Given a stored session
    session = a_session()
    store.create(session, max_active=5)
    # When the same id is created again
    # Then it is refused and the count is unchanged
    with pytest.raises(SessionConflictError, match="exists"):
        store.create(session, max_active=5)
    assert store.active_count("alice") == 1


@pytest.mark.usefixtures("serializable_moto_transactions")
def test_concurrent_creates_under_limit_one_let_exactly_one_through(
    store: SessionStore,
) -> None:
    # Given eight requests of alice released at the same moment against a limit of one
    threads = 8
    created: list[str] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def attempt() -> None:
        session = a_session()
        try:
            store.create(session, max_active=1)
        except Exception as exc:  # collected and asserted on below
            with lock:
                refused.append(exc)
        else:
            with lock:
                created.append(session.session_id)

    # When they all create at once
    run_together(attempt, threads, timeout=30)
    # Then exactly one is created, every other one is refused by the limit
    assert len(created) == 1, f"created {len(created)}: {refused}"
    assert all(isinstance(exc, SessionLimitExceededError) for exc in refused), refused
    assert len(refused) == threads - 1
    assert [s.session_id for s in store.list_by_owner("alice")] == created
    assert store.active_count("alice") == 1


# -- conditional, versioned updates -------------------------------------------------------------
def _older_version(store: SessionStore, stored: Session) -> Session:
    """Someone else wrote after this copy was read: the copy's version is stale."""
    store.update(stored, status_reason="written by another writer")
    return stored


def _other_status(_store: SessionStore, stored: Session) -> Session:
    """This copy claims a status the record does not have (same version)."""
    return replace(stored, status=Status.READY)


@pytest.mark.parametrize(
    ("make_stale", "change"),
    [
        (_older_version, {"status": Status.FAILED, "status_reason": "x"}),
        (_older_version, {"instance_id": "i-0aaaaaaaaaaaaaaaa"}),
        (_other_status, {"status": Status.TERMINATING}),
        (_other_status, {"connection_url": "https://x:8443/#console"}),
    ],
    ids=[
        "stale-version-moving-status",
        "stale-version-same-status",
        "wrong-status-moving-status",
        "wrong-status-same-status",
    ],
)
def test_a_stale_update_is_a_conflict_and_changes_nothing(
    store: SessionStore,
    make_stale: Callable[[SessionStore, Session], Session],
    change: dict[str, Any],
) -> None:
    # Given a stored session and a copy of it that no longer matches the record
    session = a_session()
    store.create(session, max_active=1)
    stale = make_stale(store, session)
    before = store.get(session.session_id)
    # When the stale copy is written
    with pytest.raises(SessionConflictError, match="changed"):
        store.update(stale, **change)
    # Then the record and the owner's count are as they were
    assert store.get(session.session_id) == before
    assert store.active_count("alice") == 1


def test_an_update_bumps_the_version_and_the_next_one_builds_on_it(store: SessionStore) -> None:
    # Given a stored session
    session = a_session()
    store.create(session, max_active=1)
    # When two updates are made, each from the record the previous one returned
    first = store.update(session, instance_id="i-0123456789abcdef0")
    second = store.update(first, dcv_session_id="console")
    # Then each one raised the version by one and the record holds both changes
    assert (first.version, second.version) == (2, 3)
    assert store.get(session.session_id) == second
    assert second.instance_id == "i-0123456789abcdef0"


@pytest.mark.parametrize(
    ("path", "forbidden"),
    [
        ([], Status.STOPPING),
        ([], Status.TERMINATED),
        ([Status.FAILED], Status.PROVISIONING),
        ([Status.READY], Status.PROVISIONING),
    ],
    ids=["provisioning-to-stopping", "provisioning-to-terminated", "failed-is-final", "ready-back"],
)
def test_a_forbidden_transition_is_a_conflict_and_changes_nothing(
    store: SessionStore, path: list[Status], forbidden: Status
) -> None:
    # Given a session brought through an allowed path
    current = a_session()
    store.create(current, max_active=1)
    for status in path:
        current = store.update(current, status=status)
    count = store.active_count("alice")
    # When it is moved to a status the lifecycle does not allow from there
    with pytest.raises(SessionConflictError, match="not allowed"):
        store.update(current, status=forbidden)
    # Then the record and the count are as they were
    assert store.get(current.session_id) == current
    assert store.active_count("alice") == count


def test_moving_to_failed_releases_the_counter_for_a_new_session(store: SessionStore) -> None:
    # Given alice's one allowed active session
    first = a_session()
    store.create(first, max_active=1)
    with pytest.raises(SessionLimitExceededError):
        store.create(a_session(), max_active=1)
    # When it fails
    store.update(first, status=Status.FAILED, status_reason="no capacity")
    # Then it no longer counts, and a new session can be created
    assert store.active_count("alice") == 0
    second = a_session()
    store.create(second, max_active=1)
    assert store.active_count("alice") == 1
    assert store.require(second.session_id).status is Status.PROVISIONING


def test_the_counter_follows_a_session_out_of_and_back_into_the_active_statuses(
    store: SessionStore,
) -> None:
    # Given a ready session
    session = store.update(_created(store), status=Status.READY)
    # When it stops, the count is released only once it is STOPPED
    session = store.update(session, status=Status.STOPPING)
    assert store.active_count("alice") == 1
    session = store.update(session, status=Status.STOPPED)
    assert store.active_count("alice") == 0
    # Then starting it again takes the count back, and termination releases it for good
    session = store.update(session, status=Status.PROVISIONING)
    assert store.active_count("alice") == 1
    session = store.update(session, status=Status.READY)
    session = store.update(session, status=Status.TERMINATING)
    assert store.active_count("alice") == 1
    store.update(session, status=Status.TERMINATED)
    assert store.active_count("alice") == 0


def test_an_unknown_field_in_an_update_is_a_value_error(store: SessionStore) -> None:
    # Given a stored session
    session = _created(store)
    # When an update names a field the session does not have
    with pytest.raises(ValueError, match="colour"):
        store.update(session, colour="red")
    # Then nothing is written
    assert store.get(session.session_id) == session


def _ready_on(store: SessionStore, instance_id: str = "i-0123456789abcdef0") -> Session:
    session = store.update(_created(store), instance_id=instance_id)
    return store.update(session, status=Status.READY)


def test_a_heartbeat_is_saved_only_for_the_ready_session_on_that_instance(
    store: SessionStore,
) -> None:
    # Given a ready session on an instance
    session = _ready_on(store)
    # When heartbeats arrive from its instance and from another one
    ours = store.record_heartbeat(session.session_id, "i-0123456789abcdef0", "t1", {"idle": False})
    theirs = store.record_heartbeat(session.session_id, "i-0fffffffffffffff0", "t2", {"idle": True})
    unknown = store.record_heartbeat("no-such-session", "i-0123456789abcdef0", "t3", {})
    # Then only the session's own host's heartbeat is kept, and the version does not move
    assert (ours, theirs, unknown) == (True, False, False)
    stored = store.require(session.session_id)
    assert (stored.last_heartbeat_at, stored.heartbeat) == ("t1", {"idle": False})
    assert stored.version == session.version


def test_a_versioned_write_neither_loses_to_nor_overwrites_a_heartbeat(
    store: SessionStore,
) -> None:
    # Given a session read by a workflow, then a heartbeat arriving after that read
    session = _ready_on(store)
    store.record_heartbeat(session.session_id, "i-0123456789abcdef0", "t9", {"idle": True})
    # When the workflow writes what it read
    updated = store.update(session, idle_check="idle-1")
    # Then its write wins (a heartbeat is not a conflict) and the heartbeat survives it
    stored = store.require(session.session_id)
    assert stored.idle_check == "idle-1"
    assert stored.version == updated.version
    assert stored.last_heartbeat_at == "t9"


def test_heartbeat_fields_cannot_be_written_by_a_versioned_update(store: SessionStore) -> None:
    session = _created(store)
    with pytest.raises(ValueError, match="heartbeat"):
        store.update(session, last_heartbeat_at="t1")


def test_a_resume_over_the_limit_is_refused_and_changes_nothing(store: SessionStore) -> None:
    # Given a stopped session and another desktop the user started meanwhile
    stopped = store.update(
        store.update(_ready_on(store), status=Status.STOPPING), status=Status.STOPPED
    )
    store.create(a_session(), max_active=1)
    # When the stopped one is resumed with a limit of one
    with pytest.raises(SessionLimitExceededError):
        store.update(stopped, max_active=1, status=Status.PROVISIONING)
    # Then it stays stopped and the count still holds only the other desktop
    assert store.require(stopped.session_id).status == Status.STOPPED
    assert store.active_count("alice") == 1


def test_a_resume_under_the_limit_takes_the_count(store: SessionStore) -> None:
    stopped = store.update(
        store.update(_ready_on(store), status=Status.STOPPING), status=Status.STOPPED
    )
    resumed = store.update(stopped, max_active=1, status=Status.PROVISIONING)
    assert resumed.status == Status.PROVISIONING
    assert store.active_count("alice") == 1


def test_scan_by_status_finds_sessions_of_those_statuses_only(store: SessionStore) -> None:
    ready = _ready_on(store)
    provisioning = a_session(owner="bob")
    store.create(provisioning, max_active=1)
    found = store.scan_by_status(frozenset({Status.READY}))
    assert [s.session_id for s in found] == [ready.session_id]
    both = store.scan_by_status(frozenset({Status.READY, Status.PROVISIONING}))
    assert {s.session_id for s in both} == {ready.session_id, provisioning.session_id}


# -- the newest event accepted from each session's agent ----------------------------------------
T0 = 1_765_000_000_000  # epoch milliseconds


def test_an_agent_event_is_accepted_only_when_newer_than_every_one_accepted_before(
    store: SessionStore,
) -> None:
    # Given a session whose agent has sent nothing yet
    session = _ready_on(store)
    # When its events arrive: the first, the same one again, an older one, a newer one
    first = store.accept_agent_event(session.session_id, T0)
    again = store.accept_agent_event(session.session_id, T0)
    older = store.accept_agent_event(session.session_id, T0 - 1)
    newer = store.accept_agent_event(session.session_id, T0 + 1)
    after_newer = store.accept_agent_event(session.session_id, T0)
    # Then the first and the newer are accepted; the replay and the older ones are refused
    assert (first, again, older, newer, after_newer) == (True, False, False, True, False)
    # And another session's agent is counted on its own
    assert store.accept_agent_event("another-session", T0) is True


def test_accepting_an_agent_event_leaves_the_sessions_record_and_lists_as_they_were(
    store: SessionStore,
) -> None:
    # Given a READY session
    session = _ready_on(store)
    # When events of its agent are accepted
    assert store.accept_agent_event(session.session_id, T0)
    assert store.accept_agent_event(session.session_id, T0 + 5)
    # Then the record, its version, and every listing of sessions are unchanged
    assert store.get(session.session_id) == session
    assert store.scan_by_status(frozenset(Status)) == [session]
    assert store.page(status=None, user=None, limit=10, after=None) == ([session], None)
    assert store.list_by_owner(session.owner) == [session]


@pytest.mark.usefixtures("serializable_moto_transactions")
def test_concurrent_copies_of_one_agent_event_let_exactly_one_through(
    store: SessionStore,
) -> None:
    # Given eight copies of one event (EventBridge delivers at least once, or it is replayed)
    session = _ready_on(store)
    threads = 8
    answers: list[bool] = []
    lock = threading.Lock()

    def deliver() -> None:
        accepted = store.accept_agent_event(session.session_id, T0)
        with lock:
            answers.append(accepted)

    # When they are all accepted at once
    run_together(deliver, threads, timeout=30)
    # Then exactly one is
    assert sorted(answers) == [False] * (threads - 1) + [True]


def test_a_users_notification_address_is_kept_apart_from_their_sessions(
    store: SessionStore,
) -> None:
    # Given alice with one active session
    store.create(a_session("alice"), max_active=2)
    assert store.notification_address("alice") is None
    # When her address is recorded as subscribed, then changed
    store.record_notification_address("alice", "alice@example.com", "arn:aws:sns:x:1:t:a")
    assert store.notification_address("alice") == NotificationAddress(
        "alice@example.com", "arn:aws:sns:x:1:t:a"
    )
    store.record_notification_address("alice", "alice@example.org", "arn:aws:sns:x:1:t:b")
    # Then the last one is hers, nobody else's, and her session count and list are unchanged
    assert store.notification_address("alice") == NotificationAddress(
        "alice@example.org", "arn:aws:sns:x:1:t:b"
    )
    assert store.notification_address("bob") is None
    assert store.active_count("alice") == 1
    assert [s.owner for s in store.list_by_owner("alice")] == ["alice"]
    assert store.scan_by_status(frozenset(Status)) == store.list_by_owner("alice")


def test_a_profiles_requests_since_a_moment_are_read_from_the_creation_time_index(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given desktops of two profiles over a week, and one made before profiles (no profile)
    def made(owner: str, at: str, profile: str | None) -> None:
        session = a_session(owner, created_at=at)
        if profile:
            session = replace(session, extra={**session.extra, "profile": profile})
        store.create(session, max_active=10)

    made("alice", "2026-11-30T08:05:00.000Z", "linux-workstation")
    made("alice", "2026-12-07T08:05:00.000Z", "linux-workstation")
    made("bob", "2026-12-07T08:06:00.000Z", "cad")
    made("carol", "2026-12-07T08:07:00.000Z", None)
    made("dave", "2026-12-07T08:04:59.999Z", "linux-workstation")
    if isinstance(store, DynamoSessionStore):  # a Query of the index, never a Scan
        monkeypatch.setattr(store._db, "scan", None)
    # Then the history holds that profile's requests from that moment on, and nothing else
    since = "2026-12-07T08:05:00.000Z"
    assert sorted(store.requested_since("linux-workstation", since)) == [since]
    assert sorted(store.requested_since("linux-workstation", "2026-11-01T00:00:00.000Z")) == [
        "2026-11-30T08:05:00.000Z",
        "2026-12-07T08:04:59.999Z",
        since,
    ]
    assert store.requested_since("cad", since) == ["2026-12-07T08:06:00.000Z"]
    assert store.requested_since("nothing", since) == []
