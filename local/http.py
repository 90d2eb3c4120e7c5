"""A small threaded HTTP server for the local stack's own endpoints (the API, control_url)."""

from __future__ import annotations

import abc
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]
LOG = logging.getLogger(__name__)


def json_reply(status: int, body: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: Connections waiting to be accepted (socketserver's 5 resets a burst of users: bench.load).
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a closed tab) before its answer is not an error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LocalServer(abc.ABC):
    """Serves ``handle`` on 127.0.0.1 in a background thread until ``stop``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = _Server((host, port), self._handler_class())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @abc.abstractmethod
    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request; headers arrive with lower-case names."""

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    status, out_headers, out = server.handle(self.command, self.path, headers, body)
                except Exception:  # a fault of the local stack: answer 500, keep serving
                    LOG.exception("%s %s failed", self.command, self.path)
                    status, out_headers, out = json_reply(500, {"message": "Internal server error"})
                self.send_response(status)
                out_headers.setdefault("Content-Type", "application/json")
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
