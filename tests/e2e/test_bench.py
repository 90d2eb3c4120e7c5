"""The benchmark keeps running (its figures are read by people, never asserted on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT


def test_the_provisioning_benchmark_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.provisioning", "--sessions", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    for figure in (
        "request -> READY   p50",
        "state transitions  9.0 per provisioning",
        "Lambda invocations 5.0 per provisioning",
        "control-plane cost per 1,000 sessions",
        "total",
    ):
        assert figure in result.stdout, result.stdout


def test_the_load_test_holds_its_invariants_at_a_small_scale(tmp_path: Path) -> None:
    """Eight users at once, through the real entry point: its invariants, never its timings."""
    report_file = tmp_path / "load.json"
    command = [sys.executable, "-m", "bench.load", "--users", "8", "--timeout", "60"]
    result = subprocess.run(
        [*command, "--report", str(report_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    report = json.loads(report_file.read_text())
    invariants = report["invariants"]
    assert set(invariants) == {
        "answered",
        "limit held",
        "idempotent",
        "settled",
        "no duplicates",
        "no orphans",
    }
    for name, check in invariants.items():
        assert check["problems"] == [], (name, check)
        assert check["ok"], (name, check)
    counts = report["counts"]
    assert counts["limit409"] == 8, counts  # one refused at the limit per user
    assert counts["retries"] == 2, counts  # users 0 and 4 retried with the same key
    assert counts["accepted"] == 8 + 2, counts  # one per user, and each retry's same answer
    assert counts["ready"] + counts["failed"] == 8, counts
    assert counts["unsettled"] == 0, counts
    # every accepted desktop READY has its instance and secret; nothing else is left
    assert counts["liveInstances"] == counts["secrets"] == counts["ready"] + 1, counts  # + warm-up
    for line in ("request -> READY", "throughput", "no duplicates  ok", "no orphans     ok"):
        assert line in result.stdout, result.stdout


def test_the_warm_pool_benchmark_prints_every_figure() -> None:
    """One hit and one miss on one local stack (after a warm-up round) and one
    simulated day: every figure printed, and each target's verdict (never its outcome: the
    figures are read by people)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.warm", "--requests", "1", "--days", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    for figure in (
        "pool hit (WarmPoolSize=3)      n=1",
        "miss (g4dn.xlarge, not pooled) n=1",
        "session creation: ",
        "launch from the baked image (a miss)",
        "start from stopped + DCV session",
        "resume from hibernation",
        "(a) no pool",
        "(b) static pool",
        "(c) scheduled pool     p95 ",
        "(d) forecast pool      p95 ",
    ):
        assert figure in result.stdout, result.stdout


def test_the_batch_warm_benchmark_prints_every_case() -> None:
    """One batch desktop per case (no warm-up round: the figures are not judged here) on one
    local stack, its delays AWS's figures x 0.02: cold, warm and warm-and-cached compute environments side by side, with the
    modelled figures' sources (never their outcome: the figures are read by people)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.batch_warm",
            "--rounds",
            "1",
            "--scale",
            "0.02",
            "--no-warm-up",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    for figure in (
        "local delays are AWS's figures x 0.02",
        "cold CE ",
        "warm CE ",
        "warm CE + cached image ",
        "modelled on AWS",
        "API_ModifyVolume.html",
    ):
        assert figure in result.stdout, result.stdout
