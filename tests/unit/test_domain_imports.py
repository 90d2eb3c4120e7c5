"""The domain modules of the Lambda package are peers that never import one another: the
provisioning path (``dcvfleet.service``), the lifecycle after READY (``dcvfleet.lifecycle``) and
the releases (``dcvfleet.releases``) take what they share from ``dcvfleet.sessions`` (and the
undoing of a failed provisioning from ``dcvfleet.compensation``). Read from the source, so a new
import between peers fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "dcvfleet"
#: Each domain part, and the modules of the package it is made of.
PARTS = {
    "service": ("dcvfleet.service",),
    "lifecycle": ("dcvfleet.lifecycle",),
    "releases": ("dcvfleet.releases",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every dcvfleet module ``path`` imports (``from dcvfleet import x`` names dcvfleet.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("dcvfleet")}


def part_of(module: str) -> str | None:
    for part, prefixes in PARTS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return part
    return None


#: The modules of the domain parts (handlers, adapters and the store may use every part).
DOMAIN = [p for p in sorted(PACKAGE.rglob("*.py")) if part_of(module_name(p)) is not None]


def test_every_part_has_its_modules() -> None:
    found = {part_of(module_name(p)) for p in DOMAIN}
    assert found == set(PARTS)


@pytest.mark.parametrize("path", DOMAIN, ids=module_name)
def test_no_domain_part_imports_another(path: Path) -> None:
    own = part_of(module_name(path))
    crossing = sorted(m for m in imported(path) if part_of(m) not in (None, own))
    assert crossing == [], f"{module_name(path)} ({own}) imports another domain part: {crossing}"
