"""boto3 clients from cached factories that share one botocore config (standard retry mode) and
one boto3 session.

One session for every client: each new session loads botocore's endpoint and default
configuration data again (about 30-45 ms a client on a cold start); a session is not thread-safe
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/session.html#multithreading-or-multiprocessing-with-sessions),
so clients are created under a lock, once per service. The clients themselves are thread-safe
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

#: Standard retry mode: exponential back-off with jitter on throttling and transient errors.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20
)
_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []
_CLIENTS: dict[str, Any] = {}


def client(service: str) -> Any:
    """A cached client per service; endpoint and region come from the standard AWS variables."""
    with _LOCK:
        if service not in _CLIENTS:
            if not _SESSION:
                _SESSION.append(boto3.session.Session())
            _CLIENTS[service] = _SESSION[0].client(service, config=BOTO_CONFIG)
        return _CLIENTS[service]


def reset_clients() -> None:
    """Forget cached clients and their session (tests switch endpoints and credentials between
    cases)."""
    with _LOCK:
        _CLIENTS.clear()
        _SESSION.clear()
