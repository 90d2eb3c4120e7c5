"""Local HTTP servers that stand in for an endpoint during a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from typing import Any, TypeVar

from local.http import LocalServer

S = TypeVar("S", bound=LocalServer)


@contextmanager
def serving(server: BaseServer, poll_interval: float) -> Iterator[None]:
    """Serves requests on a daemon thread while the block runs, then shuts the server down and
    closes its socket."""
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


@contextmanager
def running(server: S) -> Iterator[S]:
    """A local.http server, started for the block and stopped after it."""
    server.start()
    yield server
    server.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the request log out of the test output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server on a free port of 127.0.0.1, its base URL in ``url``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
