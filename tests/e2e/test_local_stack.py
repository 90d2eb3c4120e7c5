"""The local stack's contract (docs/architecture.md, "The local stack"): stack.json, any SDK or
CLI, control_url, agent claims checked before they count, every handler's sample accepted, a
clean Ctrl-C; and what the emulator adds for the idle workflow and the sweep: EventBridge
schedules, Run Command on the simulated hosts, their simulated CPU/GPU, and hosts that halt and
boot with their instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from samtranslator.yaml_helper import yaml_parse

from tests.support.ssm import run_command_document
from tests.support.stack import ROOT, Stack, start_stack, stop_stack

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
        "admin_user",
    }
    assert keys <= set(fleet.info)
    assert set(fleet.info["demo_user"]) == {"username", "password"}
    assert set(fleet.info["admin_user"]) == {"username", "password"}


def test_the_demo_user_can_sign_in(fleet: Stack) -> None:
    from local.client import Client

    client = Client(fleet.info)
    client.sign_in(fleet.info["demo_user"]["username"], fleet.info["demo_user"]["password"])
    assert client.call("GET", "/sessions").status_code == 200
    assert client.call("GET", "/admin/sessions").status_code == 403  # not an administrator


def test_the_admin_user_signs_in_as_an_administrator(fleet: Stack) -> None:
    from local.client import Client

    client = Client(fleet.info)
    client.sign_in(fleet.info["admin_user"]["username"], fleet.info["admin_user"]["password"])
    assert client.call("GET", "/admin/sessions").status_code == 200
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
        [sys.executable, str(ROOT / "local/sim/dcv.py"), "list-connections", "-j", "desktop"],
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
    """A Host Ready claim, signed with the session's own key when it has one (a session that
    does not exist has no key: the claim goes unsigned)."""
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
    known = fleet.secret_exists(session_id)
    fleet.put_agent_event("Host Ready", body, signer="own" if known else None)


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
    "agent-host-heartbeat.json": "AgentEventsFunction",
    "agent-session-idle.json": "AgentEventsFunction",
    "api-start-session.json": "ApiFunction",
    "api-stop-session.json": "ApiFunction",
    "api-delete-session.json": "ApiFunction",
    "provision-resume-instance.json": "ResumeInstanceFunction",
    "idle-verify.json": "VerifyIdleFunction",
    "idle-warn.json": "WarnIdleFunction",
    "idle-end-check.json": "EndIdleCheckFunction",
    "idle-act.json": "ActOnSessionFunction",
    "idle-confirm.json": "ConfirmStoppedFunction",
    "idle-recover.json": "RecoverIdleFunction",
    "sweep-find.json": "SweepFindFunction",
    "sweep-item.json": "SweepItemFunction",
    "ec2-instance-state-change.json": "InstanceStateFunction",
    "provision-submit-job.json": "SubmitJobFunction",
    "provision-check-job.json": "CheckJobFunction",
    "batch-job-state-change.json": "JobStateFunction",
}
#: What each handler answers for its sample, whose session and instance do not exist here.
UNKNOWN_SESSION_ANSWERS = {
    "VerifyIdleFunction": lambda p: p["idle"] is False and p["reason"] == "the desktop is gone",
    # and the error its workflow fails with: ours, never the reserved States.* name it caught
    "RecoverIdleFunction": lambda p: (
        p
        == {
            "recovered": "gone",
            "error": "WorkflowStepError",
            "cause": "States.TaskFailed: stop failed",
        }
    ),
    "SweepFindFunction": lambda p: isinstance(p["items"], list),
    "SweepItemFunction": lambda p: p["outcome"].startswith("skipped: unknown session"),
    "InstanceStateFunction": lambda p: p == {"outcome": "not a desktop of this fleet"},
    "JobStateFunction": lambda p: p == {"outcome": "no session runs this job"},
    "CompensateFunction": lambda p: p.get("terminated") == [],  # undoing nothing is a no-op
}


def test_every_handler_sample_has_a_handler() -> None:
    handled = set(HANDLER_SAMPLES)
    emitted = {
        "session-ready.json",
        "session-failed.json",
        "session-idle-warning.json",
        "session-stopped.json",
        "session-terminated.json",
        "session-credentials-revealed.json",
    }
    assert {p.name for p in SAMPLES.glob("*.json")} == handled | emitted


def _forged(sample: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLES / sample).read_text())
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("function", "event", "reason"),
    [
        (
            "JobStateFunction",
            _forged("batch-job-state-change.json", source="dcvfleet.agent"),
            "not a Batch job state change",
        ),
        (
            "JobStateFunction",
            _forged("batch-job-state-change.json", detail={"jobName": "x"}),
            "not a Batch job state change",
        ),
        (
            "InstanceStateFunction",
            _forged("ec2-instance-state-change.json", source="dcvfleet"),
            "not an EC2 instance state-change notification",
        ),
        (
            "InstanceStateFunction",
            {"detail": "garbled"},
            "not an EC2 instance state-change notification",
        ),
    ],
)
def test_a_forged_or_garbled_aws_event_is_rejected(
    fleet: Stack, function: str, event: dict[str, Any], reason: str
) -> None:
    """AWS's own events are trusted only in their own shape, from their own source."""
    resp = fleet.client("lambda").invoke(
        FunctionName=fleet.info["resources"][function], Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read()) == {"outcome": "rejected", "reason": reason}


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
        assert payload["outcome"] == "rejected", payload
        assert _sample_session() in payload["reason"], payload
    else:
        assert UNKNOWN_SESSION_ANSWERS[function](payload), payload


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
def test_ctrl_c_stops_the_stack_and_a_restart_keeps_its_ports_and_passwords(
    tmp_path: Path,
) -> None:
    # Given a running stack with a booted host (a host's agent runs in its own process)
    stack = start_stack(tmp_path)
    before = dict(stack.info)
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
    # And started again in the same state directory, it serves on the same ports, its users
    # keep their passwords, and they sign in
    again = start_stack(tmp_path)
    try:
        kept = ("api_url", "portal_url", "aws_endpoint_url", "control_url")
        assert {key: again.info[key] for key in kept} == {key: before[key] for key in kept}
        assert again.info["demo_user"] == before["demo_user"]
        assert again.info["admin_user"] == before["admin_user"]
        from local.client import Client

        client = Client(again.info)
        client.sign_in(before["admin_user"]["username"], before["admin_user"]["password"])
        assert client.call("GET", "/admin/sessions").status_code == 200
    finally:
        assert stop_stack(again) == 0


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
        ("/hosts/i-0123456789abcdef0/activity", {"cpuPercent": 120}, "cpuPercent:"),
        ("/hosts/i-0123456789abcdef0/activity", {"gpu": 5}, "gpu:"),
        ("/hosts/i-0123456789abcdef0/agent", {"running": "no"}, "running:"),
        ("/schedules/run", {"rule": 5}, "rule:"),
        ("/schedules/run", {"rules": []}, "rules:"),
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


def _run_local(state_dir: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m local`` with ``args`` and its state in ``state_dir``, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "local", *args, "--state-dir", str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_an_unknown_parameter_stops_the_stack_with_a_clear_error(tmp_path: Path) -> None:
    result = _run_local(tmp_path, "--params", "NoSuchKnob=1", timeout=120)
    assert result.returncode == 2
    assert "unknown template parameter(s): NoSuchKnob" in result.stderr
    assert not (tmp_path / "stack.json").exists()


def _ready_session(fleet: Stack, os_type: str = "linux") -> tuple[Any, str, str]:
    """A new user's READY desktop: (the user, the session id, its instance id)."""
    user = fleet.new_user()
    body = {"backend": "ec2", "os": os_type}
    session_id = user.call("POST", "/sessions", body).json()["sessionId"]
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "READY", session
    return user, session_id, session["instanceId"]


def test_schedules_run_fires_a_schedule_rule_at_once(fleet: Stack) -> None:
    # Given a rule on the default bus that would fire only once a week, with a queue and a
    # workflow (given a fixed input, as the sweep's schedule is) as its targets
    events, sqs, sfn = fleet.client("events"), fleet.client("sqs"), fleet.client("stepfunctions")
    name = f"probe-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    machine = sfn.create_state_machine(
        name=name,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/probe",
    )["stateMachineArn"]
    rule_arn = events.put_rule(Name=name, ScheduleExpression="rate(7 days)")["RuleArn"]
    events.put_targets(
        Rule=name,
        Targets=[
            {"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]},
            {"Id": "sm", "Arn": machine, "Input": '{"trigger": "schedule"}'},
        ],
    )
    try:
        # When control fires it now
        assert fleet.run_schedules(name) == [name]
        # Then its targets get what EventBridge sends on a schedule
        (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
        event = json.loads(message["Body"])
        assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")
        assert event["resources"] == [rule_arn]
        deadline = time.monotonic() + 10
        while not (executions := sfn.list_executions(stateMachineArn=machine)["executions"]):
            assert time.monotonic() < deadline, "the schedule started no execution"
            time.sleep(0.1)
        started = sfn.describe_execution(executionArn=executions[0]["executionArn"])
        assert json.loads(started["input"]) == {"trigger": "schedule"}
        # And control lists it, with when it fires next on its own
        schedules = {s["name"]: s for s in fleet.control("GET", "/schedules").json()["schedules"]}
        assert schedules[name]["runsLocally"] is True
        assert schedules[name]["fired"] == 1
    finally:
        events.remove_targets(Rule=name, Ids=["q", "sm"])
        events.delete_rule(Name=name)
    assert fleet.control("POST", "/schedules/run", {"rule": name}).status_code == 404


RUN_COMMAND_DOCUMENT = run_command_document(
    "probe: DCV connections and GPU utilisation, on Linux and Windows",
    linux=[
        "dcv list-connections -j {{ dcvSessionId }}",
        "nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits >&2",
    ],
    windows=["dcv.exe list-connections -j {{ dcvSessionId }}"],
)


def _invocation(ssm: Any, command_id: str, instance_id: str, step: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        found: dict[str, Any] = ssm.get_command_invocation(
            CommandId=command_id, InstanceId=instance_id, PluginName=step
        )
        if found["Status"] not in ("Pending", "InProgress"):
            return found
        assert time.monotonic() < deadline, f"invocation still {found['Status']}"
        time.sleep(0.1)


def test_run_command_runs_on_a_simulated_host(fleet: Stack) -> None:
    # Given a READY desktop with two clients and a busy GPU, and a document like the template's
    _user, _session_id, instance_id = _ready_session(fleet)
    assert fleet.control("POST", f"/hosts/{instance_id}/connections", {"count": 2}).ok
    assert fleet.control("POST", f"/hosts/{instance_id}/activity", {"gpuPercent": 42}).ok
    ssm = fleet.client("ssm")
    document = f"probe-{uuid.uuid4().hex[:8]}"
    ssm.create_document(
        Content=json.dumps(RUN_COMMAND_DOCUMENT),
        Name=document,
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    # When the control plane's call is made
    command = ssm.send_command(
        DocumentName=document, InstanceIds=[instance_id], Parameters={"dcvSessionId": ["desktop"]}
    )["Command"]
    # Then the host's own dcv and nvidia-smi answered
    result = _invocation(ssm, command["CommandId"], instance_id, "linux")
    assert (result["Status"], result["ResponseCode"]) == ("Success", 0)
    assert len(json.loads(result["StandardOutputContent"])) == 2
    assert result["StandardErrorContent"] == "42\n"
    # And what SSM refuses is refused
    for parameters, target, code in (
        ({"dcvSessionId": ["desktop; reboot"]}, instance_id, "InvalidParameters"),
        ({"dcvSessionId": ["desktop"]}, "i-0123456789abcdef0", "InvalidInstanceId"),
    ):
        with pytest.raises(ClientError) as err:
            ssm.send_command(DocumentName=document, InstanceIds=[target], Parameters=parameters)
        assert err.value.response["Error"]["Code"] == code
    with pytest.raises(ClientError) as unnamed:
        ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
    assert unnamed.value.response["Error"]["Code"] == "InvalidPluginName"


def test_a_hosts_agent_gets_its_idle_signal_sources(fleet: Stack) -> None:
    from dcvfleet_agent.config import KEYS

    _user, _session_id, instance_id = _ready_session(fleet)
    host = fleet.host(instance_id)
    config = json.loads((Path(host["workdir"]) / "agent.json").read_text())
    # every key the agent knows is written; the rest are left out so the agent still starts
    assert set(config) <= set(KEYS)
    if "cpuStatPath" in KEYS:
        stat = Path(config["cpuStatPath"]).read_text()
        assert stat.startswith("cpu ")
        assert "cpu3 " in stat
    if "nvidiaSmiCommand" in KEYS:
        query = ["--query-gpu=utilization.gpu,utilization.encoder", "--format=csv,noheader,nounits"]
        out = subprocess.run(
            [*config["nvidiaSmiCommand"], *query], capture_output=True, text=True, check=True
        )
        assert out.stdout == "0, 0\n"
    if "settingsParameter" in config:  # the stack output AgentSettingsParameter
        value = fleet.client("ssm").get_parameter(Name=config["settingsParameter"])
        assert isinstance(json.loads(value["Parameter"]["Value"]), dict)


@pytest.mark.parametrize("os_type", ["linux", "windows"])
def test_a_stopped_desktop_halts_its_host_and_resumes_on_the_same_instance(
    fleet: Stack, os_type: str
) -> None:
    # Given a READY desktop with a client connected
    user, session_id, instance_id = _ready_session(fleet, os_type)
    assert fleet.control("POST", f"/hosts/{instance_id}/connections", {"count": 1}).ok
    # When its user stops it
    assert user.call("POST", f"/sessions/{session_id}/stop").status_code == 202
    assert fleet.wait_for(user, session_id, ("STOPPED", "FAILED"))["status"] == "STOPPED"
    # Then its host has halted (the simulator follows EC2 within moments): no agent, no DCV
    # session, the client gone
    deadline = time.monotonic() + 20
    while fleet.host(instance_id)["state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.2)
    host = fleet.host(instance_id)
    assert (host["state"], host["agent"], host["dcvSessions"]) == ("stopped", "halted", [])
    assert host["connections"] == 0
    assert host["lastDisconnection"].endswith("Z")
    # When its user starts it again, the same instance boots, its agent reports again
    assert user.call("POST", f"/sessions/{session_id}/start").status_code == 202
    session = fleet.wait_for(user, session_id, ("READY", "FAILED"))
    assert (session["status"], session["instanceId"]) == ("READY", instance_id)
    host = fleet.host(instance_id)
    assert (host["state"], host["agent"]) == ("running", "running")
    assert host["dcvSessions"] == (["console"] if os_type == "windows" else ["desktop"])


def test_control_ends_a_hosts_agent_and_starts_a_fresh_one(fleet: Stack) -> None:
    # Given a READY desktop
    _user, session_id, instance_id = _ready_session(fleet)
    observer = fleet.observe("dcvfleet.agent")
    # When its agent is ended, it is no longer running on the host, which keeps running
    resp = fleet.control("POST", f"/hosts/{instance_id}/agent", {"running": False})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["state"], resp.json()["agent"]) == ("running", "stopped")
    # When a fresh one is started, it reports the host ready again
    resp = fleet.control("POST", f"/hosts/{instance_id}/agent", {"running": True})
    assert resp.status_code == 200, resp.text
    ready = observer.wait_for("Host Ready", session_id, timeout=15)
    assert ready["detail"]["instanceId"] == instance_id
    assert fleet.host(instance_id)["agent"] == "running"


def test_a_minute_seconds_that_is_not_positive_is_refused(tmp_path: Path) -> None:
    result = _run_local(tmp_path, "--minute-seconds", "0", timeout=60)
    assert result.returncode == 2
    assert "--minute-seconds: must be a number > 0" in result.stderr


def test_the_account_has_the_stacks_api_gateway_logging_role(fleet: Stack) -> None:
    """Workaround APIGW_ACCOUNT: the role the stack made is the account's API Gateway role."""
    account = fleet.client("apigateway").get_account()
    role = fleet.info["resources"]["ApiGatewayCloudWatchRole"]
    assert account["cloudwatchRoleArn"].endswith(f":role/{role}")


def test_the_templates_alarms_and_dashboard_are_in_cloudwatch(fleet: Stack) -> None:
    """Workaround CLOUDWATCH_ALARMS: the alarms (put through the API) and the dashboard."""
    cloudwatch = fleet.client("cloudwatch")
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    template = yaml_parse((ROOT / "template.yaml").read_text())
    declared = [
        n for n, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert sorted(a["AlarmName"].rsplit("-", 1)[-1] for a in alarms) == sorted(declared)
    topic = fleet.info["resources"]["OperatorTopic"]
    assert {tuple(a["AlarmActions"]) for a in alarms} == {(topic,)}
    (dashboard,) = cloudwatch.list_dashboards()["DashboardEntries"]
    body = json.loads(
        cloudwatch.get_dashboard(DashboardName=dashboard["DashboardName"])["DashboardBody"]
    )
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(widget["properties"]["alarms"]) == sorted(a["AlarmArn"] for a in alarms)
