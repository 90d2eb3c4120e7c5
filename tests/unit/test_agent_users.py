"""The desktop user's OS account from the session secret; the password never leaks."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from dcvfleet_agent.agent import Agent
from dcvfleet_agent.aws import AwsClient, CredentialChain
from dcvfleet_agent.config import load_config
from dcvfleet_agent.dcv import DcvCli
from dcvfleet_agent.events import EventSender
from dcvfleet_agent.identity import Identity
from dcvfleet_agent.logs import configure_logging
from dcvfleet_agent.proc import run_command
from dcvfleet_agent.users import Credentials, UserSetupError, ensure_os_user, read_credentials

REGION = "us-east-1"
SIM = Path(__file__).resolve().parents[2] / "local" / "sim" / "dcv.py"
DCV = [sys.executable, str(SIM)]
PASSWORD = "Tr0ub4dor&3-never-logged"
EVENT_KEY = "5e" * 32
SECRET = {"username": "alice", "password": PASSWORD, "eventKey": EVENT_KEY}


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> Iterator[None]:
    monkeypatch.delenv("SIM_DCV_FAIL", raising=False)
    monkeypatch.setenv("SIM_DCV_STATE", str(tmp_path / "dcv-state.json"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_AgentHandler"]:
        root.removeHandler(handler)


def agent_client(service: str) -> AwsClient:
    """The agent's own client, against the `aws` fixture's moto server."""
    return AwsClient(service, REGION, CredentialChain(), os.environ["AWS_ENDPOINT_URL"])


def secret(value: Any) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    text = value if isinstance(value, str) else json.dumps(value)
    return str(client.create_secret(Name="desk", SecretString=text)["ARN"])


class Recorder:
    """Runner that records argv and stdin; answers the OS user commands, runs the rest."""

    def __init__(self, answers: dict[str, tuple[int, str, str]] | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.answers = {
            "id": (1, "", "no such user"),
            "useradd": (0, "", ""),
            "chpasswd": (0, "", ""),
        }
        self.answers.update(answers or {})

    def __call__(
        self, argv: Sequence[str], *, input_text: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(argv), input_text))
        if argv[0] in self.answers:
            code, out, err = self.answers[argv[0]]
            return subprocess.CompletedProcess(list(argv), code, out, err)
        return run_command(argv, input_text=input_text, timeout=timeout)

    @property
    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


def managed_agent(tmp_path: Path, run: Recorder, arn: str | None) -> Agent:
    path = tmp_path / "agent.json"
    data = {"eventBusName": "fleet", "region": REGION, "dcvCommand": DCV, "platform": "linux"}
    path.write_text(json.dumps(data))
    config = load_config({"DCVFLEET_AGENT_CONFIG": str(path)})
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="fleet")
    return Agent(
        config,
        Identity("i-0123456789abcdef0", "sess-1", arn),
        DcvCli(config.dcv_command, config.command_timeout_seconds, run=run),
        EventSender(agent_client("events"), config.event_bus_name, max_attempts=1),
        secrets=agent_client("secretsmanager"),
        run=run,
    )


def test_password_never_in_logs_or_argv(tmp_path: Path, aws: None) -> None:
    stream = io.StringIO()
    configure_logging(stream).update("sess-1", "i-0123456789abcdef0")
    run = Recorder()
    agent = managed_agent(tmp_path, run, secret(SECRET))
    assert agent.run_once_ready() == 0
    assert ["useradd", "-m", "alice"] in run.argvs
    assert ["chpasswd"] in run.argvs
    created = [a for a in run.argvs if "create-session" in a]
    # GPU OpenGL (dcv-gl) in the virtual session, not software rendering.
    assert created == [
        [*DCV, "create-session", "--type", "virtual", "--owner", "alice", "--gl", "on", "desktop"]
    ]
    assert all(PASSWORD not in " ".join(argv) for argv in run.argvs)
    assert [stdin for _, stdin in run.calls if stdin] == [f"alice:{PASSWORD}\n"]
    assert PASSWORD not in stream.getvalue()
    assert EVENT_KEY not in stream.getvalue()
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["OS user ready", "created DCV session", "Host Ready sent"]


def test_password_is_redacted_from_command_errors(tmp_path: Path, aws: None) -> None:
    stream = io.StringIO()
    configure_logging(stream)
    run = Recorder({"chpasswd": (1, "", f"chpasswd: cannot set {PASSWORD}")})
    agent = managed_agent(tmp_path, run, secret(SECRET))
    assert agent.run_once_ready() == 1
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert "chpasswd failed with exit code 1: chpasswd: cannot set ***" in line["error"]
    assert PASSWORD not in stream.getvalue()
    assert not [a for a in run.argvs if "create-session" in a]


def test_managed_user_without_secret_arn_is_not_ready(tmp_path: Path, aws: None) -> None:
    assert managed_agent(tmp_path, Recorder(), None).run_once_ready() == 1


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not json", "not a JSON SecretString"),
        ([1, 2], "must be a JSON object"),
        ({"password": PASSWORD}, "no valid 'username'"),
        ({"username": "root:x", "password": PASSWORD}, "no valid 'username'"),
        ({"username": "alice", "password": "two\nlines"}, "single-line 'password'"),
        ({"username": "alice", "password": ""}, "single-line 'password'"),
    ],
)
def test_bad_secret_is_a_user_setup_error(aws: None, value: Any, fragment: str) -> None:
    client = agent_client("secretsmanager")
    with pytest.raises(UserSetupError, match=fragment) as caught:
        read_credentials(client, secret(value))
    assert PASSWORD not in str(caught.value)


def test_missing_secret_is_a_user_setup_error(aws: None) -> None:
    client = agent_client("secretsmanager")
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone-AbCdEf"
    with pytest.raises(UserSetupError, match="cannot read secret"):
        read_credentials(client, arn)


def test_credentials_repr_hides_the_password() -> None:
    assert PASSWORD not in repr(Credentials("alice", PASSWORD))


def test_existing_linux_user_only_gets_a_new_password() -> None:
    run = Recorder({"id": (0, "1001\n", "")})
    assert ensure_os_user("linux", Credentials("alice", PASSWORD), run) is False
    assert run.argvs == [["id", "-u", "alice"], ["chpasswd"]]


@pytest.mark.parametrize(("stdout", "created"), [("created\r\n", True), ("", False)])
def test_windows_account_password_goes_through_stdin(stdout: str, created: bool) -> None:
    run = Recorder({"powershell.exe": (0, stdout, "")})
    assert ensure_os_user("windows", Credentials("alice", PASSWORD), run) is created
    [(argv, stdin)] = run.calls
    assert argv[:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command"]
    assert "$name = 'alice'" in argv[4]
    assert "New-LocalUser -Name $name" in argv[4]
    assert "Set-LocalUser -Name $name" in argv[4]
    assert PASSWORD not in " ".join(argv)
    assert stdin == PASSWORD + "\n"


def test_windows_failure_is_a_user_setup_error() -> None:
    run = Recorder({"powershell.exe": (1, "", "Access is denied")})
    with pytest.raises(UserSetupError, match=r"Windows account failed .*Access is denied"):
        ensure_os_user("windows", Credentials("alice", PASSWORD), run)


def test_missing_tool_is_a_user_setup_error() -> None:
    def missing(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(UserSetupError, match="cannot run id"):
        ensure_os_user("linux", Credentials("alice", PASSWORD), missing)
