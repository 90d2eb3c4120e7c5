"""The project's import structure: no import cycle anywhere, and test modules share code through
tests/support only."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import networkx
import pytest

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


# -- import cycles -------------------------------------------------------------------------------
#: The project's packages (tests/ excluded): the Lambda package, the agent, the CLI, the local
#: stack, the tools and the benchmarks.
PACKAGES = ("dcvfleet", "dcvfleet_agent", "dcvfleet_cli", "local", "tools", "bench")


def import_cycles(*packages: str) -> list[str]:
    """Every import cycle among the modules of ``packages``, one line each with the importing
    lines. grimp (import-linter's graph) reads every import statement, function-local ones and
    those under ``if TYPE_CHECKING:`` included: a cycle hidden that way is still a cycle."""
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=False, cache_dir=None)
    edges = networkx.DiGraph()
    for module in graph.modules:
        edges.add_node(module)
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    found = []
    for component in networkx.strongly_connected_components(edges):
        if len(component) == 1 and not any(edges.has_edge(m, m) for m in component):
            continue
        cycle = networkx.find_cycle(edges.subgraph(component), source=min(component))
        steps = []
        for importer, imported in cycle:
            lines = [
                str(detail["line_number"])
                for detail in graph.get_import_details(importer=importer, imported=imported)
            ]
            steps.append(f"{importer} imports {imported} (line {', '.join(lines)})")
        found.append("; ".join(steps))
    return sorted(found)


def test_the_project_has_no_import_cycle() -> None:
    cycles = import_cycles(*PACKAGES)
    assert not cycles, "import cycles (move the shared piece to a module both use):\n" + "\n".join(
        cycles
    )


def test_the_cycle_scan_sees_function_local_and_type_checking_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a package whose two cycles are hidden the two usual ways
    package = tmp_path / "hidden_cycles"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from hidden_cycles import b\n")
    (package / "b.py").write_text("import hidden_cycles.a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hidden_cycles import d\n"
    )
    (package / "d.py").write_text("from hidden_cycles import c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # When it is scanned, Then both cycles are found, each with its importing lines
    assert import_cycles("hidden_cycles") == [
        "hidden_cycles.a imports hidden_cycles.b (line 2); "
        "hidden_cycles.b imports hidden_cycles.a (line 1)",
        "hidden_cycles.c imports hidden_cycles.d (line 3); "
        "hidden_cycles.d imports hidden_cycles.c (line 1)",
    ]


def test_no_two_test_modules_share_a_file_name() -> None:
    """The test folders are not packages, so pytest imports each test module by its file name
    (its default "prepend" import mode): two files of one name in two folders fail collection with
    "import file mismatch" when both run in one session, as ``make test`` runs them."""
    by_name: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        by_name.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert shared == {}
