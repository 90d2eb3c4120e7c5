"""At the active-desktop limit, POST /sessions (and a start of a stopped desktop) answers 409
naming the desktops that hold the slots, the limit, and what to do."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from dcvfleet import limits
from dcvfleet.model import Status
from dcvfleet.profiles import InMemoryProfileRecords, Profiles
from dcvfleet.store import InMemorySessionStore
from tests.support.handlers import HANDLER_ENV
from tests.support.sessions import a_session

OWNER = "u-1"


def _store(*desktops: tuple[str, Status, dict[str, str]]) -> InMemorySessionStore:
    store = InMemorySessionStore()
    for session_id, status, fields in desktops:
        created = f"2026-12-0{len(store.list_by_owner(OWNER)) + 1}T10:00:00.000Z"
        session = a_session(session_id, owner=OWNER, status=status, created_at=created)
        session.extra.update(fields)
        store.create(session, max_active=10)
    return store


def test_the_answer_names_the_one_active_desktop_in_the_contracts_words() -> None:
    store = _store(("s-1", Status.READY, {"name": "Linux workstation"}))
    answer = limits.limit_answer(store, OWNER, 1)
    assert answer == {
        "message": 'You already have 1 active desktop, the most allowed: "Linux workstation". '
        "Open it, or stop or delete it first.",
        "limit": 1,
        "active": [{"sessionId": "s-1", "name": "Linux workstation", "status": "READY"}],
    }


def test_the_answer_lists_only_active_desktops_and_names_unnamed_ones_plainly() -> None:
    store = _store(
        ("s-1", Status.PROVISIONING, {}),
        ("s-2", Status.TERMINATED, {"name": "Old one"}),
        ("s-3", Status.STOPPED, {"name": "Kept"}),
        ("s-4", Status.STOPPING, {"name": "Render box"}),
    )
    answer = limits.limit_answer(store, OWNER, 2)
    assert [d["sessionId"] for d in answer["active"]] == ["s-4", "s-1"]
    assert answer["message"] == (
        'You already have 2 active desktops, the most allowed: "Render box", "Linux desktop". '
        "Open one of them, or stop or delete one first."
    )


def test_when_the_desktop_ended_meanwhile_the_answer_says_try_again() -> None:
    answer = limits.limit_answer(_store(), OWNER, 1)
    assert answer["active"] == []
    assert answer["message"] == (
        "You already have the most allowed (1 active desktop). Try again in a moment."
    )


# -- through the API handler ------------------------------------------------------------------------
@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for key, value in {**HANDLER_ENV, "MAX_ACTIVE_SESSIONS_PER_USER": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sys.modules.pop("dcvfleet.handlers.api", None)
    yield importlib.import_module("dcvfleet.handlers.api")
    sys.modules.pop("dcvfleet.handlers.api", None)


def _post_sessions(api: ModuleType) -> Any:
    event = {
        "resource": "/sessions",
        "path": "/sessions",
        "httpMethod": "POST",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "body": '{"backend": "ec2", "os": "linux"}',
        "isBase64Encoded": False,
        "requestContext": {
            "stage": "v1",
            "requestId": "r-1",
            "resourcePath": "/sessions",
            "httpMethod": "POST",
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": {"claims": {"sub": OWNER, "cognito:username": "alice"}},
        },
    }
    return api.app.resolve(event, None)


def test_post_sessions_at_the_limit_is_a_409_with_the_limit_and_the_active_desktops(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given alice's one active desktop, at a limit of one
    store = _store(("s-1", Status.READY, {"name": "Linux workstation"}))
    monkeypatch.setattr(api, "session_store", lambda: store)
    # and the template's default profiles, with no admin-defined ones
    monkeypatch.setattr(
        api, "_profiles", lambda: Profiles(api._template_profiles(), InMemoryProfileRecords())
    )
    assert api.SETTINGS.max_active_sessions == 1
    # When she asks for another
    answer = _post_sessions(api)
    # Then the answer is a 409 the OpenAPI document describes, naming her desktop
    assert answer["statusCode"] == 409, answer
    body = json.loads(answer["body"])
    assert body["limit"] == 1
    assert body["active"] == [{"sessionId": "s-1", "name": "Linux workstation", "status": "READY"}]
    assert body["message"].startswith("You already have 1 active desktop")
    api.StatusConflict.model_validate(body)
    assert [s.session_id for s in store.list_by_owner(OWNER)] == ["s-1"]  # nothing made
