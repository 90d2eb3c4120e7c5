"""``make build`` (tools/sam_build.py): ``sam build`` runs with an interpreter of the template's
runtime first on PATH, found past shims that fail; with none, it says how to get one and runs
nothing. Fake interpreters and a fake ``sam`` on a temporary PATH stand in for real ones."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tools import sam_build

ROOT = Path(__file__).resolve().parents[2]


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_python(directory: Path, name: str, version: str | None) -> Path:
    """Answers any question with ``version``; None: fails as an unselected pyenv shim does."""
    body = f"echo {version}" if version else 'echo "pyenv: python: command not found" >&2; exit 127'
    return script(directory / name, body)


def fake_sam(tmp_path: Path, version: str = "3.13") -> tuple[Path, Path]:
    """A ``sam`` that records which pythonX.Y it would use, what it says, and its arguments."""
    record = tmp_path / "sam-saw.txt"
    python = f"python{version}"
    sam = script(
        tmp_path / "sam" / "sam",
        f'{{ p=$(command -v {python}); echo "$p"; readlink -f "$p"; {python} -c "import sys"; '
        f'echo "$@"; }} > "{record}"',
    )
    return sam, record


def template(tmp_path: Path, runtime: str) -> Path:
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    path = tmp_path / "template.yaml"
    path.write_text(text.replace("Runtime: python3.13", f"Runtime: {runtime}", 1), encoding="utf-8")
    return path


def test_sam_build_runs_with_the_runtimes_python_first_on_path(tmp_path: Path) -> None:
    shims, good = tmp_path / "shims", tmp_path / "good"
    fake_python(shims, "python3.13", None)
    interpreter = fake_python(good, "python3.13", "3.13")
    sam, record = fake_sam(tmp_path)
    env = {
        "PATH": os.pathsep.join([str(shims), str(good), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
    }
    venv = tmp_path / "venv"
    argv = ["--template", str(ROOT / "template.yaml"), "--sam", str(sam), "--venv", str(venv)]
    assert sam_build.main([*argv, "--", "--cached"], env) == 0
    which, real, version, args = record.read_text(encoding="utf-8").splitlines()
    assert real == str(interpreter)
    assert not Path(which).is_relative_to(venv)  # no pyvenv.cfg beside it
    assert version == "3.13"
    assert args == f"build --template-file {ROOT / 'template.yaml'} --cached"


def test_the_runtime_is_read_from_the_template(tmp_path: Path) -> None:
    interpreter = fake_python(tmp_path / "bin", "python3", "3.12")
    sam, record = fake_sam(tmp_path, "3.12")
    env = {
        "PATH": os.pathsep.join([str(tmp_path / "bin"), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
    }
    argv = ["--sam", str(sam), "--venv", str(tmp_path / "venv")]
    assert sam_build.main([*argv, "--template", str(template(tmp_path, "python3.12"))], env) == 0
    _, real, version, _ = record.read_text(encoding="utf-8").splitlines()
    assert real == str(interpreter)
    assert version == "3.12"


def test_with_no_python_of_the_runtime_it_says_how_to_get_one_and_builds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shim = fake_python(tmp_path / "shims", "python3.13", None)
    fake_python(tmp_path / "shims", "python3", "3.11")
    sam, record = fake_sam(tmp_path)
    env = {"PATH": str(tmp_path / "shims"), "HOME": str(tmp_path)}
    argv = ["--sam", str(sam), "--venv", str(tmp_path / "venv")]
    assert sam_build.main(argv, env) == 1
    err = capsys.readouterr().err
    assert "sam build needs Python 3.13 (the template's runtime) on PATH" in err
    assert "uv python install 3.13" in err
    assert "pyenv install 3.13" in err
    assert "sam build --use-container" in err
    assert f"{shim} (PATH)" in err
    assert not record.exists()
    assert not (tmp_path / "venv").exists()


def test_a_python_pyenv_installed_but_did_not_select_is_used(tmp_path: Path) -> None:
    fake_python(tmp_path / "shims", "python3.13", None)
    installed = fake_python(
        tmp_path / "pyenv" / "versions" / "3.13.1" / "bin", "python3.13", "3.13"
    )
    sam, record = fake_sam(tmp_path)
    env = {
        "PATH": os.pathsep.join([str(tmp_path / "shims"), "/usr/bin", "/bin"]),
        "PYENV_ROOT": str(tmp_path / "pyenv"),
    }
    assert sam_build.main(["--sam", str(sam), "--venv", str(tmp_path / "venv")], env) == 0
    real = record.read_text(encoding="utf-8").splitlines()[1]
    assert real == str(installed)


def test_the_sam_cli_is_pinned_in_its_own_requirements() -> None:
    pins = (ROOT / "requirements-sam.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("aws-sam-cli==") for line in pins)
    assert all("==" in line for line in pins if line and not line.startswith("#"))


def test_a_python_without_pip_is_refused_before_sam_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_pip = script(
        tmp_path / "bin" / "python3.13", 'if [ "$1" = "-m" ]; then exit 1; fi; echo 3.13'
    )
    sam, record = fake_sam(tmp_path)
    env = {"PATH": os.pathsep.join([str(tmp_path / "bin"), "/usr/bin", "/bin"])}
    assert sam_build.main(["--sam", str(sam), "--venv", str(tmp_path / "venv")], env) == 1
    assert f"{no_pip} has no pip, which sam build needs" in capsys.readouterr().err
    assert not record.exists()
