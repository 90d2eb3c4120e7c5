"""The agent's own AWS client: signatures checked against botocore's signer, the credential chain
(environment, container endpoint, instance role) and calls against a moto server."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from dcvfleet_agent.aws import (
    AwsClient,
    AwsCredentials,
    AwsError,
    CredentialChain,
    Ec2Client,
    Imds,
    endpoint_for,
    http_request,
    sign,
)
from tests.support.http import LoopbackServer, QuietHandler, serving

REGION = "us-east-1"
NOW = datetime.datetime(2026, 11, 22, 10, 30, 15, tzinfo=datetime.timezone.utc)  # noqa: UP017
EXPIRY = "2026-11-22T16:00:00Z"
ROLE_DOCUMENT = {
    "Code": "Success",
    "AccessKeyId": "ASIAROLE",
    "SecretAccessKey": "role-secret",
    "Token": "role-token",
    "Expiration": EXPIRY,
}


def botocore_headers(
    creds: AwsCredentials, url: str, headers: dict[str, str], body: bytes, service: str
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    boto = BotoCredentials(creds.access_key, creds.secret_key, creds.token)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: NOW.replace(tzinfo=None)  # type: ignore[assignment]
    try:
        botocore.auth.SigV4Auth(boto, service, REGION).add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize(
    ("service", "url"),
    [
        ("events", "https://events.us-east-1.amazonaws.com/"),
        ("ssm", "http://127.0.0.1:4566/"),
        ("secretsmanager", "https://secretsmanager.us-east-1.amazonaws.com/?a=b%20c&A=1"),
    ],
)
def test_signature_matches_botocore(service: str, url: str, token: str | None) -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = json.dumps({"Entries": [{"Detail": '{"x": "  spaced  "}'}]}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
    ours = sign("POST", url, headers, body, creds, service, REGION, NOW)
    theirs = botocore_headers(creds, url, headers, body, service)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"] == "20261122T103015Z"
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token") == token


def test_endpoints_by_partition() -> None:
    assert endpoint_for("events", "eu-west-1") == "https://events.eu-west-1.amazonaws.com/"
    assert endpoint_for("ssm", "cn-north-1") == "https://ssm.cn-north-1.amazonaws.com.cn/"


# --- credentials ----------------------------------------------------------------------------


class FakeMetadata(LoopbackServer):
    """Answers GET <path> from `routes` (status, body), records the Authorization header."""

    def __init__(self, routes: dict[str, tuple[int, str]]) -> None:
        self.routes = routes
        self.authorization: list[str | None] = []
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake.authorization.append(self.headers.get("Authorization"))
                status, body = fake.routes.get(self.path, (404, ""))
                self.reply(status, body.encode())

            def do_PUT(self) -> None:  # IMDSv2 token
                self.reply(200, b"token")

        super().__init__(Handler)


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    server = FakeMetadata({})
    with serving(server, 0.01):
        yield server


def test_environment_credentials_come_first(metadata: FakeMetadata) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "sek", "AWS_SESSION_TOKEN": "tok"}
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = metadata.url + "/creds"
    creds = CredentialChain(env, imds=Imds(metadata.url)).get()
    assert (creds.access_key, creds.secret_key, creds.token, creds.expires_at) == (
        "AKIA1",
        "sek",
        "tok",
        None,
    )
    assert metadata.authorization == []
    assert "sek" not in repr(creds)
    assert "tok" not in repr(creds)


def test_container_credentials_with_authorization_token(
    metadata: FakeMetadata, tmp_path: Any
) -> None:
    metadata.routes["/v2/credentials/abc"] = (200, json.dumps(ROLE_DOCUMENT))
    token_file = tmp_path / "token"
    token_file.write_text("pod-token\n")
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": metadata.url + "/v2/credentials/abc",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    creds = CredentialChain(env).get()
    assert (creds.access_key, creds.token) == ("ASIAROLE", "role-token")
    assert creds.expires_at == datetime.datetime(2026, 11, 22, 16, tzinfo=NOW.tzinfo).timestamp()
    assert metadata.authorization == ["pod-token"]


def test_container_endpoint_failure_is_a_credentials_error(metadata: FakeMetadata) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": metadata.url + "/missing"}
    with pytest.raises(AwsError, match="HTTP 404") as caught:
        CredentialChain(env).get()
    assert caught.value.code == "CredentialsError"
    metadata.routes["/garbled"] = (200, "{not json")
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": metadata.url + "/garbled"}
    with pytest.raises(AwsError, match="no usable credentials"):
        CredentialChain(env).get()


def test_instance_role_is_refreshed_before_it_expires(metadata: FakeMetadata) -> None:
    base = "/latest/meta-data/iam/security-credentials/"
    metadata.routes[base] = (200, "desktop-role\n")
    metadata.routes[base + "desktop-role"] = (200, json.dumps(ROLE_DOCUMENT))
    expires = datetime.datetime(2026, 11, 22, 16, tzinfo=NOW.tzinfo).timestamp()
    now = [expires - 3600]
    chain = CredentialChain({}, imds=Imds(metadata.url), clock=lambda: now[0])
    assert chain.get().access_key == "ASIAROLE"
    calls = len(metadata.authorization)
    assert chain.get().access_key == "ASIAROLE"
    assert len(metadata.authorization) == calls  # cached
    later = dict(ROLE_DOCUMENT, AccessKeyId="ASIANEXT", Expiration="2026-11-22T22:00:00Z")
    metadata.routes[base + "desktop-role"] = (200, json.dumps(later))
    now[0] = expires - 200  # inside the refresh window
    assert chain.get().access_key == "ASIANEXT"


def test_no_credentials_anywhere_is_a_clear_error(metadata: FakeMetadata) -> None:
    with pytest.raises(AwsError, match="no credentials in the environment") as caught:
        CredentialChain({}, imds=Imds(metadata.url, timeout=1)).get()
    assert caught.value.code == "CredentialsError"


# --- calls ----------------------------------------------------------------------------------


def test_calls_against_moto(moto_endpoint: str) -> None:
    boto3.client("events", region_name=REGION).create_event_bus(Name="fleet")
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/fleet/agent", Value='{"a": 1}', Type="String"
    )
    chain = CredentialChain()
    events = AwsClient("events", REGION, chain, moto_endpoint)
    entry = {"Source": "dcvfleet.agent", "DetailType": "Host Heartbeat", "Detail": "{}"}
    reply = events.put_events(Entries=[{**entry, "EventBusName": "fleet"}])
    assert reply["FailedEntryCount"] == 0
    ssm = AwsClient("ssm", REGION, chain, moto_endpoint)
    assert ssm.get_parameter(Name="/fleet/agent")["Parameter"]["Value"] == '{"a": 1}'
    with pytest.raises(AwsError) as caught:
        ssm.get_parameter(Name="/fleet/missing")
    assert (caught.value.code, caught.value.status, caught.value.retryable) == (
        "ParameterNotFound",
        400,
        False,
    )


class Scripted(LoopbackServer):
    """Answers each POST with the next (status, body) of a script."""

    def __init__(self, *replies: tuple[int, str]) -> None:
        self.replies = list(replies)
        self.targets: list[str] = []
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.targets.append(self.headers.get("X-Amz-Target", ""))
                status, body = fake.replies.pop(0)
                self.reply(status, body.encode())

        super().__init__(Handler)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    with serving(server, 0.01):
        yield server


def test_throttling_and_server_errors_are_retried_others_are_not(scripted: Scripted) -> None:
    throttled = json.dumps({"__type": "com.amazon#ThrottlingException", "message": "slow"})
    scripted.replies[:] = [(400, throttled), (503, ""), (200, '{"Parameter": {"Value": "v"}}')]
    sleeps: list[float] = []
    client = AwsClient(
        "ssm", REGION, CredentialChain(), scripted.url, max_attempts=3, sleep=sleeps.append
    )
    assert client.get_parameter(Name="x") == {"Parameter": {"Value": "v"}}
    assert scripted.targets == ["AmazonSSM.GetParameter"] * 3
    assert len(sleeps) == 2
    assert all(0 <= s <= 1.0 for s in sleeps)
    denied = json.dumps({"__type": "AccessDeniedException", "Message": "no"})
    scripted.replies[:] = [(400, denied)]
    with pytest.raises(AwsError, match="AccessDeniedException: no"):
        client.get_parameter(Name="x")
    scripted.replies[:] = [(502, "<html>bad gateway</html>")] * 3
    with pytest.raises(AwsError) as caught:
        client.get_parameter(Name="x")
    assert (caught.value.code, caught.value.status) == ("InvalidResponse", 502)


def test_unreachable_endpoint_is_a_retryable_connection_error() -> None:
    with pytest.raises(AwsError) as caught:
        http_request("http://127.0.0.1:9/", "POST", timeout=1)
    assert (caught.value.code, caught.value.status, caught.value.retryable) == (
        "ConnectionError",
        None,
        True,
    )
    with pytest.raises(AwsError, match="not an http"):
        http_request("ftp://example.com/")


def test_an_instance_tags_itself_through_ec2s_query_protocol(moto_endpoint: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [instance] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"]
    client = Ec2Client(REGION, CredentialChain(), moto_endpoint)
    # When the agent tags its instance / Then EC2 has the tag
    client.create_tags(instance["InstanceId"], {"dcvfleet:pool-ready": "true"})
    [described] = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in described["Instances"][0]["Tags"]}
    assert tags == {"dcvfleet:pool-ready": "true"}


def test_ec2s_xml_error_answer_is_an_aws_error_with_its_code() -> None:
    # EC2's error answer (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)
    refused = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        "<Code>UnauthorizedOperation</Code><Message>You are not authorized</Message>"
        "</Error></Errors><RequestID>r-1</RequestID></Response>"
    )
    server = Scripted((403, refused))
    with serving(server, 0.01):
        client = Ec2Client(
            REGION,
            CredentialChain({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}),
            server.url,
        )
        with pytest.raises(AwsError) as caught:
            client.create_tags("i-1", {"dcvfleet:pool-ready": "true"})
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "UnauthorizedOperation",
        "You are not authorized",
        403,
    )
    assert not caught.value.retryable


def test_the_ec2_query_request_is_signed_as_botocore_signs_it() -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "secret", "token")
    body = b"Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    url = "https://ec2.us-east-1.amazonaws.com/"
    ours = sign("POST", url, headers, body, creds, "ec2", REGION, NOW)
    theirs = botocore_headers(creds, url, headers, body, "ec2")
    assert ours["Authorization"] == theirs["Authorization"]
