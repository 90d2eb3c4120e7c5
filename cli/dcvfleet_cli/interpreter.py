"""The Python interpreter ``sam build`` needs: the version of the runtime that the template's
``Globals`` give every function (``Runtime: python3.13``).

``sam build`` (without ``--use-container``, which needs Docker) looks on ``PATH`` for an
interpreter of exactly that version and stops with "Binary validation failed for python" when
none is there (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-cli-command-reference-sam-build.html).
A name on ``PATH`` is not enough: a pyenv shim for a version that is installed but not selected
answers with an error, so every candidate is run and asked its version.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNTIME = re.compile(r"^python(\d+)\.(\d+)$")

#: Asks a candidate its version; prints e.g. "3.13".
VERSION_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"


@dataclass(frozen=True)
class Found:
    """An interpreter of the version asked for."""

    path: str
    version: str
    #: How it was found, for messages ("PATH", "pyenv", "uv").
    how: str


def runtime_version(runtime: str) -> str:
    """``python3.13`` -> ``3.13``; anything that is not a Python runtime is refused."""
    match = RUNTIME.match(runtime)
    if not match:
        raise ValueError(f"{runtime!r} is not a Python Lambda runtime (pythonX.Y)")
    return f"{match.group(1)}.{match.group(2)}"


def template_runtime(template: Mapping[str, Any]) -> str:
    """The runtime the template's ``Globals.Function`` gives every function."""
    runtime = template.get("Globals", {}).get("Function", {}).get("Runtime")
    if not isinstance(runtime, str):
        raise ValueError("template.yaml names no Globals.Function.Runtime")
    return runtime


def probe(path: str, timeout: float = 10.0) -> str | None:
    """The ``X.Y`` version that ``path`` reports, or None if it does not run as Python."""
    try:
        done = subprocess.run(
            [path, "-c", VERSION_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    out = done.stdout.strip()
    return out if re.fullmatch(r"\d+\.\d+", out) else None


def candidates(version: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Where an interpreter of ``version`` may be, in order: ``pythonX.Y``, ``python3`` and
    ``python`` on PATH, then pyenv's installed versions, then uv's managed ones."""
    path = env.get("PATH", "")
    found: list[tuple[str, str]] = []
    for name in (f"python{version}", "python3", "python"):
        # every one on PATH, not only the first: an earlier one may be a shim that fails
        for directory in path.split(os.pathsep):
            located = shutil.which(name, path=directory) if directory else None
            if located:
                found.append((located, "PATH"))
    pyenv_root = env.get("PYENV_ROOT") or (
        str(Path(env["HOME"]) / ".pyenv") if env.get("HOME") else ""
    )
    if pyenv_root:
        pattern = str(Path(pyenv_root) / "versions" / f"{version}*" / "bin" / f"python{version}")
        found.extend((p, "pyenv") for p in sorted(glob.glob(pattern), reverse=True))
    uv = shutil.which("uv", path=path)
    if uv:
        try:
            done = subprocess.run(
                [uv, "python", "find", version],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=dict(env),
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            found.append((done.stdout.strip().splitlines()[-1], "uv"))
    return found


def find(
    version: str,
    env: Mapping[str, str] | None = None,
    run: Callable[[str], str | None] = probe,
) -> Found | None:
    """The first candidate that runs and reports ``version``."""
    environ = dict(os.environ if env is None else env)
    seen: set[str] = set()
    for path, how in candidates(version, environ):
        if path in seen:
            continue
        seen.add(path)
        if run(path) == version:
            return Found(path=path, version=version, how=how)
    return None


def how_to_get(version: str) -> str:
    """What to do when no interpreter fits, in plain words."""
    return (
        f"sam build needs Python {version} (the template's runtime) on PATH, and none was found. "
        f"Install one, e.g. `uv python install {version}`, `pyenv install {version}`, or on "
        f"Debian/Ubuntu `apt-get install python{version}` (the deadsnakes PPA on Ubuntu); "
        "or build in a container with `sam build --use-container` (needs Docker)."
    )


def search_summary(version: str, env: Mapping[str, str]) -> Sequence[str]:
    """The candidates looked at, for a message."""
    return [f"{path} ({how})" for path, how in candidates(version, env)]
