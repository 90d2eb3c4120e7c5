"""An ec2 desktop's credentials are made by its LaunchInstance step, before its host: once, as
when they were a workflow step of their own, even when Step Functions retries the step (its
Retry on Lambda's service errors runs the whole invocation again)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from dcvfleet import service
from dcvfleet.model import CreateSessionRequest
from dcvfleet.store import InMemorySessionStore
from tests.support.handlers import HANDLER_ENV
from tests.support.service import ALICE, API, REQUESTED, FakeSecrets, FakeWorkflows


@pytest.fixture
def provision(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for name, value in HANDLER_ENV.items():
        monkeypatch.setenv(name, value)
    return importlib.import_module("dcvfleet.handlers.provision")


def test_the_launch_makes_the_credentials_once_and_a_retry_reuses_them(
    provision: ModuleType,
) -> None:
    store, secrets = InMemorySessionStore(), FakeSecrets()
    session = service.create_session(
        store,
        FakeWorkflows(),
        API,
        ALICE,
        CreateSessionRequest(backend="ec2", os="linux", instance_type=REQUESTED),
    )
    # When the step makes them
    arn = provision.launch_credentials(store, secrets, session.session_id)
    made = store.require(session.session_id)
    assert made.secret_arn == arn
    assert "credentials" in (made.progress or {})
    del secrets.secrets[session.session_id]  # so a second secret would show

    # Then a retried step hands the host the same secret, makes none, records nothing again
    assert provision.launch_credentials(store, secrets, session.session_id) == arn
    assert secrets.secrets == {}
    assert store.require(session.session_id).progress == made.progress
    assert store.require(session.session_id).version == made.version
