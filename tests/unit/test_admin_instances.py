"""GET /admin/instances names each desktop's owner (ownerName, looked up from the session
records) and lists, for each Batch instance, the desktops whose containers run on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from dcvfleet import aws, service
from dcvfleet.adapters import BATCH_INSTANCE_TAG, Instance
from dcvfleet.model import Status
from dcvfleet.store import DynamoSessionStore, InMemorySessionStore, SessionStore
from tests.support.service import COMMON, FLEET_TAG, FakeHosts
from tests.support.sessions import a_session
from tests.support.tables import create_sessions_table


class PagedHosts(FakeHosts):
    """DescribeInstances of the fleet: every instance, one page."""

    def fleet_page(
        self, filters: dict[str, list[str]], limit: int, token: str | None
    ) -> tuple[list[Instance], str | None]:
        return list(self.instances.values()), None


@pytest.fixture(params=["in-memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[SessionStore]:
    if request.param == "in-memory":
        yield InMemorySessionStore()
        return
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        create_sessions_table(dynamodb, "sessions")
        yield DynamoSessionStore(dynamodb, "sessions")


def _desktop(store: SessionStore, session_id: str, owner: str, **fields: Any) -> None:
    extra = {"username": owner} if owner != "nameless" else {}
    extra.update(fields.pop("extra", {}))
    session = a_session(session_id, owner=f"sub-{owner}", extra=extra, **fields)
    store.create(session, max_active=10)


def test_instances_carry_their_owners_name_and_batch_instances_their_desktops(
    store: SessionStore,
) -> None:
    hosts = PagedHosts()
    fleet_tags = {FLEET_TAG[0]: FLEET_TAG[1]}
    # Given alice's ec2 desktop on its own instance
    own = hosts.add(session_id="s-ec2", **fleet_tags, **{"dcvfleet:owner": "sub-alice"})
    _desktop(store, "s-ec2", "alice", instance_id=own.instance_id)
    # And a Batch instance running two desktops' containers (bob's, and one of a user known only
    # by e-mail), where a third one ran and ended, and another Batch instance running none
    shared = hosts.add(session_id="", **fleet_tags, **{BATCH_INSTANCE_TAG: "desktops-ce"})
    idle = hosts.add(session_id="", **fleet_tags, **{BATCH_INSTANCE_TAG: "desktops-ce"})
    on_shared = {"backend": "batch", "instance_id": shared.instance_id}
    _desktop(store, "s-b1", "bob", created_at="2026-12-07T06:01:00.000Z", extra={"name": "Render"},
             **on_shared)  # fmt: skip
    _desktop(store, "s-b2", "nameless", status=Status.PROVISIONING,
             created_at="2026-12-07T06:02:00.000Z", owner_email="carol@example.com", **on_shared)  # fmt: skip
    _desktop(store, "s-b3", "dave", status=Status.TERMINATED, **on_shared)
    # When an administrator lists the fleet's instances
    page = service.fleet_instances(
        hosts, COMMON, state=None, owner=None, limit=100, token=None, store=store
    )
    views = {v["instanceId"]: v for v in page["instances"]}
    # Then the ec2 instance names its owner
    assert views[own.instance_id]["ownerName"] == "alice"
    assert "desktops" not in views[own.instance_id]
    # And the Batch instance lists the desktops running on it, newest first, with their owners
    assert views[shared.instance_id]["desktops"] == [
        {
            "sessionId": "s-b2",
            "name": "Linux session",
            "owner": "sub-nameless",
            "ownerName": "carol@example.com",
            "status": "PROVISIONING",
        },
        {
            "sessionId": "s-b1",
            "name": "Render",
            "owner": "sub-bob",
            "ownerName": "bob",
            "status": "READY",
        },
    ]
    assert views[idle.instance_id]["desktops"] == []


def test_without_the_records_the_page_is_as_before() -> None:
    hosts = PagedHosts()
    hosts.add(session_id="s-1", **{FLEET_TAG[0]: FLEET_TAG[1]})
    page = service.fleet_instances(hosts, COMMON, state=None, owner=None, limit=5, token=None)
    assert "ownerName" not in page["instances"][0]


def test_get_many_reads_more_than_one_batch_get_holds(store: SessionStore) -> None:
    for n in range(130):
        _desktop(store, f"s-{n:03d}", f"user{n}")
    found = store.get_many([f"s-{n:03d}" for n in range(130)] + ["missing", "user#sub-user1"])
    assert sorted(found) == [f"s-{n:03d}" for n in range(130)]
