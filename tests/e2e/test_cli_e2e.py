"""The dcvfleet CLI end to end: run as a program, as a user would, against the local stack.

Each test signs in as a new user (Cognito USER_SRP_AUTH through the emulator) with its own token
cache, and points the CLI at the stack's stack.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.stack import ROOT, Stack

LINUX = ("--backend", "ec2", "--os", "linux")


class Cli:
    """``dcvfleet`` as one signed-in user runs it."""

    def __init__(self, fleet: Stack, home: Path, username: str, password: str) -> None:
        self.stack_file = fleet.log.parent / "stack.json"
        self.username = username
        self.password = password
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("DCVFLEET_") and k != "DISPLAY"
        }
        pythonpath = [str(ROOT / "cli"), str(ROOT), env.get("PYTHONPATH", "")]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
                "XDG_CACHE_HOME": str(home / "cache"),
                "PYTHONIOENCODING": "utf-8",
            }
        )
        env.pop("WAYLAND_DISPLAY", None)
        self.env = env

    def __call__(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dcvfleet_cli", "--stack-file", str(self.stack_file), *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def login(self) -> None:
        done = self(
            "login", "--username", self.username, extra_env={"DCVFLEET_PASSWORD": self.password}
        )
        assert done.returncode == 0, done.stderr
        assert self.password not in done.stdout + done.stderr


def _user(fleet: Stack, home: Path, groups: tuple[str, ...] = ()) -> Cli:
    username = f"cli{uuid.uuid4().hex[:10]}"
    password = fleet.create_user(username, groups)
    cli = Cli(fleet, home / username, username, password)
    cli.login()
    return cli


def _start(cli: Cli) -> str:
    """A READY desktop requested with ``sessions start --no-wait`` and followed with ``wait``."""
    started = cli("sessions", "start", *LINUX, "--no-wait")
    assert started.returncode == 0, started.stderr
    session_id = started.stdout.strip()
    waited = cli("sessions", "wait", session_id, "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    return session_id


def test_a_user_runs_a_desktop_through_its_life_with_the_cli(fleet: Stack, tmp_path: Path) -> None:
    cli = _user(fleet, tmp_path)
    # signed in, with a private token cache
    [cache] = (tmp_path / cli.username / "cache" / "dcvfleet").glob("tokens-*.json")
    assert cache.stat().st_mode & 0o077 == 0
    whoami = cli("whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.startswith(cli.username)
    # start: the provisioning steps as they complete, then READY and the URL
    started = cli("sessions", "start", *LINUX, "--timeout", "60")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url.startswith("https://")
    assert url.endswith("#desktop")
    done = [line.split(" (")[0] for line in started.stderr.splitlines() if line.startswith("✓")]
    assert done == ["✓ credentials", "✓ GPU", "✓ desktop booted", "✓ ready"], started.stderr
    session_id = started.stderr.split()[1]
    assert f"Desktop {session_id} is READY in" in started.stderr
    # list shows it
    listed = cli("sessions", "list")
    assert listed.returncode == 0, listed.stderr
    [row] = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert row[:5] == [session_id, "READY", "ec2", "linux", "g5.xlarge"]
    as_json = json.loads(cli("sessions", "list", "--json").stdout)
    assert [s["sessionId"] for s in as_json["sessions"]] == [session_id]
    # connect prints the URL and the DCV user, not the password
    connected = cli("sessions", "connect", session_id, "--no-browser")
    assert connected.returncode == 0, connected.stderr
    assert f"URL:       {url}" in connected.stdout
    creds = json.loads(cli("sessions", "credentials", session_id, "--json").stdout)
    assert f"User:      {creds['username']}" in connected.stdout
    assert creds["password"]
    assert creds["password"] not in connected.stdout + connected.stderr
    shown = cli("sessions", "connect", session_id, "--no-browser", "--show-password")
    assert f"Password:  {creds['password']}" in shown.stdout
    # stop, and wait for it
    stopped = cli("sessions", "stop", session_id, "--wait", "--timeout", "60")
    assert stopped.returncode == 0, stopped.stderr
    assert f"Desktop {session_id} is STOPPED" in stopped.stderr
    # resume: READY again
    resumed = cli("sessions", "resume", session_id, "--timeout", "60")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().startswith("https://")
    # delete (no terminal: --yes is needed)
    refused = cli("sessions", "delete", session_id)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    deleted = cli("sessions", "delete", session_id, "--yes", "--wait", "--timeout", "60")
    assert deleted.returncode == 0, deleted.stderr
    assert f"Desktop {session_id} is TERMINATED" in deleted.stderr
    shown_after = json.loads(cli("sessions", "show", session_id, "--json").stdout)
    assert shown_after["status"] == "TERMINATED"
    # and sign out
    assert cli("logout").returncode == 0
    after = cli("sessions", "list")
    assert after.returncode == 1
    assert "run dcvfleet login" in after.stderr


def test_a_desktop_that_cannot_get_a_gpu_fails_with_the_reason(
    fleet: Stack, tmp_path: Path
) -> None:
    fleet.faults(noCapacity=["*"])
    cli = _user(fleet, tmp_path)
    started = cli("sessions", "start", *LINUX, "--timeout", "60")
    assert started.returncode == 1, started.stderr
    assert "✓ credentials" in started.stderr
    assert "✗ finding a GPU" in started.stderr
    last = started.stderr.splitlines()[-1]
    assert last.startswith("dcvfleet: desktop ")
    assert " failed: " in last
    assert "No GPU capacity is available right now" in last  # plain words, no types
    assert "Traceback" not in started.stderr
    assert started.stdout == ""


def test_bad_input_is_the_apis_400_and_exit_2(fleet: Stack, tmp_path: Path) -> None:
    cli = _user(fleet, tmp_path)
    done = cli("sessions", "start", "--backend", "batch", "--os", "windows")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("dcvfleet: os:")


def test_the_fleet_is_for_admins_only(fleet: Stack, tmp_path: Path) -> None:
    user = _user(fleet, tmp_path)
    session_id = _start(user)
    # a user is refused with the API's 403 message
    refused = user("fleet")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "dcvfleet: only members of the admins group may do this"
    # an admin sees the user's desktop and its instance
    admin = _user(fleet, tmp_path, groups=("admins",))
    shown = json.loads(user("sessions", "show", session_id, "--json").stdout)
    instance_id = shown["instanceId"]
    listing = admin("fleet", "--json")
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    assert session_id in [s["sessionId"] for s in data["sessions"]]
    assert instance_id in [i["instanceId"] for i in data["instances"]]
    table = admin("fleet", "--state", "running", "--user", user.username)
    assert table.returncode == 0, table.stderr
    assert instance_id in table.stdout
    assert session_id in table.stdout
    assert user.username in table.stdout
    # and stops it
    stopped = admin("fleet", "stop", session_id)
    assert stopped.returncode == 0, stopped.stderr
    assert f"Desktop {session_id} is STOPPING." in stopped.stderr


def test_a_first_sign_in_sets_the_new_password(fleet: Stack, tmp_path: Path) -> None:
    username = f"cli{uuid.uuid4().hex[:10]}"
    idp = fleet.client("cognito-idp")
    idp.admin_create_user(
        UserPoolId=fleet.info["user_pool_id"],
        Username=username,
        TemporaryPassword="Temp-Pw-1a",
        MessageAction="SUPPRESS",
    )
    cli = Cli(fleet, tmp_path, username, "Temp-Pw-1a")
    without = cli("login", "-u", username, extra_env={"DCVFLEET_PASSWORD": "Temp-Pw-1a"})
    assert without.returncode == 2
    assert "DCVFLEET_NEW_PASSWORD" in without.stderr
    new = f"New-Pw-{uuid.uuid4().hex[:8]}A1"
    done = cli(
        "login",
        "-u",
        username,
        extra_env={"DCVFLEET_PASSWORD": "Temp-Pw-1a", "DCVFLEET_NEW_PASSWORD": new},
    )
    assert done.returncode == 0, done.stderr
    user = idp.admin_get_user(UserPoolId=fleet.info["user_pool_id"], Username=username)
    assert user["UserStatus"] == "CONFIRMED"
    assert cli("sessions", "list").returncode == 0
    # and the new password is the one that works from now on
    again = cli("login", "-u", username, extra_env={"DCVFLEET_PASSWORD": new})
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("command", [("sessions", "list"), ("whoami",)])
def test_a_token_cache_from_before_is_refreshed(
    fleet: Stack, tmp_path: Path, command: tuple[str, ...]
) -> None:
    cli = _user(fleet, tmp_path)
    [cache] = (tmp_path / cli.username / "cache" / "dcvfleet").glob("tokens-*.json")
    data = json.loads(cache.read_text())
    data["expires_at"] = 0  # as if it had expired
    cache.write_text(json.dumps(data))
    done = cli(*command)
    assert done.returncode == 0, done.stderr
    refreshed = json.loads(cache.read_text())
    assert refreshed["expires_at"] > 0
    assert refreshed["refresh_token"] == data["refresh_token"]


def _preflight(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dcvfleet_cli", "--stack-file", str(cli.stack_file)]
    return subprocess.run(
        [*command, "preflight", "--local", *args],
        env=cli.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_preflight_checks_the_local_stacks_emulator(fleet: Stack, tmp_path: Path) -> None:
    """``dcvfleet preflight --local`` makes its calls to the emulator, with the parameters the
    local stack was deployed with (samconfig.toml [local], VpcId and SubnetIds from the stack)."""
    s3 = fleet.client("s3")
    s3.create_bucket(Bucket="preflight-artifacts")
    s3.put_object(Bucket="preflight-artifacts", Key="agent.tar.gz", Body=b"agent")
    cli = Cli(fleet, tmp_path, "nobody", "unused")
    done = _preflight(
        cli, "--json", "--params", "AgentArtifactS3Uri=s3://preflight-artifacts/agent.tar.gz"
    )
    assert done.stdout, done.stderr
    answer = json.loads(done.stdout)
    assert answer["target"].startswith(f"preflight: {fleet.region} at {fleet.endpoint}")
    verdicts = {c["check"]: c["status"] for c in answer["checks"]}
    passing = (
        *("region", "subnets", "quota-on-demand", "quota-spot", "hibernation"),
        *("apigateway-role", "batch-role", "s3-route", "agent-artifact"),
    )
    assert {k: verdicts[k] for k in passing} == dict.fromkeys(passing, "PASS"), answer
    # the local stack's two subnets are the default VPC's, in whichever zones
    assert verdicts["instance-types"] in ("PASS", "WARN"), answer

    missing = _preflight(cli, "--params", "AgentArtifactS3Uri=s3://preflight-artifacts/x.tar.gz")
    assert missing.returncode == 1
    assert "FAIL  agent-artifact" in missing.stdout


def test_first_desktops_reports_each_kinds_steps_and_leaves_nothing(
    fleet: Stack, tmp_path: Path
) -> None:
    """``tools/first_desktops.py``, the ten-minute check for an account, run against the local
    stack: each kind is READY with its steps reported, deleted, and nothing of it is left. The
    emulator has no AWS-RunShellScript, so the host checks say they were not run."""
    cli = _user(fleet, tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "first_desktops.py"),
            *("--stack-file", str(cli.stack_file)),
            *("--endpoint-url", fleet.endpoint),
            *("--kinds", "ec2/linux,ec2/windows"),
            *("--timeout", "120"),
            "--no-port-check",  # the simulated hosts' public names resolve nowhere
        ],
        env={**cli.env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("READY in") == 2, out
    assert out.count("nothing left behind") == 2, out
    assert "host checks not run" in out, out
    assert "DCV port not checked" in out, out
    assert "summary:\n  OK   ec2/linux\n  OK   ec2/windows" in out, out
