"""The provisioning workflow's real ASL, executed with the real handlers and agent on the local stack."""

from __future__ import annotations

import json

import pytest

from dcvfleet import events
from dcvfleet.errors import HostNotReadyError, InsufficientCapacityError
from local.client import Client
from tests.support.stack import ROOT, Stack
from tests.support.workflows import COMPENSATION, HAPPY_PATH
from tools.workflow_quotas import load_template, path_events, resolved_definition

PROVISION_STATES = resolved_definition(load_template(ROOT), "provision_session.asl.json")["States"]


def _request(fleet: Stack, body: dict[str, str] | None = None) -> tuple[Client, str]:
    user = fleet.new_user()
    resp = user.call("POST", "/sessions", body or {"backend": "ec2", "os": "linux"})
    assert resp.status_code == 202, resp.text
    return user, resp.json()["sessionId"]


def test_success_walks_every_step_once_and_leaves_a_ready_desktop(fleet: Stack) -> None:
    # Given a user, When they request a Linux desktop
    user, session_id = _request(fleet)
    # Then the workflow walks the happy path once and the session is READY with its URL
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "READY", session
    assert fleet.wait_execution(session_id)["status"] == "SUCCEEDED"
    assert fleet.states_entered(session_id) == HAPPY_PATH
    # And its history holds exactly the events tools/workflow_quotas.py counts for those states
    # (the counts its worst cases at the parameters' limits are made of)
    assert len(fleet.history(session_id)) == path_events(PROVISION_STATES, HAPPY_PATH)
    assert session["connectionUrl"].endswith(":8443/#desktop")
    assert session["connectionUrl"].startswith("https://")
    # And the host runs, tagged for the fleet, the owner and the session
    (instance_id,) = fleet.live_instances(session_id)
    assert session["instanceId"] == instance_id
    reservation = fleet.client("ec2").describe_instances(InstanceIds=[instance_id])
    tags = {t["Key"]: t["Value"] for t in reservation["Reservations"][0]["Instances"][0]["Tags"]}
    assert tags["dcvfleet:fleet"] == "default"
    assert tags["dcvfleet:session-id"] == session_id
    assert tags["dcvfleet:secret-arn"].startswith("arn:aws:secretsmanager:")
    # And the credentials exist only as a secret tagged with the session
    secret = fleet.client("secretsmanager").describe_secret(
        SecretId=f"dcvfleet/sessions/{session_id}"
    )
    assert {"Key": "dcvfleet:session-id", "Value": session_id} in secret["Tags"]


def test_the_pooled_paths_functions_are_invoked_through_their_snapstart_alias(
    fleet: Stack,
) -> None:
    # Given a desktop that came up (an ec2 desktop takes the pooled path's states)
    user, session_id = _request(fleet)
    assert fleet.wait_for(user, session_id)["status"] == "READY"
    # Then each Lambda task invoked its function's alias (SnapStart covers published versions
    # only, never $LATEST: https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html), which
    # the deployed stack has, pointing at a published version
    invoked = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])["FunctionName"]
        for e in fleet.history(session_id)
        if e["type"] == "TaskScheduled"
        and e["taskScheduledEventDetails"]["resourceType"] == "lambda"
    ]
    assert len(invoked) == 3, invoked  # LaunchInstance, AwaitHostReady, MarkReady
    for arn in invoked:
        name, alias = arn.split(":function:")[1].split(":")
        assert alias == "live", arn
        (found,) = fleet.client("lambda").list_aliases(FunctionName=name)["Aliases"]
        assert found["FunctionVersion"] != "$LATEST"
    # And the host's Host Ready reached the workflow through AgentEvents' alias: the fleet bus's
    # rule for agent events targets it
    bus, events = fleet.info["resources"]["FleetBus"], fleet.client("events")
    (rule,) = events.list_rules(
        EventBusName=bus, NamePrefix=fleet.info["resources"]["AgentEventsFunctionAgentEvents"]
    )["Rules"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
    assert target["Arn"] == fleet.info["resources"]["AgentEventsFunctionAliaslive"]
    assert target["Arn"].endswith(":live")


def test_the_password_never_appears_in_history_logs_or_events(fleet: Stack) -> None:
    observer = fleet.observe("dcvfleet")
    user, session_id = _request(fleet)
    assert fleet.wait_for(user, session_id)["status"] == "READY"
    value = fleet.client("secretsmanager").get_secret_value(
        SecretId=f"dcvfleet/sessions/{session_id}"
    )["SecretString"]
    password = json.loads(value)["password"]
    assert len(password) >= 16
    history = json.dumps(fleet.history(session_id), default=str)
    assert password not in history
    # an ec2 desktop's secret is made and handed to its host inside LaunchInstance: not even
    # its ARN travels between the states (a batch desktop's ARN does, to SubmitJob)
    assert "LaunchInstance" in history
    assert "secretArn" not in history
    function_logs = [
        line
        for logical_id, physical in fleet.info["resources"].items()
        if logical_id.endswith("Function") and physical.startswith("dcvfleet-local-")
        for line in fleet.function_logs(logical_id)
    ]
    assert function_logs, "the functions wrote no logs to scan"
    assert not [line for line in function_logs if password in line]
    event = observer.wait_for("Session Ready", session_id)
    assert password not in json.dumps(event)


def test_session_ready_event_validates_against_its_schema(fleet: Stack) -> None:
    # Given an operator's queue subscribed to the fleet bus
    observer = fleet.observe("dcvfleet")
    # When a desktop becomes ready
    user, session_id = _request(fleet)
    assert fleet.wait_for(user, session_id)["status"] == "READY"
    # Then the Session Ready event it published is valid
    envelope = observer.wait_for("Session Ready", session_id)
    assert events.validate_envelope(envelope) is None
    assert envelope["detail"]["connectionUrl"].endswith("#desktop")


def test_capacity_falls_back_to_the_next_instance_type(fleet: Stack) -> None:
    # Given no g5.xlarge capacity anywhere
    fleet.faults(noCapacity=["g5.xlarge"])
    # When a desktop is requested with the default type (g5.xlarge)
    user, session_id = _request(fleet)
    # Then it is READY on the first fallback type
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "READY", session
    assert session["instanceType"] == "g4dn.xlarge"


def test_no_capacity_anywhere_fails_with_a_clear_reason_and_nothing_left(fleet: Stack) -> None:
    fleet.faults(noCapacity=["*"])
    observer = fleet.observe("dcvfleet")
    user, session_id = _request(fleet)
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "FAILED"
    failed = observer.wait_for("Session Failed", session_id)
    assert events.validate_envelope(failed) is None
    assert failed["detail"]["reason"] == session["statusReason"]
    # (plain words for the user; the types tried are for operators: the execution's cause)
    assert session["statusReason"] == InsufficientCapacityError.user_message
    execution = fleet.wait_execution(session_id)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InsufficientCapacityError", execution
    assert "g5.xlarge" in execution["cause"]
    assert fleet.states_entered(session_id)[-len(COMPENSATION) :] == COMPENSATION
    fleet.assert_nothing_left(session_id)
    # And the failed session no longer counts against the user's limit
    fleet.faults()
    again = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert again.status_code == 202, again.text


def test_host_never_ready_times_out_and_compensates(fleet: Stack) -> None:
    # Given hosts whose agent never reports
    fleet.agents(False)
    # When a desktop is requested
    user, session_id = _request(fleet)
    # Then after HostReadyTimeoutSeconds the session FAILS and nothing is left running
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "FAILED"
    assert session["statusReason"] == HostNotReadyError.user_message
    execution = fleet.wait_execution(session_id)
    assert execution["status"] == "FAILED"
    fleet.assert_nothing_left(session_id)
    # And operators read why: the execution fails with the workflow's own error (a Fail state
    # naming States.Timeout, a reserved name, would fail it with States.Runtime), and the cause
    # says the host never reported within HostReadyTimeoutSeconds
    assert execution["error"] == "HostNotReadyError", execution
    assert "HostReadyTimeoutSeconds (20 s): States.Timeout" in execution["cause"], execution
    (failed,) = [e for e in fleet.history(session_id) if e["type"] == "ExecutionFailed"]
    details = failed["executionFailedEventDetails"]
    assert (details["error"], details["cause"]) == (execution["error"], execution["cause"])
    assert fleet.states_entered(session_id)[-len(COMPENSATION) - 1 :] == [
        "HostNotReady",
        *COMPENSATION,
    ]
    entered = fleet.states_entered(session_id)
    assert len(fleet.history(session_id)) == path_events(PROVISION_STATES, entered)


@pytest.mark.parametrize(
    "function",
    [
        "LaunchInstanceFunction",
        "AwaitHostReadyFunction",
        "MarkReadyFunction",
    ],
)
def test_a_failure_in_any_step_compensates_and_leaves_nothing(fleet: Stack, function: str) -> None:
    # Given one step's function fails
    fleet.faults(functionErrors={function: "RuntimeError"})
    # When a desktop is requested
    user, session_id = _request(fleet)
    # Then the session is FAILED with a readable reason, and nothing it made survives
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "FAILED", session
    assert session["statusReason"] == "The desktop could not be prepared."
    execution = fleet.wait_execution(session_id)
    assert execution["status"] == "FAILED"
    # And the execution names it as ours, the caught error's name first in the cause
    assert execution["error"] == "WorkflowStepError", execution
    assert execution["cause"].startswith("RuntimeError"), execution
    assert fleet.states_entered(session_id)[-len(COMPENSATION) :] == COMPENSATION
    fleet.assert_nothing_left(session_id)


def test_provisioning_stays_within_forty_state_transitions(fleet: Stack) -> None:
    user, session_id = _request(fleet)
    assert fleet.wait_for(user, session_id)["status"] == "READY"
    assert fleet.wait_execution(session_id)["status"] == "SUCCEEDED"
    assert len(fleet.states_entered(session_id)) <= 40


def test_a_windows_desktop_comes_up_on_its_console_session(fleet: Stack) -> None:
    # Given a user who wants Windows
    user, session_id = _request(fleet, {"backend": "ec2", "os": "windows"})
    # Then the host (tagged windows) reports DCV's console session, and the URL points at it
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "READY", session
    assert session["os"] == "windows"
    assert session["connectionUrl"].endswith(":8443/#console")
    reservation = fleet.client("ec2").describe_instances(InstanceIds=[session["instanceId"]])
    tags = {t["Key"]: t["Value"] for t in reservation["Reservations"][0]["Instances"][0]["Tags"]}
    assert tags["dcvfleet:os"] == "windows"
