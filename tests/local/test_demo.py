"""``make demo`` (local/demo.py) stops its stack as it ends: it prints no address of that stack
(portal, API, AWS endpoint, control server, the desktop's connection URL), and says instead what
to run for a stack that stays up."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from local import demo, stack

INFO: dict[str, Any] = {
    "api_url": "http://127.0.0.1:41001/v1",
    "portal_url": "http://127.0.0.1:41002/",
    "aws_endpoint_url": "http://127.0.0.1:41003",
    "control_url": "http://127.0.0.1:41004",
    "region": "us-east-1",
    "demo_user": {"username": "demo", "password": "Demo-secret1a"},
    "admin_user": {"username": "admin", "password": "Admin-secret1a"},
}
READY: dict[str, Any] = {
    "sessionId": "s-1",
    "status": "READY",
    "connectionUrl": "https://ec2-54-214-178-153.compute-1.amazonaws.com:8443/#desktop",
}


class FakeProcess:
    """The stack's process as the demo drives it; what it was started with."""

    started: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, command: list[str], **kwargs: Any) -> None:
        FakeProcess.started.append({"command": command, **kwargs})
        self.signals: list[int] = []
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0
        return 0

    def kill(self) -> None:
        self.returncode = -9


class FakeResponse:
    status_code = 202
    text = '{"sessionId": "s-1"}'

    def json(self) -> dict[str, Any]:
        return {"sessionId": "s-1", "status": "PROVISIONING"}


class FakeClient:
    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def sign_in(self, username: str, password: str) -> None:
        assert (username, password) == ("demo", "Demo-secret1a")

    def call(self, method: str, path: str, body: Any = None) -> FakeResponse:
        assert (method, path) == ("POST", "/sessions")
        return FakeResponse()


@pytest.fixture
def demo_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[], tuple[int, str]]:
    """``make demo`` run against a fake stack: its exit code and what it printed."""
    FakeProcess.started = []
    monkeypatch.setattr(demo, "STATE_DIR", tmp_path, raising=False)
    monkeypatch.setattr(demo, "STACK_FILE", tmp_path / "stack.json")
    monkeypatch.setattr(demo, "STACK_OUTPUT", tmp_path / "demo-stack.log", raising=False)
    monkeypatch.setattr(demo, "use_emulator_credentials", lambda: None)
    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(demo, "wait_for_stack", lambda process, timeout: INFO)
    monkeypatch.setattr(demo, "Client", FakeClient)
    monkeypatch.setattr(demo, "follow", lambda client, session_id, timeout, **kw: READY)

    def run() -> tuple[int, str]:
        code = demo.main([])
        return code, capsys.readouterr().out

    return run


def test_make_demo_prints_no_address_of_the_stack_it_stops(
    demo_run: Callable[[], tuple[int, str]],
) -> None:
    # When the demo follows a desktop to READY and ends
    code, text = demo_run()
    # Then it succeeded and stopped its stack
    assert code == 0
    assert "READY in" in text
    # And it printed no address of that stack, nor the desktop's connection URL
    assert not re.search(r"https?://", text), text
    # And the stack's own banner (its addresses) did not reach the terminal either
    assert FakeProcess.started[0].get("stdout") not in (None, subprocess.PIPE), (
        "the stack's stdout, where its banner goes, is the terminal's"
    )


def test_make_demo_ends_saying_how_to_get_a_stack_that_stays_up(
    demo_run: Callable[[], tuple[int, str]],
) -> None:
    _, text = demo_run()
    last = text.strip().splitlines()[-4:]
    ending = " ".join(last)
    assert "has stopped" in ending
    assert "make local" in ending
    assert "portal_url" in ending
    assert "sign in as demo" in ending
    assert "as admin" in ending
    assert ".local/stack.json" in ending


def test_make_demo_keeps_its_stack_apart_from_make_locals() -> None:
    # make local's stack.json, simulated hosts and ports stay its own while a demo runs
    assert demo.STATE_DIR != stack.STATE_DIR
    assert demo.STACK_FILE.parent == demo.STATE_DIR
    assert demo.STACK_OUTPUT.parent == demo.STATE_DIR


def test_make_demo_starts_its_stack_in_its_own_state_directory(
    demo_run: Callable[[], tuple[int, str]], tmp_path: Path
) -> None:
    demo_run()
    command = FakeProcess.started[0]["command"]
    assert command[command.index("--state-dir") + 1] == str(tmp_path)
