"""The local stack's contract (ARCHITECTURE.md): stack.json, any SDK or CLI, control_url, agent
claims checked before they count, every handler's sample accepted, and a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.stackfixture import ROOT, Stack, start_stack, stop_stack

SAMPLES = ROOT / "events" / "samples"


def test_stack_json_has_every_contract_key(fleet: Stack) -> None:
    keys = {
        "api_url",
        "portal_url",
        "aws_endpoint_url",
        "region",
        "control_url",
        "user_pool_id",
        "user_pool_client_id",
        "demo_user",
    }
    assert keys <= set(fleet.info)
    assert set(fleet.info["demo_user"]) == {"username", "password"}


def test_the_demo_user_can_sign_in(fleet: Stack) -> None:
    from local.demo import Client

    client = Client(fleet.info)
    client.sign_in(fleet.info["demo_user"]["username"], fleet.info["demo_user"]["password"])
    assert client.call("GET", "/sessions").status_code == 200


def test_a_plain_aws_cli_sees_the_templates_real_resources(fleet: Stack) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    aws = [
        sys.executable,
        "-m",
        "awscli",
        "--endpoint-url",
        fleet.endpoint,
        "--region",
        "us-east-1",
    ]
    machines = json.loads(
        subprocess.run(
            [*aws, "stepfunctions", "list-state-machines"], env=env, capture_output=True, check=True
        ).stdout
    )
    names = [m["name"] for m in machines["stateMachines"]]
    assert "dcvfleet-local-provision-session" in names
    stacks = json.loads(
        subprocess.run(
            [*aws, "cloudformation", "describe-stacks"], env=env, capture_output=True, check=True
        ).stdout
    )
    assert stacks["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    tables = json.loads(
        subprocess.run(
            [*aws, "dynamodb", "list-tables"], env=env, capture_output=True, check=True
        ).stdout
    )
    assert fleet.info["resources"]["SessionsTable"] in tables["TableNames"]


def test_control_url_lists_hosts_and_sets_their_connections(fleet: Stack) -> None:
    user = fleet.new_user()
    session_id = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"}).json()[
        "sessionId"
    ]
    instance_id = fleet.wait_for(user, session_id)["instanceId"]
    hosts = {h["instanceId"]: h for h in fleet.control("GET", "/hosts").json()["hosts"]}
    assert hosts[instance_id]["sessionId"] == session_id
    resp = fleet.control("POST", f"/hosts/{instance_id}/connections", {"count": 2})
    assert resp.status_code == 200
    assert resp.json()["connections"] == 2
    # the simulated dcv reports what control set
    state = Path(resp.json()["log"]).parent / "dcv-state.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "local" / "sim_dcv.py"), "list-connections", "-j", "desktop"],
        env={**os.environ, "SIM_DCV_STATE": str(state)},
        capture_output=True,
        check=True,
    )
    assert len(json.loads(out.stdout)) == 2
    assert (
        fleet.control("POST", f"/hosts/{instance_id}/connections", {"count": -1}).status_code == 400
    )
    assert (
        fleet.control("POST", "/hosts/i-0000000000000000f/connections", {"count": 1}).status_code
        == 404
    )


def _host_ready(fleet: Stack, session_id: str, instance_id: str, **detail: str) -> None:
    body = {
        "schemaVersion": "1",
        "instanceId": instance_id,
        "sessionId": session_id,
        "dcvSessionId": "desktop",
        "platform": "linux",
        "agentVersion": "0.1.0",
        "sentAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **detail,
    }
    resp = fleet.client("events").put_events(
        Entries=[
            {
                "Source": "dcvfleet.agent",
                "DetailType": "Host Ready",
                "Detail": json.dumps(body),
                "EventBusName": fleet.info["resources"]["FleetBus"],
            }
        ]
    )
    assert resp["FailedEntryCount"] == 0


def test_a_forged_host_ready_changes_nothing(fleet: Stack) -> None:
    # Given a desktop waiting for its host, whose agent stays silent
    fleet.agents(False)
    user = fleet.new_user()
    session_id = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"}).json()[
        "sessionId"
    ]
    deadline = time.monotonic() + 10
    while "WaitForHostReady" not in fleet.states_entered(session_id):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    real_instance = user.call("GET", f"/sessions/{session_id}").json()["instanceId"]
    # When claims arrive from another instance, with a garbled detail, and for a missing session
    _host_ready(fleet, session_id, "i-0fedcba9876543210")
    _host_ready(fleet, session_id, real_instance, dcvSessionId="../../etc")
    _host_ready(fleet, str(uuid.uuid4()), real_instance)
    time.sleep(1.0)
    # Then the session still waits, unchanged
    session = user.call("GET", f"/sessions/{session_id}").json()
    assert session["status"] == "PROVISIONING"
    assert "connectionUrl" not in session
    assert fleet.states_entered(session_id)[-1] == "WaitForHostReady"
    # And each claim was rejected with its reason in the consumer's log
    log = "\n".join(fleet.function_logs("AgentEventsFunction"))
    assert "is not the host of session" in log
    assert "detail.dcvSessionId:" in log
    # And the true claim from the session's own instance still works
    _host_ready(fleet, session_id, real_instance)
    assert fleet.wait_for(user, session_id)["status"] == "READY"


HANDLER_SAMPLES = {
    "api-create-session.json": "ApiFunction",
    "api-list-sessions.json": "ApiFunction",
    "api-get-session.json": "ApiFunction",
    "provision-create-credentials.json": "CreateCredentialsFunction",
    "provision-launch-instance.json": "LaunchInstanceFunction",
    "provision-await-host-ready.json": "AwaitHostReadyFunction",
    "provision-mark-ready.json": "MarkReadyFunction",
    "provision-compensate.json": "CompensateFunction",
    "agent-host-ready.json": "AgentEventsFunction",
}


def test_every_handler_sample_has_a_handler() -> None:
    handled = set(HANDLER_SAMPLES)
    emitted = {"session-ready.json", "session-failed.json"}
    assert {p.name for p in SAMPLES.glob("*.json")} == handled | emitted


@pytest.mark.parametrize(("sample", "function"), sorted(HANDLER_SAMPLES.items()))
def test_every_handler_accepts_its_sample(fleet: Stack, sample: str, function: str) -> None:
    """The consumer side: a handler parses its sample; it may only fail on the domain lookup."""
    resp = fleet.client("lambda").invoke(
        FunctionName=fleet.info["resources"][function],
        Payload=(SAMPLES / sample).read_bytes(),
    )
    payload = json.loads(resp["Payload"].read())
    if resp.get("FunctionError"):
        assert payload["errorType"] == "SessionNotFoundError", payload
    elif function == "ApiFunction":
        assert payload["statusCode"] in (200, 202, 404), payload
    elif function == "AgentEventsFunction":
        assert payload == {"outcome": "rejected", "reason": f"unknown session {_sample_session()}"}
    else:
        assert payload.get("terminated") == [], (
            payload
        )  # compensating an unknown session is a no-op


def _sample_session() -> str:
    detail = json.loads((SAMPLES / "agent-host-ready.json").read_text())["detail"]
    return str(detail["sessionId"])


def _processes_with(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in environ:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc to find processes")
def test_ctrl_c_stops_the_stack_and_leaves_no_process(tmp_path: Path) -> None:
    # Given a running stack with a booted host (a host's agent runs in its own process)
    stack = start_stack(tmp_path)
    try:
        user = stack.new_user()
        session_id = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"}).json()[
            "sessionId"
        ]
        assert stack.wait_for(user, session_id)["status"] == "READY"
    finally:
        # When it is interrupted
        code = stop_stack(stack)
    # Then it exits cleanly, removes stack.json, and no process of it is left
    assert code == 0, stack.log.read_text()[-2000:]
    assert not (tmp_path / "stack.json").exists()
    assert _processes_with(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/faults", {"noCapacity": "g5.xlarge"}, "noCapacity:"),
        ("/faults", {"functionErrors": {"NoSuchFunction": "RuntimeError"}}, "functionErrors:"),
        (
            "/faults",
            {"functionErrors": {"LaunchInstanceFunction": "not a name"}},
            "functionErrors.",
        ),
        ("/faults", ["not", "an", "object"], "body:"),
        ("/agents", {"enabled": "yes"}, "enabled:"),
        ("/hosts/i-0123456789abcdef0/connections", {"count": "2"}, "count:"),
    ],
)
def test_control_rejects_bad_input_naming_the_field(
    fleet: Stack, path: str, body: object, message: str
) -> None:
    resp = fleet.control("POST", path, body)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(message)


def test_an_unknown_route_is_answered_as_api_gateway_does(fleet: Stack) -> None:
    user = fleet.new_user()
    resp = user.call("GET", "/nowhere")
    assert resp.status_code == 403
    assert resp.json() == {"message": "Missing Authentication Token"}
    assert user.call("DELETE", "/sessions").status_code == 403


def test_an_unknown_parameter_stops_the_stack_with_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local", "--params", "NoSuchKnob=1", "--state-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown template parameter(s): NoSuchKnob" in result.stderr
    assert not (tmp_path / "stack.json").exists()
