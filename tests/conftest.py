"""Shared fixtures: every test runs against fake AWS credentials and fresh boto3 clients."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from dcvfleet import aws
from tests.support.browser import chromium

__all__ = ["chromium"]

#: Variables that could point a test at a real account or a real endpoint.
REAL_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


@pytest.fixture(autouse=True)
def fake_aws_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach a real AWS account: fake credentials, no profile, no endpoint override."""
    for name in REAL_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # A developer's ~/.aws files may name a profile, an endpoint or a region of their own.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session, for code that does not go through botocore (the agent)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server, emptied; boto3 clients made in the test go there too (AWS_ENDPOINT_URL)."""
    reset = urllib.request.Request(  # noqa: S310 (a local URL)
        moto_server + "/moto-api/reset", method="POST"
    )
    with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 (a local URL)
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server
