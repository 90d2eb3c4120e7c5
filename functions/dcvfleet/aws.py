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
from collections.abc import Iterable
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

#: Standard retry mode: exponential back-off with jitter on throttling and transient errors.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20
)
_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []
#: The botocore session under _SESSION's: its data loader holds the service models read so far.
_CORE: list[botocore.session.Session] = []
_CLIENTS: dict[str, Any] = {}


def _session(loader: Any = None) -> boto3.session.Session:
    """A boto3 session over a botocore session of our own; with ``loader``, the botocore session
    reads its data (service models, endpoints) through that loader, which keeps what it read
    (botocore's ``Session.register_component``)."""
    core = botocore.session.get_session()
    if loader is not None:
        core.register_component("data_loader", loader)
    _CORE[:] = [core]
    return boto3.session.Session(botocore_session=core)


def client(service: str) -> Any:
    """A cached client per service; endpoint and region come from the standard AWS variables."""
    with _LOCK:
        if service not in _CLIENTS:
            if not _SESSION:
                _SESSION.append(_session())
            _CLIENTS[service] = _SESSION[0].client(service, config=BOTO_CONFIG)
        return _CLIENTS[service]


def warm(services: Iterable[str]) -> None:
    """Create the clients of ``services`` now, so their service models are read now."""
    for service in services:
        client(service)


def renew_session() -> None:
    """Forget the clients and their session (credentials, connection pools), keeping only what
    the session's data loader read: the next clients are made in this environment, from models
    already in memory. What a function renews after a SnapStart restore (dcvfleet.snapstart)."""
    with _LOCK:
        loader = _CORE[0].get_component("data_loader") if _CORE else None
        _CLIENTS.clear()
        _SESSION[:] = [_session(loader)]


def reset_clients() -> None:
    """Forget cached clients and their session (tests switch endpoints and credentials between
    cases)."""
    with _LOCK:
        _CLIENTS.clear()
        _SESSION.clear()
        _CORE.clear()
