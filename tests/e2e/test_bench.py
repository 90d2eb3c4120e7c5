"""The benchmark keeps running (its figures are read by people, never asserted on)."""

from __future__ import annotations

import subprocess
import sys

from tests.stackfixture import ROOT


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
        "state transitions  10.0 per provisioning",
        "Lambda invocations 5.0 per provisioning",
        "control-plane cost per 1,000 sessions",
        "total",
    ):
        assert figure in result.stdout, result.stdout
