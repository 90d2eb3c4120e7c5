"""boto3 clients from cached factories that share one botocore config (standard retry mode)."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

#: Standard retry mode: exponential back-off with jitter on throttling and transient errors.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20
)


@functools.cache
def client(service: str) -> Any:
    """A cached client per service; endpoint and region come from the standard AWS variables."""
    return boto3.session.Session().client(service, config=BOTO_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    client.cache_clear()
