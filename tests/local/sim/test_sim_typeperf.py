"""The simulated typeperf of Windows hosts (local/sim/typeperf.py): what the agent's Windows CPU
signal reads, in the format of the recorded outputs and in the host's counter language."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dcvfleet_agent.signals import busiest_core_over, parse_typeperf, processor_counter
from local.sim import typeperf

SCRIPT = Path(typeperf.__file__)


def _typeperf(tmp_path: Path, language: str, *argv: str) -> subprocess.CompletedProcess[str]:
    activity = tmp_path / "activity.json"
    activity.write_text(json.dumps({"cpuPercent": 40}))
    env = {**os.environ, typeperf.STATE_ENV: str(activity), typeperf.LANGUAGE_ENV: language}
    return subprocess.run(
        [sys.executable, "-S", str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_a_german_host_answers_the_counter_the_agent_looks_up_by_index(tmp_path: Path) -> None:
    names = typeperf.NAMES["de"]
    counter = processor_counter(names.get)
    assert counter == "\\Prozessor(*)\\Prozessorzeit (%)"
    done = _typeperf(tmp_path, "de", counter, "-si", "0.2", "-sc", "3")
    assert done.returncode == 0, done.stdout
    header = done.stdout.splitlines()[0]
    assert header.startswith('"(PDH-CSV 4.0)","\\\\')
    assert "\\Prozessor(_Total)\\Prozessorzeit (%)" in header
    rows = parse_typeperf(done.stdout)
    assert len(rows) == 2  # the first row is blank, as typeperf prints it
    assert busiest_core_over(rows) == 40.0


def test_a_german_host_refuses_the_english_counter_as_typeperf_does(tmp_path: Path) -> None:
    done = _typeperf(tmp_path, "de", "\\Processor(*)\\% Processor Time", "-sc", "2")
    assert done.returncode != 0
    assert done.stdout.strip() == "Error: No valid counters."


def test_an_english_host_answers_the_english_fallback(tmp_path: Path) -> None:
    counter = processor_counter(lambda index: None)
    done = _typeperf(tmp_path, "en", counter, "-si", "0.2", "-sc", "2")
    assert done.returncode == 0, done.stdout
    assert busiest_core_over(parse_typeperf(done.stdout)) == 40.0
