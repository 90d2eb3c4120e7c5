"""The local stack keeps its ports and its users' passwords across restarts (local/remembered.py):
the same while the ports are free; a busy port replaced, and said so; a bad file ignored."""

from __future__ import annotations

import json
import logging
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import remembered
from local.stack import LocalStack


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket another process might hold: listening on a port of 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _urls(stack: LocalStack) -> tuple[str, int, dict[str, int], dict[str, str]]:
    return (
        stack.endpoint_url,
        stack.portal_port,
        stack.remembered.ports,
        stack.remembered.passwords,
    )


def test_a_restarted_stack_keeps_its_ports_and_passwords(tmp_path: Path) -> None:
    first = LocalStack(state_dir=tmp_path)
    second = LocalStack(state_dir=tmp_path)
    assert _urls(second) == _urls(first)
    assert set(first.remembered.ports) == {"aws", "api", "portal", "control"}
    assert len(set(first.remembered.ports.values())) == 4
    assert set(first.remembered.passwords) == {"demo", "admin"}
    assert second.overrides["PortalOrigin"] == f"http://127.0.0.1:{first.portal_port}"
    # the file holds passwords: its owner's alone
    mode = stat.S_IMODE((tmp_path / remembered.FILE_NAME).stat().st_mode)
    assert mode == 0o600


def test_stacks_in_other_state_directories_get_their_own_ports(tmp_path: Path) -> None:
    one = LocalStack(state_dir=tmp_path / "one")
    other = LocalStack(state_dir=tmp_path / "other")
    assert one.remembered.passwords != other.remembered.passwords


def test_a_remembered_port_now_in_use_is_replaced_and_the_stack_says_so(
    tmp_path: Path, listening: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a stack that served the API on a port another process now listens on
    first = remembered.choose(tmp_path)
    busy = listening.getsockname()[1]
    data = json.loads((tmp_path / remembered.FILE_NAME).read_text())
    data["ports"]["api"] = busy
    (tmp_path / remembered.FILE_NAME).write_text(json.dumps(data))
    # When it starts again
    with caplog.at_level(logging.WARNING, logger="local.stack"):
        second = remembered.choose(tmp_path)
    # Then the API gets another port, the others and the passwords stay, and a warning says so
    assert second.ports["api"] != busy
    assert {k: v for k, v in second.ports.items() if k != "api"} == {
        k: v for k, v in first.ports.items() if k != "api"
    }
    assert second.passwords == first.passwords
    note = f"port {busy} for the API is in use; the API is on port {second.ports['api']} this time"
    assert second.notes == [note]
    assert [r.getMessage() for r in caplog.records] == [note]
    # and the new port is the one remembered from now on
    assert remembered.load(tmp_path).ports["api"] == second.ports["api"]


def test_a_port_given_on_the_command_line_wins(tmp_path: Path) -> None:
    remembered.choose(tmp_path)
    given = remembered.free_port()
    assert remembered.choose(tmp_path, {"aws": given}).ports["aws"] == given
    assert remembered.load(tmp_path).ports["aws"] == given


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        json.dumps({"ports": {"api": "8080", "portal": 80, "aws": True}, "passwords": {"demo": 1}}),
    ],
)
def test_a_malformed_file_gives_fresh_ports_and_passwords(tmp_path: Path, content: str) -> None:
    (tmp_path / remembered.FILE_NAME).write_text(content)
    chosen = remembered.choose(tmp_path)
    assert all(
        remembered.LOWEST_PORT <= port <= remembered.HIGHEST_PORT for port in chosen.ports.values()
    )
    assert chosen.passwords["demo"].startswith("Demo-")
    assert chosen.passwords["admin"].startswith("Admin-")
    # and the file is whole again
    assert remembered.load(tmp_path).ports == chosen.ports
