"""The DCV stand-in (local/sim/dcv.py) as the agent's tests run it: its command line, and a fresh
state file for each test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[2] / "local" / "sim" / "dcv.py"
#: The `dcv` command the agent is given: the stand-in, without site packages (it is stdlib-only).
DCV = (sys.executable, "-S", str(SIM))


def fresh_dcv_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points the stand-in at a new state file under tmp_path, with no fault injected."""
    path = tmp_path / "dcv-state.json"
    monkeypatch.setenv("SIM_DCV_STATE", str(path))
    monkeypatch.delenv("SIM_DCV_FAIL", raising=False)
    return path
