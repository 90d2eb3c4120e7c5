"""A Linux desktop's launch step takes a READY (or STOPPED) warm pool host when there is one:
one conditional claim, the launch's own tags put on it, the pool refilled at once; a miss
launches as before; of two concurrent claims one wins; a claimed host never returns to the pool."""

from __future__ import annotations

import contextlib
import importlib
import threading
from dataclasses import replace
from typing import Any

import pytest

from dcvfleet import service
from dcvfleet.adapters import (
    OS_TAG,
    OWNER_TAG,
    POOL_TAG,
    SECRET_TAG,
    SESSION_TAG,
)
from dcvfleet.errors import SessionConflictError
from dcvfleet.lifecycle import idle, user_requests
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.pool import InMemoryPoolStore, PoolHost, PoolState, WarmPool
from dcvfleet.profiles import IDLE_ACTION_KEY, IDLE_TIMEOUT_KEY, IDLE_TIMEOUT_TAG
from tests.support.concurrency import run_together
from tests.support.handlers import HANDLER_ENV
from tests.support.lifecycle import SETTINGS, Fleet
from tests.support.service import (
    ALICE,
    API,
    COMMON,
    FLEET_TAG,
    LAUNCH,
    REQUESTED,
    SECRET_ARN,
    FakeWorkflows,
)

PROFILE = "linux-workstation"
T0 = "2026-12-07T10:00:00.000Z"


class Pool:
    """A warm pool of the default Linux profile, and the refills it asked for."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.store = InMemoryPoolStore()
        self.refills = 0
        self.warm = WarmPool(self.store, self._refill)

    def _refill(self) -> None:
        self.refills += 1

    def host(
        self,
        state: PoolState = PoolState.READY,
        ec2_state: str = "running",
        *,
        profile: str = PROFILE,
        instance_type: str = REQUESTED,
        hibernate: bool = False,
    ) -> str:
        """A pool host as the refill launched it, in ``state``."""
        instance = self.fleet.hosts.launch(
            launch_template_id="lt-linux",
            instance_type=instance_type,
            subnet_id="subnet-a",
            tags={FLEET_TAG[0]: FLEET_TAG[1], POOL_TAG: profile, OS_TAG: "linux"},
            client_token=f"pool-{len(self.fleet.hosts.instances)}",
            hibernate=hibernate,
        )
        self.fleet.hosts.set(instance.instance_id, state=ec2_state)
        self.store.add(
            PoolHost(
                profile,
                instance.instance_id,
                state,
                T0,
                instance_type=instance_type,
                os="linux",
                hibernation=hibernate,
            )
        )
        return instance.instance_id

    def state(self, instance_id: str) -> PoolState | None:
        found = [h.state for h in self.store.hosts(PROFILE) if h.instance_id == instance_id]
        return found[0] if found else None


class RacingPoolStore(InMemoryPoolStore):
    """The pool's records, where ``copies`` concurrent readers all read before any goes on."""

    def __init__(self, records: InMemoryPoolStore, copies: int) -> None:
        super().__init__()
        for host in records.hosts(PROFILE):
            self.add(host)
        self._together = threading.Barrier(copies)

    def hosts(self, profile: str) -> list[PoolHost]:
        found = super().hosts(profile)
        with contextlib.suppress(threading.BrokenBarrierError):
            self._together.wait(timeout=5)
        return found

    def alone(self) -> None:
        """From now on, readers go on at once."""
        self._together.abort()


def requested(fleet: Fleet, **extra: str) -> Session:
    """A Linux desktop of the default profile, its credentials made, waiting for its host."""
    session = service.create_session(
        fleet.store,
        FakeWorkflows(),
        API,
        ALICE,
        CreateSessionRequest(backend="ec2", os="linux", instance_type=REQUESTED),
    )
    if extra:
        fleet.store.update(session, extra={**session.extra, **extra})
    service.create_credentials(fleet.store, fleet.secrets, COMMON, session.session_id)
    return fleet.store.require(session.session_id)


def launch(fleet: Fleet, pool: Pool, session_id: str) -> dict[str, str]:
    return service.launch_instance(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        LAUNCH,
        session_id,
        secret_arn=SECRET_ARN,
        warm_pool=pool.warm,
    )


def test_a_hit_takes_the_ready_pool_host_with_the_tags_a_launch_puts_and_refills() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host()
    session = requested(fleet, **{IDLE_TIMEOUT_KEY: "1800"})
    # When the launch step runs
    out = launch(fleet, pool, session.session_id)
    # Then the pool host is the desktop's host, and nothing was launched for it
    assert out["instanceId"] == host
    assert fleet.store.require(session.session_id).instance_id == host
    assert len(fleet.hosts.attempts) == 1  # the pool host's own launch only
    # And it carries exactly the tags a launch would have put (and still its pool tag)
    tags = dict(fleet.hosts.instances[host].tags)
    assert tags.pop(POOL_TAG) == PROFILE
    cold = Fleet()
    cold_session = requested(cold, **{IDLE_TIMEOUT_KEY: "1800"})
    cold_id = service.launch_instance(
        cold.store, cold.hosts, cold.secrets, LAUNCH, cold_session.session_id, secret_arn=SECRET_ARN
    )["instanceId"]
    expected = {
        **cold.hosts.instances[cold_id].tags,
        SESSION_TAG: session.session_id,
        "Name": f"dcvfleet-{session.session_id[:8]}",
    }
    assert tags == expected
    assert {SECRET_TAG, OWNER_TAG, OS_TAG, IDLE_TIMEOUT_TAG} <= set(tags)
    # And its record is CLAIMED by the session, the secret readable by it alone, a refill asked
    assert pool.state(host) is PoolState.CLAIMED
    assert fleet.secrets.readers[SECRET_ARN].endswith(f":{host}")
    assert pool.refills == 1
    # And a retried launch step keeps the same host
    assert launch(fleet, pool, session.session_id)["instanceId"] == host
    assert pool.refills == 1


def test_a_miss_launches_as_before_and_a_warming_host_is_not_taken() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    warming = pool.host(PoolState.WARMING, ec2_state="pending")
    session = requested(fleet)
    out = launch(fleet, pool, session.session_id)
    assert out["instanceId"] != warming
    assert fleet.hosts.instances[out["instanceId"]].tags[SESSION_TAG] == session.session_id
    assert pool.state(warming) is PoolState.WARMING
    assert pool.refills == 0


def test_a_desktop_takes_only_a_host_of_its_own_profile_launched_as_its_own_launch_would_be() -> (
    None
):
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host()
    # another profile's host, of the very same type and OS
    cad = pool.host(profile="cad")
    # a desktop that hibernates: hibernation can be enabled only at launch
    hibernating = requested(fleet, **{IDLE_ACTION_KEY: "hibernate"})
    assert launch(fleet, pool, hibernating.session_id)["instanceId"] not in (host, cad)
    # a desktop of another instance type than the host's
    other = Fleet(hosts=fleet.hosts)
    pool.store.remove(next(h for h in pool.store.hosts(PROFILE) if h.instance_id == host))
    odd = pool.host(instance_type="g6.xlarge")
    assert launch(other, pool, requested(other).session_id)["instanceId"] not in (odd, cad)
    assert pool.state(odd) is PoolState.READY
    assert [h.state for h in pool.store.hosts("cad")] == [PoolState.READY]
    assert pool.refills == 0


def test_a_desktop_that_hibernates_takes_a_host_launched_for_hibernation() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    plain = pool.host()
    ready = pool.host(hibernate=True)
    hibernating = requested(fleet, **{IDLE_ACTION_KEY: "hibernate"})
    assert launch(fleet, pool, hibernating.session_id)["instanceId"] == ready
    assert fleet.hosts.instances[ready].hibernation_configured
    # and a desktop that does not hibernate takes the other
    other = Fleet(hosts=fleet.hosts)
    assert launch(other, pool, requested(other).session_id)["instanceId"] == plain


def test_a_stopped_pool_host_is_started_by_its_claim() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host(PoolState.STOPPED, ec2_state="stopped")
    session = requested(fleet)
    assert launch(fleet, pool, session.session_id)["instanceId"] == host
    assert fleet.hosts.starts == [host]
    assert fleet.hosts.instances[host].state == "pending"


def test_two_concurrent_claims_never_get_the_same_host() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host()
    # every claim reads the pool (the host READY) before any of them writes
    racing = RacingPoolStore(pool.store, copies=4)
    pool.store = racing
    pool.warm = replace(pool.warm, store=racing)
    # four desktops launched at the same moment (each its own records: alice may have one)
    waiting = [Fleet(hosts=fleet.hosts) for _ in range(4)]
    for each in waiting:
        requested(each)
    results: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        with lock:
            f = waiting.pop()
        [session] = f.store.list_by_owner(ALICE.sub)
        out = launch(f, pool, session.session_id)["instanceId"]
        with lock:
            results.append(out)

    run_together(take, copies=4, timeout=30)
    racing.alone()
    # Then exactly one got the pool host, the others a host launched for them
    assert len(results) == 4
    assert results.count(host) == 1
    assert len(set(results)) == 4
    assert pool.refills == 1


def test_a_claimed_host_whose_desktop_was_cancelled_is_terminated_never_pooled_again() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host()
    session = requested(fleet)
    sid = session.session_id

    class CancelDuringClaim(WarmPool):
        def take(self, session_id: str, at: str, **launched_as: Any) -> PoolHost | None:
            taken = super().take(session_id, at, **launched_as)
            user_requests.request_stop(
                fleet.store, fleet.workflows, SETTINGS, ALICE, sid, action="terminate"
            )
            return taken

    pool.warm = CancelDuringClaim(pool.store, pool._refill)
    with pytest.raises(SessionConflictError, match="not provisioning"):
        launch(fleet, pool, sid)
    # Then the claimed host is terminated, its record stays CLAIMED: no request gets it again
    assert host in fleet.hosts.terminated
    assert pool.state(host) is PoolState.CLAIMED
    assert pool.store.claim(PROFILE, "s-2", T0) is None
    name = fleet.store.require(sid).idle_check
    assert name is not None
    fleet.act(sid, name, trigger="user", requested_action="terminate", reason="requested")
    fleet.hosts.settle()
    assert idle.confirm(fleet.store, fleet.hosts, sid) == {"done": True}
    assert fleet.store.require(sid).status == Status.TERMINATED


def test_the_launch_step_asks_the_pool_even_at_warm_pool_size_0_as_a_profile_plan_may_fill_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in HANDLER_ENV.items():
        monkeypatch.setenv(name, value)
    provision = importlib.import_module("dcvfleet.handlers.provision")
    monkeypatch.delenv("POOL_TABLE", raising=False)
    assert provision.warm_pool() is None  # a stack without a pool table
    monkeypatch.setenv("POOL_TABLE", "pool")
    monkeypatch.setenv("LINUX_INSTANCE_TYPE", "g5.xlarge")
    monkeypatch.setenv("REFILL_POOL_FUNCTION", "stack-RefillPoolFunction")
    monkeypatch.setenv("WARM_POOL_SIZE", "0")  # the profile's own pool plan may still keep hosts
    warm = provision.warm_pool()
    assert warm is not None


def test_a_pool_host_gets_its_session_tag_only_once_the_record_names_it_and_its_secret_is_readable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session tag is what a waiting agent binds to, at once: tagged sooner, its Host Ready
    would be refused (the record would not name its host yet) and its secret unreadable."""
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host()
    session = requested(fleet)
    seen: list[tuple[str | None, str | None]] = []
    tag = fleet.hosts.tag

    def tag_and_look(instance_id: str, tags: dict[str, str]) -> None:
        if SESSION_TAG in tags:
            seen.append(
                (
                    fleet.store.require(session.session_id).instance_id,
                    fleet.secrets.readers.get(SECRET_ARN),
                )
            )
        tag(instance_id, tags)

    monkeypatch.setattr(fleet.hosts, "tag", tag_and_look)
    assert launch(fleet, pool, session.session_id)["instanceId"] == host
    assert len(seen) == 1
    named, reader = seen[0]
    assert named == host
    assert reader is not None
    assert reader.endswith(f":{host}")


def test_a_retried_launch_starts_a_handed_over_pool_host_that_was_not_started() -> None:
    fleet = Fleet()
    pool = Pool(fleet)
    host = pool.host(PoolState.STOPPED, ec2_state="stopped")
    session = requested(fleet)
    # the first attempt tagged the host, and stopped before it started it
    fleet.hosts.instances[host].tags[SESSION_TAG] = session.session_id
    assert launch(fleet, pool, session.session_id)["instanceId"] == host
    assert fleet.hosts.starts == [host]
