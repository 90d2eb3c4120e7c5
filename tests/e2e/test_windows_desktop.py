"""A Windows desktop end to end on the local stack: a user whose name is too long for a Windows
account, on a host whose performance counters are named in German (``local/sim/typeperf.py``,
``local/sim/users.py``), with the real agent and the real idle workflow.

SignalSampleSeconds is 2 here, not 1 as in test_desktop_lifecycle: typeperf prints a row about
every 1.02-1.03 s at ``-si 1`` (tests/unit/fixtures/agent/windows/), so a 1-second sample now and
then finds no new row, which the agent's Windows CPU signal reads as an error (not idle).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.stack import Stack, module_stack

IDLE_TIMEOUT = 10  # the least IdleTimeoutSeconds the template allows (its MinValue)
GRACE = 4
SAMPLE = 2
PARAMS = (
    "HostReadyTimeoutSeconds=20 MaxActiveSessionsPerUser=1 "
    f"IdleTimeoutSeconds={IDLE_TIMEOUT} IdleGraceSeconds={GRACE} "
    f"HeartbeatIntervalSeconds=1 SignalSampleSeconds={SAMPLE} HeartbeatTimeoutSeconds=5 "
    "SweepIntervalMinutes=60"
)
#: From READY: the agent's first samples, the idle timeout, the grace period, two heartbeats,
#: plus the workflow's own steps.
STOP_BOUND = 2 * SAMPLE + IDLE_TIMEOUT + GRACE + 2 + 10


win = module_stack("windows", PARAMS)


def test_a_long_named_user_gets_a_german_windows_desktop_owned_by_the_capped_name_and_it_stops_idle(
    win: Stack,
) -> None:
    from dcvfleet.adapters import dcv_username

    agent_bus = win.observe("dcvfleet.agent")
    # Given Windows hosts whose performance counters are named in German (typeperf takes only
    # "\Prozessor(*)\Prozessorzeit (%)" there) and a user whose name makes a long account name
    assert win.control("POST", "/windows-counters", {"language": "de"}).status_code == 200
    try:
        user = win.new_user(f"alexandra.konstantinopoulou.{time.time_ns() % 10**6}")
        resp = user.call("POST", "/sessions", {"backend": "ec2", "os": "windows"})
        assert resp.status_code == 202, resp.text
        session_id = resp.json()["sessionId"]
        session = win.wait_for(user, session_id, timeout=40)
    finally:
        win.control("POST", "/windows-counters", {"language": "en"})
    # Then it is READY, the Windows account is the capped name (at most 20 characters, as
    # New-LocalUser requires) in BUILTIN\Users, and DCV's console session is that account's
    assert session["status"] == "READY", session
    account = dcv_username(user.username)
    assert len(f"dcv{user.username}") > 20, user.username
    assert len(account) <= 20, account
    host = win.host(session["instanceId"])
    assert host["perfLanguage"] == "de"
    assert host["osUsers"] == [account], host
    dcv_state = json.loads((Path(host["workdir"]) / "dcv-state.json").read_text())
    assert [(s["id"], s["owner"]) for s in dcv_state["sessions"]] == [("console", account)]
    users = json.loads((Path(host["workdir"]) / "users.json").read_text())["users"]
    assert users[account]["groups"] == ["S-1-5-32-545"], users
    # And, nobody connected and the CPU quiet, the CPU signal reads the German counters as
    # idle: the desktop is stopped within the idle bound
    ready = time.monotonic()
    idle = agent_bus.wait_for("Session Idle", session_id, timeout=IDLE_TIMEOUT + 15)
    idle_after = time.monotonic() - ready
    cpu = idle["detail"]["signals"]["cpu"]
    assert cpu["idle"] is True, cpu
    assert cpu["busiestCorePercent"] == 0.0, cpu
    session = win.wait_for(user, session_id, ("STOPPED",), timeout=STOP_BOUND + 10)
    took = time.monotonic() - ready
    assert took <= STOP_BOUND, (
        f"stopped {took:.1f}s after it was ready (idle after {idle_after:.1f}s)"
    )
    assert "no one has used it" in session["statusReason"], session
