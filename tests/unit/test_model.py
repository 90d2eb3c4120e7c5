"""The session model: the POST /sessions body, the public view and the lifecycle."""

from __future__ import annotations

import json

import pytest

from dcvfleet.errors import InvalidRequestError
from dcvfleet.model import (
    ACTIVE,
    TRANSITIONS,
    CreateSessionRequest,
    Session,
    Status,
    can_transition,
)


# -- CreateSessionRequest.parse -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"backend": "ec2", "os": "linux"}, CreateSessionRequest("ec2", "linux", None)),
        (
            {"backend": "batch", "os": "windows", "instanceType": "g4dn.xlarge"},
            CreateSessionRequest("batch", "windows", "g4dn.xlarge"),
        ),
        (
            {"backend": "ec2", "os": "linux", "instanceType": "g6e-flex.48xlarge"},
            CreateSessionRequest("ec2", "linux", "g6e-flex.48xlarge"),
        ),
    ],
    ids=["defaults", "every-field", "hyphenated-family"],
)
def test_parse_accepts_a_valid_body(body: dict[str, str], expected: CreateSessionRequest) -> None:
    # Given a valid body / When it is parsed / Then it becomes the request it describes
    assert CreateSessionRequest.parse(json.dumps(body)) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"os": "linux"}', "backend: is required"),
        ('{"backend": "ec2"}', "os: is required"),
        ('{"backend": "ec2", "os": "linux", "colour": "red"}', "colour: unknown field"),
        ('{"backend": "ec2", "os": "mac"}', "os: "),
        ('{"backend": "lambda", "os": "linux"}', "backend: "),
        ('{"backend": "ec2", "os": "linux", "instanceType": "G5.XLARGE"}', "instanceType: "),
        ('{"backend": "ec2", "os": "linux", "instanceType": "g5"}', "instanceType: "),
        ('{"backend": "ec2", "os": "linux", "instanceType": 5}', "instanceType: "),
        ('{"backend": "ec2", "os": "linux"', "body: not valid JSON"),
        ("", "body: a JSON object is required"),
        ("   \n", "body: a JSON object is required"),
        (None, "body: a JSON object is required"),
        ('[{"backend": "ec2", "os": "linux"}]', "body: "),
        ("null", "body: "),
        ('"ec2"', "body: "),
    ],
    ids=[
        "missing-backend",
        "missing-os",
        "unknown-field-colour",
        "os-mac",
        "backend-not-offered",
        "instance-type-upper-case",
        "instance-type-without-size",
        "instance-type-not-a-string",
        "not-json",
        "empty",
        "blank",
        "absent",
        "json-list",
        "json-null",
        "json-string",
    ],
)
def test_parse_refuses_a_bad_body_naming_the_field(body: str | None, field: str) -> None:
    # Given a bad body / When it is parsed
    with pytest.raises(InvalidRequestError) as raised:
        CreateSessionRequest.parse(body)
    # Then the message starts with the offending field, and the error's message is the same text
    assert str(raised.value).startswith(field)
    assert raised.value.message == str(raised.value)


def test_parse_names_the_bad_value_and_the_allowed_ones() -> None:
    # Given an os that is not offered / When it is parsed / Then the message says what is allowed
    with pytest.raises(InvalidRequestError, match=r"^os: 'mac' is not one of \['linux', 'windows'"):
        CreateSessionRequest.parse('{"backend": "ec2", "os": "mac"}')


def test_parse_of_malformed_json_chains_the_decoder_error() -> None:
    # Given a body that is not JSON / When it is parsed / Then the decoder's error is the cause
    with pytest.raises(InvalidRequestError) as raised:
        CreateSessionRequest.parse("{not json")
    assert isinstance(raised.value.__cause__, json.JSONDecodeError)


def test_parse_reports_a_missing_field_before_an_invalid_one() -> None:
    # Given a body with backend missing and os invalid
    # When it is parsed / Then the top-level problem (missing backend) is the one named
    with pytest.raises(InvalidRequestError, match=r"^backend: is required$"):
        CreateSessionRequest.parse('{"os": "mac"}')


# -- the public view ------------------------------------------------------------------------
def a_full_session() -> Session:
    return Session(
        session_id="3f1c2b9e-0000-4000-8000-000000000001",
        owner="owner-sub-5e2a",
        backend="ec2",
        os="linux",
        instance_type="g5.xlarge",
        status=Status.READY,
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
    fresh = Session(
        session_id="s-1",
        owner="o",
        backend="ec2",
        os="windows",
        instance_type="g4dn.xlarge",
        status=Status.PROVISIONING,
        created_at="t0",
        updated_at="t0",
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
    }


# -- the lifecycle --------------------------------------------------------------------------
LIFECYCLE = {
    (Status.PROVISIONING, Status.READY),
    (Status.PROVISIONING, Status.FAILED),
    (Status.PROVISIONING, Status.STOPPED),
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
