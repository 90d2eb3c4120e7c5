"""The stand-ins a simulated host finds on its PATH (``dcv``, ``nvidia-smi``, ``docker``, the user
commands, ``typeperf``, ``glxinfo``) run as scripts, by path, with ``python -S``: each must import
the standard library only, and the paths the host's shims run must exist."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from local.sim import machine

STAND_INS = {
    name: path
    for name, path in vars(machine).items()
    if name.startswith("SIM_") and isinstance(path, Path)
}


def test_the_shims_name_every_stand_in() -> None:
    names = {path.stem for path in STAND_INS.values()}
    assert names == {"dcv", "nvidia_smi", "docker", "users", "typeperf", "glxinfo"}
    for path in STAND_INS.values():
        assert path.is_file(), path


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_a_stand_in_imports_the_standard_library_only(name: str) -> None:
    path = STAND_INS[name]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import: the package is not there when run by path
                imported.add("." * node.level + (node.module or ""))
            else:
                imported.add((node.module or "").split(".")[0])
    assert imported - sys.stdlib_module_names - {"__future__"} == set()
