"""The project's import structure: test modules share code through tests.support only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from tests.unit import test_store` names the test module in the alias.
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("test_") or alias.name == "conftest"
            )
    return found


def _is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and any(
        part.startswith("test_") or part == "conftest" for part in parts[1:]
    )


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imported_modules(path) if _is_test_module(m)
        )
        for path in sorted(TESTS.rglob("*.py"))
    }
    offenders = {path: modules for path, modules in offenders.items() if modules}
    assert not offenders, (
        "test modules share fakes and builders through tests/support/, never by importing "
        f"another test module: {offenders}"
    )
