"""Every administrator's action is recorded (who, what, when, on what) and GET /admin/audit lists
them newest first, page by page: on the in-memory log, on DynamoDB (moto, the sessions table as
template.yaml declares it) and through the API handler."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from moto import mock_aws

from dcvfleet import audit, aws
from dcvfleet.errors import InvalidRequestError
from dcvfleet.model import Status
from dcvfleet.store import DynamoSessionStore, InMemorySessionStore
from tests.support.handlers import HANDLER_ENV, admin_request
from tests.support.lifecycle import LifecycleWorkflows
from tests.support.sessions import a_session
from tests.support.tables import create_sessions_table

SID = "0b6f3c2e-9d41-4a57-8c1e-2f5a7b9d0e13"


@pytest.fixture(params=["in-memory", "dynamodb"])
def log(request: pytest.FixtureRequest) -> Iterator[audit.AuditLog]:
    if request.param == "in-memory":
        yield audit.InMemoryAuditLog()
        return
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        create_sessions_table(dynamodb, "sessions")
        yield audit.dynamo_log(dynamodb, "sessions")


def test_entries_come_newest_first_across_pages(
    log: audit.AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (one entry a second: two actions in one millisecond have no order to keep)
    seconds = iter(range(60))
    monkeypatch.setattr(audit, "now_iso", lambda: f"2026-12-07T07:00:{next(seconds):02d}.000Z")
    made = [
        audit.record(log, "boss", action, f"t-{n}", "why" if n % 2 else None)
        for n, action in enumerate(audit.ACTIONS * 2)
    ]
    for limit in (1, 3, 10, 50):
        seen, after = [], None
        while True:
            found, after = log.page(limit=limit, after=after)
            assert len(found) <= limit
            seen += found
            if after is None:
                break
        assert [e.target for e in seen] == [e.target for e in reversed(made)], limit
    first = log.page(limit=1, after=None)[0][0]
    assert first.to_api() == {
        "at": made[-1].at,
        "actor": "boss",
        "action": audit.ACTIONS[-1],
        "target": f"t-{len(made) - 1}",
        **({"detail": "why"} if (len(made) - 1) % 2 else {}),
    }


def test_a_record_is_refused_for_an_unknown_action(log: audit.AuditLog) -> None:
    with pytest.raises(ValueError, match="action: 'reboot' is not one of stop, terminate"):
        audit.record(log, "boss", "reboot", SID)
    assert log.page(limit=10, after=None) == ([], None)


@pytest.mark.parametrize("cursor", ["nope", '{"pk": "s-1", "createdAt": "2026"}'])
def test_a_cursor_that_is_not_an_audit_one_is_refused(log: audit.AuditLog, cursor: str) -> None:
    with pytest.raises(InvalidRequestError, match="nextToken"):
        log.page(limit=1, after=cursor)


def test_audit_entries_never_show_in_the_session_listings() -> None:
    with mock_aws():
        dynamodb = aws.client("dynamodb")
        create_sessions_table(dynamodb, "sessions")
        store = DynamoSessionStore(dynamodb, "sessions")
        store.create(a_session(SID, owner="alice"), max_active=5)
        audit.record(audit.dynamo_log(dynamodb, "sessions"), "boss", "stop", SID)
        assert [
            s.session_id for s in store.page(status=None, user=None, limit=10, after=None)[0]
        ] == [SID]
        assert [s.session_id for s in store.scan_by_status(frozenset(Status))] == [SID]


# -- through the API handler ------------------------------------------------------------------------
@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for key, value in HANDLER_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sys.modules.pop("dcvfleet.handlers.api", None)
    yield importlib.import_module("dcvfleet.handlers.api")
    sys.modules.pop("dcvfleet.handlers.api", None)


def test_an_admins_stop_and_delete_are_recorded_and_listed_newest_first(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given demo's READY desktop and an administrator, boss
    store, log = InMemorySessionStore(), audit.InMemoryAuditLog()
    session = a_session(SID, owner="sub-demo", extra={"username": "demo"})
    store.create(session, max_active=5)
    monkeypatch.setattr(api, "session_store", lambda: store)
    monkeypatch.setattr(api, "_audit_log", lambda: log)
    monkeypatch.setattr(api, "Workflows", lambda _client: LifecycleWorkflows())
    # When boss stops it, and then (as if it had stopped) deletes it
    assert admin_request(api, "POST", f"/admin/sessions/{SID}/stop")[0] == 202
    stopped = store.require(SID)
    store.update(stopped, status=Status.STOPPED)
    assert admin_request(api, "DELETE", f"/admin/sessions/{SID}")[0] == 202
    # And a refused call is not an action
    assert admin_request(api, "DELETE", f"/admin/sessions/{SID}")[0] == 409
    # Then the audit trail lists both, newest first, naming boss and the desktop
    status, page = admin_request(api, "GET", "/admin/audit", query={"limit": "1"})
    assert status == 200, page
    assert [(i["actor"], i["action"], i["target"]) for i in page["items"]] == [
        ("boss", "terminate", SID)
    ]
    assert page["items"][0]["detail"] == "desktop of demo"
    _, rest = admin_request(api, "GET", "/admin/audit", query={"nextToken": page["nextToken"]})
    assert [(i["action"], i["target"]) for i in rest["items"]] == [("stop", SID)]
    assert "nextToken" not in rest
    # And only administrators may read it, and a bad token is a 400
    assert admin_request(api, "GET", "/admin/audit", admin=False)[0] == 403
    assert admin_request(api, "GET", "/admin/audit", query={"nextToken": "garbage"})[0] == 400


def test_a_lost_audit_record_does_not_undo_the_action_and_is_logged(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemorySessionStore()
    store.create(a_session(SID, owner="sub-demo"), max_active=5)

    class Broken(audit.InMemoryAuditLog):
        def append(self, entry: audit.AuditEntry) -> None:
            raise RuntimeError("table unavailable (test)")

    monkeypatch.setattr(api, "session_store", lambda: store)
    monkeypatch.setattr(api, "_audit_log", Broken)
    monkeypatch.setattr(api, "Workflows", lambda _client: LifecycleWorkflows())
    assert admin_request(api, "POST", f"/admin/sessions/{SID}/stop")[0] == 202
    assert store.require(SID).status == Status.STOPPING
    assert "audit record lost" in caplog.text
