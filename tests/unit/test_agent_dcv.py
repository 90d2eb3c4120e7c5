"""The `dcv` wrapper against local/sim/dcv.py, and the simulator's output shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dcvfleet_agent.dcv import DcvCli, DcvError

SIM = Path(__file__).resolve().parents[2] / "local" / "sim" / "dcv.py"
DCV = (sys.executable, str(SIM))
# Fields of `dcv describe-session <id> --json` in the Amazon DCV Administrator Guide,
# "Viewing Amazon DCV sessions" (virtual session example).
DOC_SESSION_FIELDS = {
    "id", "owner", "name", "num-of-connections", "creation-time", "last-disconnection-time",
    "licenses", "storage-root", "type", "x11-display", "x11-authority", "display-layout",
}  # fmt: skip
DOC_LICENSE_FIELDS = {"product", "status", "check-timestamp", "expiration-date"}
DOC_LAYOUT_FIELDS = {"width", "height", "x", "y"}
CONNECTION_FIELDS = {"connection-id", "user", "client-ip", "connection-time"}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dcv-state.json"
    monkeypatch.setenv("SIM_DCV_STATE", str(path))
    monkeypatch.delenv("SIM_DCV_FAIL", raising=False)
    return path


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DCV, *args], capture_output=True, text=True, check=False)


def set_connections(path: Path, count: int) -> None:
    data = json.loads(path.read_text())
    data["connections"] = count
    path.write_text(json.dumps(data))


def test_sim_creates_state_and_prints_documented_session_shape(state: Path) -> None:
    assert sim("list-sessions", "-j").stdout.strip() == "[]"
    assert json.loads(state.read_text()) == {"sessions": [], "connections": 0}
    created = sim("create-session", "--type", "virtual", "--owner", "alice", "desktop")
    assert created.returncode == 0
    listed = sim("list-sessions", "-j")
    assert '"id" : "desktop"' in listed.stdout  # the guide's `"key" : value` spacing
    [session] = json.loads(listed.stdout)
    described = json.loads(sim("describe-session", "desktop", "-j").stdout)
    for item in (session, described):
        assert set(item) == DOC_SESSION_FIELDS
        assert (item["id"], item["owner"], item["type"]) == ("desktop", "alice", "virtual")
        assert item["num-of-connections"] == 0
        assert item["creation-time"].endswith("Z")
        assert all(set(lic) == DOC_LICENSE_FIELDS for lic in item["licenses"])
        assert all(set(box) == DOC_LAYOUT_FIELDS for box in item["display-layout"])
    assert not [p for p in state.parent.iterdir() if p.name.startswith(".sim_dcv.")]


def test_sim_reports_connections_written_by_another_process(state: Path) -> None:
    sim("create-session", "--type", "virtual", "--owner", "bob", "desktop")
    set_connections(state, 3)
    connections = json.loads(sim("list-connections", "-j", "desktop").stdout)
    assert len(connections) == 3
    assert all(set(c) == CONNECTION_FIELDS for c in connections)
    assert len({c["connection-id"] for c in connections}) == 3
    assert len({c["client-ip"] for c in connections}) == 3
    assert {c["user"] for c in connections} == {"bob"}
    assert json.loads(sim("describe-session", "-j", "desktop").stdout)["num-of-connections"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ("describe-session", "-j", "nope"),
        ("list-connections", "-j", "nope"),
        ("close-session", "nope"),
        ("list-sessions",),
    ],
)
def test_sim_errors_exit_non_zero(state: Path, args: tuple[str, ...]) -> None:
    result = sim(*args)
    assert result.returncode == 1
    assert result.stderr.strip()
    assert result.stdout == ""


def test_sim_create_duplicate_and_close(state: Path) -> None:
    assert sim("create-session", "--owner", "a", "s1").returncode == 0
    duplicate = sim("create-session", "--owner", "a", "s1")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    assert sim("create-session", "--type", "console", "--owner", "a", "c1").returncode == 0
    assert sim("create-session", "--type", "console", "--owner", "a", "c2").returncode == 1
    assert sim("close-session", "s1").returncode == 0
    assert [s["id"] for s in json.loads(sim("list-sessions", "-j").stdout)] == ["c1"]


def test_sim_needs_state_path_and_known_fault(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_DCV_FAIL", "sometimes")
    assert sim("list-sessions", "-j").returncode == 2
    monkeypatch.delenv("SIM_DCV_FAIL")
    monkeypatch.delenv("SIM_DCV_STATE")
    assert sim("list-sessions", "-j").returncode == 2
    monkeypatch.setenv("SIM_DCV_STATE", str(state))
    state.write_text('{"sessions": 5}')
    assert "not {" in sim("list-sessions", "-j").stderr


def test_cli_create_then_list_and_connections(state: Path) -> None:
    dcv = DcvCli(DCV, timeout=10)
    assert dcv.list_sessions() == []
    dcv.create_session("desktop", "alice")
    [session] = dcv.list_sessions()
    assert (session.id, session.owner, session.type, session.num_connections) == (
        "desktop",
        "alice",
        "virtual",
        0,
    )
    assert dcv.list_connections("desktop") == []
    set_connections(state, 2)
    assert len(dcv.list_connections("desktop")) == 2


def test_cli_create_failure_is_dcv_error(state: Path) -> None:
    dcv = DcvCli(DCV, timeout=10)
    dcv.create_session("desktop", "alice")
    with pytest.raises(DcvError, match=r"create-session' failed with exit code 1: .*exists"):
        dcv.create_session("desktop", "alice")
    with pytest.raises(DcvError, match="exit code 1"):
        dcv.list_connections("missing")


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ("missing", r"exited 127 \(command not found\)"),
        ("garbage", "not JSON"),
        ("hang", "did not finish within 0.2s"),
    ],
)
def test_every_sim_fault_is_one_dcv_error(
    state: Path, monkeypatch: pytest.MonkeyPatch, fault: str, fragment: str
) -> None:
    monkeypatch.setenv("SIM_DCV_FAIL", fault)
    dcv = DcvCli(DCV, timeout=0.2 if fault == "hang" else 10)
    for call in (dcv.list_sessions, lambda: dcv.list_connections("desktop")):
        with pytest.raises(DcvError, match=fragment):
            call()


def test_binary_that_does_not_exist_is_dcv_error(tmp_path: Path) -> None:
    dcv = DcvCli([str(tmp_path / "no-such-dcv")], timeout=1)
    with pytest.raises(DcvError, match="is Amazon DCV Server installed"):
        dcv.list_sessions()


def fixed_output(stdout: str) -> Any:
    def run(
        argv: Sequence[str], *, input_text: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), 0, stdout, "")

    return run


@pytest.mark.parametrize(
    ("stdout", "fragment"),
    [
        ('{"id": "x"}', "printed a dict, not a list"),
        ('[{"owner": "x"}]', "session without an id"),
        ("[3]", "session without an id"),
        ("", "not JSON"),
    ],
)
def test_wrong_list_sessions_shape_is_dcv_error(stdout: str, fragment: str) -> None:
    with pytest.raises(DcvError, match=fragment):
        DcvCli(["dcv"], 1, run=fixed_output(stdout)).list_sessions()


@pytest.mark.parametrize("stdout", ['{"connections": []}', "[1, 2]"])
def test_wrong_list_connections_shape_is_dcv_error(stdout: str) -> None:
    with pytest.raises(DcvError, match="did not print a list of connections"):
        DcvCli(["dcv"], 1, run=fixed_output(stdout)).list_connections("console")


def test_windows_sessions_wrapper_from_older_guide_is_accepted() -> None:
    stdout = '{ "sessions": [ { "id": "console", "owner": "Administrator" } ] }'
    [session] = DcvCli(["dcv"], 1, run=fixed_output(stdout)).list_sessions()
    assert (session.id, session.owner, session.type, session.num_connections) == (
        "console",
        "Administrator",
        "",
        None,
    )


def test_cli_describe_session_reads_connections_and_last_disconnection(state: Path) -> None:
    dcv = DcvCli(DCV, timeout=10)
    dcv.create_session("desktop", "alice")
    set_connections(state, 2)
    described = dcv.describe_session("desktop")
    assert described["num-of-connections"] == 2
    assert described["last-disconnection-time"] == ""  # never disconnected
    with pytest.raises(DcvError, match="exit code 1: Could not find session 'nope'"):
        dcv.describe_session("nope")


@pytest.mark.parametrize("stdout", ["[]", '"desktop"', "null"])
def test_wrong_describe_session_shape_is_dcv_error(stdout: str) -> None:
    with pytest.raises(DcvError, match="did not print a session object"):
        DcvCli(["dcv"], 1, run=fixed_output(stdout)).describe_session("desktop")
