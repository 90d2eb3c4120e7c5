"""The local stack's own HTTP servers (``local/http.py``)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import requests

from local.http import LocalServer, Reply, json_reply


class Faulty(LocalServer):
    """Answers ``/ok``; anything else is a fault of the server itself."""

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path == "/ok":
            return json_reply(200, {"ok": True})
        raise RuntimeError(f"no answer for {path}")


@pytest.fixture
def server() -> Iterator[Faulty]:
    running = Faulty()
    running.start()
    yield running
    running.stop()


def test_a_fault_of_the_server_is_a_logged_500_and_it_keeps_serving(
    server: Faulty, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="local.http"):
        answer = requests.get(f"{server.address}/broken", timeout=10)
    assert (answer.status_code, answer.json()) == (500, {"message": "Internal server error"})
    [record] = caplog.records
    assert record.getMessage() == "GET /broken failed"
    assert "no answer for /broken" in caplog.text  # the traceback is in the log
    assert requests.get(f"{server.address}/ok", timeout=10).json() == {"ok": True}


def test_a_client_that_goes_away_before_the_answer_leaves_no_error(
    server: Faulty, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = server.httpd.server_address[:2]
    for _ in range(20):  # a closed tab: the request is sent, the connection dropped at once
        with socket.create_connection((str(host), port)) as sock:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert requests.get(f"{server.address}/ok", timeout=10).json() == {"ok": True}
    assert "Traceback" not in capsys.readouterr().err
