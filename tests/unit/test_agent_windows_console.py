"""On a Windows host the agent makes DCV's console session the desktop user's: DCV Server
creates it at boot owned by Administrator, and DCV's default permissions admit only the owner.
Run against the simulated `dcv` (local/sim/dcv.py) with a Windows server's state."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dcvfleet_agent.agent import Agent, NotReadyError
from dcvfleet_agent.config import load_config
from dcvfleet_agent.dcv import OWNER_ONLY_PERMISSIONS, DcvCli, DcvError, same_windows_user
from dcvfleet_agent.identity import Identity
from local.sim import dcv as sim_dcv

SIM = Path(__file__).resolve().parents[2] / "local" / "sim" / "dcv.py"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Windows DCV server just booted: its automatic console session, Administrator's."""
    path = tmp_path / "dcv-state.json"
    monkeypatch.setenv(sim_dcv.STATE_ENV, str(path))
    monkeypatch.delenv(sim_dcv.FAIL_ENV, raising=False)
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")
    args = sim_dcv.parser().parse_args(["create-session", "--owner", "Administrator", "console"])

    def boot(data: dict[str, Any]) -> None:
        data["platform"] = "windows"
        sim_dcv.change(args, data)

    sim_dcv.update_state(str(path), boot)
    return path


def windows_agent(manage_user: str = "true") -> Agent:
    config = load_config(
        {
            "DCVFLEET_AGENT_CONFIG": "",
            "DCVFLEET_EVENT_BUS_NAME": "fleet",
            "DCVFLEET_REGION": "us-east-1",
            "DCVFLEET_PLATFORM": "windows",
            "DCVFLEET_MANAGE_USER": manage_user,
            "DCVFLEET_READY_TIMEOUT_SECONDS": "5",
        }
    )
    dcv = DcvCli([sys.executable, str(SIM)], 10)
    identity = Identity("i-1", "s-1", None)
    return Agent(config, identity, dcv, sender=None, sleep=lambda _: None)  # type: ignore[arg-type]


def sessions(state: Path) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(state.read_text())["sessions"]
    return result


def test_the_console_session_becomes_the_users_with_owner_only_permissions(state: Path) -> None:
    assert windows_agent().wait_for_session("dcvalicesmith") == "console"
    [console] = sessions(state)
    assert (console["id"], console["type"], console["owner"]) == (
        "console",
        "console",
        "dcvalicesmith",
    )
    assert console["permissions"] == OWNER_ONLY_PERMISSIONS


def test_the_permissions_file_admits_the_owner_to_every_feature() -> None:
    # Syntax of the admin guide's "Understanding permissions files": a [permissions] section,
    # then "<who> allow|deny <features>", %owner% standing for the session's owner and
    # builtin for every feature.
    lines = OWNER_ONLY_PERMISSIONS.splitlines()
    assert lines == ["[permissions]", "%owner% allow builtin"]


def test_a_console_already_the_users_is_left_alone(state: Path) -> None:
    first = windows_agent().wait_for_session("dcvalicesmith")
    created = sessions(state)[0]["creation-time"]
    # A restarted agent (same user, the owner printed in another case) does not re-create it.
    assert windows_agent().wait_for_session("DcvAliceSmith") == first
    assert sessions(state)[0]["creation-time"] == created


def test_an_agent_that_does_not_manage_the_user_keeps_the_servers_console(state: Path) -> None:
    assert windows_agent(manage_user="false").wait_for_session("dcvuser") == "console"
    assert sessions(state)[0]["owner"] == "Administrator"


def test_a_console_dcv_will_not_give_to_the_user_fails_the_ready_step_clearly(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = windows_agent()
    monkeypatch.setattr(agent.dcv, "own_console", lambda *_a, **_k: None)
    with pytest.raises(NotReadyError, match="created for 'dcvalicesmith' but DCV lists"):
        agent.wait_for_session("dcvalicesmith")


@pytest.mark.parametrize(
    ("reported", "same"),
    [
        ("dcvalice", True),
        ("DCVALICE", True),
        ("EC2AMAZ-1\\dcvalice", True),
        ("Administrator", False),
    ],
)
def test_owner_names_compare_as_windows_accounts(reported: str, same: bool) -> None:
    assert same_windows_user(reported, "dcvalice") is same


def test_a_permissions_file_that_cannot_be_written_is_a_dcv_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_folder(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Access is denied")

    monkeypatch.setattr("dcvfleet_agent.dcv.tempfile.TemporaryDirectory", no_folder)
    dcv = DcvCli([sys.executable, str(SIM)], 10)
    with pytest.raises(DcvError, match=r"permissions file: .*Access is denied"):
        dcv.own_console("console", "dcvalice", close_first=False)
