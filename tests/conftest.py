"""Shared fixtures: every test runs against fake AWS credentials and fresh boto3 clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcvfleet import aws

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
