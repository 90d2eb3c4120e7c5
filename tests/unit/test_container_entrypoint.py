"""The desktop container's entrypoint, run for real: container/entrypoint.sh with every program it
starts simulated (tests/unit/fixtures/container/fake_command.sh records each call's argv,
environment and stdin), the real setup helper and, for Secrets Manager, the moto server or a
fake endpoint. Also prime-run, the health check, and the CodeBuild build spec run against fake
`aws` and `docker`.
"""

from __future__ import annotations

import contextlib
import getpass
import http.server
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.support.http import serving

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"
PRIME_RUN = CONTAINER / "prime-run"
FAKE = Path(__file__).resolve().parent / "fixtures" / "container" / "fake_command.sh"
SESSION_ID = "7d0f6c1e-3b8a-4f2e-9c55-0a1b2c3d4e5f"
REGION = "us-east-1"
USER = "alice"
# Characters that JSON and shells treat specially, so that no escaped form of it slips through.
PASSWORD = 'Zq9"vL\\u8 $(x) Pw-4b1e'
MISSING_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:dcvfleet/absent-AbCdEf"
PROGRAMS = {
    "DCVFLEET_DCV_COMMAND": "dcv",
    "DCVFLEET_DCVSERVER_COMMAND": "dcvserver",
    "DCVFLEET_XORG_COMMAND": "Xorg",
    "DCVFLEET_NVIDIA_SMI_COMMAND": "nvidia-smi",
    "DCVFLEET_DBUS_DAEMON_COMMAND": "dbus-daemon",
    "DCVFLEET_RUNUSER_COMMAND": "runuser",
    "DCVFLEET_OPENSSL_COMMAND": "openssl",
    "DCVFLEET_ID_COMMAND": "id",
    "DCVFLEET_USERADD_COMMAND": "useradd",
    "DCVFLEET_CHPASSWD_COMMAND": "chpasswd",
    "DCVFLEET_AGENT_PYTHON": "agent-python",
}
DCV_STARTERS = ("dbus-daemon", "Xorg", "nvidia-smi", "runuser", "dcvserver", "dcv", "openssl")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]
    root: Path

    def named(self, name: str) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["name"] == name]

    def lines(self) -> list[dict[str, Any]]:
        """stderr, every line of which must be one JSON object."""
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]

    def error(self) -> dict[str, Any]:
        errors = [line for line in self.lines() if line["level"] == "ERROR"]
        assert len(errors) == 1, self.stderr
        return errors[0]


class Container:
    """One container's file system prefix, fake programs and environment."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.bin = tmp / "bin"
        self.state = tmp / "state"
        self.log = tmp / "calls"
        for path in (self.root / "opt/app", self.root / "dev", self.bin, self.state, self.log):
            path.mkdir(parents=True)
        # The one console the job definition maps (a stand-in: the check is that it is there).
        (self.root / "dev/tty7").touch()
        for name in set(PROGRAMS.values()) | {"aws", "docker"}:
            self.script(name, f'exec "{FAKE}" {name} "$@"')
        # The real setup helper and agent, on this interpreter without its site-packages (the
        # image's python3 has none either): PYTHONPATH alone must be enough.
        self.python = self.script("python-S", f'exec "{sys.executable}" -S "$@"')
        self.app = self.root / "opt/app/start"
        self.app.write_text("#!/bin/sh\necho game\n")
        self.app.chmod(0o755)
        self.env: dict[str, str] = {
            "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(tmp),
            "LANG": "C.UTF-8",
            "DCVFLEET_ROOT": str(self.root),
            "DCVFLEET_PYTHON": str(self.python),
            "DCVFLEET_AGENT_DIR": str(REPO / "agent"),
            "DCVFLEET_APP_DIR": str(self.root / "opt/app"),
            "DCVFLEET_DCVSERVER_USER": getpass.getuser(),
            "DCVFLEET_DCV_TIMEOUT_SECONDS": "10",
            "DCVFLEET_POLL_SECONDS": "0.05",
            "DCVFLEET_SESSION_ID": SESSION_ID,
            "DCVFLEET_EVENT_BUS_NAME": "dcvfleet-bus",
            "DCVFLEET_SETTINGS_PARAMETER": "/dcvfleet/agent-settings",
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "APP_COMMAND": f"{self.app} --level 'one two'",
            "FAKE_STATE": str(self.state),
            "FAKE_CALLS": str(self.log),
            **{var: str(self.bin / name) for var, name in PROGRAMS.items()},
        }

    def script(self, name: str, line: str) -> Path:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{line}\n")
        path.chmod(0o755)
        return path

    def users(self, known: dict[str, int]) -> None:
        (self.state / "users").write_text("".join(f"{u} {uid}\n" for u, uid in known.items()))

    def run(self, timeout: float = 20, **overrides: str | None) -> Run:
        env = dict(self.env)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        proc = subprocess.Popen(
            ["bash", str(ENTRYPOINT)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            kill_group(proc)
        return Run(proc.returncode, stdout, stderr, self.calls(), self.root)

    def calls(self) -> list[dict[str, Any]]:
        """Every simulated program's call, in order: {"name", "argv", "env", "stdin"?}."""
        calls = []
        for record in sorted(self.log.iterdir()):
            env = (record / "env").read_text().split("\0")[:-1]
            call: dict[str, Any] = {
                "name": record.name.split("-", 2)[2],
                "argv": (record / "argv").read_text().split("\0")[:-1],
                "env": dict(item.split("=", 1) for item in env),
            }
            if (record / "stdin").exists():
                call["stdin"] = (record / "stdin").read_text()
            calls.append(call)
        return calls


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """The simulated dcvserver and Xorg run until killed, as the real ones do."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)


def assert_password_kept(run: Run, password: str = PASSWORD) -> None:
    """The password reached chpasswd's stdin and nothing else: no argv, no environment, no
    output, no file the container wrote outside the OS's own password store."""
    forms = {password, json.dumps(password)[1:-1]}
    for call in run.calls:
        text = json.dumps({"argv": call["argv"], "env": call["env"]})
        for form in forms:
            assert form not in text, f"password in {call['name']}'s argv or environment"
            assert all(form not in value for value in call["env"].values())
            assert all(form not in arg for arg in call["argv"])
        if call["name"] != "chpasswd":
            assert password not in (call.get("stdin") or "")
    for form in forms:
        assert form not in run.stdout
        assert form not in run.stderr
    for path in run.root.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path


@pytest.fixture
def container(tmp_path: Path) -> Container:
    return Container(tmp_path)


@pytest.fixture
def secret_arn(moto_endpoint: str) -> str:
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn: str = sm.create_secret(
        Name=f"dcvfleet/session/{SESSION_ID}",
        SecretString=json.dumps({"username": USER, "password": PASSWORD}),
    )["ARN"]
    return arn


@pytest.fixture
def ready(container: Container, secret_arn: str, moto_endpoint: str) -> Container:
    """A container whose secret is readable (moto)."""
    container.env["DCVFLEET_SECRET_ARN"] = secret_arn
    container.env["DCVFLEET_ENDPOINT_URL"] = moto_endpoint
    return container


# --- the happy path -------------------------------------------------------------------------


def test_happy_path_creates_the_user_the_session_and_execs_the_agent(ready: Container) -> None:
    """...and the password reaches chpasswd's stdin and nothing else (assert_password_kept,
    which every test that reads a secret repeats)."""
    run = ready.run()

    assert run.code == 0, run.stderr
    # The user: created, and its password set on chpasswd's stdin only.
    assert [c["argv"] for c in run.named("useradd")] == [["-m", USER]]
    (chpasswd,) = run.named("chpasswd")
    assert chpasswd["argv"] == []
    assert chpasswd["stdin"] == f"{USER}:{PASSWORD}\n"
    assert_password_kept(run)
    # The 3D X server on the GPU nvidia-smi names, local clients only.
    conf = (ready.root / "run/dcvfleet/xorg.conf").read_text()
    assert 'BusID "PCI:0:30:0"' in conf
    assert 'Driver "nvidia"' in conf
    (xorg,) = run.named("Xorg")
    assert xorg["argv"][0] == ":0"
    for flag in ("-nolisten", "tcp", "local", "-noreset", "-config"):
        assert flag in xorg["argv"]
    # on the mapped console, shared: no VT switch at start or exit
    assert {"vt7", "-sharevts", "-novtswitch"} <= set(xorg["argv"])
    # dcvserver as the unprivileged user the package runs it as.
    (runuser,) = run.named("runuser")
    assert runuser["argv"] == [
        "-u",
        getpass.getuser(),
        "--",
        str(ready.bin / "dcvserver"),
        "-d",
        "--service",
    ]
    assert len(run.named("dcvserver")) == 1
    assert (ready.root / "etc/dcv/dcv.key").exists()
    # The virtual session: owned by the user, GPU OpenGL (DCV-GL), the application as it is.
    creates = [c["argv"] for c in run.named("dcv") if c["argv"][0] == "create-session"]
    init = ready.root / "run/dcvfleet/session-init.sh"
    assert creates == [
        ["create-session", "--type", "virtual", "--owner", USER, "--user", USER,
         "--init", str(init), "--gl", "on", "desktop"],
    ]  # fmt: skip
    assert init.stat().st_mode & 0o777 == 0o755
    script = init.read_text()
    assert f"exec {ready.app} --level 'one two'\n" in script
    assert "prime-run" not in script
    assert f"cd {ready.root / 'opt/app'}" in script
    # The agent, exec'd last, configured for the container.
    (agent,) = run.named("agent-python")
    assert agent is run.calls[-1]
    assert agent["argv"] == ["-m", "dcvfleet_agent"]
    env = agent["env"]
    assert env["DCVFLEET_PLATFORM"] == "container"
    assert env["DCVFLEET_MANAGE_USER"] == "false"
    assert env["DCVFLEET_DCV_SESSION_NAME"] == "desktop"
    assert env["DCVFLEET_USER_NAME"] == USER
    assert env["DCVFLEET_SESSION_ID"] == SESSION_ID
    assert env["DCVFLEET_EVENT_BUS_NAME"] == "dcvfleet-bus"
    assert env["DCVFLEET_REGION"] == REGION
    assert env["DCVFLEET_SETTINGS_PARAMETER"] == "/dcvfleet/agent-settings"
    assert env["DCVFLEET_DCV_COMMAND"] == str(ready.bin / "dcv")
    assert env["PYTHONPATH"].split(":")[0] == str(REPO / "agent")
    assert env["AWS_ACCESS_KEY_ID"] == "testing"  # the task role's credentials reach it
    # Every line it printed is JSON; the steps are reported.
    messages = [line["message"] for line in run.lines()]
    assert "DCV session listed" in messages
    assert all(line["level"] in ("INFO", "WARNING") for line in run.lines())


def test_the_agents_exit_code_is_the_containers(ready: Container) -> None:
    ready.users({USER: 1001})

    run = ready.run(FAKE_AGENT_EXIT="1", DCVFLEET_GPU_X_SERVER="false")

    assert run.code == 1  # 1: the agent says the host did not become ready
    assert len(run.named("agent-python")) == 1


def test_an_existing_user_only_gets_its_password_set(ready: Container) -> None:
    ready.users({USER: 1001})

    run = ready.run()

    assert run.code == 0, run.stderr
    assert run.named("useradd") == []
    assert [c["stdin"] for c in run.named("chpasswd")] == [f"{USER}:{PASSWORD}\n"]
    assert_password_kept(run)


def test_without_the_gpu_x_server_dcv_gl_is_off(ready: Container) -> None:
    run = ready.run(DCVFLEET_GPU_X_SERVER="false", APP_COMMAND="./start -windowed")

    assert run.code == 0, run.stderr
    assert run.named("Xorg") == []
    assert run.named("nvidia-smi") == []
    (create,) = [c["argv"] for c in run.named("dcv") if c["argv"][0] == "create-session"]
    assert create[create.index("--gl") + 1] == "off"
    # a relative program is the application directory's
    init = (ready.root / "run/dcvfleet/session-init.sh").read_text()
    assert f"exec {ready.app} -windowed\n" in init


# --- 64: configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "named"),
    [
        ("DCVFLEET_SESSION_ID", "DCVFLEET_SESSION_ID"),
        ("DCVFLEET_SECRET_ARN", "DCVFLEET_SECRET_ARN"),
        ("DCVFLEET_EVENT_BUS_NAME", "DCVFLEET_EVENT_BUS_NAME"),
        ("AWS_REGION", "AWS_REGION or AWS_DEFAULT_REGION"),
    ],
)
def test_a_missing_variable_is_a_configuration_failure(
    container: Container, variable: str, named: str
) -> None:
    container.env["DCVFLEET_SECRET_ARN"] = MISSING_ARN

    run = container.run(**{variable: None})

    assert run.code == 64
    error = run.error()
    assert error["message"] == "invalid configuration"
    assert named in error["reason"]
    assert error["exitCode"] == 64
    assert run.calls == []  # nothing was started, no user made


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"AWS_REGION": "mars-1"}, "'mars-1' is not an AWS region"),
        ({"DCVFLEET_SESSION_ID": "not-a-session"}, "DCVFLEET_SESSION_ID"),
        ({"DCVFLEET_SECRET_ARN": "my-secret"}, "DCVFLEET_SECRET_ARN"),
        ({"DCVFLEET_DCV_TIMEOUT_SECONDS": "soon"}, "DCVFLEET_DCV_TIMEOUT_SECONDS"),
        ({"DCVFLEET_GPU_X_SERVER": "yes"}, "DCVFLEET_GPU_X_SERVER"),
        ({"APP_COMMAND": "'unbalanced"}, "APP_COMMAND is not a command line"),
        ({"DCVFLEET_AGENT_DIR": "/nonexistent"}, "the agent is not installed"),
    ],
)
def test_an_invalid_setting_is_a_configuration_failure(
    container: Container, overrides: dict[str, str], named: str
) -> None:
    container.env["DCVFLEET_SECRET_ARN"] = MISSING_ARN

    run = container.run(**overrides)

    assert run.code == 64, run.stderr
    assert named in run.error()["reason"]
    assert run.calls == []


def test_the_region_may_come_from_aws_default_region(ready: Container) -> None:
    run = ready.run(AWS_REGION=None, AWS_DEFAULT_REGION=REGION, DCVFLEET_GPU_X_SERVER="false")

    assert run.code == 0, run.stderr
    assert run.named("agent-python")[0]["env"]["DCVFLEET_REGION"] == REGION


# --- 65: the secret -------------------------------------------------------------------------


def test_a_missing_secret_fails_before_any_user_or_dcv(
    container: Container, moto_endpoint: str
) -> None:
    run = container.run(DCVFLEET_SECRET_ARN=MISSING_ARN, DCVFLEET_ENDPOINT_URL=moto_endpoint)

    assert run.code == 65
    error = run.error()
    assert error["message"] == "the session secret could not be read"
    assert MISSING_ARN in error["reason"]
    assert "ResourceNotFoundException" in error["reason"]
    assert run.named("useradd") == []
    assert run.named("chpasswd") == []
    assert not any(run.named(name) for name in DCV_STARTERS)


@pytest.mark.parametrize(
    ("secret_string", "problem"),
    [
        ("not json", "is not a JSON SecretString"),
        (json.dumps({"username": USER}), "has no valid single-line 'password'"),
        (json.dumps({"username": "bad:name", "password": PASSWORD}), "has no valid 'username'"),
        (json.dumps(["alice", PASSWORD]), "must be a JSON object"),
    ],
)
def test_a_malformed_secret_fails_with_65(
    container: Container, moto_endpoint: str, secret_string: str, problem: str
) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="dcvfleet/malformed", SecretString=secret_string)["ARN"]

    run = container.run(DCVFLEET_SECRET_ARN=arn, DCVFLEET_ENDPOINT_URL=moto_endpoint)

    assert run.code == 65
    assert problem in run.error()["reason"]
    assert run.named("useradd") == []
    assert run.named("chpasswd") == []
    assert not any(run.named(name) for name in DCV_STARTERS)
    assert_password_kept(run)


class GrantLater(http.server.BaseHTTPRequestHandler):
    """Secrets Manager that denies the first `denials` reads (the control plane has not
    tagged the secret for this task yet), then serves it."""

    denials = 0
    reads: list[str] = []  # noqa: RUF012 (set per server)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reads.append(json.loads(body)["SecretId"])
        if len(self.reads) <= self.denials:
            status = 400
            reply = {"__type": "AccessDeniedException", "message": "not authorized"}
        else:
            status = 200
            secret = {"username": USER, "password": PASSWORD}
            reply = {"ARN": self.reads[-1], "SecretString": json.dumps(secret)}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def grant_later() -> Iterator[tuple[str, type[GrantLater]]]:
    handler = type("Handler", (GrantLater,), {"reads": [], "denials": 2})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with serving(server, 0.05):
        yield f"http://127.0.0.1:{server.server_address[1]}", handler


def test_the_secret_is_waited_for_until_access_is_granted(
    container: Container, grant_later: tuple[str, type[GrantLater]]
) -> None:
    endpoint, handler = grant_later
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:dcvfleet/s-AbCdEf"

    run = container.run(
        DCVFLEET_SECRET_ARN=arn, DCVFLEET_ENDPOINT_URL=endpoint, DCVFLEET_GPU_X_SERVER="false"
    )

    assert run.code == 0, run.stderr
    assert handler.reads == [arn] * 3
    assert "waiting for access to the session secret" in [line["message"] for line in run.lines()]
    assert_password_kept(run)


def test_access_never_granted_fails_with_65_after_the_secret_timeout(
    container: Container, grant_later: tuple[str, type[GrantLater]]
) -> None:
    endpoint, handler = grant_later
    handler.denials = 1000
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:dcvfleet/s-AbCdEf"

    run = container.run(
        DCVFLEET_SECRET_ARN=arn,
        DCVFLEET_ENDPOINT_URL=endpoint,
        DCVFLEET_SECRET_TIMEOUT_SECONDS="1",
    )

    assert run.code == 65
    reason = run.error()["reason"]
    assert arn in reason
    assert "AccessDeniedException" in reason
    # the timeout waited out is the one configured (how it is waited out: the test below)
    waiting = [
        line
        for line in run.lines()
        if line["message"] == "waiting for access to the session secret"
    ]
    assert [line["timeoutSeconds"] for line in waiting] == [1.0]
    assert run.named("useradd") == []


def _setup_helper() -> Any:
    """container/dcvfleet_container_setup.py, imported as the entrypoint runs it."""
    sys.path.insert(0, str(CONTAINER))
    try:
        import dcvfleet_container_setup as helper
    finally:
        sys.path.remove(str(CONTAINER))
    return helper


def test_the_secret_is_asked_for_again_until_the_timeout_has_passed_on_the_clock() -> None:
    from dcvfleet_agent.aws import AwsError

    helper = _setup_helper()
    # Given Secrets Manager that never grants access, and a clock only the waits move
    now = [0.0]
    asked_at: list[float] = []

    class Denying:
        def get_secret_value(self, **params: Any) -> dict[str, Any]:
            asked_at.append(now[0])
            raise AwsError("AccessDeniedException", "not authorized", 400)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    log = io.StringIO()
    secrets = helper.PatientSecrets(
        Denying(),
        10.0,
        helper.Log({}, stream=log),
        sleep=sleep,
        clock=lambda: now[0],
    )
    # When the secret is read
    with pytest.raises(AwsError, match="AccessDeniedException"):
        secrets.get_secret_value(SecretId="s")
    # Then it was asked for again and again, backing off, until 10 s had passed and not after
    assert asked_at[0] == 0.0
    assert len(asked_at) >= 4
    assert asked_at == sorted(asked_at)
    assert asked_at[-1] == pytest.approx(10.0)
    assert [json.loads(line)["timeoutSeconds"] for line in log.getvalue().splitlines()] == [10.0]


# --- 66: the OS user ------------------------------------------------------------------------


def test_useradd_failing_fails_with_66_and_starts_no_dcv(ready: Container) -> None:
    run = ready.run(FAKE_USERADD_FAIL="1")

    assert run.code == 66
    error = run.error()
    assert error["message"] == "the OS user could not be created or its password set"
    assert "cannot lock /etc/passwd" in error["reason"]
    assert run.named("chpasswd") == []
    assert not any(run.named(name) for name in DCV_STARTERS)


def test_chpasswd_failing_fails_with_66(ready: Container) -> None:
    run = ready.run(FAKE_CHPASSWD_FAIL="1")

    assert run.code == 66
    assert "chpasswd failed" in run.error()["reason"]
    assert_password_kept(run)


def test_a_system_account_is_never_taken_over(container: Container, moto_endpoint: str) -> None:
    container.users({"root": 0})
    sm = boto3.client("secretsmanager", region_name=REGION)
    secret = json.dumps({"username": "root", "password": PASSWORD})
    arn = sm.create_secret(Name="dcvfleet/root", SecretString=secret)["ARN"]

    run = container.run(DCVFLEET_SECRET_ARN=arn, DCVFLEET_ENDPOINT_URL=moto_endpoint)

    assert run.code == 66
    assert "system account" in run.error()["reason"]
    assert run.named("chpasswd") == []
    assert run.named("useradd") == []


# --- 67: DCV --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            {"FAKE_DCVSERVER_FAIL": "1"},
            "dcvserver exited with 1: dcvserver: cannot listen on port 8443",
        ),
        ({"FAKE_XORG_FAIL": "1"}, "no screens found"),
        ({"FAKE_NVIDIA_SMI_FAIL": "1"}, "no NVIDIA GPU is visible"),
        ({"FAKE_GPU_BUS_ID": "No devices were found"}, "no usable PCI bus id"),
    ],
)
def test_dcv_that_cannot_start_fails_with_67_at_once(
    ready: Container, fault: dict[str, str], expected: str
) -> None:
    run = ready.run(DCVFLEET_DCV_TIMEOUT_SECONDS="30", **fault)

    assert run.code == 67
    error = run.error()
    assert error["message"] == "the DCV server or the virtual session did not start"
    assert expected in error["reason"]
    # a dead process is reported, not waited out: DCV was not asked, again and again, for 30 s
    assert len(run.named("dcv")) <= 3, run.named("dcv")
    assert run.named("agent-python") == []


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"FAKE_DCV_NEVER_LISTED": "1"}, "list-sessions does not list 'desktop'"),
        ({"FAKE_DCV_CREATE_FAIL": "1"}, "Cannot create session"),
    ],
)
def test_a_session_never_listed_fails_with_67_within_the_timeout(
    ready: Container, fault: dict[str, str], expected: str
) -> None:
    run = ready.run(DCVFLEET_DCV_TIMEOUT_SECONDS="2", **fault)

    assert run.code == 67
    reason = run.error()["reason"]
    # given up at the timeout configured, after asking again (not at the first answer)
    assert "DCV session 'desktop' was not listed within 2s" in reason
    assert expected in reason
    asked = [call["argv"][0] for call in run.named("dcv")]
    after_create = asked[asked.index("create-session") :]
    again = "create-session" if "FAKE_DCV_CREATE_FAIL" in fault else "list-sessions"
    assert after_create.count(again) >= 2, asked
    assert run.named("agent-python") == []


# --- 68: the application --------------------------------------------------------------------


def test_without_the_mapped_console_the_x_server_is_not_started_and_67_says_why(
    ready: Container,
) -> None:
    (ready.root / "dev/tty7").unlink()

    run = ready.run()

    assert run.code == 67, run.stderr
    assert "needs the virtual console /dev/tty7" in run.error()["reason"]
    assert run.named("Xorg") == []
    assert run.named("agent-python") == []


def test_the_job_definition_maps_exactly_the_console_the_x_server_uses() -> None:
    """Xorg with the NVIDIA driver opens /dev/tty<vt> at start (xf86OpenConsole), and a
    container has no console of its own: the job definition maps that one device, read and
    write, nothing else and no mknod. Its number is the entrypoint's default VT."""
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse((REPO / "template.yaml").read_text())
    props = template["Resources"]["DesktopJobDefinition"]["Properties"]["ContainerProperties"]
    vt = re.search(r"xorg_vt=\$\{DCVFLEET_XORG_VT:-(\d+)\}", ENTRYPOINT.read_text())
    assert vt is not None
    device = f"/dev/tty{vt[1]}"
    assert props["LinuxParameters"]["Devices"] == [
        {"HostPath": device, "ContainerPath": device, "Permissions": ["READ", "WRITE"]}
    ]
    assert "Privileged" not in props


def test_a_missing_application_fails_with_68_before_anything_else(ready: Container) -> None:
    missing = ready.root / "opt/app/Game.x86_64"

    run = ready.run(APP_COMMAND=f"{missing} -fullscreen")

    assert run.code == 68
    error = run.error()
    assert error["message"] == "the application could not be launched"
    assert str(missing) in error["reason"]
    assert "does not exist" in error["reason"]
    assert run.calls == []


def test_an_application_the_user_cannot_execute_fails_with_68(ready: Container) -> None:
    ready.app.chmod(0o744)  # root could run it; the desktop user could not

    run = ready.run()

    assert run.code == 68
    assert "is not executable by the desktop user" in run.error()["reason"]


# --- signals --------------------------------------------------------------------------------


def test_sigterm_while_waiting_for_the_secret_stops_at_once(
    container: Container, grant_later: tuple[str, type[GrantLater]]
) -> None:
    endpoint, handler = grant_later
    handler.denials = 1000
    env = {
        **container.env,
        "DCVFLEET_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:s-AbCdEf",
        "DCVFLEET_ENDPOINT_URL": endpoint,
    }
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while len(handler.reads) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        asked_before = len(handler.reads)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        kill_group(proc)
    # at once: the secret was not asked for again (but for a request already on its way)
    assert len(handler.reads) - asked_before <= 1

    assert proc.returncode == 143
    assert "stopped before the desktop was ready" in stderr
    assert not any(call["name"] == "useradd" for call in container.calls())


def test_sigterm_reaches_the_real_agent_which_exits_cleanly(ready: Container) -> None:
    """No fake agent: the entrypoint execs the real one, which reports Host Ready to the (moto)
    bus; SIGTERM to the container's process then ends the agent itself, with exit code 0."""
    boto3.client("events", region_name=REGION).create_event_bus(Name="dcvfleet-bus")
    env = {
        **ready.env,
        "DCVFLEET_AGENT_PYTHON": str(ready.python),
        "DCVFLEET_INSTANCE_ID": "i-0123456789abcdef0",
        "DCVFLEET_SETTINGS_PARAMETER": "",
        "DCVFLEET_GPU_X_SERVER": "false",
    }
    errors = ready.tmp / "stderr.log"
    with errors.open("w") as sink:
        proc = subprocess.Popen(
            ["bash", str(ENTRYPOINT)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while "Host Ready sent" not in errors.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, errors.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, errors.read_text()
    finally:
        kill_group(proc)

    lines = [json.loads(line) for line in errors.read_text().splitlines()]
    ready_line = next(line for line in lines if line["message"] == "Host Ready sent")
    assert ready_line["dcvSessionId"] == "desktop"
    assert ready_line["sessionId"] == SESSION_ID
    # the agent found the entrypoint's session: it created none of its own
    creates = [c for c in ready.calls() if c["name"] == "dcv" and c["argv"][0] == "create-session"]
    assert len(creates) == 1


def test_the_session_starts_the_application_so_that_dcv_gl_carries_its_opengl(
    ready: Container,
) -> None:
    """The init script DCV runs in the session (--gl on) starts the application itself, with
    none of PRIME offload's variables, which would send GLX to the session's own X server (no
    NVIDIA GLX there) instead of through DCV-GL, even when the session's environment has them."""
    seen = ready.tmp / "seen.json"
    ready.app.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import json, os, sys; "
        f'json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, '
        f'open("{seen}", "w"))\' "$@"\n'
    )
    run = ready.run()
    assert run.code == 0, run.stderr
    init = ready.root / "run/dcvfleet/session-init.sh"

    subprocess.run(
        [str(init)],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(ready.tmp),
            "__NV_PRIME_RENDER_OFFLOAD": "1",
            "__NV_PRIME_RENDER_OFFLOAD_PROVIDER": "NVIDIA-G0",
            "__GLX_VENDOR_LIBRARY_NAME": "nvidia",
        },
        check=True,
        timeout=10,
    )

    started = json.loads(seen.read_text())
    assert started["argv"] == ["--level", "one two"]
    for name in ("__NV_PRIME_RENDER_OFFLOAD", "__NV_PRIME_RENDER_OFFLOAD_PROVIDER",
                 "__GLX_VENDOR_LIBRARY_NAME"):  # fmt: skip
        assert name not in started["env"], name


def test_session_glxinfo_runs_glxinfo_as_the_sessions_owner_on_its_display(
    container: Container,
) -> None:
    """What the release's smoke test runs in the container: glxinfo -B as the session's own
    OpenGL clients see it (its owner, its Xdcv display and X authority, through DCV-GL)."""
    (container.state / "dcvserver.up").touch()
    (container.state / "sessions").write_text("desktop alice\n")
    container.script("glxinfo", 'echo "$DISPLAY $XAUTHORITY $*"')
    env = {**container.env, "DCVFLEET_DCV_COMMAND": str(container.bin / "dcv")}

    def glxinfo(session: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(CONTAINER / "session-glxinfo"), session],
            env=env, capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip

    found = glxinfo("desktop")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [":1", "/run/user/1001/dcv/desktop.xauth", "-B"]
    (runuser,) = [c for c in container.calls() if c["name"] == "runuser"]
    assert runuser["argv"][:3] == ["-u", "alice", "--"]
    missing = glxinfo("other")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


# --- prime-run ------------------------------------------------------------------------------


def run_prime(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    icd = tmp_path / "nvidia_icd.json"
    icd.write_text("{}")
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PRIME_RUN_VK_ICD_FILES": f"{tmp_path / 'absent.json'}:{icd}",
        "PRIME_RUN_EGL_VENDOR_FILES": str(tmp_path / "absent-egl.json"),
    }
    return subprocess.run(
        [str(PRIME_RUN), *argv],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_prime_run_leaves_opengl_to_dcv_gl_pins_vulkan_to_nvidia_and_passes_argv(
    tmp_path: Path,
) -> None:
    script = (
        "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}))"
    )

    result = run_prime(
        tmp_path, sys.executable, "-c", script, "two words", "--flag=$HOME", "",
        __NV_PRIME_RENDER_OFFLOAD="1", __GLX_VENDOR_LIBRARY_NAME="nvidia",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["argv"] == ["two words", "--flag=$HOME", ""]
    env = seen["env"]
    # OpenGL is DCV-GL's: PRIME offload's variables are removed, even inherited ones
    assert "__NV_PRIME_RENDER_OFFLOAD" not in env
    assert "__GLX_VENDOR_LIBRARY_NAME" not in env
    assert env["VK_ICD_FILENAMES"] == str(tmp_path / "nvidia_icd.json")
    assert "__EGL_VENDOR_LIBRARY_FILENAMES" not in env  # no vendor file found: left alone


def test_prime_run_keeps_a_vulkan_or_egl_choice_already_made(tmp_path: Path) -> None:
    result = run_prime(
        tmp_path, "sh", "-c", 'echo "$__EGL_VENDOR_LIBRARY_FILENAMES|$VK_ICD_FILENAMES"',
        __EGL_VENDOR_LIBRARY_FILENAMES="/egl.json", VK_ICD_FILENAMES="/custom.json",
    )  # fmt: skip

    assert result.stdout.strip() == "/egl.json|/custom.json"


def test_prime_run_execs_the_program_in_its_own_process(tmp_path: Path) -> None:
    result = run_prime(tmp_path, "sh", "-c", "exit 7")

    assert result.returncode == 7


def test_prime_run_without_a_program_is_a_usage_error(tmp_path: Path) -> None:
    result = run_prime(tmp_path)

    assert result.returncode == 64
    assert result.stderr.startswith("usage: prime-run <program>")


# --- the health check -----------------------------------------------------------------------


def test_the_health_check_wants_the_port_and_the_session(container: Container) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = str(listener.getsockname()[1])
    (container.state / "dcvserver.up").touch()
    env = {**container.env, "DCVFLEET_DCV_PORT": port}

    def health(**extra: str) -> int:
        return subprocess.run(
            ["bash", str(CONTAINER / "healthcheck.sh")], env={**env, **extra},
            capture_output=True, timeout=20, check=False,
        ).returncode  # fmt: skip

    try:
        assert health() == 1  # no session yet
        (container.state / "sessions").write_text("desktop alice\n")
        assert health() == 0
        assert health(DCVFLEET_DCV_SESSION_NAME="other") == 1
    finally:
        listener.close()
    assert health() == 1  # nothing listens on the port


# --- the build spec -------------------------------------------------------------------------

BUILDSPEC = CONTAINER / "buildspec.yml"


def buildspec_script(spec: dict[str, Any]) -> str:
    """The phases' commands as one bash script, run in order, as CodeBuild runs them."""
    commands = []
    for phase in ("install", "pre_build", "build", "post_build"):
        commands += spec["phases"].get(phase, {}).get("commands", [])
    return "set -e\n" + "\n".join(
        f"( {command}\n)" if "\n" in command else command for command in commands
    )


def test_the_buildspec_is_yaml_and_names_its_inputs_and_outputs() -> None:
    spec = yaml.safe_load(BUILDSPEC.read_text())

    assert spec["version"] == 0.2
    for name in (
        "BUILD_VERSION",
        "BUILD_ARTIFACT_S3_URI",
        "IMAGE_REPOSITORY_URI",
        "UBUNTU_SNAPSHOT",
    ):
        assert name in spec["env"]["variables"]
    assert {"IMAGE_URI", "IMAGE_DIGEST"} <= set(spec["env"]["exported-variables"])
    assert spec["artifacts"]["files"] == ["imageDetail.json"]
    text = BUILDSPEC.read_text()
    for step in (
        "ecr get-login-password",
        "aws s3 cp",
        "agent/build.py",
        "docker build",
        "docker push",
    ):
        assert step in text


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """A source tree as CodeBuild checks it out: the agent and the container directory."""
    work = tmp_path / "src"
    shutil.copytree(REPO / "agent", work / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CONTAINER, work / "container", ignore=shutil.ignore_patterns("__pycache__"))
    return work


def run_buildspec(build_dir: Path, container: Container, **env: str) -> tuple[int, str]:
    spec = yaml.safe_load(BUILDSPEC.read_text())
    variables = {k: str(v) for k, v in spec["env"]["variables"].items()}
    python = container.bin / "python3"
    python.symlink_to(sys.executable)
    result = subprocess.run(
        ["bash", "-c", buildspec_script(spec)],
        cwd=build_dir,
        env={**container.env, **variables, "CODEBUILD_BUILD_SUCCEEDING": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_the_buildspec_builds_tags_pushes_and_reports_the_digest(
    build_dir: Path, container: Container
) -> None:
    repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dcvfleet/desktop"

    code, output = run_buildspec(
        build_dir, container,
        BUILD_VERSION="1.4.2-rc1", IMAGE_REPOSITORY_URI=repo,
        BUILD_ARTIFACT_S3_URI="s3://dcvfleet-builds/game/1.4.2-rc1.tar.gz",
        APP_COMMAND="/opt/app/Game.x86_64 -fullscreen", UBUNTU_SNAPSHOT="20261207T000000Z",
    )  # fmt: skip

    assert code == 0, output
    calls = container.calls()
    docker = [c["argv"] for c in calls if c["name"] == "docker"]
    assert docker[0][:1] == ["login"]
    assert docker[0][-1] == repo.split("/", maxsplit=1)[0]
    build = next(argv for argv in docker if argv[0] == "build")
    assert build[-3:] == ["-t", f"{repo}:1.4.2-rc1", "."]
    assert "APP_COMMAND=/opt/app/Game.x86_64 -fullscreen" in build
    assert "AGENT_ARCHIVE=dist/dcvfleet-agent.tar.gz" in build
    assert build[build.index("UBUNTU_SNAPSHOT=20261207T000000Z") - 1] == "--build-arg"
    assert ["push", f"{repo}:1.4.2-rc1"] in docker
    s3 = next(c["argv"] for c in calls if c["name"] == "aws" and c["argv"][0] == "s3")
    assert s3[-2:] == ["s3://dcvfleet-builds/game/1.4.2-rc1.tar.gz", "dist/app.tar.gz"]
    with tarfile.open(build_dir / "dist/dcvfleet-agent.tar.gz") as archive:
        assert "dcvfleet_agent/__init__.py" in archive.getnames()
    detail = json.loads((build_dir / "imageDetail.json").read_text())
    assert detail == {
        "ImageURI": f"{repo}:1.4.2-rc1",
        "ImageDigest": f"sha256:{'ab' * 32}",
        "ImageTag": "1.4.2-rc1",
    }


def test_the_buildspec_repacks_a_zip_build_keeping_file_modes(
    build_dir: Path, container: Container
) -> None:
    s3 = container.tmp / "s3"
    s3.mkdir()
    with zipfile.ZipFile(s3 / "2.0.0.zip", "w") as archive:
        game = zipfile.ZipInfo("Game.x86_64")
        game.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(game, "#!/bin/sh\n")
        archive.writestr("data/level1.pak", "level")

    code, output = run_buildspec(
        build_dir, container,
        BUILD_VERSION="2.0.0", FAKE_S3_DIR=str(s3),
        IMAGE_REPOSITORY_URI="123456789012.dkr.ecr.eu-west-1.amazonaws.com/desktop",
        BUILD_ARTIFACT_S3_URI="s3://dcvfleet-builds/builds/2.0.0.zip",
        UBUNTU_SNAPSHOT="20261207T000000Z",
    )  # fmt: skip

    assert code == 0, output
    with tarfile.open(build_dir / "dist/app.tar.gz") as archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers()}
    assert members["Game.x86_64"].mode & 0o777 == 0o755
    assert "data/level1.pak" in members
    assert not (build_dir / "dist/app.zip").exists()


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BUILD_VERSION": ""}, "BUILD_VERSION '' is not a Docker tag"),
        ({"BUILD_VERSION": "latest"}, "must not be 'latest'"),
        ({"BUILD_ARTIFACT_S3_URI": ""}, "BUILD_ARTIFACT_S3_URI '' is not s3://bucket/key.tar.gz"),
        ({"BUILD_ARTIFACT_S3_URI": "s3://b/builds/1.rar"}, "is not s3://bucket/key.tar.gz or .zip"),
        ({"IMAGE_REPOSITORY_URI": "docker.io/me/desktop"}, "is not an ECR repository URI"),
        ({"FAKE_IMAGE_TAG_EXISTS": "1"}, "already exists"),
        ({"UBUNTU_SNAPSHOT": ""}, "UBUNTU_SNAPSHOT '' is not an Ubuntu snapshot id"),
        ({"UBUNTU_SNAPSHOT": "2025-06-01"}, "UBUNTU_SNAPSHOT '2025-06-01' is not an Ubuntu"),
    ],
)
def test_the_buildspec_fails_fast_on_bad_inputs(
    build_dir: Path, container: Container, env: dict[str, str], problem: str
) -> None:
    good = {
        "BUILD_VERSION": "1.4.2",
        "BUILD_ARTIFACT_S3_URI": "s3://dcvfleet-builds/game/1.4.2.tar.gz",
        "IMAGE_REPOSITORY_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/desktop",
        "UBUNTU_SNAPSHOT": "20261207T000000Z",
    }

    code, output = run_buildspec(build_dir, container, **{**good, **env})

    assert code != 0
    assert problem in output
    built = [c for c in container.calls() if c["name"] == "docker" and c["argv"][0] != "login"]
    assert built == []


# --- contracts ------------------------------------------------------------------------------


def test_the_exit_codes_are_the_ones_the_control_plane_explains() -> None:
    """One table, four places: the entrypoint's constants and comment, the README, the setup
    helper's constants and the control plane's messages for users (dcvfleet.batch)."""
    from dcvfleet.batch import EXIT_REASONS

    script = ENTRYPOINT.read_text()
    constants = dict(re.findall(r"EXIT_([A-Z]+)=(6\d)", script))
    assert constants == {"CONFIG": "64", "SECRET": "65", "USER": "66", "DCV": "67", "APP": "68"}
    commented = {int(code) for code in re.findall(r"^#   (6\d)  ", script, re.M)}
    readme = (CONTAINER / "README.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| `(6\d)` \|", readme, re.M)}
    assert commented == documented == set(EXIT_REASONS) == {64, 65, 66, 67, 68}
    helper = _setup_helper()
    assert (helper.EXIT_CONFIG, helper.EXIT_SECRET, helper.EXIT_USER, helper.EXIT_APP) == (
        64, 65, 66, 68,
    )  # fmt: skip


def test_every_file_the_dockerfile_copies_is_in_its_build_context() -> None:
    dockerfile = (CONTAINER / "Dockerfile").read_text()
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY ")]
    copied = {path for line in copies for path in re.findall(r"\b(container/[\w.-]+)", line)}
    assert {"container/entrypoint.sh", "container/prime-run", "container/dcv.conf"} <= copied
    ignore = (CONTAINER / "Dockerfile.dockerignore").read_text().splitlines()
    included = {line[1:] for line in ignore if line.startswith("!")}
    for path in copied:
        assert (REPO / path).is_file(), path
        assert path in included, f"{path} is not in the build context (Dockerfile.dockerignore)"
    assert "dist/" in included  # the agent and application archives


def test_the_dockerfile_pins_no_snapshot_date_and_the_release_passes_one() -> None:
    """The Ubuntu archive snapshot is a build argument without a default (a date fixed in the
    Dockerfile stops building once the snapshot service drops it), every stage that installs
    packages declares it, the build refuses to run without one, and the release workflow hands
    the build its release's snapshot (UBUNTU_SNAPSHOT), which the build spec passes on."""
    dockerfile = (CONTAINER / "Dockerfile").read_text()
    assert re.findall(r"\b20\d{6}T\d{6}Z\b", dockerfile) == []
    stages = dockerfile.split("\nFROM ")[1:]
    assert len(stages) == 2
    for stage in stages:
        assert re.search(r"^ARG UBUNTU_SNAPSHOT$", stage, re.M), stage.splitlines()[0]
        assert 'APT::Snapshot "%s"' in stage
    assert "UBUNTU_SNAPSHOT:-} =~ ^[0-9]{8}T[0-9]{6}Z$" in stages[0]
    spec = yaml.safe_load(BUILDSPEC.read_text())
    assert spec["env"]["variables"]["UBUNTU_SNAPSHOT"] == ""
    machine = json.loads((REPO / "statemachines/release_image.asl.json").read_text())["States"]
    overrides = machine["BuildImage"]["Parameters"]["EnvironmentVariablesOverride"]
    passed = {o["Name"]: o.get("Value.$") for o in overrides}
    assert passed["UBUNTU_SNAPSHOT"] == "$.release.ubuntuSnapshot"
    begin = machine["Begin"]
    assert begin["ResultSelector"]["ubuntuSnapshot.$"] == "$.Payload.ubuntuSnapshot"
    assert begin["ResultPath"] == "$.release"


def test_container_scripts_are_executable() -> None:
    for name in ("entrypoint.sh", "prime-run", "session-glxinfo", "healthcheck.sh"):
        assert (CONTAINER / name).stat().st_mode & stat.S_IXUSR, name
