"""``make build``: ``sam build`` with the Python interpreter the template's runtime needs.

``sam build`` (without Docker) needs an interpreter of the exact version of the functions'
runtime (``Globals.Function.Runtime`` in template.yaml, read here, never assumed) on ``PATH``;
without one it stops with "Binary validation failed for python". This finds one (on PATH, among
pyenv's installed versions, or uv's), or says how to get one; installs the AWS SAM CLI, pinned in
requirements-sam.txt, into a venv of its own (``.venv-sam``; it pins its own boto3); and runs
``sam build`` with the interpreter first on PATH as ``pythonX.Y``.

    python tools/sam_build.py [--sam PATH] [-- SAM BUILD ARGUMENTS...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "cli"))  # this checkout's dcvfleet_cli, whatever .venv installed

from dcvfleet_cli import interpreter  # noqa: E402
from dcvfleet_cli.preflight import load_template  # noqa: E402

SAM_VENV = ROOT / ".venv-sam"
REQUIREMENTS = ROOT / "requirements-sam.txt"


def installed_sam(venv: Path, requirements: Path) -> Path:
    """The pinned SAM CLI in ``venv``, installed (again) when requirements-sam.txt changed."""
    marker = venv / ".installed"
    sam = venv / "bin" / "sam"
    if not (
        marker.exists() and sam.exists() and marker.stat().st_mtime >= requirements.stat().st_mtime
    ):
        print(
            f"make build: installing the AWS SAM CLI ({requirements.name}) into {venv}", flush=True
        )
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-r", str(requirements)], check=True)
        marker.touch()
    return sam


def python_dir(found: interpreter.Found, version: str, directory: Path) -> Path:
    """``directory`` holding only ``pythonX.Y``, a link to the interpreter found, to put first
    on PATH. Not inside a venv: Python reads a ``pyvenv.cfg`` beside its executable's directory
    and would take that venv's prefix (and lose its own pip)."""
    link = directory / f"python{version}"
    link.symlink_to(found.path)
    return directory


def has_pip(python: Path) -> bool:
    """``sam build`` installs the functions' requirements with the interpreter's own pip."""
    done = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--sam", type=Path, help="a sam to run instead of .venv-sam's")
    parser.add_argument("--venv", type=Path, default=SAM_VENV, help=argparse.SUPPRESS)
    parser.add_argument("sam_args", nargs="*", help="passed on to sam build")
    args = parser.parse_args(argv)
    environ = dict(os.environ if env is None else env)

    runtime = interpreter.template_runtime(load_template(args.template))
    version = interpreter.runtime_version(runtime)
    found = interpreter.find(version, environ)
    if found is None:
        print(f"make build: {interpreter.how_to_get(version)}", file=sys.stderr)
        looked = interpreter.search_summary(version, environ)
        if looked:
            print(
                f"make build: looked at, none of them Python {version}: {', '.join(looked)}",
                file=sys.stderr,
            )
        return 1
    print(f"make build: Python {version} ({runtime}) is {found.path} (found on {found.how})")
    sam = args.sam or installed_sam(args.venv, REQUIREMENTS)
    if not sam.exists():
        print(f"make build: {sam} does not exist", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="dcvfleet-build-python-") as tmp:
        directory = python_dir(found, version, Path(tmp))
        if not has_pip(directory / f"python{version}"):
            print(
                f"make build: {found.path} has no pip, which sam build needs: "
                f"{found.path} -m ensurepip",
                file=sys.stderr,
            )
            return 1
        environ["PATH"] = os.pathsep.join([str(directory), environ.get("PATH", "")])
        command = [str(sam), "build", "--template-file", str(args.template), *args.sam_args]
        print("make build: " + " ".join(command), flush=True)
        done = subprocess.run(command, env=environ, cwd=args.template.parent, check=False)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
