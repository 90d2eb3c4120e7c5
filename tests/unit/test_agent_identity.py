"""Host identity: config values first, IMDSv2 (token, then GETs) only for what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dcvfleet_agent import identity
from dcvfleet_agent.aws import AwsError, IdentityError, Imds
from dcvfleet_agent.config import Config, load_config
from dcvfleet_agent.identity import resolve_identity
from tests.support.http import serving

TOKEN = "imds-token-1"
METADATA = {
    "/latest/meta-data/instance-id": "i-0abc1234def567890",
    "/latest/meta-data/tags/instance/dcvfleet:session-id": "sess-from-tag",
    "/latest/meta-data/tags/instance/dcvfleet:secret-arn": "arn:aws:secretsmanager:x",
}


class FakeImds:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.metadata = dict(METADATA)
        self.fail_with: int | None = None  # every GET answers this status
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, code: int, body: str = "") -> None:
                self.send_response(code)
                self.end_headers()
                self.wfile.write(body.encode())

            def do_PUT(self) -> None:
                fake.requests.append(("PUT", self.path))
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                self.reply(200, TOKEN) if ttl else self.reply(400)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                if fake.fail_with:
                    self.reply(fake.fail_with)
                elif self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                    self.reply(401)
                elif self.path in fake.metadata:
                    self.reply(200, fake.metadata[self.path] + "\n")
                else:
                    self.reply(404)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    fake = FakeImds()
    with serving(fake.server, 0.01):
        yield fake


def config(**env: str) -> Config:
    base = {"DCVFLEET_EVENT_BUS_NAME": "fleet", "DCVFLEET_REGION": "us-east-1"}
    return load_config({"DCVFLEET_AGENT_CONFIG": "", **base, **env})


@pytest.fixture(autouse=True)
def no_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")


def test_missing_values_come_from_imds_with_one_token(imds: FakeImds) -> None:
    identity = resolve_identity(config(), Imds(imds.url, timeout=1))
    assert identity.instance_id == "i-0abc1234def567890"
    assert identity.session_id == "sess-from-tag"
    assert identity.secret_arn == "arn:aws:secretsmanager:x"
    assert identity.idle_timeout_seconds is None  # no tag: a desktop made before profiles
    # the token, then instance id, session, secret and the desktop's own idle timeout
    assert [method for method, _ in imds.requests] == ["PUT", "GET", "GET", "GET", "GET"]


IDLE_TAG_PATH = "/latest/meta-data/tags/instance/dcvfleet:idle-timeout-seconds"


@pytest.mark.parametrize(("tag", "expected"), [("900", 900.0), ("0", None), ("soon", None)])
def test_a_host_learns_its_own_idle_timeout_from_its_tag(
    imds: FakeImds, tag: str, expected: float | None
) -> None:
    imds.metadata[IDLE_TAG_PATH] = tag
    identity = resolve_identity(config(), Imds(imds.url, timeout=1))
    assert identity.idle_timeout_seconds == expected


def test_a_container_never_reads_its_hosts_idle_timeout(imds: FakeImds) -> None:
    """A batch desktop's container runs on a shared Batch instance: its timeout comes in its
    job's environment (DCVFLEET_IDLE_TIMEOUT_SECONDS), never from the host's tags."""
    imds.metadata[IDLE_TAG_PATH] = "900"
    container = config(DCVFLEET_PLATFORM="container", DCVFLEET_MANAGE_USER="false")
    assert resolve_identity(container, Imds(imds.url, timeout=1)).idle_timeout_seconds is None
    assert ("GET", IDLE_TAG_PATH) not in imds.requests


def test_config_values_win_and_imds_is_never_contacted(imds: FakeImds) -> None:
    full = config(
        DCVFLEET_INSTANCE_ID="local-1", DCVFLEET_SESSION_ID="s-1", DCVFLEET_SECRET_ARN="arn:s"
    )
    identity = resolve_identity(full, Imds(imds.url, timeout=1))
    assert (identity.instance_id, identity.session_id, identity.secret_arn) == (
        "local-1",
        "s-1",
        "arn:s",
    )
    simulated = config(
        DCVFLEET_INSTANCE_ID="local-2", DCVFLEET_SESSION_ID="s-2", DCVFLEET_MANAGE_USER="false"
    )
    assert resolve_identity(simulated, Imds(imds.url, timeout=1)).secret_arn is None
    assert imds.requests == []


def test_missing_tag_names_the_tag(imds: FakeImds) -> None:
    del imds.metadata["/latest/meta-data/tags/instance/dcvfleet:session-id"]
    with pytest.raises(IdentityError, match="'dcvfleet:session-id' is missing"):
        resolve_identity(config(DCVFLEET_INSTANCE_ID="i-1"), Imds(imds.url, timeout=1))


def test_empty_value_is_rejected(imds: FakeImds) -> None:
    imds.metadata["/latest/meta-data/instance-id"] = ""
    with pytest.raises(IdentityError, match="empty instance id"):
        resolve_identity(config(DCVFLEET_SESSION_ID="s"), Imds(imds.url, timeout=1))


def test_expired_token_is_renewed_once(imds: FakeImds) -> None:
    client = Imds(imds.url, timeout=1)
    client._token = "stale"
    assert client.get("instance-id") == "i-0abc1234def567890"
    assert imds.requests == [
        ("GET", "/latest/meta-data/instance-id"),
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/instance-id"),
    ]


def test_http_error_and_unreachable_imds(imds: FakeImds) -> None:
    client = Imds(imds.url, timeout=1)
    imds.fail_with = 401
    with pytest.raises(IdentityError, match="HTTP 401"):
        client.get("instance-id")
    imds.fail_with = 500
    with pytest.raises(IdentityError, match="HTTP 500"):
        client.get("instance-id")
    with pytest.raises(IdentityError, match="unreachable"):
        Imds("http://127.0.0.1:9", timeout=0.5).get("instance-id")


def test_the_agent_reads_the_timeout_where_the_control_plane_puts_it() -> None:
    """The control plane tags a host (and sets a container's environment) with names of its
    own (dcvfleet.profiles); the agent reads them under its own: they must be the same."""
    from dcvfleet import profiles
    from dcvfleet_agent import identity
    from dcvfleet_agent.config import env_name

    assert identity.IDLE_TIMEOUT_TAG == profiles.IDLE_TIMEOUT_TAG
    assert env_name("idleTimeoutSeconds") == profiles.IDLE_TIMEOUT_ENV


SESSION_PATH = "/latest/meta-data/tags/instance/dcvfleet:session-id"
POOL_PATH = "/latest/meta-data/tags/instance/dcvfleet:pool"


def test_a_warm_pool_host_waits_for_its_session_tag_then_binds(imds: FakeImds) -> None:
    # Given a pool host: its pool tag, no session tag yet
    del imds.metadata[SESSION_PATH]
    imds.metadata[POOL_PATH] = "linux-workstation"
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:  # a request claims it: the control plane tags it
            imds.metadata[SESSION_PATH] = "sess-claimed"

    # When the agent starts / Then it waits, polling its tags, and binds to the session
    identity = resolve_identity(config(), Imds(imds.url, timeout=1), sleep=sleep, poll_seconds=0.5)
    assert identity.session_id == "sess-claimed"
    assert polls == [0.5, 0.5, 0.5]
    assert ("GET", SESSION_PATH) in imds.requests


def test_a_host_with_neither_a_session_nor_a_pool_tag_fails_at_once(imds: FakeImds) -> None:
    del imds.metadata[SESSION_PATH]

    def sleep(seconds: float) -> None:
        raise AssertionError("a host that is not in the pool must not wait")

    with pytest.raises(IdentityError, match="dcvfleet:session-id"):
        resolve_identity(config(), Imds(imds.url, timeout=1), sleep=sleep)


def test_a_stop_ends_a_pool_hosts_wait(imds: FakeImds) -> None:
    del imds.metadata[SESSION_PATH]
    imds.metadata[POOL_PATH] = "linux-workstation"

    class Stopped(Exception):
        pass

    def sleep(seconds: float) -> None:
        raise Stopped

    with pytest.raises(Stopped):
        resolve_identity(config(), Imds(imds.url, timeout=1), sleep=sleep)


@pytest.mark.parametrize(
    ("platform", "profile"), [("linux", "linux-workstation"), ("windows", "windows-cad")]
)
def test_a_waiting_pool_host_tags_itself_made_once_and_retries_a_failure(
    imds: FakeImds, platform: str, profile: str
) -> None:
    # Given a pool host (of a Linux or a Windows profile's pool: the agent is one for both)
    # whose first attempt to tag itself fails (the network)
    del imds.metadata[SESSION_PATH]
    imds.metadata[POOL_PATH] = profile
    marked: list[tuple[str, int]] = []
    polls: list[float] = []

    def mark_made(instance_id: str) -> None:
        marked.append((instance_id, len(polls)))
        if len(marked) == 1:
            raise AwsError("ConnectionError", "unreachable")

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == identity.POOL_READY_RETRY_POLLS + 5:  # claimed
            imds.metadata[SESSION_PATH] = "sess-claimed"

    # When the agent waits for a claim
    settings = config(DCVFLEET_PLATFORM=platform)
    assert settings.platform == platform
    found = resolve_identity(
        settings, Imds(imds.url, timeout=1), sleep=sleep, poll_seconds=0, mark_made=mark_made
    )
    # Then it tagged its own instance before its first poll, again after the retry interval,
    # and no more once that succeeded; and it bound to the session as before
    instance_id = imds.metadata["/latest/meta-data/instance-id"]
    assert marked == [(instance_id, 0), (instance_id, identity.POOL_READY_RETRY_POLLS)]
    assert found.session_id == "sess-claimed"


def test_a_host_with_a_session_never_tags_itself_made(imds: FakeImds) -> None:
    def mark_made(instance_id: str) -> None:
        raise AssertionError("a desktop's host is not a waiting pool host")

    assert resolve_identity(config(), Imds(imds.url, timeout=1), mark_made=mark_made).session_id


def test_the_agent_and_the_control_plane_name_the_made_tag_alike() -> None:
    from dcvfleet.adapters import POOL_READY_TAG

    assert identity.POOL_READY_TAG == POOL_READY_TAG
