"""The dcvfleet CLI against a fake API (a real HTTP server in a thread) and a fake Cognito (moto
for the SRP sign-in, a stub for refreshes). No network beyond 127.0.0.1, no real waiting."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dcvfleet_cli import auth as auth_module
from dcvfleet_cli import stack as stack_module
from dcvfleet_cli import watch
from dcvfleet_cli.auth import Auth, TokenCache, Tokens, cache_dir
from dcvfleet_cli.errors import CliError
from dcvfleet_cli.main import build_parser, main
from dcvfleet_cli.output import duration, table
from dcvfleet_cli.stack import Stack
from tests.support.cognito import srp_pool, write_stack_file
from tests.support.http import serving

SID = "0b7f4c1e-3a8e-4a5e-9d7e-2f1c8a9b0c1d"
SHORT = "0b7f4c1e"
DESKTOP = f'"Linux workstation" ({SHORT})'
URL = "https://ec2-1-2-3-4.compute-1.amazonaws.com:8443/#desktop"
DROP = "drop"  # a reply that closes the connection without answering


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


# --- a fake API ----------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Reply = tuple[int, Any] | str
Handler = Callable[[Seen], Reply]


@dataclass
class FakeApi:
    """Answers from scripted replies per (method, path): a list is consumed in order (its last
    reply repeats), a callable decides per request. Only ``tokens`` are accepted, if set."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    routes: dict[tuple[str, str], list[Reply] | Handler] = field(default_factory=dict)
    tokens: set[str] | None = None

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, "/v1" + path)] = list(replies)

    def handle(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, "/v1" + path)] = handler

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            s
            for s in self.seen
            if (method is None or s.method == method) and (path is None or s.path == "/v1" + path)
        ]

    def answer(self, seen: Seen) -> Reply:
        self.seen.append(seen)
        token = seen.headers.get("Authorization", "")
        if not token or (self.tokens is not None and token not in self.tokens):
            return 401, {"message": "Unauthorized"}
        route = self.routes.get((seen.method, seen.path))
        if route is None:
            return 404, {"message": f"no route {seen.method} {seen.path}"}
        if callable(route):
            return route(seen)
        return route.pop(0) if len(route) > 1 else route[0]


def _server(api: FakeApi) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                dict(self.headers.items()),
                json.loads(raw) if raw else None,
            )
            reply = api.answer(seen)
            if reply == DROP:
                self.close_connection = True
                return
            assert not isinstance(reply, str)
            status, body = reply
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(autouse=True)
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's settings (the stack it remembers) in this test's folder, never the user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "config"))
    return tmp_path / "config" / "dcvfleet" / "config.json"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    server = _server(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with serving(server, 0.05):
        yield fake


# --- a fake Cognito for refreshes ----------------------------------------------------------


class FakeIdp:
    def __init__(self) -> None:
        self.refreshes: list[str] = []
        self.fail = False
        self.issued = 0

    def initiate_auth(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["AuthFlow"] == "REFRESH_TOKEN_AUTH"
        self.refreshes.append(kwargs["AuthParameters"]["REFRESH_TOKEN"])
        if self.fail:
            error = {
                "Error": {"Code": "NotAuthorizedException", "Message": "Refresh Token has expired"}
            }
            raise ClientError(error, "InitiateAuth")
        self.issued += 1
        token = jwt({"exp": int(time.time()) + 3600, "cognito:username": "alice", "n": self.issued})
        return {
            "AuthenticationResult": {"IdToken": token, "AccessToken": "access-2", "ExpiresIn": 3600}
        }

    def revoke_token(self, **kwargs: Any) -> dict[str, Any]:
        return {}


# --- the CLI as a user runs it -------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    api: FakeApi
    idp: FakeIdp
    home: Path
    stack_file: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    pauses: list[float] = field(default_factory=list)

    def __call__(self, *argv: str, stdin: io.StringIO | None = None) -> Result:
        self.monkeypatch.setattr("sys.stdin", stdin or io.StringIO(""))
        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    @property
    def cache(self) -> TokenCache:
        return TokenCache(self.home / "cache" / "dcvfleet", self.api.url)

    def sign_in(
        self, token: str = "", expires_in: float = 3600, groups: tuple[str, ...] = ()
    ) -> str:
        token = token or jwt({"cognito:username": "alice", "cognito:groups": list(groups)})
        self.cache.save(
            Tokens(token, "access-1", "refresh-1", time.time() + expires_in, "alice", "client-1")
        )
        return token


@pytest.fixture
def cli(
    api: FakeApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(
        json.dumps(
            {
                "api_url": api.url,
                "user_pool_id": "us-east-1_Pool",
                "user_pool_client_id": "client-1",
                "region": "us-east-1",
            }
        )
    )
    idp = FakeIdp()
    for name in ("DCVFLEET_STACK_NAME", "DCVFLEET_PASSWORD", "DCVFLEET_NEW_PASSWORD", "DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DCVFLEET_STACK_FILE", str(stack_file))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(auth_module, "cognito_client", lambda stack: idp)
    monkeypatch.chdir(tmp_path)
    runner = Cli(api, idp, tmp_path, stack_file, capsys, monkeypatch)
    monkeypatch.setattr(watch, "pause", runner.pauses.append)
    return runner


def session(status: str = "PROVISIONING", **extra: Any) -> dict[str, Any]:
    return {
        "sessionId": SID,
        "status": status,
        "backend": "ec2",
        "os": "linux",
        "instanceType": "g5.xlarge",
        "profile": "linux-workstation",
        "profileName": "Linux workstation",
        "name": "Linux workstation",
        "createdAt": "2025-01-31T14:05:09.123Z",
        "updatedAt": "2025-01-31T14:05:09.123Z",
        "progress": {},
        **extra,
    }


def _untimed(line: str) -> str:
    """A progress line with its running time (which depends on the clock) as ``Ns``."""
    return re.sub(r", \d+s\)$", ", Ns)", line)


def provisioning(
    created: float, steps: dict[str, float], status: str = "PROVISIONING", **extra: Any
) -> dict[str, Any]:
    return session(
        status,
        createdAt=iso(created),
        progress={k: iso(created + v) for k, v in steps.items()},
        **extra,
    )


# --- argument parsing ----------------------------------------------------------------------


def test_the_commands_parse_with_their_defaults() -> None:
    parser = build_parser()
    args = parser.parse_args(["sessions", "start"])
    assert (args.profile, args.name, args.backend, args.os, args.instance_type, args.no_wait) == (
        None,
        None,
        None,  # ec2 and linux when no profile is given: see sessions_start
        None,
        None,
        False,
    )
    args = parser.parse_args(["sessions", "start", "--profile", "linux-workstation", "--name", "A"])
    assert (args.profile, args.name) == ("linux-workstation", "A")
    args = parser.parse_args(["sessions", "rename", "Linux workstation", "CAD box"])
    assert (args.func.__name__, args.session_id, args.new_name) == (
        "sessions_rename",
        "Linux workstation",
        "CAD box",
    )
    assert parser.parse_args(["sessions", "hide", SHORT]).func.__name__ == "sessions_hide"
    assert parser.parse_args(["sessions", "list", "--all"]).all
    assert parser.parse_args(["profiles", "--json"]).func.__name__ == "profiles"
    args = parser.parse_args(
        ["sessions", "start", "--backend", "batch", "--instance-type", "g4dn.xlarge", "--no-wait"]
    )
    assert (args.backend, args.instance_type, args.no_wait) == ("batch", "g4dn.xlarge", True)
    args = parser.parse_args(["fleet", "--state", "running", "--status", "ready", "--user", "bob"])
    assert (args.state, args.status, args.user, args.func.__name__) == (
        "running",
        "READY",
        "bob",
        "fleet",
    )
    args = parser.parse_args(["fleet", "terminate", SID, "--yes"])
    assert (args.func.__name__, args.session_id, args.yes) == ("fleet_terminate", SID, True)
    args = parser.parse_args(["sessions", "connect", SID, "--show-password", "--no-browser"])
    assert args.show_password
    assert args.no_browser


def test_stack_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--stack-file", "a.json", "sessions", "list"]).stack_file == "a.json"
    assert parser.parse_args(["sessions", "list", "--stack-file", "b.json"]).stack_file == "b.json"
    args = parser.parse_args(["whoami", "--stack-name", "prod", "--region", "eu-west-1"])
    assert (args.stack_name, args.region) == ("prod", "eu-west-1")
    assert not hasattr(parser.parse_args(["whoami"]), "stack_file")


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "start", "--backend", "gpu"],
        ["sessions", "start", "--os", "mac"],
        ["sessions", "stop"],
        ["fleet", "--state", "sleeping"],
        ["fleet", "--status", "asleep"],
        ["sessions"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


# --- where the stack is --------------------------------------------------------------------


STACK_JSON = {
    "api_url": "http://127.0.0.1:4000/v1/",
    "portal_url": "http://127.0.0.1:4001/",
    "aws_endpoint_url": "http://127.0.0.1:4566",
    "region": "us-west-2",
    "user_pool_id": "us-west-2_abc",
    "user_pool_client_id": "cid",
}


def test_a_stack_file_gives_the_api_and_the_user_pool(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps(STACK_JSON))
    found = stack_module.discover(str(path), None, None, {})
    assert found == Stack(
        "http://127.0.0.1:4000/v1",
        "us-west-2_abc",
        "cid",
        "us-west-2",
        "http://127.0.0.1:4566",
        f"stack file {path}",
    )


def test_a_portal_config_json_is_a_stack_file_too(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "apiUrl": "https://x.execute-api.eu-west-1.amazonaws.com/v1",
                "userPoolId": "eu-west-1_P",
                "userPoolClientId": "c",
                "cognitoEndpoint": "https://cognito-idp.eu-west-1.amazonaws.com/",
            }
        )
    )
    found = stack_module.discover(None, None, None, {"DCVFLEET_STACK_FILE": str(path)})
    assert (found.api_url, found.region, found.user_pool_client_id) == (
        "https://x.execute-api.eu-west-1.amazonaws.com/v1",
        "eu-west-1",
        "c",
    )


def test_the_local_stack_file_is_the_default(tmp_path: Path) -> None:
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "stack.json").write_text(json.dumps(STACK_JSON))
    assert stack_module.discover(None, None, None, {}, cwd=tmp_path).user_pool_id == "us-west-2_abc"


def test_flags_come_before_the_environment_which_comes_before_the_default(tmp_path: Path) -> None:
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "stack.json").write_text(json.dumps(STACK_JSON))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**STACK_JSON, "user_pool_id": "us-west-2_env"}))
    flagged = tmp_path / "flagged.json"
    flagged.write_text(json.dumps({**STACK_JSON, "user_pool_id": "us-west-2_flag"}))
    env = {"DCVFLEET_STACK_FILE": str(other)}
    assert (
        stack_module.discover(None, None, None, env, cwd=tmp_path).user_pool_id == "us-west-2_env"
    )
    assert (
        stack_module.discover(str(flagged), None, None, env, cwd=tmp_path).user_pool_id
        == "us-west-2_flag"
    )


class FakeCloudFormation:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.asked: list[str] = []

        class Meta:
            region_name = "eu-central-1"

        self.meta = Meta()

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.asked.append(StackName)
        return {
            "Stacks": [
                {"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}
            ]
        }


def test_a_stack_name_is_read_from_cloudformation_outputs() -> None:
    cfn = FakeCloudFormation(
        {
            "ApiUrl": "https://a.example/v1/",
            "UserPoolId": "eu-central-1_X",
            "UserPoolClientId": "cc",
            "Other": "x",
        }
    )
    found = stack_module.discover(
        None,
        None,
        None,
        {"DCVFLEET_STACK_NAME": "dcvfleet-prod"},
        cloudformation=lambda region: cfn,
    )
    assert cfn.asked == ["dcvfleet-prod"]
    assert (found.api_url, found.user_pool_id, found.region, found.cognito_endpoint) == (
        "https://a.example/v1",
        "eu-central-1_X",
        "eu-central-1",
        None,
    )


def test_a_stack_without_the_outputs_is_refused() -> None:
    cfn = FakeCloudFormation({"ApiUrl": "https://a.example/v1"})
    with pytest.raises(
        CliError, match="not a DCV Fleet stack: no output UserPoolId, UserPoolClientId"
    ):
        stack_module.discover(None, "web", None, {}, cloudformation=lambda region: cfn)


def test_no_stack_is_a_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DCVFLEET_STACK_FILE", raising=False)
    monkeypatch.delenv("DCVFLEET_STACK_NAME", raising=False)
    assert main(["sessions", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "dcvfleet: No DCV Fleet stack found. Start one with `make local` in the dcv-fleet folder, "
        "or point the CLI at a deployed stack with `dcvfleet login --stack-name NAME"
    )
    assert "--stack-file" in err
    assert "Traceback" not in err


def test_the_settings_folder_follows_each_platforms_convention(tmp_path: Path) -> None:
    home = Path.home()
    config_dir = stack_module.config_dir
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}, "linux") == tmp_path / "dcvfleet"
    assert config_dir({}, "linux") == home / ".config" / "dcvfleet"
    assert config_dir({}, "darwin") == home / ".config" / "dcvfleet"
    # a relative XDG_CONFIG_HOME is invalid (XDG Base Directory Specification): ignored
    assert config_dir({"XDG_CONFIG_HOME": "rel"}, "linux") == home / ".config" / "dcvfleet"
    assert config_dir({"APPDATA": str(tmp_path)}, "win32") == tmp_path / "dcvfleet"


def _local_stack(checkout: Path, pool: str) -> Path:
    """A checkout (its .git) where make local has written .local/stack.json."""
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".local").mkdir()
    path = checkout / ".local" / "stack.json"
    path.write_text(json.dumps({**STACK_JSON, "user_pool_id": pool}))
    return path


def test_a_stack_pointed_at_is_found_from_any_folder_afterwards(
    cli: Cli, tmp_path: Path, settings_file: Path
) -> None:
    cli.sign_in()
    cli.monkeypatch.delenv("DCVFLEET_STACK_FILE")
    cli.api.reply("GET", "/sessions", (200, {"sessions": []}))
    assert cli("--stack-file", str(cli.stack_file), "sessions", "list").code == 0
    assert json.loads(settings_file.read_text()) == {"stack": {"file": str(cli.stack_file)}}
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    cli.monkeypatch.chdir(elsewhere)
    result = cli("sessions", "list")
    assert result.code == 0, result.err
    assert len(cli.api.calls("GET", "/sessions")) == 2
    whoami = cli("whoami")
    assert f"(stack file {cli.stack_file} (remembered in {settings_file}))" in whoami.out


def test_a_failed_command_or_the_environment_does_not_change_the_remembered_stack(
    cli: Cli, settings_file: Path
) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/sessions", (500, {"message": "boom"}))
    assert cli("sessions", "list").code == 1  # DCVFLEET_STACK_FILE: not remembered
    assert cli("--stack-file", str(cli.stack_file), "sessions", "list").code == 1
    assert not settings_file.exists()


def test_the_current_checkouts_local_stack_wins_over_the_remembered_one(
    tmp_path: Path, settings_file: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    remembered = _local_stack(tmp_path / "old-checkout", "us-west-2_old")
    stack_module.remember(stack_module.from_file(remembered), env)
    here = _local_stack(tmp_path / "checkout", "us-west-2_here")
    below = tmp_path / "checkout" / "portal" / "src"
    below.mkdir(parents=True)
    found = stack_module.discover(None, None, None, env, cwd=below)
    assert (found.user_pool_id, found.origin) == ("us-west-2_here", "checkout")
    # above the checkout's root (.git) nothing is looked for: the remembered stack is used
    (tmp_path / "checkout" / "portal" / ".git").mkdir()
    found = stack_module.discover(None, None, None, env, cwd=below)
    assert (found.user_pool_id, found.origin) == ("us-west-2_old", "settings")
    assert here.is_file()


def test_a_remembered_local_stack_that_stopped_says_where_to_start_it(
    tmp_path: Path, settings_file: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    path = _local_stack(tmp_path / "dcv-fleet", "us-west-2_a")
    stack_module.remember(stack_module.from_file(path), env)
    path.unlink()  # make local removes it when it stops
    with pytest.raises(CliError) as exc:
        stack_module.discover(None, None, None, env, cwd=tmp_path)
    assert exc.value.message.startswith(
        f"No DCV Fleet stack found: the stack last used ({path}) is not running. "
        f"Start it with `make local` in {tmp_path / 'dcv-fleet'}, or point the CLI at"
    )
    assert exc.value.exit_code == 2


def test_a_remembered_deployed_stack_needs_no_cloudformation_call(
    tmp_path: Path, settings_file: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    cfn = FakeCloudFormation(
        {"ApiUrl": "https://a.example/v1/", "UserPoolId": "eu-central-1_X", "UserPoolClientId": "c"}
    )
    named = stack_module.discover(None, "prod", None, env, cloudformation=lambda region: cfn)
    stack_module.remember(named, env)
    again = stack_module.discover(None, None, None, env, cwd=tmp_path, cloudformation=None)
    assert (again.api_url, again.user_pool_id, again.user_pool_client_id, again.region) == (
        named.api_url,
        named.user_pool_id,
        named.user_pool_client_id,
        named.region,
    )
    assert again.source.startswith("stack prod (eu-central-1) (remembered in ")
    assert cfn.asked == ["prod"]


def test_an_unreadable_settings_file_says_what_to_do(tmp_path: Path, settings_file: Path) -> None:
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text("{nope")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    with pytest.raises(CliError, match=r"is not readable JSON .*: delete it, then sign in again"):
        stack_module.discover(None, None, None, env, cwd=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{nope", "not readable JSON"),
        (
            json.dumps({"api_url": "http://x/v1", "region": "r"}),
            "has no user_pool_id, user_pool_client_id",
        ),
    ],
)
def test_a_bad_stack_file_says_what_is_wrong(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "stack.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CliError, match=message) as exc:
        stack_module.discover(str(path), None, None, {})
    assert exc.value.exit_code == 2


def test_stack_file_and_stack_name_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="not both"):
        stack_module.discover("a.json", "prod", None, {})


# --- the token cache and refreshes ---------------------------------------------------------


def test_the_token_cache_is_private_and_one_per_api(tmp_path: Path) -> None:
    directory = cache_dir({"XDG_CACHE_HOME": str(tmp_path)})
    assert directory == tmp_path / "dcvfleet"
    one, two = TokenCache(directory, "http://a/v1"), TokenCache(directory, "http://b/v1")
    assert one.path != two.path
    assert one.path.parent == directory
    tokens = Tokens("id", "access", "refresh", 123.0, "alice", "cid")
    one.save(tokens)
    assert stat.S_IMODE(one.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert one.load() == tokens
    assert two.load() is None
    one.path.chmod(0o644)
    one.save(tokens)
    assert stat.S_IMODE(one.path.stat().st_mode) == 0o600
    assert [p.name for p in directory.iterdir()] == [one.path.name]  # no temporary left behind
    assert one.clear()
    assert not one.clear()


def test_the_cache_directory_defaults_to_dot_cache() -> None:
    assert cache_dir({}) == Path.home() / ".cache" / "dcvfleet"
    assert cache_dir({"XDG_CACHE_HOME": "relative"}) == Path.home() / ".cache" / "dcvfleet"


def test_a_token_expiring_within_two_minutes_is_refreshed_first(cli: Cli) -> None:
    cli.sign_in("old-token", expires_in=90)
    cli.api.reply("GET", "/sessions", (200, {"sessions": []}))
    assert cli("sessions", "list").code == 0
    assert cli.idp.refreshes == ["refresh-1"]
    cached = cli.cache.load()
    assert cached is not None
    assert cached.id_token != "old-token"
    assert cached.refresh_token == "refresh-1"  # Cognito did not rotate it
    assert cached.expires_at > time.time() + 3000
    assert [s.headers["Authorization"] for s in cli.api.seen] == [cached.id_token]


def test_a_token_valid_for_longer_is_used_as_is(cli: Cli) -> None:
    token = cli.sign_in(expires_in=600)
    cli.api.reply("GET", "/sessions", (200, {"sessions": []}))
    assert cli("sessions", "list").code == 0
    assert cli.idp.refreshes == []
    assert cli.api.seen[0].headers["Authorization"] == token


def test_a_401_refreshes_the_sign_in_and_tries_again(cli: Cli) -> None:
    cli.sign_in("revoked-token")

    def sessions(seen: Seen) -> Reply:
        if seen.headers["Authorization"] == "revoked-token":
            return 401, {"message": "Unauthorized"}
        return 200, {"sessions": [session("READY")]}

    cli.api.handle("GET", "/sessions", sessions)
    result = cli("sessions", "list")
    assert result.code == 0, result.err
    assert SHORT in result.out
    assert cli.idp.refreshes == ["refresh-1"]
    assert [s.headers["Authorization"] == "revoked-token" for s in cli.api.seen] == [True, False]
    cached = cli.cache.load()
    assert cached is not None
    assert cached.id_token == cli.api.seen[1].headers["Authorization"]


def test_a_failed_refresh_says_to_sign_in_again(cli: Cli) -> None:
    cli.sign_in("revoked-token")
    cli.idp.fail = True
    cli.api.handle("GET", "/sessions", lambda seen: (401, {"message": "Unauthorized"}))
    result = cli("sessions", "list")
    assert result.code == 1
    assert result.err.strip() == "dcvfleet: Your sign-in has expired: run dcvfleet login"


def test_no_sign_in_says_to_sign_in(cli: Cli) -> None:
    result = cli("sessions", "list")
    assert (result.code, result.err.strip()) == (
        1,
        "dcvfleet: You are not signed in: run dcvfleet login",
    )
    assert cli.api.seen == []


def test_tokens_of_another_user_pool_client_are_not_used(cli: Cli) -> None:
    cli.cache.save(Tokens("t", "a", "r", time.time() + 3600, "alice", "client-of-an-old-stack"))
    result = cli("sessions", "list")
    assert "Your sign-in has expired" in result.err
    assert cli.api.seen == []


def test_logout_forgets_the_tokens(cli: Cli) -> None:
    cli.sign_in()
    assert cli("logout").code == 0
    assert cli.cache.load() is None
    assert "not signed in" in cli("logout").err


def test_whoami_shows_the_user_and_groups(cli: Cli) -> None:
    cli.sign_in(
        jwt(
            {
                "cognito:username": "alice",
                "email": "alice@example.com",
                "cognito:groups": ["admins"],
            }
        )
    )
    result = cli("whoami")
    assert result.code == 0
    assert "alice <alice@example.com>" in result.out
    assert "groups:  admins" in result.out
    assert cli.api.url in result.out


# --- sign-in with SRP (moto plays Cognito) -------------------------------------------------


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        idp = boto3.client("cognito-idp", region_name="us-east-1")
        pool_id, client_id = srp_pool(idp, "fleet", "cli")
        idp.create_group(UserPoolId=pool_id, GroupName="admins")
        stack_file = write_stack_file(tmp_path / "pool-stack.json", pool_id, client_id)
        monkeypatch.setenv("DCVFLEET_STACK_FILE", str(stack_file))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        for name in ("DCVFLEET_PASSWORD", "DCVFLEET_NEW_PASSWORD", "DCVFLEET_USERNAME"):
            monkeypatch.delenv(name, raising=False)
        yield {"idp": idp, "pool_id": pool_id, "client_id": client_id, "stack_file": stack_file}


def _cache_files(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "cache" / "dcvfleet").glob("tokens-*.json"))


def test_login_signs_in_with_srp_and_caches_the_tokens_privately(
    pool: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    idp = pool["idp"]
    idp.admin_create_user(UserPoolId=pool["pool_id"], Username="alice", MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool["pool_id"], Username="alice", Password="Secret-Pw-1", Permanent=True
    )
    idp.admin_add_user_to_group(UserPoolId=pool["pool_id"], Username="alice", GroupName="admins")
    calls: list[str] = []
    real = BaseClient._make_api_call

    def spy(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append(f"{operation}:{params.get('AuthFlow') or params.get('ChallengeName') or ''}")
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    monkeypatch.setenv("DCVFLEET_PASSWORD", "Secret-Pw-1")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["login", "--username", "alice"]) == 0
    captured = capsys.readouterr()
    assert "Signed in as alice (admin)" in captured.err
    assert "Secret-Pw-1" not in captured.out + captured.err
    assert calls == ["InitiateAuth:USER_SRP_AUTH", "RespondToAuthChallenge:PASSWORD_VERIFIER"]
    [cached] = _cache_files(tmp_path)
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert "Secret-Pw-1" not in cached.read_text()
    data = json.loads(cached.read_text())
    assert data["refresh_token"]
    assert data["id_token"]
    assert data["expires_at"] > time.time()
    assert main(["whoami"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alice")
    assert "groups:  admins" in out
    # and the stack signed in to is the one to use from any folder from now on
    settings = json.loads((tmp_path / "config" / "dcvfleet" / "config.json").read_text())
    assert settings == {"stack": {"file": str(pool["stack_file"].resolve())}}


def test_a_first_sign_in_sets_the_new_password_cognito_asks_for(
    pool: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    idp = pool["idp"]
    idp.admin_create_user(
        UserPoolId=pool["pool_id"],
        Username="bob",
        TemporaryPassword="Temp-Pw-1",
        MessageAction="SUPPRESS",
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DCVFLEET_PASSWORD", "Temp-Pw-1")
    # on no terminal and without DCVFLEET_NEW_PASSWORD it cannot ask
    assert main(["login", "--username", "bob"]) == 2
    assert "DCVFLEET_NEW_PASSWORD" in capsys.readouterr().err
    assert _cache_files(tmp_path) == []
    monkeypatch.setenv("DCVFLEET_NEW_PASSWORD", "Brand-New-Pw-2")
    assert main(["login", "--username", "bob"]) == 0
    user = idp.admin_get_user(UserPoolId=pool["pool_id"], Username="bob")
    assert user["UserStatus"] == "CONFIRMED"
    assert len(_cache_files(tmp_path)) == 1
    assert "Brand-New-Pw-2" not in "".join(capsys.readouterr())


def test_a_new_password_is_asked_twice_on_a_terminal(
    pool: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp = pool["idp"]
    idp.admin_create_user(
        UserPoolId=pool["pool_id"],
        Username="carol",
        TemporaryPassword="Temp-Pw-1",
        MessageAction="SUPPRESS",
    )
    answers = iter(["Temp-Pw-1", "New-Pw-3", "Other-Pw-4", "New-Pw-3", "New-Pw-3"])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin", Tty(""))
    assert main(["login", "-u", "carol"]) == 0
    assert prompts == [
        "Password: ",
        "New password: ",
        "New password again: ",
        "New password: ",
        "New password again: ",
    ]
    assert (
        idp.admin_get_user(UserPoolId=pool["pool_id"], Username="carol")["UserStatus"]
        == "CONFIRMED"
    )


def test_an_unknown_user_is_a_failure_not_a_traceback(
    pool: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DCVFLEET_PASSWORD", "whatever")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["login", "--username", "nobody"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dcvfleet: sign-in failed:")
    assert "Traceback" not in err


def test_login_reads_the_password_from_stdin_when_it_is_not_a_terminal(
    pool: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp = pool["idp"]
    idp.admin_create_user(UserPoolId=pool["pool_id"], Username="dave", MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool["pool_id"], Username="dave", Password="Piped-Pw-5", Permanent=True
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("Piped-Pw-5\n"))
    assert main(["login", "--username", "dave"]) == 0
    assert len(_cache_files(tmp_path)) == 1


def test_a_refresh_through_cognito_keeps_the_refresh_token(
    pool: dict[str, Any], tmp_path: Path
) -> None:
    idp = pool["idp"]
    idp.admin_create_user(UserPoolId=pool["pool_id"], Username="erin", MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool["pool_id"], Username="erin", Password="Pw-Erin-6", Permanent=True
    )
    found = stack_module.from_file(pool["stack_file"])
    auth = Auth(found, TokenCache(tmp_path / "c", found.api_url))
    first = auth.login("erin", "Pw-Erin-6", lambda: "unused")
    assert auth.refresh() != ""
    again = auth.tokens()
    assert again.refresh_token == first.refresh_token
    assert again.username == "erin"


# --- desktops ------------------------------------------------------------------------------


def test_sessions_list_is_an_aligned_table(cli: Cli) -> None:
    cli.sign_in()
    other = {
        **session("STOPPED"),
        "sessionId": "1d2c3b4a-0000-4000-8000-000000000000",
        "backend": "batch",
        "instanceType": "g4dn.xlarge",
        "profile": "linux-session",
        "profileName": "Linux session",
        "name": "CAD box",
    }
    cli.api.reply("GET", "/sessions", (200, {"sessions": [session("READY"), other]}))
    result = cli("sessions", "list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert re.split(r"\s\s+", lines[0]) == ["NAME", "STATUS", "PROFILE", "TYPE", "CREATED", "ID"]
    assert re.split(r"\s\s+", lines[1]) == [
        "Linux workstation",
        "READY",
        "Linux workstation",
        "g5.xlarge",
        "2025-01-31 14:05Z",
        SHORT,
    ]
    assert re.split(r"\s\s+", lines[2])[:4] == [
        "CAD box",
        "STOPPED",
        "Linux session",
        "g4dn.xlarge",
    ]
    assert cli.api.calls("GET", "/sessions")[0].query == {}  # hidden desktops left out
    assert {lines[0].index("STATUS"), lines[1].index("READY"), lines[2].index("STOPPED")} == {19}


def test_sessions_list_json_is_the_api_answer(cli: Cli) -> None:
    cli.sign_in()
    answer = {"sessions": [session("READY")]}
    cli.api.reply("GET", "/sessions", (200, answer))
    result = cli("sessions", "list", "--json")
    assert json.loads(result.out) == answer


def test_no_sessions_says_how_to_start_one(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/sessions", (200, {"sessions": []}))
    result = cli("sessions", "list")
    assert (result.code, result.out) == (0, "")
    assert "dcvfleet profiles" in result.err


def test_start_follows_the_progress_to_ready(cli: Cli) -> None:
    cli.sign_in()
    now = time.time()
    cli.api.reply("POST", "/sessions", (202, {"sessionId": SID, "status": "PROVISIONING"}))
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, provisioning(now, {})),
        (200, provisioning(now, {"credentials": 0.4})),
        (200, provisioning(now, {"credentials": 0.4})),
        (200, provisioning(now, {"credentials": 0.4, "capacity": 1.3})),
        (200, provisioning(now, {"credentials": 0.4, "capacity": 1.3, "booted": 2.6})),
        (
            200,
            provisioning(
                now,
                {"credentials": 0.4, "capacity": 1.3, "booted": 2.6, "ready": 2.7},
                "READY",
                connectionUrl=URL,
            ),
        ),
    )
    result = cli("sessions", "start")
    assert result.code == 0, result.err
    assert result.out == URL + "\n"
    [post] = cli.api.calls("POST", "/sessions")
    assert post.body == {"backend": "ec2", "os": "linux"}
    lines = result.err.splitlines()
    assert lines[0] == f"Desktop {SHORT} requested (ec2, linux)."
    steps = [re.sub(r"\(\d+\.\ds\)|, \d+s\)", "(Ns)", line) for line in lines[1:-1]]
    assert steps == [
        "… creating credentials (PROVISIONING(Ns)",
        "✓ credentials (Ns)",
        "… finding a GPU (PROVISIONING(Ns)",
        "✓ GPU (Ns)",
        "… booting the desktop (PROVISIONING(Ns)",
        "✓ desktop booted (Ns)",
        "… getting the connection URL (PROVISIONING(Ns)",
        "✓ ready (Ns)",
    ]
    assert re.fullmatch(
        rf'Desktop "Linux workstation" \({SHORT}\) is READY in \d+\.\ds\. '
        rf"Connect: dcvfleet sessions connect {SHORT}",
        lines[-1],
    )
    assert cli.pauses
    assert all(p <= 1 for p in cli.pauses)


def test_wait_times_the_steps_from_the_request(cli: Cli) -> None:
    cli.sign_in()
    created = time.time() - 30
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, provisioning(created, {"credentials": 0.4, "capacity": 1.25})),
        (
            200,
            provisioning(
                created,
                {"credentials": 0.4, "capacity": 1.25, "booted": 3.0, "ready": 3.1},
                "READY",
                connectionUrl=URL,
            ),
        ),
    )
    result = cli("sessions", "wait", SID)
    assert result.code == 0
    assert [_untimed(line) for line in result.err.splitlines()[:5]] == [
        "✓ credentials (0.4s)",
        "✓ GPU (1.2s)",
        "… booting the desktop (PROVISIONING, Ns)",
        "✓ desktop booted (3.0s)",
        "✓ ready (3.1s)",
    ]
    assert "is READY in 3.1s" in result.err
    assert result.out == URL + "\n"


def test_a_failed_provisioning_names_the_step_and_the_reason_and_exits_1(cli: Cli) -> None:
    cli.sign_in()
    created = time.time() - 5
    reason = "no GPU capacity for g5.xlarge, g4dn.xlarge in us-east-1 within 10 min"
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, provisioning(created, {"credentials": 0.5})),
        (200, provisioning(created, {"credentials": 0.5}, "FAILED", statusReason=reason)),
    )
    result = cli("sessions", "wait", SID)
    assert result.code == 1
    assert [_untimed(line) for line in result.err.splitlines()] == [
        "✓ credentials (0.5s)",
        "… finding a GPU (PROVISIONING, Ns)",
        "✗ finding a GPU",
        f"dcvfleet: desktop {DESKTOP} failed: {reason}",
    ]
    assert result.out == ""


def test_ctrl_c_stops_watching_and_leaves_the_desktop_alone(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.sign_in()
    cli.api.reply("POST", "/sessions", (202, {"sessionId": SID, "status": "PROVISIONING"}))
    cli.api.reply("GET", f"/sessions/{SID}", (200, provisioning(time.time(), {"credentials": 0.2})))

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "pause", interrupt)
    result = cli("sessions", "start")
    assert result.code == 130
    assert f"Watch it again: dcvfleet sessions wait {SHORT}" in result.err
    assert "Traceback" not in result.err
    assert {(s.method, s.path) for s in cli.api.seen} == {
        ("POST", "/v1/sessions"),
        ("GET", f"/v1/sessions/{SID}"),
    }


def test_start_no_wait_prints_the_id(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("POST", "/sessions", (202, {"sessionId": SID, "status": "PROVISIONING"}))
    result = cli(
        "sessions", "start", "--backend", "batch", "--instance-type", "g4dn.xlarge", "--no-wait"
    )
    assert (result.code, result.out) == (0, SID + "\n")
    assert cli.api.calls("POST")[0].body == {
        "backend": "batch",
        "os": "linux",
        "instanceType": "g4dn.xlarge",
    }
    assert f"dcvfleet sessions wait {SHORT}" in result.err
    assert cli.api.calls("GET") == []


def test_the_idempotency_key_is_reused_on_retries_and_new_per_request(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "POST",
        "/sessions",
        DROP,
        (503, {"message": "Service Unavailable"}),
        (429, {"message": "Too Many Requests"}),
        (409, {"message": "Idempotency-Key: a request with this key is still in progress"}),
        (202, {"sessionId": SID, "status": "PROVISIONING"}),
    )
    assert cli("sessions", "start", "--no-wait").code == 0
    keys = [s.headers.get("Idempotency-Key") for s in cli.api.calls("POST", "/sessions")]
    assert len(keys) == 5
    assert len(set(keys)) == 1
    assert keys[0]
    assert re.fullmatch(r"[\x21-\x7e]{1,128}", keys[0])
    assert cli.pauses == [0.5, 1.0, 2.0, 4.0]  # exponential back-off
    assert cli("sessions", "start", "--no-wait").code == 0
    assert cli.api.calls("POST", "/sessions")[-1].headers["Idempotency-Key"] != keys[0]


def test_retries_give_up_with_the_apis_message(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/sessions", (503, {"message": "Service Unavailable"}))
    result = cli("sessions", "list")
    assert result.code == 1
    assert len(cli.api.calls("GET")) == 5
    assert result.err.strip() == "dcvfleet: Service Unavailable"


def test_a_call_without_idempotency_is_not_retried_on_a_5xx_but_is_on_429(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY")))
    cli.api.reply("POST", f"/sessions/{SID}/stop", (502, {"message": "Bad Gateway"}))
    result = cli("sessions", "stop", SID, "--no-wait")
    assert (result.code, len(cli.api.calls("POST"))) == (1, 1)
    cli.api.reply(
        "POST",
        f"/sessions/{SID}/stop",
        (429, {"message": "Too Many Requests"}),
        (202, {"sessionId": SID, "status": "STOPPING"}),
    )
    result = cli("sessions", "stop", SID, "--no-wait")
    assert result.code == 0
    assert len(cli.api.calls("POST")) == 3
    assert f"Desktop {DESKTOP} is STOPPING." in result.err


def test_a_dropped_connection_on_a_non_idempotent_call_is_not_retried(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("STOPPED")))
    cli.api.reply("DELETE", f"/sessions/{SID}", DROP)
    result = cli("sessions", "delete", SID, "--yes")
    assert result.code == 1
    assert "cannot reach the DCV Fleet API" in result.err
    assert len(cli.api.calls("DELETE")) == 1


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (400, {"message": "os: a batch desktop runs linux"}, 2, "os: a batch desktop runs linux"),
        (
            409,
            {"message": "active session limit reached: 1 of 1"},
            1,
            "active session limit reached: 1 of 1 (your desktops: dcvfleet sessions list)",
        ),
        (
            422,
            {"message": "Idempotency-Key: reused with another body"},
            2,
            "Idempotency-Key: reused with another body",
        ),
        (500, "<html>oops</html>", 1, "the API answered HTTP 500"),
    ],
)
def test_api_errors_print_the_message_and_exit_non_zero(
    cli: Cli, status: int, body: Any, code: int, message: str
) -> None:
    cli.sign_in()
    cli.api.reply("POST", "/sessions", (status, body))
    result = cli("sessions", "start", "--backend", "batch", "--os", "windows")
    assert (result.code, result.err.strip(), result.out) == (code, f"dcvfleet: {message}", "")


def test_a_wrong_status_is_the_apis_409_message(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY")))
    cli.api.reply(
        "POST", f"/sessions/{SID}/start", (409, {"message": "session is READY", "status": "READY"})
    )
    result = cli("sessions", "resume", SID)
    assert (result.code, result.err.strip()) == (1, "dcvfleet: session is READY")


def test_resume_starts_and_waits(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "POST", f"/sessions/{SID}/start", (202, {"sessionId": SID, "status": "PROVISIONING"})
    )
    long_ago = time.time() - 86400 * 3
    resumed = {
        "credentials": 86400 * 3 + 0.2,
        "capacity": 86400 * 3 + 9,
        "booted": 86400 * 3 + 40,
        "ready": 86400 * 3 + 40.1,
    }
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, provisioning(long_ago, resumed, "READY", connectionUrl=URL)),
    )
    result = cli("sessions", "resume", SID)
    assert result.code == 0
    assert result.out == URL + "\n"


def test_a_resume_that_failed_leaves_it_stopped_with_the_reason(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "POST", f"/sessions/{SID}/start", (202, {"sessionId": SID, "status": "PROVISIONING"})
    )
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, session("STOPPED", statusReason="InsufficientInstanceCapacity")),
    )
    result = cli("sessions", "resume", SID)
    assert result.code == 1
    assert (
        result.err.splitlines()[-1]
        == f"dcvfleet: desktop {DESKTOP} is STOPPED: InsufficientInstanceCapacity"
    )


def test_an_id_prefix_names_the_users_desktop(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/sessions", (200, {"sessions": [session("READY")]}))
    cli.api.reply("POST", f"/sessions/{SID}/stop", (202, {"sessionId": SID, "status": "STOPPING"}))
    assert cli("sessions", "stop", SID[:6], "--no-wait").code == 0
    assert cli.api.calls("POST")[0].path == f"/v1/sessions/{SID}/stop"


def test_an_unknown_session_is_the_apis_404(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "GET",
        "/sessions/00000000-0000-0000-0000-000000000000",
        (404, {"message": "session not found"}),
    )
    result = cli("sessions", "show", "00000000-0000-0000-0000-000000000000")
    assert (result.code, result.err.strip()) == (1, "dcvfleet: session not found")


def test_ids_cannot_reach_other_paths(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/sessions", (200, {"sessions": []}))
    result = cli("sessions", "show", "../admin/instances")
    assert result.code == 2
    assert 'no desktop named "../admin/instances"' in result.err
    assert [(s.path, s.query) for s in cli.api.seen] == [("/v1/sessions", {"hidden": ["true"]})]


def test_stop_waits_until_stopped_showing_the_status_under_way(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("POST", f"/sessions/{SID}/stop", (202, {"sessionId": SID, "status": "STOPPING"}))
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, session("READY")),
        (200, session("STOPPING")),
        (200, session("STOPPING")),
        (200, session("STOPPED", statusReason="Stopped by you.")),
    )
    result = cli("sessions", "stop", SID)
    assert result.code == 0, result.err
    assert [_untimed(line) for line in result.err.splitlines()] == [
        f"Desktop {DESKTOP} is STOPPING.",
        "… stopping (STOPPING, Ns)",
        f"Desktop {DESKTOP} is STOPPED (after 0s): Stopped by you.",
    ]
    assert len(cli.api.calls("GET", f"/sessions/{SID}")) == 4
    assert cli.pauses == [0.5, 0.5]


def test_stop_no_wait_returns_at_once(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY")))
    cli.api.reply("POST", f"/sessions/{SID}/stop", (202, {"sessionId": SID, "status": "STOPPING"}))
    result = cli("sessions", "stop", SID, "--no-wait")
    assert (result.code, result.err) == (0, f"Desktop {DESKTOP} is STOPPING.\n")
    assert len(cli.api.calls("GET")) == 1  # what SID names, and nothing after the stop


def test_delete_waits_until_terminated(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("DELETE", f"/sessions/{SID}", (202, {"sessionId": SID, "status": "TERMINATING"}))
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, session("STOPPED")),
        (200, session("TERMINATING")),
        (200, session("TERMINATED", statusReason="Deleted by you.")),
    )
    result = cli("sessions", "delete", SID, "--yes")
    assert result.code == 0, result.err
    assert [_untimed(line) for line in result.err.splitlines()] == [
        f"Desktop {DESKTOP} is TERMINATING.",
        "… shutting down (TERMINATING, Ns)",
        f"Desktop {DESKTOP} is TERMINATED (after 0s): Deleted by you.",
    ]


def test_a_stop_that_ends_otherwise_exits_1(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("POST", f"/sessions/{SID}/stop", (202, {"sessionId": SID, "status": "STOPPING"}))
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, session("READY")),
        (200, session("FAILED", statusReason="The host was lost.")),
    )
    result = cli("sessions", "stop", SID)
    assert result.code == 1
    assert (
        result.err.splitlines()[-1] == f"Desktop {DESKTOP} is FAILED (after 0s): The host was lost."
    )


def test_ending_on_a_terminal_rewrites_its_line() -> None:
    out = Tty()
    clock = iter([10.0, 11.0, 75.0]).__next__
    ending = watch.Ending(out, live=True, clock=clock)
    ending.update({"status": "STOPPING"})
    ending.update({"status": "STOPPING"})
    ending.close()
    assert out.getvalue() == (
        "… stopping (STOPPING, 1s)\r\x1b[K… stopping (STOPPING, 1m 05s)\r\x1b[K… stopping\n"
    )


def test_delete_asks_on_a_terminal(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("STOPPED")))
    cli.api.reply("DELETE", f"/sessions/{SID}", (202, {"sessionId": SID, "status": "TERMINATING"}))
    result = cli("sessions", "delete", SID, stdin=Tty("n\n"))
    assert result.code == 1
    assert "Nothing deleted" in result.err
    assert (
        f"Delete desktop {DESKTOP} (STOPPED, Linux workstation, created 2025-01-31 14:05Z)? "
        "Its host and disk go with it. [y/N] " in result.err
    )
    assert cli.api.calls("DELETE") == []
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("TERMINATED")))
    result = cli("sessions", "delete", SID, "--no-wait", stdin=Tty("y\n"))
    assert result.code == 0
    assert len(cli.api.calls("DELETE")) == 1
    assert f"Desktop {DESKTOP} is TERMINATING." in result.err


def test_delete_off_a_terminal_needs_yes(cli: Cli) -> None:
    cli.sign_in()
    result = cli("sessions", "delete", SID)
    assert result.code == 2
    assert "--yes" in result.err
    assert cli.api.seen == []


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the CLI opened in a browser (none is)."""
    urls: list[str] = []

    def browser(url: str) -> bool:
        urls.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    return urls


def test_connect_prints_the_url_and_user_but_not_the_password(
    cli: Cli, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.sign_in()
    monkeypatch.setenv("DISPLAY", ":0")
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY", connectionUrl=URL)))
    cli.api.reply(
        "GET",
        f"/sessions/{SID}/credentials",
        (200, {"username": "dcv-alice", "password": "s3cret-Pw"}),
    )
    result = cli("sessions", "connect", SID)
    assert result.code == 0
    assert f"URL:       {URL}" in result.out
    assert "User:      dcv-alice" in result.out
    assert "s3cret-Pw" not in result.out + result.err
    assert "--show-password" in result.out
    assert opened == [URL]
    result = cli("sessions", "connect", SID, "--show-password", "--no-browser")
    assert "Password:  s3cret-Pw" in result.out
    assert opened == [URL]


def test_connect_opens_no_browser_without_a_display(
    cli: Cli, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.sign_in()
    monkeypatch.setattr("sys.platform", "linux")
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY", connectionUrl=URL)))
    cli.api.reply("GET", f"/sessions/{SID}/credentials", (200, {"username": "u", "password": "p"}))
    assert cli("sessions", "connect", SID).code == 0
    assert opened == []


def test_connect_to_a_stopped_desktop_says_how_to_resume(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("STOPPED")))
    result = cli("sessions", "connect", SID, "--no-browser")
    assert result.code == 1
    assert f"dcvfleet sessions resume {SHORT}" in result.err
    assert cli.api.calls("GET", f"/sessions/{SID}/credentials") == []


def test_credentials_prints_both(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY")))
    cli.api.reply(
        "GET",
        f"/sessions/{SID}/credentials",
        (200, {"username": "dcv-alice", "password": "s3cret-Pw"}),
    )
    result = cli("sessions", "credentials", SID)
    assert result.out.splitlines() == ["User:      dcv-alice", "Password:  s3cret-Pw"]
    assert json.loads(cli("sessions", "credentials", SID, "--json").out)["password"] == "s3cret-Pw"


def test_options_shows_what_can_be_asked_for(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "GET",
        "/options",
        (
            200,
            {
                "backends": ["ec2", "batch"],
                "os": {"ec2": ["linux", "windows"], "batch": ["linux"]},
                "instanceTypes": {"ec2": ["g5.xlarge", "g4dn.xlarge"], "batch": ["g5.xlarge"]},
                "defaultInstanceTypes": {"linux": "g5.xlarge", "windows": "g5.xlarge"},
                "maxActiveSessions": 1,
            },
        ),
    )
    out = cli("options").out
    assert "ec2      linux, windows  g5.xlarge, g4dn.xlarge" in out
    assert "Active desktops allowed at once: 1." in out


# --- the fleet (admins) --------------------------------------------------------------------


def _paged(key: str, pages: list[list[dict[str, Any]]]) -> Handler:
    def handler(seen: Seen) -> Reply:
        token = seen.query.get("nextToken", ["0"])[0]
        index = int(token)
        body: dict[str, Any] = {key: pages[index]}
        if index + 1 < len(pages):
            body["nextToken"] = str(index + 1)
        return 200, body

    return handler


def fid(n: int) -> str:
    """The id of the fleet's desktop number ``n``."""
    return f"{n:08d}-0000-4000-8000-{n:012d}"


def _admin_session(n: int, owner: str = "sub-bob") -> dict[str, Any]:
    return {
        **session("READY"),
        "sessionId": fid(n),
        "name": f"Box {n}",
        "owner": owner,
        "ownerName": "bob",
        "instanceId": f"i-{n}",
    }


def test_fleet_follows_next_token_through_every_page(cli: Cli) -> None:
    cli.sign_in(groups=("admins",))
    cli.api.handle(
        "GET",
        "/admin/sessions",
        _paged("sessions", [[_admin_session(1)], [_admin_session(2)], [_admin_session(3)]]),
    )
    instances = [
        [
            {
                "instanceId": "i-1",
                "instanceType": "g5.xlarge",
                "state": "running",
                "backend": "ec2",
                "sessionId": fid(1),
                "owner": "sub-bob",
            }
        ],
        [
            {
                "instanceId": "i-2",
                "instanceType": "g5.xlarge",
                "state": "stopped",
                "backend": "ec2",
                "owner": "sub-bob",
            }
        ],
    ]
    cli.api.handle("GET", "/admin/instances", _paged("instances", instances))
    result = cli("fleet")
    assert result.code == 0, result.err
    assert [s.query.get("nextToken") for s in cli.api.calls("GET", "/admin/sessions")] == [
        None,
        ["1"],
        ["2"],
    ]
    assert [s.query.get("nextToken") for s in cli.api.calls("GET", "/admin/instances")] == [
        None,
        ["1"],
    ]
    assert "Instances (2)" in result.out
    assert "Desktops (3)" in result.out
    assert re.search(r'i-1\s+g5.xlarge\s+running\s+ec2\s+"Box 1" \(00000001\)\s+bob', result.out)
    data = json.loads(cli("fleet", "--json").out)
    assert [s["sessionId"] for s in data["sessions"]] == [fid(1), fid(2), fid(3)]
    assert [i["instanceId"] for i in data["instances"]] == ["i-1", "i-2"]


def _by_status(sessions: list[dict[str, Any]]) -> Handler:
    """GET /admin/sessions answering only the desktops of the ``status`` asked for, if any."""

    def handler(seen: Seen) -> Reply:
        wanted = seen.query.get("status", [None])[0]
        return 200, {"sessions": [s for s in sessions if wanted in (None, s["status"])]}

    return handler


def test_fleet_state_filters_the_desktops_as_well_as_the_instances(cli: Cli) -> None:
    cli.sign_in(groups=("admins",))
    fleet = [
        {**_admin_session(1), "status": "READY", "createdAt": "2025-01-31T10:00:00.000Z"},
        {**_admin_session(2), "status": "STOPPED", "createdAt": "2025-01-31T11:00:00.000Z"},
        {**_admin_session(3), "status": "STOPPING", "createdAt": "2025-01-31T12:00:00.000Z"},
        {**_admin_session(4), "status": "TERMINATED", "createdAt": "2025-01-31T13:00:00.000Z"},
    ]
    cli.api.handle("GET", "/admin/sessions", _by_status(fleet))
    cli.api.reply("GET", "/admin/instances", (200, {"instances": []}))
    result = cli("fleet", "--state", "stopped")
    assert result.code == 0, result.err
    assert "Desktops (2)" in result.out
    shown = [line.split()[-1] for line in result.out.split("Desktops (2)")[1].splitlines()[2:]]
    assert shown == ["00000003", "00000002"]  # newest first
    asked = [s.query.get("status") for s in cli.api.calls("GET", "/admin/sessions")]
    assert asked == [["STOPPING"], ["STOPPED"]]
    assert cli.api.calls("GET", "/admin/instances")[0].query["state"] == ["stopped"]
    data = json.loads(cli("fleet", "--state", "terminated", "--json").out)
    assert [s["sessionId"] for s in data["sessions"]] == [fid(4)]
    assert [s["sessionId"] for s in json.loads(cli("fleet", "--json").out)["sessions"]] == [
        fid(1),
        fid(2),
        fid(3),
        fid(4),
    ]


def test_fleet_state_and_a_status_outside_it_are_refused(cli: Cli) -> None:
    cli.sign_in(groups=("admins",))
    result = cli("fleet", "--state", "running", "--status", "STOPPED")
    assert result.code == 2
    assert "a running desktop is PROVISIONING or READY" in result.err
    assert cli.api.seen == []


def test_fleet_user_filter_goes_to_both_listings(cli: Cli) -> None:
    cli.sign_in(groups=("admins",))
    cli.api.handle("GET", "/admin/sessions", _paged("sessions", [[_admin_session(1)]]))
    cli.api.handle(
        "GET",
        "/admin/instances",
        _paged("instances", [[{"instanceId": "i-1", "owner": "sub-bob"}]]),
    )
    assert cli("fleet", "--user", "bob", "--status", "READY").code == 0
    sessions_queries = [s.query for s in cli.api.calls("GET", "/admin/sessions")]
    assert sessions_queries[0]["user"] == ["bob"]
    assert sessions_queries[0]["status"] == ["READY"]
    assert cli.api.calls("GET", "/admin/instances")[0].query["user"] == ["bob"]


def test_fleet_for_a_non_admin_is_the_apis_403(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "GET", "/admin/sessions", (403, {"message": "only members of the admins group may do this"})
    )
    result = cli("fleet")
    assert (result.code, result.err.strip()) == (
        1,
        "dcvfleet: only members of the admins group may do this",
    )


def test_fleet_stop_and_terminate(cli: Cli) -> None:
    cli.sign_in(groups=("admins",))
    cli.api.handle(
        "GET", "/admin/sessions", _paged("sessions", [[_admin_session(1)], [_admin_session(12)]])
    )
    cli.api.reply(
        "POST", f"/admin/sessions/{fid(1)}/stop", (202, {"sessionId": fid(1), "status": "STOPPING"})
    )
    cli.api.reply(
        "DELETE", f"/admin/sessions/{fid(1)}", (202, {"sessionId": fid(1), "status": "TERMINATING"})
    )
    assert cli("fleet", "stop", fid(1)).code == 0
    assert cli.api.calls("GET", "/admin/sessions") == []  # a whole id needs no look-up
    assert cli("fleet", "terminate", "00000001").code == 2  # not on a terminal: needs --yes
    assert cli.api.calls("DELETE") == []
    result = cli("fleet", "terminate", "00000001", "--yes")
    assert result.code == 0
    assert 'Desktop "Box 1" (00000001) is TERMINATING.' in result.err
    refused = cli("fleet", "stop", "000000")
    assert refused.code == 2
    assert f"000000 starts several desktops' ids: {fid(1)}, {fid(12)}" in refused.err


# --- rendering -----------------------------------------------------------------------------


def test_a_table_aligns_its_columns_and_marks_empty_cells() -> None:
    assert table(["A", "LONGER"], [["xx", None], ["y", "z"]]).splitlines() == [
        "A   LONGER",
        "xx  -",
        "y   z",
    ]


def test_progress_on_a_terminal_rewrites_the_line_under_way() -> None:
    out = Tty()
    clock = iter([100.0, 101.0, 102.5, 103.0, 104.0]).__next__
    progress = watch.Progress(out, origin=100.0, live=True, clock=clock)
    progress.update({"status": "PROVISIONING", "progress": {}})
    progress.update({"status": "PROVISIONING", "progress": {"credentials": iso(100.4)}})
    progress.update({"status": "PROVISIONING", "progress": {"credentials": iso(100.4)}})
    progress.update(
        {
            "status": "READY",
            "progress": {k: iso(100.4) for k in ("credentials", "capacity", "booted", "ready")},
        }
    )
    progress.close()
    assert out.getvalue() == (
        "… creating credentials (PROVISIONING, 1s)"
        "\r\x1b[K✓ credentials (0.4s)\n"
        "… finding a GPU (PROVISIONING, 2s)"
        "\r\x1b[K… finding a GPU (PROVISIONING, 3s)"
        "\r\x1b[K✓ GPU (0.4s)\n✓ desktop booted (0.4s)\n✓ ready (0.4s)\n"
    )


def test_progress_off_a_terminal_writes_a_line_per_change_with_status_and_time() -> None:
    out = io.StringIO()
    clock = iter([1000.0, 1004.0, 1030.0, 1125.0, 1126.0]).__next__
    progress = watch.Progress(out, origin=1000.0, live=False, clock=clock)
    waiting = {"status": "PROVISIONING", "progress": {"credentials": iso(1000.5)}}
    progress.update(waiting)  # 4s: the step under way, once
    progress.update(waiting)  # 30s: no change, no line
    progress.update(
        {"status": "PROVISIONING", "progress": {"credentials": iso(1000.5), "capacity": iso(1100)}}
    )  # 125s
    progress.close()
    assert out.getvalue().splitlines() == [
        "✓ credentials (0.5s)",
        "… finding a GPU (PROVISIONING, 4s)",
        "✓ GPU (100.0s)",
        "… booting the desktop (PROVISIONING, 2m 05s)",
    ]


def test_a_time_taken_reads_in_seconds_minutes_or_hours() -> None:
    assert [duration(s) for s in (0, 7.9, 59, 60, 125, 3599, 3600, 7322)] == [
        "0s",
        "7s",
        "59s",
        "1m 00s",
        "2m 05s",
        "59m 59s",
        "1h 00m",
        "2h 02m",
    ]


def test_progress_falls_back_to_ascii() -> None:
    class Ascii(io.StringIO):
        encoding = "ascii"

    out = Ascii()
    progress = watch.Progress(out, origin=0.0, live=False)
    progress.update({"status": "FAILED", "progress": {"credentials": iso(1.0)}})
    assert out.getvalue() == "ok credentials (1.0s)\nx finding a GPU\n"


def test_an_origin_is_guessed_only_for_a_first_provisioning() -> None:
    now = time.time()
    fresh = provisioning(now - 20, {"credentials": 0.5})
    assert watch.plausible_origin(fresh, now) == pytest.approx(now - 20, abs=0.01)
    resumed = provisioning(now - 86400, {"credentials": 86400 - 5})
    assert watch.plausible_origin(resumed, now) is None


def test_the_module_runs_as_a_program() -> None:
    import subprocess
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(auth_module.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(
        [sys.executable, "-m", "dcvfleet_cli", "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "dcvfleet 0.1.0")


def test_start_passes_on_the_notice_to_confirm_the_notification_address(cli: Cli) -> None:
    cli.sign_in()
    notice = "We sent a message to alice@example.com: follow its confirmation link once"
    answer = {
        "sessionId": SID,
        "status": "PROVISIONING",
        "notifications": {"email": "alice@example.com", "message": notice},
    }
    cli.api.reply("POST", "/sessions", (202, answer))
    result = cli("sessions", "start", "--no-wait")
    assert result.code == 0, result.err
    assert result.err.splitlines()[:2] == [f"Desktop {SHORT} requested (ec2, linux).", notice]


# --- profiles, names, cancelling, hiding ---------------------------------------------------

PROFILES = [
    {
        "id": "linux-workstation",
        "name": "Linux workstation",
        "description": "A GPU desktop of your own for 3D work. Stopping it keeps your files.",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": ["g4dn.xlarge", "g5.xlarge"],
        "idle": {"timeoutSeconds": 3600, "action": "stop"},
        "maxSessionHours": 12,
        "groups": [],
        "keepsFiles": True,
        "whenStopped": "Your files are kept: start it again and carry on where you left off.",
        "source": "template",
    },
    {
        "id": "linux-session",
        "name": "Linux session",
        "description": "A desktop for a single sitting.",
        "backend": "batch",
        "os": "linux",
        "instanceTypes": ["g5.xlarge"],
        "idle": {"timeoutSeconds": 1800, "action": "terminate"},
        "maxSessionHours": None,
        "groups": [],
        "keepsFiles": False,
        "whenStopped": "It ends when you stop it; nothing is kept.",
        "source": "template",
    },
]


def test_profiles_says_what_each_is_for_and_what_stopping_does(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/profiles", (200, {"items": PROFILES}))
    result = cli("profiles")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "Linux workstation  (linux-workstation)",
        "  A GPU desktop of your own for 3D work. Stopping it keeps your files.",
        "  When stopped: Your files are kept: start it again and carry on where you left off.",
        "  ec2, linux; g4dn.xlarge (default), g5.xlarge; stopped after 1h unused; "
        "stopped after 12 h at most",
        "  Start one: dcvfleet sessions start --profile linux-workstation",
        "",
        "Linux session  (linux-session)",
        "  A desktop for a single sitting.",
        "  When stopped: It ends when you stop it; nothing is kept.",
        "  batch, linux; g5.xlarge (default); ended after 30m unused",
        "  Start one: dcvfleet sessions start --profile linux-session",
    ]
    assert json.loads(cli("profiles", "--json").out) == {"items": PROFILES}


def test_no_profile_open_to_the_user_says_whom_to_ask(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/profiles", (200, {"items": []}))
    result = cli("profiles")
    assert (result.code, result.out) == (0, "")
    assert "administrator" in result.err


def test_start_with_a_profile_and_a_name_sends_them(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("POST", "/sessions", (202, {"sessionId": SID, "status": "PROVISIONING"}))
    result = cli(
        "sessions", "start", "--profile", "linux-workstation", "--name", "  CAD box ", "--no-wait"
    )
    assert result.code == 0, result.err
    assert cli.api.calls("POST", "/sessions")[0].body == {
        "profile": "linux-workstation",
        "name": "CAD box",
    }
    assert result.err.splitlines()[0] == (
        f'Desktop "CAD box" ({SHORT}) requested (profile linux-workstation).'
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "linux-workstation", "--backend", "batch"], "leave out --backend and --os"),
        (["--name", "   "], "--name: give the desktop a name of 1 to 60 characters"),
    ],
)
def test_start_refuses_contradictions_before_asking_the_api(
    cli: Cli, argv: list[str], message: str
) -> None:
    cli.sign_in()
    result = cli("sessions", "start", *argv)
    assert result.code == 2
    assert message in result.err
    assert cli.api.seen == []


def test_a_profile_the_api_refuses_is_its_400_naming_the_field(cli: Cli) -> None:
    cli.sign_in()
    message = "profile: no profile 'gaming' is open to you"
    cli.api.reply("POST", "/sessions", (400, {"message": message}))
    result = cli("sessions", "start", "--profile", "gaming")
    assert (result.code, result.err.strip()) == (2, f"dcvfleet: {message}")


def test_at_the_limit_the_active_desktops_are_named_with_what_to_run(cli: Cli) -> None:
    cli.sign_in()
    other = "1d2c3b4a-0000-4000-8000-000000000000"
    message = (
        'You already have 2 active desktops, the most allowed: "Linux workstation", "CAD box". '
        "Open one, or stop or delete it first."
    )
    body = {
        "message": message,
        "limit": 2,
        "active": [
            {"sessionId": SID, "name": "Linux workstation", "status": "READY"},
            {"sessionId": other, "name": "CAD box", "status": "PROVISIONING"},
        ],
    }
    cli.api.reply("POST", "/sessions", (409, body))
    result = cli("sessions", "start", "--profile", "linux-workstation")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"dcvfleet: {message}",
        f"  {DESKTOP}, READY:",
        f"    open:   dcvfleet sessions connect {SHORT}",
        f"    stop:   dcvfleet sessions stop {SHORT}",
        f"    delete: dcvfleet sessions delete {SHORT}",
        '  "CAD box" (1d2c3b4a), PROVISIONING:',
        "    watch:  dcvfleet sessions wait 1d2c3b4a",
        "    cancel: dcvfleet sessions delete 1d2c3b4a",
    ]


def _mine(*sessions: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"sessions": list(sessions)}


OTHER = "1d2c3b4a-0000-4000-8000-000000000000"


def test_a_desktop_is_named_by_its_name_or_the_start_of_its_id(cli: Cli) -> None:
    cli.sign_in()
    cad = {**session("READY"), "sessionId": OTHER, "name": "CAD box"}
    cli.api.reply("GET", "/sessions", _mine(session("STOPPED"), cad))
    cli.api.reply(
        "POST", f"/sessions/{OTHER}/stop", (202, {"sessionId": OTHER, "status": "STOPPING"})
    )
    for given in ("CAD box", "cad BOX", "1d2c"):
        result = cli("sessions", "stop", given, "--no-wait")
        assert result.code == 0, result.err
        assert result.err == 'Desktop "CAD box" (1d2c3b4a) is STOPPING.\n'
    assert len(cli.api.calls("POST", f"/sessions/{OTHER}/stop")) == 3
    assert all(s.query == {"hidden": ["true"]} for s in cli.api.calls("GET", "/sessions"))


def test_a_shared_name_means_the_one_desktop_that_has_not_ended(cli: Cli) -> None:
    cli.sign_in()
    ended = {**session("TERMINATED"), "sessionId": OTHER}
    cli.api.reply("GET", "/sessions", _mine(ended, session("READY")))
    cli.api.reply("POST", f"/sessions/{SID}/stop", (202, {"sessionId": SID, "status": "STOPPING"}))
    assert cli("sessions", "stop", "Linux workstation", "--no-wait").code == 0
    assert len(cli.api.calls("POST", f"/sessions/{SID}/stop")) == 1
    # and for hide, the one that has
    cli.api.reply("PATCH", f"/sessions/{OTHER}", (200, {**ended, "hidden": True}))
    assert cli("sessions", "hide", "Linux workstation").code == 0
    assert cli.api.calls("PATCH", f"/sessions/{OTHER}")[0].body == {"hidden": True}


def test_a_name_several_live_desktops_share_is_refused_with_their_ids(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "GET", "/sessions", _mine(session("READY"), {**session("STOPPED"), "sessionId": OTHER})
    )
    result = cli("sessions", "stop", "Linux workstation")
    assert result.code == 2
    assert result.err.strip() == (
        'dcvfleet: "Linux workstation" names 2 desktops: '
        f"{SHORT} (READY), 1d2c3b4a (STOPPED); use its id"
    )
    assert cli.api.calls("POST") == []


def test_rename_sends_the_trimmed_name(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("READY")))
    cli.api.reply("PATCH", f"/sessions/{SID}", (200, session("READY", name="CAD box")))
    result = cli("sessions", "rename", SID, "  CAD box  ")
    assert result.code == 0, result.err
    assert cli.api.calls("PATCH")[0].body == {"name": "CAD box"}
    assert result.err.strip() == f'Desktop {SHORT} is now named "CAD box".'


@pytest.mark.parametrize("name", ["   ", "x" * 61])
def test_rename_refuses_a_name_out_of_bounds(cli: Cli, name: str) -> None:
    cli.sign_in()
    result = cli("sessions", "rename", SID, name)
    assert result.code == 2
    assert "1 to 60 characters" in result.err
    assert cli.api.seen == []


def test_deleting_a_desktop_still_starting_cancels_it(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply(
        "GET",
        f"/sessions/{SID}",
        (200, session("PROVISIONING")),
        (200, session("TERMINATING")),
        (200, session("TERMINATED", statusReason="Cancelled by you.")),
    )
    cli.api.reply("DELETE", f"/sessions/{SID}", (202, {"sessionId": SID, "status": "TERMINATING"}))
    result = cli("sessions", "delete", SID, stdin=Tty("y\n"))
    assert result.code == 0, result.err
    question, answer = result.err.split(" [y/N] ")
    assert question == (
        f"Cancel desktop {DESKTOP} (Linux workstation, requested 2025-01-31 14:05Z)? "
        "It is still starting: what was made for it is undone."
    )
    assert [_untimed(line) for line in answer.splitlines()] == [
        f"Cancelled {DESKTOP}: it was still starting.",
        f"Desktop {DESKTOP} is TERMINATING.",
        "… shutting down (TERMINATING, Ns)",
        f"Desktop {DESKTOP} is TERMINATED (after 0s): Cancelled by you.",
    ]


def test_hide_is_for_a_desktop_that_has_ended(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("STOPPED")))
    refused = cli("sessions", "hide", SID)
    assert refused.code == 2
    assert refused.err.strip() == (
        f"dcvfleet: desktop {DESKTOP} is STOPPED: only a desktop that has ended can be hidden. "
        f"Delete it first: dcvfleet sessions delete {SHORT}"
    )
    assert cli.api.calls("PATCH") == []
    cli.api.reply("GET", f"/sessions/{SID}", (200, session("FAILED")))
    cli.api.reply("PATCH", f"/sessions/{SID}", (200, session("FAILED", hidden=True)))
    done = cli("sessions", "hide", SID)
    assert done.code == 0, done.err
    assert cli.api.calls("PATCH")[0].body == {"hidden": True}
    assert "dcvfleet sessions list --all" in done.err


def test_list_all_shows_the_hidden_desktops_marked(cli: Cli) -> None:
    cli.sign_in()
    cli.api.reply("GET", "/sessions", _mine(session("TERMINATED", hidden=True)))
    result = cli("sessions", "list", "--all")
    assert cli.api.calls("GET", "/sessions")[0].query == {"hidden": ["true"]}
    assert "TERMINATED (hidden)" in result.out


def test_fleet_names_the_desktops_a_batch_instance_runs(cli: Cli) -> None:
    cli.sign_in(groups=("admins",))
    cli.api.handle("GET", "/admin/sessions", _paged("sessions", [[]]))
    batch = {
        "instanceId": "i-9",
        "backend": "batch",
        "state": "running",
        "desktops": [
            {"sessionId": fid(5), "name": "Box 5", "owner": "s1", "ownerName": "bob"},
            {"sessionId": fid(6), "name": "Box 6", "owner": "s2", "ownerName": "carol"},
        ],
    }
    cli.api.handle("GET", "/admin/instances", _paged("instances", [[batch]]))
    result = cli("fleet")
    assert result.code == 0, result.err
    assert '"Box 5" (00000005), "Box 6" (00000006)' in result.out


def test_progress_says_once_how_the_desktop_starts_and_how_long_that_usually_takes() -> None:
    out = io.StringIO()
    clock = iter([1000.0, 1004.0, 1010.0, 1011.0]).__next__
    progress = watch.Progress(out, origin=1000.0, live=False, clock=clock)
    estimate = {"path": "launch", "seconds": 100, "upToSeconds": 150, "samples": 12}
    got_gpu = {"credentials": iso(1000.5), "capacity": iso(1003)}
    progress.update({"status": "PROVISIONING", "progress": got_gpu, "estimate": estimate})
    progress.update({"status": "PROVISIONING", "progress": got_gpu, "estimate": estimate})
    progress.close()
    assert out.getvalue().splitlines() == [
        "✓ credentials (0.5s)",
        "✓ GPU (3.0s)",
        "· a new GPU machine: usually 1m 40s, 9 in 10 within 2m 30s (last 12)",
        "… booting the desktop (PROVISIONING, 4s)",
    ]
    # a first desktop of its kind: how it starts, no figure
    out = io.StringIO()
    progress = watch.Progress(out, origin=1000.0, live=False, clock=iter([1000.0, 1001.0]).__next__)
    progress.update({"status": "PROVISIONING", "progress": {}, "estimate": {"path": "pool"}})
    assert out.getvalue().splitlines()[0] == "· a desktop was waiting in the pool"
