"""A host cannot make the control plane act on another host's session.

Every agent event is signed with its session's event key, kept in the session's secret, which
only that session's own host may read (template: HostRole, DesktopJobRole; tests/template/
test_least_privilege.py). Here host A, holding only its own key, speaks for B's session: the
consumer rejects every such event, and nothing of B changes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from local.client import Client
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = {
    "Host Ready": "agent-host-ready.json",
    "Host Heartbeat": "agent-host-heartbeat.json",
    "Session Idle": "agent-session-idle.json",
}
#: A sentAt no real agent sends, to tell a forged heartbeat from the host's own.
FORGED_AT = "2099-01-01T00:00:00Z"


def _fresh_sent_at(ahead_ms: int = 1000) -> str:
    """A sentAt the consumer takes as fresh (its window is two heartbeat intervals), and newer
    than any the desktop's own agent stamped before it."""
    millis = int(time.time() * 1000) + ahead_ms
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"
    )


def _ready_session(fleet: Stack) -> tuple[Client, dict[str, Any]]:
    user = fleet.new_user()
    resp = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert resp.status_code == 202, resp.text
    session = fleet.wait_for(user, resp.json()["sessionId"])
    assert session["status"] == "READY", session
    return user, session


def _detail(detail_type: str, session: dict[str, Any], sent_at: str = FORGED_AT) -> dict[str, Any]:
    sample = json.loads((ROOT / "events" / "samples" / SAMPLES[detail_type]).read_text())
    detail: dict[str, Any] = sample["detail"]
    detail.update(sessionId=session["sessionId"], instanceId=session["instanceId"])
    detail.update(sentAt=sent_at)
    return detail


def _record(fleet: Stack, session_id: str) -> dict[str, Any]:
    item = fleet.client("dynamodb").get_item(
        TableName=fleet.info["resources"]["SessionsTable"], Key={"pk": {"S": session_id}}
    )["Item"]
    return dict(item)


def _rejections(fleet: Stack, session_id: str) -> list[tuple[str, str]]:
    """The claims on this session the agent-event consumer logged as rejected: (detail-type,
    reason) each, the reason naming the session."""
    rejected = fleet.function_records("AgentEventsFunction", "agent claim rejected")
    return [
        (str(entry["detail_type"]), str(entry["reason"]))
        for entry in rejected
        if session_id in str(entry.get("reason", ""))
    ]


def _answer(fleet: Stack, detail_type: str, detail: dict[str, Any]) -> dict[str, str]:
    """What the consumer answers an event put on the bus with this detail, as it is (the same
    envelope, invoked directly)."""
    envelope = json.loads((ROOT / "events" / "samples" / SAMPLES[detail_type]).read_text())
    envelope["detail"] = detail
    resp = fleet.client("lambda").invoke(
        FunctionName=fleet.info["resources"]["AgentEventsFunction"],
        Payload=json.dumps(envelope).encode(),
    )
    answer: dict[str, str] = json.loads(resp["Payload"].read())
    return answer


def _verdict(fleet: Stack, detail_type: str, detail: dict[str, Any], signer: str | None) -> str:
    """What the consumer answers the event signed by ``signer``: its rejection's reason."""
    answer = _answer(fleet, detail_type, fleet.signed(detail_type, detail, signer=signer))
    assert answer["outcome"] == "rejected", answer
    return str(answer["reason"])


def _wait_for_rejections(fleet: Stack, session_id: str, count: int) -> list[tuple[str, str]]:
    """The rejections logged for the session once there are ``count`` of them."""
    deadline = time.monotonic() + 60
    reasons = _rejections(fleet, session_id)
    while len(reasons) < count:
        assert time.monotonic() < deadline, (
            f"{len(reasons)} of {count} rejections logged for {session_id}: {reasons}"
        )
        time.sleep(0.5)
        reasons = _rejections(fleet, session_id)
    return reasons


def _idle_checks(fleet: Stack, session_id: str) -> list[str]:
    sfn = fleet.client("stepfunctions")
    machine = fleet.info["resources"]["IdleStateMachine"]
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    return [e["name"] for e in executions if e["name"].startswith(session_id)]


def test_a_host_speaking_for_another_hosts_session_changes_nothing(fleet: Stack) -> None:
    # Given two users' READY desktops, A and B, on two hosts
    _, a = _ready_session(fleet)
    _, b = _ready_session(fleet)
    before = _record(fleet, b["sessionId"])
    idle_checks = _idle_checks(fleet, b["sessionId"])
    # When host A, which holds only A's key, claims B's session is ready, heartbeating and idle
    # (B's session and instance ids in each claim), and then sends the same claims unsigned
    # (each put on the bus, and the same event handed to the consumer directly)
    verdicts = []
    for detail_type in SAMPLES:
        for signer in (a["sessionId"], None):
            fleet.put_agent_event(detail_type, _detail(detail_type, b), signer=signer)
            verdicts.append(
                (detail_type, _verdict(fleet, detail_type, _detail(detail_type, b), signer))
            )
    # Then the consumer rejects all six for their signature
    reasons = [reason for _, reason in verdicts]
    assert sum("signature: not made with" in r for r in reasons) == 3, reasons
    assert sum("signature: is required" in r for r in reasons) == 3, reasons
    # And so it does each bus copy: every verdict logged twice, once for the direct call and
    # once for the copy the bus delivered, and no other (the record is read only after all)
    logged = _wait_for_rejections(fleet, b["sessionId"], 2 * len(verdicts))
    assert sorted(logged) == sorted(verdicts * 2), logged
    # And B's record changed in nothing but, at most, its own host's heartbeat
    after = _record(fleet, b["sessionId"])
    heartbeat_fields = ("lastHeartbeatAt", "heartbeat")
    assert {k: v for k, v in after.items() if k not in heartbeat_fields} == {
        k: v for k, v in before.items() if k not in heartbeat_fields
    }
    assert FORGED_AT not in json.dumps(after)
    # And no idle check of B started, and B is still READY on its host
    assert _idle_checks(fleet, b["sessionId"]) == idle_checks
    assert fleet.host(b["instanceId"])["state"] == "running"


def test_the_same_claim_signed_with_the_sessions_own_key_is_accepted(fleet: Stack) -> None:
    # Given a READY desktop
    _, b = _ready_session(fleet)
    # When its own host's key signs a heartbeat, sent just now (the positive control of the
    # test above)
    sent_at = _fresh_sent_at()
    fleet.put_agent_event("Host Heartbeat", _detail("Host Heartbeat", b, sent_at))
    # Then the consumer records it
    deadline = time.monotonic() + 30
    while sent_at not in json.dumps(_record(fleet, b["sessionId"])):
        assert time.monotonic() < deadline, "a heartbeat signed with the session's key was lost"
        time.sleep(0.5)
    assert _rejections(fleet, b["sessionId"]) == []


def test_a_signed_event_sent_again_or_late_is_rejected_and_changes_nothing(fleet: Stack) -> None:
    # Given a READY desktop, and a heartbeat its own host signed just now, accepted
    _, b = _ready_session(fleet)
    fresh = fleet.signed("Host Heartbeat", _detail("Host Heartbeat", b, _fresh_sent_at()))
    assert _answer(fleet, "Host Heartbeat", fresh) == {"outcome": "accepted", "reason": "recorded"}
    before = _record(fleet, b["sessionId"])
    # When the same signed event is sent again (a replay: same detail, same signature)
    replayed = _answer(fleet, "Host Heartbeat", dict(fresh))
    # And one the host signed ten minutes ago, and one it signed just before the first
    late = _detail("Host Heartbeat", b, _fresh_sent_at(ahead_ms=-600_000))
    late_answer = _answer(fleet, "Host Heartbeat", fleet.signed("Host Heartbeat", late))
    older = _detail("Host Heartbeat", b, _fresh_sent_at(ahead_ms=-1_000))
    older_answer = _answer(fleet, "Host Heartbeat", fleet.signed("Host Heartbeat", older))
    # Then each is rejected for its sentAt, saying why
    assert replayed["outcome"] == "rejected", replayed
    assert "is not newer than the last event accepted" in replayed["reason"], replayed
    assert late_answer["outcome"] == "rejected", late_answer
    assert "outside the" in late_answer["reason"], late_answer
    assert older_answer["outcome"] == "rejected", older_answer
    assert "is not newer than the last event accepted" in older_answer["reason"], older_answer
    # And B's record is as it was (its own agent's heartbeats, if any came, aside)
    after = _record(fleet, b["sessionId"])
    heartbeat_fields = ("lastHeartbeatAt", "heartbeat")
    assert {k: v for k, v in after.items() if k not in heartbeat_fields} == {
        k: v for k, v in before.items() if k not in heartbeat_fields
    }
