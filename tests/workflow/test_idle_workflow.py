"""The idle and sweep workflows' real ASL, executed with the real handlers and agent on a local
stack with a short grace period.

The idle check is started the way a host's agent starts it (a signed ``Session Idle`` on the
fleet bus); what the desktop does during the grace period is set on its simulated host.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.stack import ROOT, Stack, module_stack

GRACE = 10
#: These tests are about the idle and sweep workflows, not the host-ready timeout: it is long
#: enough for a desktop to come up on a loaded 2-core CI machine (20 s once was not).
PARAMS = (
    "HostReadyTimeoutSeconds=60 MaxActiveSessionsPerUser=1 "
    f"IdleGraceSeconds={GRACE} SweepIntervalMinutes=60"
)
SAMPLE_IDLE = ROOT / "events" / "samples" / "agent-session-idle.json"
RECONNECTED = [
    "Verify",
    "IsIdle",
    "Warn",
    "PublishWarning",
    "NotifyWarning",
    "Grace",
    "Reverify",
    "StillIdle",
    "Cancelled",
    "StaysReady",
]


idle = module_stack("idle-workflow", PARAMS)


def _claim_idle(stack: Stack, session_id: str, instance_id: str) -> None:
    """The host's agent says nobody has used the desktop (signed with the session's key)."""
    detail: dict[str, Any] = json.loads(SAMPLE_IDLE.read_text())["detail"]
    millis = int(time.time() * 1000) + 1000  # newer than anything its own agent sent
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    detail.update(
        sessionId=session_id,
        instanceId=instance_id,
        dcvSessionId="desktop",
        sentAt=f"{sent_at}.{millis % 1000:03d}Z",
    )
    stack.put_agent_event("Session Idle", detail)


def _executions(stack: Stack, machine: str, prefix: str = "") -> list[dict[str, Any]]:
    sfn = stack.client("stepfunctions")
    arn = stack.info["resources"][machine]
    found: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=arn)["executions"]
    return [e for e in found if e["name"].startswith(prefix)]


def _one_execution(stack: Stack, machine: str, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _executions(stack, machine, prefix)
        if found:
            assert len(found) == 1, found
            return str(found[0]["executionArn"])
        time.sleep(0.2)
    raise AssertionError(f"no {machine} execution {prefix}*")


def _entered(stack: Stack, execution_arn: str) -> list[str]:
    sfn = stack.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


def _wait_entered(stack: Stack, execution_arn: str, state: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state in _entered(stack, execution_arn):
            return
        time.sleep(0.2)
    raise AssertionError(f"{execution_arn} never entered {state}: {_entered(stack, execution_arn)}")


def _finished(stack: Stack, execution_arn: str, timeout: float) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.3)
    raise AssertionError(f"{execution_arn} still running after {timeout} s")


def test_a_user_who_reconnects_during_the_grace_period_keeps_a_running_desktop(
    idle: Stack,
) -> None:
    # Given a READY desktop nobody is connected to, whose agent claims it idle
    user, session_id, instance_id = idle.ready_desktop(timeout=60)
    idle.connections(instance_id, 0)
    _claim_idle(idle, session_id, instance_id)
    # When the idle workflow has checked and is warning the user (the grace period has begun:
    # its live check is behind it, its re-check GRACE seconds ahead)
    execution = _one_execution(idle, "IdleStateMachine", session_id, timeout=30)
    _wait_entered(idle, execution, "Warn", timeout=30)
    # And the user reconnects before it ends
    idle.connections(instance_id, 1)
    # Then the re-check after the grace period finds them, and nothing is stopped
    assert _finished(idle, execution, timeout=GRACE + 30)["status"] == "SUCCEEDED"
    entered = _entered(idle, execution)
    assert entered[entered.index("Verify") :] == RECONNECTED, entered
    session = user.call("GET", f"/sessions/{session_id}").json()
    assert session["status"] == "READY", session
    # (the re-check's live look finds the connection, or the agent's heartbeat reported it
    # first: either way the reconnect is the reason)
    assert session["statusReason"] in (
        "Idle stop cancelled: someone reconnected.",
        "Idle stop cancelled: activity resumed (1 DCV connection(s), busiest CPU core 0 %, GPU 0 %).",
    ), session
    assert "connectionUrl" in session
    reservation = idle.client("ec2").describe_instances(InstanceIds=[instance_id])
    assert reservation["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"


def test_a_sweep_that_finds_no_orphan_logs_no_error(idle: Stack) -> None:
    """FindWork says whether it found an orphan (States.ArrayContains over the findings' kinds,
    https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html#asl-intrsc-func-arrays),
    and AnyOrphans tests that boolean (BooleanEquals,
    https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html): no path the Choice
    reads is ever absent, so evaluating it raises nothing (a count read by IsPresent did, and
    the emulator logged NoSuchJsonPathError at ERROR on every sweep without an orphan)."""
    # Given a fleet whose every running instance has its live desktop
    idle.ready_desktop(timeout=60)
    before = len(_executions(idle, "SweepStateMachine"))
    logged = idle.log.stat().st_size
    # When the sweep runs
    assert idle.run_schedules(), "no schedule fired"
    deadline = time.monotonic() + 30
    while len(_executions(idle, "SweepStateMachine")) == before:
        assert time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.2)
    (latest, *_) = sorted(
        _executions(idle, "SweepStateMachine"), key=lambda e: e["startDate"], reverse=True
    )
    # Then it ends without reporting orphans
    assert _finished(idle, latest["executionArn"], timeout=60)["status"] == "SUCCEEDED"
    entered = _entered(idle, latest["executionArn"])
    assert entered[-2:] == ["AnyOrphans", "Swept"], entered
    # And the stack logged no ERROR line while it ran
    with idle.log.open("rb") as log:
        log.seek(logged)
        lines = log.read().decode(errors="replace").splitlines()
    errors = [line for line in lines if "ERROR" in line]
    assert errors == [], "\n".join(errors)


def test_a_desktop_past_its_profiles_maximum_length_is_warned_and_stopped_however_busy(
    idle: Stack,
) -> None:
    # Given a profile an administrator made whose desktops may run 9 seconds at most
    admin = idle.new_user(groups=("admins",))
    offered = admin.call("GET", "/profiles").json()["items"]
    (linux,) = [p for p in offered if p["id"] == "linux-workstation"]
    spec = {key: linux[key] for key in ("backend", "os", "instanceTypes", "idle")}
    spec.update(name="Short workstation", maxSessionHours=0.0025, groups=[])
    spec["idle"] = {"timeoutSeconds": 7200, "action": "stop"}
    put = admin.call("PUT", "/admin/profiles/short", spec)
    assert put.status_code == 200, put.text
    # And a user's desktop of that profile, READY and in use
    user = idle.new_user()
    created = user.call("POST", "/sessions", {"profile": "short", "name": "Quick look"})
    assert created.status_code == 202, created.text
    session_id = created.json()["sessionId"]
    session = idle.wait_for(user, session_id, timeout=60)
    assert session["status"] == "READY", session
    assert (session["profile"], session["profileName"], session["name"]) == (
        "short",
        "Short workstation",
        "Quick look",
    )
    # (its host's agent holds it to the profile's idle timeout, not the fleet's)
    host = idle.host(str(session["instanceId"]))
    agent_config = json.loads((Path(host["workdir"]) / "agent.json").read_text())
    assert agent_config["idleTimeoutSeconds"] == 7200
    idle.connections(str(session["instanceId"]), 1)
    # When its 9 seconds are past and the sweep runs
    time.sleep(10)
    assert idle.run_schedules(), "no schedule fired"
    # Then the idle workflow warns, waits the grace period and stops it although it is in use
    execution = _one_execution(idle, "IdleStateMachine", f"{session_id}-max-lifetime", 30)
    assert _finished(idle, execution, timeout=GRACE + 60)["status"] == "SUCCEEDED"
    entered = _entered(idle, execution)
    assert entered.index("Warn") < entered.index("Grace") < entered.index("Reverify"), entered
    stopped = idle.wait_for(user, session_id, ("STOPPED",), timeout=60)
    # And its user reads why, in plain words
    assert stopped["statusReason"] == "Stopped: it reached the 9-second limit of Short workstation."
