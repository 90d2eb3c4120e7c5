"""Syntax check for PowerShell, which cannot run here: the agent's Windows install script and
the Windows launch template's user data are parsed with tree-sitter's PowerShell grammar.

    python tools/pslint.py [FILE ...]      # default: agent/windows/*.ps1 and the user data

Exit 1 with the file, line and column of every syntax error.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import tree_sitter
import tree_sitter_powershell
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def errors(source: str) -> list[str]:
    """Every syntax error as ``line:column: what``; empty when the script parses."""
    found: list[str] = []

    def walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
        yield node
        for child in node.children:
            yield from walk(child)

    tree = PARSER.parse(source.encode())
    for node in walk(tree.root_node):
        if node.is_error or node.is_missing:
            line, column = node.start_point
            what = f"missing {node.type}" if node.is_missing else "unexpected text"
            found.append(f"{line + 1}:{column + 1}: {what}")
    return found


class Command(NamedTuple):
    """One command call in a script: its name lowercased (PowerShell ignores case), its
    parameters and arguments as written, and where it starts (byte offset), for order checks."""

    name: str
    elements: list[str]
    start: int


def nodes(source: str, node_type: str) -> list[tree_sitter.Node]:
    """Every node of the given grammar type, in source order."""
    found: list[tree_sitter.Node] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.type == node_type:
            found.append(node)
        for child in node.children:
            walk(child)

    walk(PARSER.parse(source.encode()).root_node)
    return found


def commands(source: str) -> list[Command]:
    """Every command the script calls, in source order: what a test asserts on, rather than on
    the script's text, so a comment or a string that merely mentions a command counts for
    nothing."""
    found: list[Command] = []
    for node in nodes(source, "command"):
        name, elements = "", []
        for child in node.children:
            if child.type in ("command_name", "command_name_expr"):  # `& $exe ...`: the latter
                name = (child.text or b"").decode().lower()
            elif child.type == "command_elements":
                elements = [
                    (c.text or b"").decode()
                    for c in child.children
                    if c.type != "command_argument_sep"
                ]
        found.append(Command(name, elements, node.start_byte))
    return found


def windows_user_data(template: Path) -> str:
    """The PowerShell inside the Windows launch template's user data, placeholders filled."""
    data = yaml_parse(template.read_text())["Resources"]["WindowsLaunchTemplate"]
    text: str = data["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    script = re.search(r"<powershell>(.*)</powershell>", text, re.DOTALL)
    if script is None:
        raise ValueError("the Windows user data has no <powershell> block")
    return re.sub(r"\$\{[\w:]+\}", "value", script.group(1))


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted((ROOT / "agent" / "windows").glob("*.ps1"))
    targets = {str(p): p.read_text() for p in files}
    if not argv:
        targets["template.yaml (WindowsLaunchTemplate user data)"] = windows_user_data(
            ROOT / "template.yaml"
        )
    failed = False
    for name, source in targets.items():
        for problem in errors(source):
            print(f"{name}:{problem}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
