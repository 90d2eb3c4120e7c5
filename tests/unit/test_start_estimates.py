"""A starting desktop tells how it starts (a ready pool host, a stopped one, a new instance, its
own stopped instance, a container) and, from the profile's recent desktops that started the same
way, how long that usually takes: the median and the 90th percentile; no figure from fewer than
three."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dcvfleet import estimates, service
from dcvfleet.lifecycle import user_requests
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.pool import InMemoryPoolStore, PoolHost, PoolState, WarmPool
from dcvfleet.profiles import PROFILE_KEY
from dcvfleet.store import DynamoSessionStore, InMemorySessionStore, SessionStore
from tests.support.lifecycle import SETTINGS, Fleet
from tests.support.service import ALICE, API, LAUNCH, REQUESTED, SECRET_ARN, FakeWorkflows
from tests.support.tables import create_sessions_table

PROFILE = "linux-workstation"
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def started_before(
    store: SessionStore,
    index: int,
    *,
    path: str,
    seconds: float,
    profile: str = PROFILE,
    resumed_after: float | None = None,
) -> Session:
    """A desktop made ``index`` minutes after T0 that started along ``path`` in ``seconds``
    (from its request, or from a resume ``resumed_after`` seconds after its request)."""
    created = T0 + timedelta(minutes=index)
    start = created + timedelta(seconds=resumed_after or 0)
    session = Session(
        session_id=f"earlier-{profile}-{path}-{index}",
        owner=f"sub-{index}",
        backend="ec2",
        os="linux",
        instance_type=REQUESTED,
        status=Status.STOPPED,
        created_at=iso(created),
        updated_at=iso(created),
        ready_at=iso(start + timedelta(seconds=seconds)),
        resumed_at=iso(start) if resumed_after else None,
        extra={PROFILE_KEY: profile, estimates.PATH_KEY: path},
    )
    store.create(session, max_active=99)
    return session


def test_the_estimate_is_the_median_and_the_90th_percentile_of_enough_recent_starts() -> None:
    assert estimates.from_durations("launch", [100.0, 50.0]) is None
    estimate = estimates.from_durations("launch", [100.0, 50.0, 70.0, -3.0, 400.0])
    assert estimate == estimates.Estimate("launch", seconds=85, up_to_seconds=400, samples=4)
    # only the newest MAX_SAMPLES count
    newest = [10.0] * estimates.MAX_SAMPLES + [1000.0] * 5
    assert estimates.from_durations("pool", newest) == estimates.Estimate("pool", 10, 10, 20)


def test_the_view_shows_the_path_alone_until_there_are_figures() -> None:
    assert estimates.view({}) is None
    assert estimates.view({estimates.PATH_KEY: "teleport"}) is None
    assert estimates.view({estimates.PATH_KEY: "launch"}) == {"path": "launch"}
    extra = estimates.Estimate("pool", 4, 6, 12).extra()
    assert estimates.view(extra) == {"path": "pool", "seconds": 4, "upToSeconds": 6, "samples": 12}


def test_a_resume_counts_from_the_resume_and_an_unfinished_start_not_at_all() -> None:
    assert estimates.start_duration("2026-12-07T09:00:00Z", None, "2026-12-07T09:01:30Z") == 90
    resumed = estimates.start_duration(
        "2026-12-07T09:00:00Z", "2026-12-07T12:00:00Z", "2026-12-07T12:00:40Z"
    )
    assert resumed == 40
    # resumed after its last READY: this start has not finished
    assert (
        estimates.start_duration(
            "2026-12-07T09:00:00Z", "2026-12-07T12:00:00Z", "2026-12-07T09:02Z"
        )
        is None
    )
    assert estimates.start_duration("2026-12-07T09:00:00Z", None, None) is None


def requested(fleet: Fleet) -> Session:
    return service.create_session(
        fleet.store,
        FakeWorkflows(),
        API,
        ALICE,
        CreateSessionRequest(
            backend="ec2", os="linux", instance_type=REQUESTED, profile={PROFILE_KEY: PROFILE}
        ),
    )


def launch(fleet: Fleet, session: Session, warm: WarmPool | None = None) -> dict[str, object]:
    service.launch_instance(
        fleet.store,
        fleet.hosts,
        fleet.secrets,
        LAUNCH,
        session.session_id,
        secret_arn=SECRET_ARN,
        warm_pool=warm,
    )
    view = fleet.store.require(session.session_id).to_api()
    assert view["status"] == "PROVISIONING"
    estimate = view.get("estimate")
    assert isinstance(estimate, dict)
    return estimate


def test_a_new_instance_is_estimated_from_the_profiles_recent_launches_only() -> None:
    fleet = Fleet()
    for index, seconds in enumerate([80, 100, 120, 300]):
        started_before(fleet.store, index, path="launch", seconds=seconds)
    # neither another path nor another profile counts
    started_before(fleet.store, 10, path="pool", seconds=3)
    started_before(fleet.store, 11, path="launch", seconds=5, profile="linux-session")
    session = requested(fleet)
    assert "estimate" not in fleet.store.require(session.session_id).to_api()
    assert launch(fleet, session) == {
        "path": "launch",
        "seconds": 110,
        "upToSeconds": 300,
        "samples": 4,
    }


def test_a_pool_hit_says_so_and_a_first_desktop_gets_no_invented_figure() -> None:
    fleet = Fleet()
    records = InMemoryPoolStore()
    host = fleet.hosts.launch(
        launch_template_id="lt-linux",
        instance_type=REQUESTED,
        subnet_id="subnet-a",
        tags={"dcvfleet:pool": PROFILE},
        client_token="pool-0",
    )
    fleet.hosts.set(host.instance_id, state="running")
    records.add(
        PoolHost(
            PROFILE,
            host.instance_id,
            PoolState.READY,
            iso(T0),
            instance_type=REQUESTED,
            os="linux",
        )
    )
    warm = WarmPool(records, lambda: None)
    assert launch(fleet, requested(fleet), warm) == {"path": "pool"}


def test_a_new_start_replaces_an_earlier_starts_estimate_and_keeps_a_rename() -> None:
    fleet = Fleet()
    session = requested(fleet)
    stale = {**session.extra, **estimates.Estimate("batch", 9, 9, 9).extra(), "name": "Mine"}
    fleet.store.update(session, extra=stale)
    assert launch(fleet, session) == {"path": "launch"}
    assert fleet.store.require(session.session_id).extra["name"] == "Mine"


def test_a_ready_desktop_shows_no_estimate() -> None:
    session = Session(
        session_id="s",
        owner="o",
        backend="ec2",
        os="linux",
        instance_type=REQUESTED,
        status=Status.READY,
        created_at=iso(T0),
        updated_at=iso(T0),
        extra=estimates.Estimate("pool", 4, 6, 12).extra(),
    )
    assert "estimate" not in session.to_api()
    assert replace(session, status=Status.PROVISIONING).to_api()["estimate"]["seconds"] == 4


@pytest.mark.parametrize("kind", ["dynamodb", "memory"])
def test_both_stores_read_the_newest_matching_starts(kind: str) -> None:
    with mock_aws():
        if kind == "dynamodb":
            db = boto3.client("dynamodb", region_name="us-east-1")
            create_sessions_table(db, "sessions")
            store: SessionStore = DynamoSessionStore(db, "sessions")
        else:
            store = InMemorySessionStore()
        for index in range(5):
            started_before(store, index, path="launch", seconds=60 + index)
        started_before(store, 9, path="resume", seconds=20, resumed_after=3600)
        found = store.recent_starts(PROFILE, "launch", 3)
        assert [s.session_id for s in found] == [f"earlier-{PROFILE}-launch-{i}" for i in (4, 3, 2)]
        assert [s.session_id for s in store.recent_starts(PROFILE, "resume", 3)] == [
            f"earlier-{PROFILE}-resume-9"
        ]
        assert store.recent_starts("linux-session", "launch", 3) == []


def test_a_failed_read_of_recent_starts_costs_the_estimate_not_the_desktop() -> None:
    class Throttled:
        def recent_starts(self, profile: str, path: str, limit: int) -> list[Session]:
            error = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}
            raise ClientError(error, "Query")  # type: ignore[arg-type]

    record = estimates.recorder(Throttled(), {PROFILE_KEY: PROFILE}, "launch")
    assert record({"name": "Mine"}) == {"name": "Mine", estimates.PATH_KEY: "launch"}


def test_a_resume_shows_no_estimate_until_its_own_path_is_known() -> None:
    fleet = Fleet()
    session = requested(fleet)
    launch(fleet, session)  # path "launch"
    ready = fleet.store.require(session.session_id)
    stopped = fleet.store.update(
        fleet.store.update(ready, status=Status.READY, ready_at=iso(T0)),
        status=Status.STOPPING,
    )
    fleet.store.update(stopped, status=Status.STOPPED)
    # When its owner starts it again
    user_requests.resume(fleet.store, FakeWorkflows(), SETTINGS, ALICE, session.session_id)
    # Then, while it starts, the last start's path is not shown as this one's
    view = fleet.store.require(session.session_id).to_api()
    assert view["status"] == "PROVISIONING"
    assert "estimate" not in view
