"""The session model: the public view and the lifecycle."""

from __future__ import annotations

import json

import pytest

from dcvfleet.model import (
    ACTIVE,
    TRANSITIONS,
    Session,
    Status,
    can_transition,
)
from tests.support.sessions import a_session


# -- the public view ------------------------------------------------------------------------
def a_full_session() -> Session:
    return a_session(
        "3f1c2b9e-0000-4000-8000-000000000001",
        owner="owner-sub-5e2a",
        created_at="2025-03-01T10:00:00.000Z",
        updated_at="2025-03-01T10:05:00.000Z",
        version=4,
        owner_email="alice@example.com",
        instance_id="i-0123456789abcdef0",
        job_id="job-42",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:dcvfleet/s-AbCdEf",
        dcv_session_id="console",
        connection_url="https://ec2-1-2-3-4.compute-1.amazonaws.com:8443/#console",
        status_reason="ready",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:provision:s",
        task_token="AAAA-task-token-BBBB",
        extra={"username": "alice"},
    )


def test_to_api_never_exposes_the_task_token_the_secret_arn_or_the_owner() -> None:
    # Given a session with every field set
    session = a_full_session()
    # When its public view is made
    view = session.to_api()
    # Then neither those keys nor their values appear anywhere in it
    rendered = json.dumps(view)
    for key in ("taskToken", "task_token", "secretArn", "secret_arn", "owner"):
        assert key not in view
    for secret in (session.task_token, session.secret_arn, session.owner):
        assert secret is not None
        assert secret not in rendered


def test_to_api_shows_what_the_user_needs_and_leaves_out_unset_fields() -> None:
    # Given a full session and a fresh one
    full = a_full_session().to_api()
    fresh = a_session(
        owner="o",
        os="windows",
        instance_type="g4dn.xlarge",
        status=Status.PROVISIONING,
        created_at="t0",
    ).to_api()
    # Then the full one has the connection details, and the fresh one has no null placeholders
    assert full["status"] == "READY"
    assert full["connectionUrl"].endswith("#console")
    assert full["instanceId"] == "i-0123456789abcdef0"
    assert fresh == {
        "sessionId": "s-1",
        "status": "PROVISIONING",
        "backend": "ec2",
        "os": "windows",
        "instanceType": "g4dn.xlarge",
        "createdAt": "t0",
        "updatedAt": "t0",
        # a desktop made before profiles: the profile it would have had, and a plain name
        "profile": "windows-workstation",
        "profileName": "Windows workstation",
        "name": "Windows desktop",
        "progress": {},
    }


# -- the lifecycle --------------------------------------------------------------------------
LIFECYCLE = {
    (Status.PROVISIONING, Status.READY),
    (Status.PROVISIONING, Status.FAILED),
    (Status.PROVISIONING, Status.STOPPED),
    (Status.PROVISIONING, Status.TERMINATING),  # cancelled while starting
    (Status.READY, Status.STOPPING),
    (Status.READY, Status.TERMINATING),
    (Status.STOPPING, Status.STOPPED),
    (Status.STOPPING, Status.READY),
    (Status.STOPPING, Status.TERMINATING),
    (Status.STOPPED, Status.PROVISIONING),
    (Status.STOPPED, Status.TERMINATING),
    (Status.TERMINATING, Status.TERMINATED),
}


def test_the_transitions_table_is_exactly_the_lifecycle() -> None:
    # Given the lifecycle of a desktop session
    # When every pair of statuses is asked about
    allowed = {(a, b) for a in Status for b in Status if can_transition(a, b)}
    # Then exactly the lifecycle's moves are allowed, and every status has an entry
    assert allowed == LIFECYCLE
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize("terminal", [Status.FAILED, Status.TERMINATED])
def test_failed_and_terminated_are_terminal(terminal: Status) -> None:
    # Given a terminal status / Then nothing may follow it
    assert TRANSITIONS[terminal] == frozenset()
    assert not any(can_transition(terminal, other) for other in Status)


def test_no_status_moves_to_itself() -> None:
    assert not any(can_transition(status, status) for status in Status)


def test_the_active_statuses_are_those_holding_or_about_to_hold_a_host() -> None:
    # Then a session counts against the limit unless it is stopped or finished
    assert frozenset(Status) - ACTIVE == {Status.STOPPED, Status.TERMINATED, Status.FAILED}
