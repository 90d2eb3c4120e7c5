"""A desktop's status reason is worded for its reader from the neutral record of who did what:
the owner reads "Deleted by you.", an administrator "Deleted by demo"; the owner "Stopped by an
administrator.", an administrator "Stopped by an administrator (boss)"."""

from __future__ import annotations

import pytest

from dcvfleet import service
from dcvfleet.lifecycle import user_requests
from dcvfleet.model import CreateSessionRequest, Session, Status
from dcvfleet.sessions import Caller
from tests.support.lifecycle import SETTINGS, Fleet
from tests.support.service import API, FakeWorkflows

DEMO = Caller(sub="sub-demo", username="demo", email="demo@example.com")
BOSS = Caller(sub="sub-boss", username="boss", email="boss@example.com")


def _views(session: Session) -> tuple[str | None, str | None]:
    """(what the owner reads, what an administrator reads)."""
    return session.to_api().get("statusReason"), session.to_admin_api().get("statusReason")


@pytest.mark.parametrize(
    ("action", "admin", "owner_reads", "admin_reads"),
    [
        ("stop", False, "Stopped by you.", "Stopped by demo"),
        ("terminate", False, "Deleted by you.", "Deleted by demo"),
        ("stop", True, "Stopped by an administrator.", "Stopped by an administrator (boss)"),
        ("terminate", True, "Deleted by an administrator.", "Deleted by an administrator (boss)"),
    ],
)
def test_a_requested_stop_or_delete_reads_from_each_side(
    action: str, admin: bool, owner_reads: str, admin_reads: str
) -> None:
    fleet = Fleet()
    session = fleet.ready(DEMO)
    user_requests.request_stop(
        fleet.store,
        fleet.workflows,
        SETTINGS,
        BOSS if admin else DEMO,
        session.session_id,
        action=action,
        as_admin=admin,
    )
    record = fleet.store.require(session.session_id)
    assert _views(record) == (owner_reads, admin_reads)
    # And the record holds who did what, not the admin's sentence
    assert (record.evidence or {})["action"] == action
    assert "boss" not in (record.status_reason or "")


def test_a_cancel_reads_from_each_side() -> None:
    fleet = Fleet()
    session = service.create_session(
        fleet.store,
        FakeWorkflows(),
        API,
        DEMO,
        CreateSessionRequest(backend="ec2", os="linux", instance_type=None),
    )
    user_requests.request_stop(
        fleet.store, fleet.workflows, SETTINGS, DEMO, session.session_id, action="terminate"
    )
    assert _views(fleet.store.require(session.session_id)) == (
        "Cancelled by you.",
        "Cancelled by demo",
    )


def test_an_idle_stop_reads_plainly_to_an_administrator_and_keeps_the_owners_sentence() -> None:
    # Given a READY desktop stopped by the idle workflow after 60 minutes without use
    fleet = Fleet()
    session = fleet.ready(DEMO)
    execution = fleet.check(session.session_id)
    fleet.act(
        session.session_id,
        execution,
        evidence={"claim": {"idleSeconds": 3600}, "connections": 0},
        reason="no one has used it for 60 min",
    )
    record = fleet.store.require(session.session_id)
    assert record.status == Status.STOPPING
    owner, admin = _views(record)
    assert owner == "Stopped because no one has used it for 60 min."
    assert admin == "Stopped: nobody used it for 60 minutes"


def test_a_reason_nobody_decided_reads_the_same_to_both() -> None:
    fleet = Fleet()
    session = fleet.ready(DEMO)
    fleet.store.update(
        session, status_reason="The desktop could not be stopped and is still running."
    )
    record = fleet.store.require(session.session_id)
    assert _views(record) == (record.status_reason, record.status_reason)


def test_owner_name_is_the_user_name_else_the_e_mail_address() -> None:
    fleet = Fleet()
    session = fleet.ready(DEMO)
    assert session.to_admin_api()["ownerName"] == "demo"
    session.extra.pop("username")
    assert session.to_admin_api()["ownerName"] == "demo@example.com"
    assert "ownerName" not in session.to_api()
