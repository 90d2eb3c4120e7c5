"""Cancelling a desktop that is still starting, end to end on the local stack: the real API, the
real provisioning and idle workflows (ASL), handlers and EC2, Secrets Manager and DynamoDB."""

from __future__ import annotations

import time

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _launched(fleet: Stack, session_id: str, timeout: float = 30) -> str:
    """The desktop's instance, once the launch step made it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fleet.live_instances(session_id)
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no instance launched for {session_id}")


def test_a_delete_while_starting_cancels_it_and_frees_the_slot_at_once(fleet: Stack) -> None:
    # Given a desktop still starting: its host launched, its agent silent (never READY)
    fleet.agents(False)
    observer = fleet.observe("dcvfleet")
    user, session_id = fleet.request_desktop()
    _launched(fleet, session_id)
    # When its owner deletes it
    resp = user.call("DELETE", f"/sessions/{session_id}")
    # Then the cancel is accepted at once, TERMINATING
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"sessionId": session_id, "status": "TERMINATING"}
    # And the provisioning workflow was stopped. A step that ran between the cancel's write and
    # its StopExecution finds the desktop no longer starting and may reach Compensate first,
    # which leaves a cancelled desktop alone and ends in Cancelled (tests/unit/test_cancel.py):
    # either way the workflow never fails the desktop
    execution = fleet.wait_execution(session_id)
    states = fleet.states_entered(session_id)
    assert execution["status"] in ("ABORTED", "SUCCEEDED"), states
    assert "Failed" not in states, states
    if execution["status"] == "SUCCEEDED":
        assert states[-1] == "Cancelled", states
    # And the desktop ends TERMINATED, in its owner's words, with nothing of it left
    session = fleet.wait_for(user, session_id, ("TERMINATED", "FAILED"))
    assert session["status"] == "TERMINATED", session
    assert session["statusReason"] == "Cancelled by you."
    fleet.assert_nothing_left(session_id)
    # And its end is published like any other end
    event = observer.wait_for("Session Terminated", session_id)
    assert event["detail"]["trigger"] == "user"
    # And, at the limit of one active desktop, a new one may be asked for at once
    again = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert again.status_code == 202, again.text
