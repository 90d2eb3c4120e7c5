"""The warm pool's store, run against both stores: in memory, and DynamoDB under moto.

The DynamoDB table is created from the WarmPoolTable declaration in template.yaml.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from dcvfleet import aws
from dcvfleet.pool import DynamoPoolStore, InMemoryPoolStore, PoolHost, PoolState, PoolStore
from dcvfleet.pool_targets import Target
from local.emulator import dynamodb
from tests.support.concurrency import run_together
from tests.support.tables import create_table

TABLE_NAME = "dcvfleet-pool"
PROFILE = "linux-workstation"
T0 = "2026-12-07T10:00:00.000Z"
T1 = "2026-12-07T10:01:00.000Z"


@pytest.fixture(params=["in-memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[PoolStore]:
    if request.param == "in-memory":
        yield InMemoryPoolStore()
        return
    with mock_aws():
        client = aws.client("dynamodb")
        create_table(client, "WarmPoolTable", TABLE_NAME)
        yield DynamoPoolStore(client, TABLE_NAME)


@pytest.fixture
def serializable_moto_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto's writes the isolation DynamoDB documents, with the local stack's own
    workaround (DDB_ATOMIC_WRITES in local/emulator/dynamodb.py), undone after the test."""
    for name, replacement in dynamodb.atomic_dynamodb_writes().items():
        monkeypatch.setattr(DynamoDBBackend, name, replacement)


def warming(instance_id: str, profile: str = PROFILE) -> PoolHost:
    return PoolHost(profile=profile, instance_id=instance_id, state=PoolState.WARMING, since=T0)


def test_a_host_moves_from_warming_to_ready_once_and_stays_in_its_profiles_pool(
    store: PoolStore,
) -> None:
    # Given a warming host in one profile's pool and another in another profile's
    store.add(warming("i-0000000000000000a"))
    store.add(warming("i-0000000000000000b", profile="other"))
    # When its agent's readiness is recorded, twice (an event delivered again)
    assert store.mark(warming("i-0000000000000000a"), PoolState.READY, T1)
    assert not store.mark(warming("i-0000000000000000a"), PoolState.READY, T1)
    # Then it is READY since then, and each profile sees only its own host
    assert store.hosts(PROFILE) == [PoolHost(PROFILE, "i-0000000000000000a", PoolState.READY, T1)]
    assert [h.instance_id for h in store.hosts("other")] == ["i-0000000000000000b"]


def test_a_host_is_recorded_once(store: PoolStore) -> None:
    store.add(warming("i-0000000000000000a"))
    with pytest.raises(ValueError, match="already recorded"):
        store.add(warming("i-0000000000000000a"))


def test_a_warming_host_cannot_be_claimed_and_a_miss_says_so(store: PoolStore) -> None:
    # Given only a host still warming
    store.add(warming("i-0000000000000000a"))
    # When a request claims, Then nothing is claimed and the host is untouched
    assert store.claim(PROFILE, "session-1", T1) is None
    assert store.hosts(PROFILE)[0].state is PoolState.WARMING


def test_a_claim_prefers_a_running_host_and_a_claimed_host_never_returns(
    store: PoolStore,
) -> None:
    # Given a stopped pool host and a running one
    for iid, state in (
        ("i-0000000000000000a", PoolState.STOPPED),
        ("i-0000000000000000b", PoolState.READY),
    ):
        store.add(warming(iid))
        assert store.mark(warming(iid), state, T0)
    # When two requests claim
    first = store.claim(PROFILE, "session-1", T1)
    second = store.claim(PROFILE, "session-2", T1)
    # Then the running one goes first, the stopped one next, and a third finds none
    assert first is not None
    assert first.instance_id == "i-0000000000000000b"
    assert second is not None
    assert second.instance_id == "i-0000000000000000a"
    assert store.claim(PROFILE, "session-3", T1) is None
    # And a claimed host cannot be made READY again
    assert not store.mark(first, PoolState.READY, T1)
    assert {h.instance_id: h.session_id for h in store.hosts(PROFILE)} == {
        "i-0000000000000000a": "session-2",
        "i-0000000000000000b": "session-1",
    }


@pytest.mark.usefixtures("serializable_moto_writes")
def test_concurrent_claims_never_get_the_same_host(store: PoolStore) -> None:
    # Given a pool of three READY hosts and eight requests at once
    ready = [f"i-000000000000000{n}" for n in range(3)]
    for iid in ready:
        store.add(warming(iid))
        assert store.mark(warming(iid), PoolState.READY, T0)
    threads = 8
    claimed: dict[str, str | None] = {}
    lock = threading.Lock()
    counter = iter(range(threads))

    def claim() -> None:
        with lock:
            session_id = f"session-{next(counter)}"
        host = store.claim(PROFILE, session_id, T1)
        with lock:
            claimed[session_id] = host.instance_id if host else None

    # When they all claim at once
    run_together(claim, threads, timeout=30)
    # Then each host went to exactly one request, and the other five missed
    won = [iid for iid in claimed.values() if iid is not None]
    assert sorted(won) == ready, claimed
    assert len(claimed) == threads
    # And each record names the session that holds it
    records = {h.instance_id: h.session_id for h in store.hosts(PROFILE)}
    assert {iid: sid for sid, iid in claimed.items() if iid} == records


def test_a_record_is_removed_only_while_in_the_state_it_was_read_in(store: PoolStore) -> None:
    store.add(warming("i-0000000000000000a"))
    assert store.mark(warming("i-0000000000000000a"), PoolState.READY, T1)
    # When a reader that saw it WARMING removes it / Then nothing is removed
    assert not store.remove(warming("i-0000000000000000a"))
    assert len(store.hosts(PROFILE)) == 1
    # When a reader that saw it READY does / Then it is gone
    assert store.remove(store.hosts(PROFILE)[0])
    assert store.hosts(PROFILE) == []


def test_the_last_target_is_kept_per_profile_apart_from_its_hosts(store: PoolStore) -> None:
    # Given a pool with a host, and no target yet
    store.add(warming("i-0000000000000000a"))
    assert store.last_target(PROFILE) is None
    # When two refills record their targets
    store.record_target(PROFILE, Target(5, "running", "weekdays 08:00-18:00 UTC"), T0)
    store.record_target(PROFILE, Target(1, "stopped", "base plan (UTC)"), T1)
    # Then the last one is the profile's, another profile has none
    assert store.last_target(PROFILE) == {
        "size": 1,
        "state": "stopped",
        "reason": "base plan (UTC)",
    }
    assert store.last_target("cad") is None
    # And the pool's hosts are the host alone: a target is no host, and no claim can take it
    assert [h.instance_id for h in store.hosts(PROFILE)] == ["i-0000000000000000a"]
    assert store.claim(PROFILE, "session-1", T1) is None


def test_a_stopping_host_cannot_be_claimed_until_it_is_stopped(store: PoolStore) -> None:
    # Given a READY host the refill is stopping (WarmPoolState stopped)
    store.add(warming("i-0000000000000000a"))
    assert store.mark(warming("i-0000000000000000a"), PoolState.READY, T0)
    ready = store.hosts(PROFILE)[0]
    assert store.mark(ready, PoolState.STOPPING, T1)
    # When a request claims / Then it misses
    assert store.claim(PROFILE, "session-1", T1) is None
    # When it is stopped / Then a claim takes it
    assert store.mark(store.hosts(PROFILE)[0], PoolState.STOPPED, T1)
    claimed = store.claim(PROFILE, "session-1", T1)
    assert claimed is not None
    assert claimed.instance_id == "i-0000000000000000a"


def _claim_and_stop_at_once(store: PoolStore, seen: PoolHost, session_id: str) -> dict[str, bool]:
    """A request claims ``seen`` as the refill marks it STOPPING, released together; whether
    each wrote."""
    outcomes: dict[str, bool] = {}
    lock = threading.Lock()
    turn = iter(["claim", "stop"])

    def act() -> None:
        with lock:
            which = next(turn)
        if which == "claim":
            won = store.claim(PROFILE, session_id, T1) is not None
        else:
            won = store.mark(seen, PoolState.STOPPING, T1)
        with lock:
            outcomes[which] = won

    run_together(act, 2, timeout=30)
    return outcomes


@pytest.mark.usefixtures("serializable_moto_writes")
def test_of_a_claim_and_the_refill_stopping_one_host_exactly_one_wins(store: PoolStore) -> None:
    for attempt in range(20):
        # Given a READY host, read by the refill that means to stop it
        instance_id = f"i-{attempt:017x}"
        store.add(warming(instance_id))
        assert store.mark(warming(instance_id), PoolState.READY, T0)
        seen = next(h for h in store.hosts(PROFILE) if h.instance_id == instance_id)
        # When a request claims it as the refill marks it STOPPING, at once
        outcomes = _claim_and_stop_at_once(store, seen, f"session-{attempt}")
        # Then exactly one of them wrote, and the record says which
        assert sorted(outcomes.values()) == [False, True], outcomes
        final = next(h for h in store.hosts(PROFILE) if h.instance_id == instance_id)
        expected = PoolState.CLAIMED if outcomes["claim"] else PoolState.STOPPING
        assert final.state is expected


def test_each_move_adds_the_seconds_spent_in_the_state_it_leaves_to_the_record(
    store: PoolStore,
) -> None:
    # Given a host WARMING since T0
    store.add(warming("i-0000000000000000a"))
    # When it is READY a minute later, STOPPING 10 minutes after that, then STOPPED, then
    # taken back (WARMING) an hour later
    moves = [
        (PoolState.READY, T1),
        (PoolState.STOPPING, "2026-12-07T10:11:00.000Z"),
        (PoolState.STOPPED, "2026-12-07T10:11:30.000Z"),
        (PoolState.WARMING, "2026-12-07T11:11:30.000Z"),
    ]
    for state, at in moves:
        assert store.mark(store.hosts(PROFILE)[0], state, at)
    # Then the record keeps each state's seconds
    host = store.hosts(PROFILE)[0]
    assert host.accrued == {
        PoolState.WARMING: 60.0,
        PoolState.READY: 600.0,
        PoolState.STOPPING: 30.0,
        PoolState.STOPPED: 3600.0,
    }


def test_a_move_counted_from_a_stale_since_is_refused_and_counts_nothing(
    store: PoolStore,
) -> None:
    # Given a host READY since T1
    store.add(warming("i-0000000000000000a"))
    seen = store.hosts(PROFILE)[0]
    assert store.mark(seen, PoolState.READY, T1)
    # When a writer that read it WARMING at T0 moves it (its seconds would count from T0)
    stale = PoolHost(PROFILE, "i-0000000000000000a", PoolState.READY, T0)
    # Then the write is refused and the record's totals are unchanged
    assert not store.mark(stale, PoolState.STOPPING, "2026-12-07T10:05:00.000Z")
    host = store.hosts(PROFILE)[0]
    assert (host.state, host.since) == (PoolState.READY, T1)
    assert host.accrued.get(PoolState.READY, 0.0) == 0.0
