"""End to end on one host: config -> identity -> OS user -> DCV session -> Host Ready -> the idle
monitor until stopped.

Uses the real local/sim/dcv.py as `dcv` and moto for EventBridge, SQS, SSM and Secrets Manager;
the SIGTERM tests run the agent as a process against bench/agent_footprint.py's fake endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from bench.agent_footprint import FakeAwsEndpoint, agent_config, start_agent
from dcvfleet.events import signed_by
from dcvfleet_agent import __version__
from dcvfleet_agent.agent import main
from dcvfleet_agent.config import KEYS, env_name
from tests.support.http import running

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "local" / "sim" / "dcv.py"
DCV = [sys.executable, str(SIM)]
INSTANCE_ID = "i-0123456789abcdef0"
EVENT_KEY = "0f" * 32
SESSION_ID = "7d0f6c1e-3b8a-4f2e-9c55-0a1b2c3d4e5f"
# The contracts the control plane validates agent events against.
HOST_READY_SCHEMA = json.loads((ROOT / "events/schemas/host-ready.schema.json").read_text())
HEARTBEAT_SCHEMA = json.loads((ROOT / "events/schemas/host-heartbeat.schema.json").read_text())
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


class StopAfter(threading.Event):
    """A stop event that sets itself at the n-th wait: the monitor samples n times, then stops."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.left = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.left -= 1
        if self.left < 0:
            self.set()
        return super().wait(0 if self.is_set() else timeout)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in KEYS:
        monkeypatch.delenv(env_name(key), raising=False)
    monkeypatch.delenv("SIM_DCV_FAIL", raising=False)
    monkeypatch.setenv("SIM_DCV_STATE", str(tmp_path / "dcv-state.json"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    yield tmp_path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_AgentHandler"]:
        root.removeHandler(handler)


@pytest.fixture
def aws(moto_endpoint: str) -> str:
    """EventBridge, SQS, SSM and Secrets Manager on a moto server: the agent signs its own
    requests over HTTP, which moto's in-process mock cannot see."""
    return moto_endpoint


@pytest.fixture
def agent_queue(aws: str) -> str:
    """An SQS queue fed by a rule on the 'fleet' bus matching every agent event."""
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="fleet")
    sqs = boto3.client("sqs", region_name=REGION)
    url: str = sqs.create_queue(QueueName="agent")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    pattern = {"source": ["dcvfleet.agent"]}
    events.put_rule(Name="agent", EventBusName="fleet", EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="agent", EventBusName="fleet", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
    )
    return url


def received(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every event in the queue (it is drained), by detail type."""
    sqs = boto3.client("sqs", region_name=REGION)
    events: dict[str, list[dict[str, Any]]] = {}
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return events
        for message in messages:
            event = json.loads(message["Body"])
            events.setdefault(event["detail-type"], []).append(event)


def fake_nvidia_smi(tmp_path: Path) -> list[str]:
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\necho 'utilization.gpu [%], utilization.encoder [%]'\necho '4 %, 0 %'\n"
    )
    return ["sh", str(script)]


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> None:
    data = {
        "eventBusName": "fleet",
        "region": REGION,
        "instanceId": INSTANCE_ID,
        "sessionId": SESSION_ID,
        "platform": "container",
        "dcvCommand": DCV,
        "manageUser": False,
        "readyTimeoutSeconds": 10,
        "sendMaxAttempts": 2,
        "sendBaseDelaySeconds": 0.01,
        "sendMaxDelaySeconds": 0.02,
        "nvidiaSmiCommand": fake_nvidia_smi(tmp_path),
        "sampleIntervalSeconds": 0.05,
        "heartbeatIntervalSeconds": 0.05,
        **overrides,
    }
    if os.environ.get("AWS_ENDPOINT_URL"):  # the `aws` fixture's moto server
        data["endpointUrl"] = os.environ["AWS_ENDPOINT_URL"]
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"dcvfleet/sessions/{uuid.uuid4()}",
            SecretString=json.dumps({"username": "alice", "password": "pw", "eventKey": EVENT_KEY}),
        )
        data.setdefault("secretArn", secret["ARN"])
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("DCVFLEET_AGENT_CONFIG", str(path))


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sim_sessions() -> list[dict[str, Any]]:
    out = subprocess.run([*DCV, "list-sessions", "-j"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_ready_path_emits_one_host_ready_then_heartbeats_until_stopped(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    agent_queue: str,
) -> None:
    write_config(isolated, monkeypatch)
    assert main(StopAfter(3)) == 0
    events = received(agent_queue)
    [event] = events["Host Ready"]
    assert (event["source"], event["detail-type"]) == ("dcvfleet.agent", "Host Ready")
    detail = event["detail"]
    jsonschema.validate(detail, HOST_READY_SCHEMA, format_checker=FORMATS)
    assert detail["instanceId"] == INSTANCE_ID
    assert detail["sessionId"] == SESSION_ID
    assert detail["dcvSessionId"] == "desktop"
    assert detail["platform"] == "container"
    assert detail["agentVersion"] == __version__ == "0.1.0"
    heartbeats = events["Host Heartbeat"]
    assert len(heartbeats) == 3  # one per sample: the heartbeat interval is the sample interval
    # And each event is signed with the session's event key, as the control plane checks it
    for sent in [event, *heartbeats]:
        assert signed_by(EVENT_KEY, sent["detail-type"], sent["detail"])
        assert not signed_by("another-sessions-key", sent["detail-type"], sent["detail"])
    for heartbeat in heartbeats:
        jsonschema.validate(heartbeat["detail"], HEARTBEAT_SCHEMA, format_checker=FORMATS)
    signals = heartbeats[-1]["detail"]["signals"]
    assert signals["dcv"] == {
        "idle": True,
        "connections": 0,
        "lastDisconnectAt": None,
        "lastInteractionAt": None,
    }
    assert signals["gpu"]["utilizationPercent"] == 4.0
    assert signals["cpu"]["thresholdPercent"] == 10
    [session] = sim_sessions()
    assert (session["id"], session["owner"], session["type"]) == ("desktop", "dcvuser", "virtual")
    lines = log_lines(capsys.readouterr().err)
    assert lines
    assert all(line["sessionId"] == SESSION_ID for line in lines)
    assert all(line["instanceId"] == INSTANCE_ID for line in lines)
    messages = [line["message"] for line in lines]
    assert messages.index("Host Ready sent") < messages.index("monitoring idleness")
    assert messages[-1] == "monitor stopped"
    assert main(StopAfter(0)) == 0  # a re-run (service restart) reuses the session, reports again
    assert [s["id"] for s in sim_sessions()] == ["desktop"]
    again = received(agent_queue)
    assert [e["detail"]["dcvSessionId"] for e in again["Host Ready"]] == ["desktop"]


def test_settings_parameter_from_ssm_sets_the_idle_policy(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    agent_queue: str,
) -> None:
    settings = {
        "cpuThresholdPercent": 55,
        "gpuThresholdPercent": None,
        "idleTimeoutSeconds": 0.1,
        "idleGraceSeconds": 30,  # not the agent's: left out with a warning
    }
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/dcvfleet/agent", Type="String", Value=json.dumps(settings))
    write_config(isolated, monkeypatch, settingsParameter="/dcvfleet/agent", cpuStatPath="/nope")
    monkeypatch.setenv("DCVFLEET_CPU_THRESHOLD_PERCENT", "null")  # env over SSM
    monkeypatch.setenv("DCVFLEET_GPU_THRESHOLD_PERCENT", "")  # empty: not set
    assert main(StopAfter(4)) == 0
    events = received(agent_queue)
    heartbeats = [e["detail"] for e in events["Host Heartbeat"]]
    assert [set(h["signals"]) for h in heartbeats] == [{"dcv"}] * 4
    idle = [e["detail"] for e in events.get("Session Idle", [])]
    assert idle  # idle from the first sample, timeout 0.1 s from SSM
    assert {d["idleTimeoutSeconds"] for d in idle} == {0.1}
    [warning] = [line for line in log_lines(capsys.readouterr().err) if line["level"] == "WARNING"]
    assert (warning["message"], warning["key"]) == ("setting ignored", "idleGraceSeconds")


def test_garbled_settings_parameter_is_ignored_with_a_warning(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    agent_queue: str,
) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/dcvfleet/agent", Type="String", Value="idleTimeoutSeconds=5")
    write_config(isolated, monkeypatch, settingsParameter="/dcvfleet/agent")
    assert main(StopAfter(1)) == 0
    [heartbeat] = received(agent_queue)["Host Heartbeat"]
    assert heartbeat["detail"]["signals"]["cpu"]["thresholdPercent"] == 10  # the default
    warning = next(
        line for line in log_lines(capsys.readouterr().err) if line["level"] == "WARNING"
    )
    assert warning["message"] == "settings parameter ignored: file and defaults apply"
    assert "is not JSON" in warning["error"]
    assert warning["settingsParameter"] == "/dcvfleet/agent"


def test_dcv_never_ready_exits_non_zero(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    agent_queue: str,
) -> None:
    write_config(isolated, monkeypatch, readyTimeoutSeconds=0.2)
    monkeypatch.setenv("SIM_DCV_FAIL", "garbage")  # each fault mode: see test_agent_dcv.py
    assert main() == 1
    assert received(agent_queue) == {}
    final = log_lines(capsys.readouterr().err)[-1]
    assert final["level"] == "ERROR"
    assert final["message"] == "host did not become ready"
    assert "was not listed within 0.2s" in final["error"]
    assert "not JSON" in final["error"]


def test_undeliverable_host_ready_exits_non_zero(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], aws: str
) -> None:
    write_config(isolated, monkeypatch, eventBusName="no-such-bus")
    subprocess.run([*DCV, "create-session", "--owner", "dcvuser", "desktop"], check=True)
    assert main() == 1
    messages = [line["message"] for line in log_lines(capsys.readouterr().err)]
    assert messages.count("PutEvents call failed") == 2
    assert messages[-1] == "Host Ready event could not be delivered"


def test_config_error_exits_2_and_names_the_key(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(isolated, monkeypatch, sendMaxAttempts="eight")
    assert main() == 2
    [line] = log_lines(capsys.readouterr().err)
    assert line["key"] == "sendMaxAttempts"
    assert line["sessionId"] is None


def test_identity_failure_exits_1(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(isolated, monkeypatch, sessionId=None)
    monkeypatch.setattr("dcvfleet_agent.aws.IMDS_URL", "http://127.0.0.1:9")
    assert main() == 1
    [line] = log_lines(capsys.readouterr().err)
    assert line["message"] == "cannot determine host identity"
    assert "unreachable" in line["error"]


def test_unexpected_exception_is_logged_as_json(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(isolated, monkeypatch)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("dcvfleet_agent.agent.EventSender", broken)
    assert main() == 1
    [line] = log_lines(capsys.readouterr().err)
    assert line["message"] == "unexpected failure"
    assert "RuntimeError: boom" in line["exception"]


# --- as a process: SIGTERM ----------------------------------------------------------------------


@pytest.fixture
def endpoint() -> Iterator[FakeAwsEndpoint]:
    with running(FakeAwsEndpoint()) as server:
        yield server


def test_sigterm_stops_the_monitor_with_exit_0(tmp_path: Path, endpoint: FakeAwsEndpoint) -> None:
    config = agent_config(tmp_path, endpoint.address, sampleIntervalSeconds=0.2)
    config["heartbeatIntervalSeconds"] = 0.2
    process = start_agent(tmp_path, config)
    try:
        assert endpoint.wait_for("Host Heartbeat", 2, timeout=30), (
            tmp_path / "agent.log"
        ).read_text()
        sent_before = len(endpoint.details("Host Heartbeat"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        # at once: at most the heartbeat already on its way when the signal came (a monitor
        # that went on would have sent one every 0.2 s)
        assert len(endpoint.details("Host Heartbeat")) - sent_before <= 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [ready] = endpoint.details("Host Ready")
    jsonschema.validate(ready, HOST_READY_SCHEMA, format_checker=FORMATS)
    for heartbeat in endpoint.details("Host Heartbeat"):
        jsonschema.validate(heartbeat, HEARTBEAT_SCHEMA, format_checker=FORMATS)
        assert set(heartbeat["signals"]) == {"dcv", "cpu", "gpu"}
    assert log_lines((tmp_path / "agent.log").read_text())[-1]["message"] == "monitor stopped"


def test_sigterm_while_waiting_for_dcv_exits_0_at_once(
    tmp_path: Path, endpoint: FakeAwsEndpoint
) -> None:
    config = agent_config(tmp_path, endpoint.address, readyTimeoutSeconds=120)
    process = start_agent(tmp_path, config, env={"SIM_DCV_FAIL": "garbage"})
    try:
        deadline = time.monotonic() + 30
        while "DCV not ready yet" not in (tmp_path / "agent.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert endpoint.details("Host Ready") == []
    last = log_lines((tmp_path / "agent.log").read_text())[-1]
    assert last["message"] == "stopped before the host was ready"
