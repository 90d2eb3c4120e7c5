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
