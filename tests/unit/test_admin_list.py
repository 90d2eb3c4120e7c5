"""GET /admin/sessions is newest first by creation time, from a Query of the sessions table's
creation-time index (never a Scan): across pages, with the status and user filters, on the
in-memory store and on DynamoDB (moto, the table as template.yaml declares it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from dcvfleet import aws
from dcvfleet.errors import InvalidRequestError
from dcvfleet.model import Session, Status
from dcvfleet.store import DynamoSessionStore, InMemorySessionStore, SessionStore, counter_key
from tests.support.sessions import a_session
from tests.support.tables import create_sessions_table, table_properties

TABLE_NAME = "dcvfleet-sessions"


class CountingDynamoDB:
    """The DynamoDB client, counting each operation the store calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._client, name)


@pytest.fixture(params=["in-memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[SessionStore]:
    if request.param == "in-memory":
        yield InMemorySessionStore()
        return
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        create_sessions_table(dynamodb, TABLE_NAME)
        yield DynamoSessionStore(CountingDynamoDB(dynamodb), TABLE_NAME)


def _fleet(store: SessionStore, count: int = 7) -> list[Session]:
    """``count`` desktops of three users, made one a minute, created in a shuffled order (so an
    order by id or by insertion is not the order by time); newest first."""
    made = []
    for minute in (3, 0, 6, 1, 5, 2, 4)[:count]:
        owner = ("alice", "bob", "carol")[minute % 3]
        session = a_session(
            f"{(minute * 7919) % 1000:04d}-{minute}",  # ids in no particular order
            owner=owner,
            status=(Status.READY, Status.TERMINATED, Status.FAILED)[minute % 2],
            created_at=f"2026-12-07T06:{minute:02d}:00.000Z",
            extra={"username": owner},
        )
        store.create(session, max_active=100)
        made.append(session)
    return sorted(made, key=lambda s: s.created_at, reverse=True)


def _all_pages(
    store: SessionStore, limit: int, **filters: Any
) -> tuple[list[list[str]], list[str | None]]:
    pages, cursors, after = [], [], None
    while True:
        found, after = store.page(
            limit=limit, after=after, **{"status": None, "user": None, **filters}
        )
        pages.append([s.session_id for s in found])
        cursors.append(after)
        if after is None:
            return pages, cursors
        assert len(pages) < 20, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_every_session_comes_once_newest_first_across_pages(
    store: SessionStore, limit: int
) -> None:
    newest_first = [s.session_id for s in _fleet(store)]
    store.record_notification_address("alice", "alice@example.com", "arn:sub")  # not a session
    pages, _ = _all_pages(store, limit)
    assert [sid for page in pages for sid in page] == newest_first
    assert all(len(page) <= limit for page in pages)


def test_the_filters_keep_the_order_across_pages(store: SessionStore) -> None:
    every = _fleet(store)
    pages, _ = _all_pages(store, 2, status=Status.READY)
    assert [sid for page in pages for sid in page] == [
        s.session_id for s in every if s.status == Status.READY
    ]
    for user in ("bob", "sub-nobody"):
        pages, _ = _all_pages(store, 1, user=user)
        assert [sid for page in pages for sid in page] == [
            s.session_id for s in every if s.owner == user
        ]


def test_a_session_written_after_it_was_made_keeps_its_place(store: SessionStore) -> None:
    every = _fleet(store)
    oldest = store.require(every[-1].session_id)
    store.update(oldest, status_reason="written again")
    pages, _ = _all_pages(store, 3)
    assert [sid for page in pages for sid in page] == [s.session_id for s in every]


@pytest.mark.parametrize(
    "cursor",
    ["not json", "[]", '{"pk": "s-1"}', '{"pk": "s-1", "createdAt": 5}', '{"pk": "", "createdAt": "t"}',
     '{"pk": "s", "createdAt": "t", "owner": "x"}'],
)  # fmt: skip
def test_a_cursor_the_store_did_not_make_is_refused(store: SessionStore, cursor: str) -> None:
    _fleet(store, 2)
    with pytest.raises(InvalidRequestError, match="nextToken: not a token this API gave"):
        store.page(status=None, user=None, limit=1, after=cursor)


def test_dynamodb_pages_with_a_query_of_the_creation_time_index_never_a_scan() -> None:
    with mock_aws():
        client = CountingDynamoDB(aws.client("dynamodb"))
        create_sessions_table(client, TABLE_NAME)
        store = DynamoSessionStore(client, TABLE_NAME)
        _fleet(store)
        client.calls.clear()
        _all_pages(store, 3)
        assert set(client.calls) == {"query"}, client.calls
        # And the counter items are not in the index (it is sparse: sessions only)
        assert store.active_count("alice") >= 1
        items = client.query(
            TableName=TABLE_NAME,
            IndexName="byCreatedAt",
            KeyConditionExpression="listed = :s",
            ExpressionAttributeValues={":s": {"S": "session"}},
        )["Items"]
        assert counter_key("alice") not in {i["pk"]["S"] for i in items}
        assert len(items) == 7


def test_the_template_declares_the_index_the_store_queries() -> None:
    indexes = {i["IndexName"]: i for i in table_properties()["GlobalSecondaryIndexes"]}
    assert indexes["byCreatedAt"]["KeySchema"] == [
        {"AttributeName": "listed", "KeyType": "HASH"},
        {"AttributeName": "createdAt", "KeyType": "RANGE"},
    ]
    assert indexes["byCreatedAt"]["Projection"] == {"ProjectionType": "ALL"}


def test_desktops_made_before_the_index_join_it_with_the_upgrade_tool() -> None:
    from tools import index_sessions

    with mock_aws():
        client = aws.client("dynamodb")
        create_sessions_table(client, TABLE_NAME)
        store = DynamoSessionStore(client, TABLE_NAME)
        every = _fleet(store, 3)
        # Given two desktops written by the release before the index (no "listed" on them)
        for session in every[1:]:
            client.update_item(
                TableName=TABLE_NAME,
                Key={"pk": {"S": session.session_id}},
                UpdateExpression="REMOVE listed",
            )
        version = store.require(every[1].session_id).version
        assert [
            s.session_id for s in store.page(status=None, user=None, limit=10, after=None)[0]
        ] == [every[0].session_id]
        # When the operator runs the upgrade tool (twice: it is safe to run again)
        assert index_sessions.main(["--table", TABLE_NAME, "--region", "us-east-1"]) == 0
        assert store.index_earlier_sessions() == 0
        # Then every desktop is listed, newest first, and none was versioned by it
        listed = store.page(status=None, user=None, limit=10, after=None)[0]
        assert [s.session_id for s in listed] == [s.session_id for s in every]
        assert store.require(every[1].session_id).version == version
