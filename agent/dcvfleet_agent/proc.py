"""The one place the agent starts other programs; injectable so tests can watch every argv."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Protocol


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


def run_command(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv (never through a shell); raises OSError if missing, TimeoutExpired if slow."""
    return subprocess.run(
        list(argv),
        input=input_text,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )
