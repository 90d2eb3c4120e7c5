"""A cancel the provisioning workflow does not hear of (StopExecution failed), on the real ASL:
its steps find the desktop no longer starting and its Compensate ends it quietly, never FAILED."""

from __future__ import annotations

from tests.support.stack import Stack


def test_compensate_after_a_cancel_ends_the_workflow_without_failing_the_desktop(
    fleet: Stack,
) -> None:
    # Given Step Functions refusing StopExecution for the desktop, and a silent agent
    fleet.agents(False)
    user, session_id = fleet.request_desktop()
    fleet.faults(
        apiErrors={"stepfunctions:StopExecution": {"code": "KmsAccessDeniedException", "times": 5}}
    )
    observer = fleet.observe("dcvfleet")
    # When its owner deletes it while it is starting
    resp = user.call("DELETE", f"/sessions/{session_id}")
    assert resp.status_code == 202, resp.text
    # Then the desktop ends TERMINATED, cancelled, with nothing of it left
    session = fleet.wait_for(user, session_id, ("TERMINATED", "FAILED"))
    assert (session["status"], session["statusReason"]) == ("TERMINATED", "Cancelled by you.")
    # And the workflow, whose next step found the desktop no longer starting (the launch, or
    # the wait for the host, timed out), compensates and ends quietly: the desktop is not marked
    # FAILED and no Session Failed is published
    execution = fleet.wait_execution(session_id, timeout=60)
    assert execution["status"] == "SUCCEEDED", execution
    entered = fleet.states_entered(session_id)
    assert entered[-3:] == ["Compensate", "ReadyAfterAll", "Cancelled"], entered
    assert "PublishFailed" not in entered
    after = user.call("GET", f"/sessions/{session_id}").json()
    assert (after["status"], after["statusReason"]) == ("TERMINATED", "Cancelled by you.")
    observer.wait_for("Session Terminated", session_id)
    assert not [e for e in observer.seen if e["detail-type"] == "Session Failed"]
    fleet.assert_nothing_left(session_id)
