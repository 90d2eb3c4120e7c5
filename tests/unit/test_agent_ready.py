"""End to end on one host: config -> identity -> OS user -> DCV session -> Host Ready.

Uses the real local/sim_dcv.py as `dcv` and moto for EventBridge, SQS and Secrets Manager.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from dcvfleet_agent import __version__
from dcvfleet_agent.agent import main
from dcvfleet_agent.config import KEYS, env_name

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "local" / "sim_dcv.py"
DCV = [sys.executable, str(SIM)]
INSTANCE_ID = "i-0123456789abcdef0"
SESSION_ID = "7d0f6c1e-3b8a-4f2e-9c55-0a1b2c3d4e5f"
# The contract the control plane validates Host Ready against.
HOST_READY_SCHEMA = json.loads((ROOT / "events/schemas/host-ready.schema.json").read_text())


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
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def host_ready_queue(aws: None) -> str:
    """An SQS queue fed by a rule on the 'fleet' bus matching Host Ready events."""
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="fleet")
    sqs = boto3.client("sqs", region_name=REGION)
    url: str = sqs.create_queue(QueueName="host-ready")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    pattern = {"source": ["dcvfleet.agent"], "detail-type": ["Host Ready"]}
    events.put_rule(Name="host-ready", EventBusName="fleet", EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="host-ready", EventBusName="fleet", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
    )
    return url


def received(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


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
        **overrides,
    }
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("DCVFLEET_AGENT_CONFIG", str(path))


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sim_sessions() -> list[dict[str, Any]]:
    out = subprocess.run([*DCV, "list-sessions", "-j"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_ready_path_emits_exactly_one_host_ready(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    host_ready_queue: str,
) -> None:
    write_config(isolated, monkeypatch)
    assert main() == 0
    [event] = received(host_ready_queue)
    assert (event["source"], event["detail-type"]) == ("dcvfleet.agent", "Host Ready")
    detail = event["detail"]
    jsonschema.validate(
        detail, HOST_READY_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert detail["instanceId"] == INSTANCE_ID
    assert detail["sessionId"] == SESSION_ID
    assert detail["dcvSessionId"] == "desktop"
    assert detail["platform"] == "container"
    assert detail["agentVersion"] == __version__ == "0.1.0"
    [session] = sim_sessions()
    assert (session["id"], session["owner"], session["type"]) == ("desktop", "dcvuser", "virtual")
    lines = log_lines(capsys.readouterr().err)
    assert lines
    assert all(line["sessionId"] == SESSION_ID for line in lines)
    assert all(line["instanceId"] == INSTANCE_ID for line in lines)
    assert lines[-1]["message"] == "Host Ready sent"
    assert main() == 0  # a re-run (service restart) reuses the session and reports again
    assert [s["id"] for s in sim_sessions()] == ["desktop"]
    assert [e["detail"]["dcvSessionId"] for e in received(host_ready_queue)] == ["desktop"]


def test_dcv_never_ready_exits_non_zero(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    host_ready_queue: str,
) -> None:
    write_config(isolated, monkeypatch, readyTimeoutSeconds=0.2)
    monkeypatch.setenv("SIM_DCV_FAIL", "garbage")  # each fault mode: see test_agent_dcv.py
    assert main() == 1
    assert received(host_ready_queue) == []
    final = log_lines(capsys.readouterr().err)[-1]
    assert final["level"] == "ERROR"
    assert final["message"] == "host did not become ready"
    assert "was not listed within 0.2s" in final["error"]
    assert "not JSON" in final["error"]


def test_undeliverable_host_ready_exits_non_zero(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], aws: None
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
    monkeypatch.setattr("dcvfleet_agent.identity.IMDS_URL", "http://127.0.0.1:9")
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
