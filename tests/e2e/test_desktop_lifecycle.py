"""The desktop lifecycle end to end on the local stack, with small idle parameters: the real agent
on simulated hosts, the real idle and sweep workflows, the real API.

A host counts as idle after IDLE_TIMEOUT seconds without a DCV connection; the user is warned and
has GRACE seconds to come back.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

from dcvfleet import events
from tests.support.stack import BusObserver, Stack, module_stack

IDLE_TIMEOUT = 10  # the least IdleTimeoutSeconds the template allows (its MinValue)
GRACE = 4
PARAMS = (
    "HostReadyTimeoutSeconds=60 MaxActiveSessionsPerUser=1 "
    f"IdleTimeoutSeconds={IDLE_TIMEOUT} IdleGraceSeconds={GRACE} "
    "HeartbeatIntervalSeconds=1 SignalSampleSeconds=1 HeartbeatTimeoutSeconds=5 "
    "SweepIntervalMinutes=60"
)
#: Idle timeout + grace + two heartbeats, plus the workflow's own steps.
STOP_BOUND = IDLE_TIMEOUT + GRACE + 2 + 10


life = module_stack("lifecycle", PARAMS)


def _instance_state(life: Stack, instance_id: str) -> str:
    resp = life.client("ec2").describe_instances(InstanceIds=[instance_id])
    state: str = resp["Reservations"][0]["Instances"][0]["State"]["Name"]
    return state


def _idle_executions(life: Stack, session_id: str) -> list[dict[str, Any]]:
    sfn = life.client("stepfunctions")
    machine = life.info["resources"]["IdleStateMachine"]
    found = sfn.list_executions(stateMachineArn=machine)["executions"]
    return [e for e in found if e["name"].startswith(session_id)]


def test_an_idle_desktop_is_warned_then_stopped_and_told_why(life: Stack) -> None:
    observer = life.observe("dcvfleet")
    # Given a READY desktop someone used and left
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)
    time.sleep(1.5)
    life.connections(instance_id, 0)
    left = time.monotonic()
    # When nobody comes back: Then the user is warned, in the session too
    warning = observer.wait_for("Session Idle Warning", session_id, timeout=IDLE_TIMEOUT + 15)
    assert events.validate_detail("dcvfleet", "Session Idle Warning", warning["detail"]) is None
    assert warning["detail"]["action"] == "stop"
    # And after the grace period the desktop is STOPPED, saying why
    session = life.wait_for(user, session_id, ("STOPPED",), timeout=STOP_BOUND + 10)
    took = time.monotonic() - left
    assert took <= STOP_BOUND + 5, f"stopped {took:.1f}s after the last disconnect"
    assert "no one has used it" in session["statusReason"], session
    assert "connectionUrl" not in session
    stopped = observer.wait_for("Session Stopped", session_id)
    assert events.validate_detail("dcvfleet", "Session Stopped", stopped["detail"]) is None
    assert stopped["detail"]["evidence"]["connections"] == 0
    # And the instance is stopped, not terminated (the disk is kept), its notice shown
    assert _instance_state(life, instance_id) == "stopped"
    assert any("will stop" in n["message"] for n in _host_notices(life, instance_id))
    # And what the real agent sent passed the consumer's checks (signature, sentAt within the
    # window, newer than the last accepted): its heartbeats were recorded, and its Session
    # Idle started the idle check
    accepted = _accepted_agent_events(life, session_id)
    assert accepted.count(("Host Heartbeat", "recorded")) >= 2, accepted
    assert ("Session Idle", "started") in accepted, accepted
    # And the user was e-mailed (SNS_EMAIL) that it was ready, the warning and the stop; no one
    # else received any of their notifications
    mine, others = _mail(life, f"{user.username}@example.com")
    assert [m["attributes"]["event"] for m in mine] == [
        "Session Ready",
        "Session Idle Warning",
        "Session Stopped",
    ]
    owners = {m["attributes"]["owner"] for m in mine}
    assert len(owners) == 1
    assert not [m for m in others if m["attributes"].get("owner") in owners]


def _accepted_agent_events(life: Stack, session_id: str) -> list[tuple[str, str]]:
    """(detail-type, outcome) of every agent event about the session the consumer accepted."""
    accepted = life.function_records("AgentEventsFunction", "agent event accepted")
    return [
        (str(record.get("detail_type")), str(record.get("reason")))
        for record in accepted
        if record.get("correlation_id") == session_id
    ]


def _mail(life: Stack, address: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The e-mails to ``address`` once its stop notice arrived, and everyone else's."""
    deadline = time.monotonic() + 10
    while True:
        mail = life.control("GET", "/mail").json()["messages"]
        mine = [m for m in mail if m["to"] == address]
        if any(m["attributes"]["event"] == "Session Stopped" for m in mine):
            break
        assert time.monotonic() < deadline, f"no stop notice to {address}: {mine}"
        time.sleep(0.2)
    return mine, [m for m in mail if m["to"] != address]


def _host_notices(life: Stack, instance_id: str) -> list[dict[str, Any]]:
    hosts = life.control("GET", "/hosts").json()["hosts"]
    for host in hosts:
        if host["instanceId"] == instance_id:
            notices: list[dict[str, Any]] = host.get("notices", [])
            return notices
    return []


def test_a_connected_desktop_is_never_stopped(life: Stack) -> None:
    # Given a READY desktop with a connected user
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)
    # When more than the idle timeout and the grace period pass
    time.sleep(IDLE_TIMEOUT + GRACE + 3)
    # Then it is still READY and no idle check stopped it
    session = user.call("GET", f"/sessions/{session_id}").json()
    assert session["status"] == "READY", session
    assert _instance_state(life, instance_id) == "running"
    life.connections(instance_id, 0)  # let it go idle after this test


def test_a_reconnect_in_the_grace_period_cancels_the_stop(life: Stack) -> None:
    observer = life.observe("dcvfleet")
    # Given an idle desktop whose user has just been warned
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    observer.wait_for("Session Idle Warning", session_id, timeout=IDLE_TIMEOUT + 15)
    # When the user reconnects during the grace period
    life.connections(instance_id, 1)
    # Then the idle workflow ends without stopping, and the session says why
    deadline = time.monotonic() + GRACE + 15
    while time.monotonic() < deadline:
        runs = _idle_executions(life, session_id)
        if runs and all(r["status"] != "RUNNING" for r in runs):
            break
        time.sleep(0.3)
    session = user.call("GET", f"/sessions/{session_id}").json()
    assert session["status"] == "READY", session
    assert "cancelled" in session.get("statusReason", ""), session
    assert _instance_state(life, instance_id) == "running"


def test_a_silent_agent_is_caught_by_the_sweep(life: Stack) -> None:
    # Given a READY desktop nobody uses whose agent then dies (and the host stops answering)
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)  # keep the agent from reporting it idle itself
    resp = life.control("POST", f"/hosts/{instance_id}/agent", {"running": False})
    assert resp.status_code == 200, resp.text
    life.connections(instance_id, 0)
    time.sleep(6)  # past HeartbeatTimeoutSeconds
    # When the sweep runs
    resp = life.control("POST", "/schedules/run", {})
    assert resp.status_code == 200, resp.text
    # Then it starts the idle workflow, which stops the desktop, saying the agent was silent
    session = life.wait_for(user, session_id, ("STOPPED",), timeout=GRACE + 25)
    assert "silent" in session["statusReason"], session


def test_a_stopped_desktop_resumes_on_the_same_instance(life: Stack) -> None:
    # Given a desktop the user stopped
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)
    resp = user.call("POST", f"/sessions/{session_id}/stop")
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "STOPPING"
    session = life.wait_for(user, session_id, ("STOPPED",), timeout=20)
    assert session["statusReason"] == "Stopped by you."
    # When they start it again
    resp = user.call("POST", f"/sessions/{session_id}/start")
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "PROVISIONING"
    # Then it is READY again on the same instance (same disk), with a connection URL
    session = life.wait_for(user, session_id, ("READY", "FAILED", "STOPPED"), timeout=30)
    assert session["status"] == "READY", session
    assert session["instanceId"] == instance_id
    assert session["connectionUrl"].endswith("#desktop")
    assert _instance_state(life, instance_id) == "running"


def test_calls_from_the_wrong_status_are_409_naming_the_status(life: Stack) -> None:
    user, session_id, _ = life.ready_desktop(timeout=30)
    resp = user.call("POST", f"/sessions/{session_id}/start")
    assert resp.status_code == 409, resp.text
    assert resp.json()["status"] == "READY"
    # and another user's desktop does not exist for them
    other = life.new_user()
    assert other.call("POST", f"/sessions/{session_id}/stop").status_code == 404
    assert other.call("DELETE", f"/sessions/{session_id}").status_code == 404


def test_delete_terminates_the_desktop_and_its_secret(life: Stack) -> None:
    observer = life.observe("dcvfleet")
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    resp = user.call("DELETE", f"/sessions/{session_id}")
    assert resp.status_code == 202, resp.text
    session = life.wait_for(user, session_id, ("TERMINATED",), timeout=20)
    assert session["statusReason"] == "Deleted by you."
    assert _instance_state(life, instance_id) == "terminated"
    assert not life.secret_exists(session_id)
    terminated = observer.wait_for("Session Terminated", session_id)
    assert events.validate_detail("dcvfleet", "Session Terminated", terminated["detail"]) is None
    # and a deleted desktop cannot be stopped or deleted again
    assert user.call("DELETE", f"/sessions/{session_id}").status_code == 409


def test_a_stop_made_outside_dcv_fleet_is_recorded_and_never_undone(life: Stack) -> None:
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)
    # When an operator stops the instance in the console
    life.client("ec2").stop_instances(InstanceIds=[instance_id])
    # Then the session becomes STOPPED, saying so, and nothing starts it again
    session = life.wait_for(user, session_id, ("STOPPED",), timeout=20)
    assert "outside DCV Fleet" in session["statusReason"], session
    time.sleep(2)
    assert _instance_state(life, instance_id) == "stopped"


def test_a_session_closed_by_its_user_comes_back_and_the_idle_desktop_stops(
    life: Stack,
) -> None:
    # Given a READY desktop whose user is connected
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)
    # When the user logs out: DCV closes the virtual session with the desktop
    resp = life.control("POST", f"/hosts/{instance_id}/session", {"closed": True})
    assert resp.status_code == 200, resp.text
    assert resp.json()["dcvSessions"] == []
    left = time.monotonic()
    # Then the agent creates the session again for its user (same name: the same link works)
    deadline = left + 10
    while (sessions := life.host(instance_id)["dcvSessions"]) != ["desktop"]:
        assert time.monotonic() < deadline, f"the DCV session was not created again: {sessions}"
        time.sleep(0.3)
    # And, nobody coming back, the desktop ends idle and is STOPPED within the bound
    session = life.wait_for(user, session_id, ("STOPPED", "FAILED"), timeout=STOP_BOUND + 10)
    took = time.monotonic() - left
    assert session["status"] == "STOPPED", session
    assert "no one has used it" in session["statusReason"], session
    assert took <= STOP_BOUND + 5, f"stopped {took:.1f}s after the logout"


def _agent_events(observer: BusObserver, detail_type: str, session_id: str) -> list[dict[str, Any]]:
    """Every agent event of that type about the session that reached the bus so far."""
    with contextlib.suppress(AssertionError):  # pulls what the queue holds into .seen
        observer.wait_for("(none)", "(none)", timeout=2)
    return [
        e["detail"]
        for e in observer.seen
        if e["detail-type"] == detail_type and e["detail"].get("sessionId") == session_id
    ]


def test_a_hibernated_desktop_resumes_ready_without_a_stale_session_idle(life: Stack) -> None:
    agent_bus = life.observe("dcvfleet.agent")
    # Given a READY desktop, on a host whose stop hibernates it, that nobody has used for a
    # few seconds (its agent's idle clock is running)
    user, session_id, instance_id = life.ready_desktop(timeout=30)
    life.connections(instance_id, 1)
    resp = life.control("POST", f"/hosts/{instance_id}/hibernation", {"enabled": True})
    assert resp.status_code == 200, resp.text
    life.connections(instance_id, 0)
    time.sleep(2)
    # When it is hibernated (its agent frozen, mid-idle-clock) for longer than the idle timeout
    resp = user.call("POST", f"/sessions/{session_id}/stop")
    assert resp.status_code == 202, resp.text
    life.wait_for(user, session_id, ("STOPPED",), timeout=20)
    life.wait_host(instance_id, agent="frozen")
    time.sleep(IDLE_TIMEOUT + 4)
    # and resumed (its agent thawed, the wall clock moved on)
    resumed_at = time.time()
    resp = user.call("POST", f"/sessions/{session_id}/start")
    assert resp.status_code == 202, resp.text
    session = life.wait_for(user, session_id, ("READY", "FAILED", "STOPPED"), timeout=35)
    if session["status"] == "READY":
        life.connections(instance_id, 1)  # the user is back: no idle check from here on
    # Then no Session Idle carried over from before the hibernation was sent after it
    stale = [
        d
        for d in _agent_events(agent_bus, "Session Idle", session_id)
        if _epoch(d["sentAt"]) >= resumed_at and _epoch(d["idleSince"]) < resumed_at
    ]
    assert stale == [], stale
    # And the resume reached READY on the same instance: the thawed agent said Host Ready again
    assert session["status"] == "READY", session
    assert session["instanceId"] == instance_id
    readies = _agent_events(agent_bus, "Host Ready", session_id)
    assert [d for d in readies if _epoch(d["sentAt"]) >= resumed_at], readies
    assert life.host(instance_id)["agent"] == "running"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
