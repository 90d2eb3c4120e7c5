"""Regenerate the generated regions of the documentation from template.yaml and the state machines.

Two regions are owned by this tool, each held by one page: README.md or a page of docs/
(``docs/parameters.md`` and ``docs/workflows.md`` today; the tool finds each region by its markers):

* ``<!-- parameters:start -->`` ... ``<!-- parameters:end -->``: a table of every
  parameter declared in ``template.yaml``, in template order.
* ``<!-- workflows:start -->`` ... ``<!-- workflows:end -->``: one Mermaid flowchart per
  ``statemachines/*.asl.json`` file, drawn from its Amazon States Language definition.

Everything outside the markers is left byte-for-byte as it was.

Usage::

    python tools/readme.py            # rewrite the pages in place
    python tools/readme.py --check    # exit 1, naming the stale region, if a page is out of date
    python tools/readme.py --root DIR # operate on another checkout (default: parent of tools/)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
README = "README.md"
DOCS = "docs"
TEMPLATE = "template.yaml"
STATEMACHINES = "statemachines"
ASL_SUFFIX = ".asl.json"
EM_DASH = "—"
ELLIPSIS = "…"
LABEL_LIMIT = 40


# --------------------------------------------------------------------------------------
# template.yaml
# --------------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """SafeLoader that understands CloudFormation's short-form intrinsic tags (``!Ref`` ...)."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    """Turn ``!Tag value`` into the long form CloudFormation uses (``{"Fn::Tag": value}``)."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - the composer only produces the three node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", None)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(text: str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, short-form intrinsics included."""
    loader = CfnLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ValueError("template is not a YAML mapping")
    return data


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _cell(text: str) -> str:
    """Make text safe for one Markdown table cell."""
    return text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _code(text: str) -> str:
    """A Markdown code span around text, whatever backticks it holds."""
    text = text.replace("\r", " ").replace("\n", " ")
    if text == "":
        return '`""`'
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def parameter_rows(template: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(Parameter, Default, Allowed, Description) for each parameter, in template order."""
    parameters = template.get("Parameters") or {}
    if not isinstance(parameters, dict):
        raise ValueError("template Parameters is not a mapping")
    rows: list[tuple[str, str, str, str]] = []
    for name, declared in parameters.items():
        spec: Mapping[str, Any] = declared if isinstance(declared, dict) else {}
        default = _code(_scalar_text(spec["Default"])) if spec.get("Default") is not None else ""
        allowed: list[str] = []
        values = spec.get("AllowedValues")
        if isinstance(values, list) and values:
            allowed.append(", ".join(_scalar_text(value) for value in values))
        pattern = spec.get("AllowedPattern")
        if pattern is not None:
            allowed.append(_code(_scalar_text(pattern)))
        description = " ".join(_scalar_text(spec.get("Description", "")).split())
        rows.append(
            (
                _cell(_code(str(name))),
                _cell(default) or EM_DASH,
                _cell("; ".join(allowed)) or EM_DASH,
                _cell(description) or EM_DASH,
            )
        )
    return rows


def render_parameters(template: Mapping[str, Any]) -> str:
    """The Markdown for the parameters region."""
    rows = parameter_rows(template)
    if not rows:
        return "_The template declares no parameters._"
    lines = [
        "| Parameter | Default | Allowed | Description |",
        "| --- | --- | --- | --- |",
    ]
    lines.extend(f"| {' | '.join(row)} |" for row in rows)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# statemachines/*.asl.json -> Mermaid
# --------------------------------------------------------------------------------------

_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;"}

_OPERATORS = (
    ("GreaterThanEquals", ">="),
    ("LessThanEquals", "<="),
    ("GreaterThan", ">"),
    ("LessThan", "<"),
    ("Equals", "=="),
    ("Matches", "matches"),
)

_TYPE_TESTS = ("IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp")


def mermaid_text(text: str) -> str:
    """Escape text for use inside a double-quoted Mermaid label."""
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in text)


def _shorten(text: str, limit: int = LABEL_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _operand(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value)


def describe_rule(rule: Mapping[str, Any]) -> str:
    """A short human reading of one Choice rule (JSONPath comparison or JSONata Condition)."""
    if "Condition" in rule:
        return str(rule["Condition"])
    for combinator in ("And", "Or"):
        if combinator in rule:
            parts = [describe_rule(sub) for sub in rule[combinator]]
            return f" {combinator.lower()} ".join(f"({part})" for part in parts)
    if "Not" in rule:
        return f"not ({describe_rule(rule['Not'])})"
    variable = str(rule.get("Variable", "?"))
    for key, value in rule.items():
        if key in ("Variable", "Next", "Assign", "Output", "Comment"):
            continue
        if key in _TYPE_TESTS:
            noun = key[2:].lower()
            if key == "IsPresent":
                return f"{variable} {'present' if value else 'absent'}"
            return f"{variable} {'is' if value else 'is not'} {noun}"
        is_path = key.endswith("Path")
        base = key[: -len("Path")] if is_path else key
        for suffix, symbol in _OPERATORS:
            if base.endswith(suffix):
                operand = str(value) if is_path else _operand(value)
                return f"{variable} {symbol} {operand}"
    return variable


def _retry_note(retriers: Sequence[Mapping[str, Any]]) -> str:
    errors = [str(error) for retrier in retriers for error in retrier.get("ErrorEquals", [])]
    if not errors:
        return "retry"
    more = ELLIPSIS if len(errors) > 1 else ""
    return f"retry: {errors[0]}{more}"


class AslError(ValueError):
    """The state machine definition cannot be drawn (it is not valid ASL)."""


@dataclass
class _Ids:
    """Mermaid node ids, unique across one diagram."""

    used: set[str] = field(default_factory=set)

    def allocate(self, wanted: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", wanted)
        candidate, counter = base, 1
        while candidate in self.used:
            counter += 1
            candidate = f"{base}_{counter}"
        self.used.add(candidate)
        return candidate


@dataclass
class _Scope:
    """One state list: the top level, a Parallel branch, or a Map's item processor."""

    where: str
    definition: Mapping[str, Any]
    start_id: str
    end_id: str
    state_ids: dict[str, str]


class _Diagram:
    def __init__(self, source: str) -> None:
        self.source = source
        self.ids = _Ids()
        self.lines: list[str] = ["flowchart TD"]

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def scope(self, definition: Any, where: str, start_id: str, end_id: str) -> _Scope:
        if not isinstance(definition, dict):
            raise AslError(f"{self.source}: {where} is not an object")
        states = definition.get("States")
        if not isinstance(states, dict) or not states:
            raise AslError(f"{self.source}: {where} has no States")
        if definition.get("StartAt") not in states:
            raise AslError(f"{self.source}: {where} StartAt names no state in its States")
        state_ids = {name: self.ids.allocate(f"s_{name}") for name in states}
        return _Scope(where, definition, start_id, end_id, state_ids)

    def target(self, scope: _Scope, state: str, key: str, name: Any) -> str:
        if name not in scope.state_ids:
            raise AslError(
                f"{self.source}: state {state!r} {key} {name!r} is not a state in {scope.where}"
            )
        return scope.state_ids[name]

    def subgraph(self, graph_id: str, title: str, definition: Any, where: str, depth: int) -> None:
        """A nested machine (a Parallel branch, a Map's item processor) drawn as a subgraph."""
        self.emit(depth, f'subgraph {graph_id} ["{title}"]')
        inner = self.scope(
            definition,
            where,
            self.ids.allocate(f"{graph_id}_start"),
            self.ids.allocate(f"{graph_id}_end"),
        )
        self.draw(inner, depth + 1)
        self.emit(depth, "end")

    def draw(self, scope: _Scope, depth: int) -> None:
        """Emit the nodes (and nested subgraphs) of a scope, then its edges."""
        self.emit(depth, f'{scope.start_id}(("Start"))')
        for name, state in scope.definition["States"].items():
            self.node(scope, name, state, depth)
        self.emit(depth, f'{scope.end_id}(("End"))')
        self.emit(depth, f"{scope.start_id} --> {scope.state_ids[scope.definition['StartAt']]}")
        for name, state in scope.definition["States"].items():
            self.edges(scope, name, state, depth)

    def node(self, scope: _Scope, name: str, state: Any, depth: int) -> None:
        if not isinstance(state, dict):
            raise AslError(f"{self.source}: state {name!r} is not an object")
        node_id = scope.state_ids[name]
        label = mermaid_text(name)
        if state.get("Retry"):
            label += "<br/>" + mermaid_text(_retry_note(state["Retry"]))
        kind = state.get("Type")
        if kind == "Parallel":
            self.emit(depth, f'subgraph {node_id} ["{label}"]')
            branches = state.get("Branches")
            if not isinstance(branches, list) or not branches:
                raise AslError(f"{self.source}: Parallel state {name!r} has no Branches")
            for number, branch in enumerate(branches, start=1):
                branch_id = self.ids.allocate(f"{node_id}_b{number}")
                self.subgraph(
                    branch_id, f"branch {number}", branch, f"branch {number} of {name!r}", depth + 1
                )
            self.emit(depth, "end")
        elif kind == "Map":
            processor = state.get("ItemProcessor", state.get("Iterator"))
            self.subgraph(node_id, label, processor, f"the item processor of {name!r}", depth)
        elif kind == "Choice":
            self.emit(depth, f'{node_id}{{"{label}"}}')
        elif kind == "Wait":
            self.emit(depth, f'{node_id}(["{label}"])')
        elif kind == "Fail":
            self.emit(depth, f'{node_id}[["{label}"]]')
        else:
            self.emit(depth, f'{node_id}["{label}"]')

    def edges(self, scope: _Scope, name: str, state: Mapping[str, Any], depth: int) -> None:
        node_id = scope.state_ids[name]
        if "Next" in state:
            self.emit(depth, f"{node_id} --> {self.target(scope, name, 'Next', state['Next'])}")
        for rule in state.get("Choices", []):
            to = self.target(scope, name, "Choices[].Next", rule.get("Next"))
            condition = mermaid_text(_shorten(describe_rule(rule)))
            self.emit(depth, f'{node_id} -->|"{condition}"| {to}')
        if "Default" in state:
            to = self.target(scope, name, "Default", state["Default"])
            self.emit(depth, f'{node_id} -->|"default"| {to}')
        for catcher in state.get("Catch", []):
            to = self.target(scope, name, "Catch[].Next", catcher.get("Next"))
            errors = mermaid_text(", ".join(str(e) for e in catcher.get("ErrorEquals", [])))
            self.emit(depth, f'{node_id} -. "{errors}" .-> {to}')
        if state.get("End") is True or state.get("Type") in ("Succeed", "Fail"):
            self.emit(depth, f"{node_id} --> {scope.end_id}")


def render_flowchart(definition: Mapping[str, Any], source: str = "definition") -> str:
    """A Mermaid ``flowchart TD`` for one Amazon States Language definition."""
    diagram = _Diagram(source)
    top = diagram.scope(
        definition, "the state machine", diagram.ids.allocate("START"), diagram.ids.allocate("END")
    )
    diagram.draw(top, 1)
    return "\n".join(diagram.lines)


def workflow_name(path: Path) -> str:
    name = path.name
    return name[: -len(ASL_SUFFIX)] if name.endswith(ASL_SUFFIX) else path.stem


def render_workflows(root: Path) -> str:
    """The Markdown for the workflows region."""
    files = sorted((root / STATEMACHINES).glob(f"*{ASL_SUFFIX}"))
    if not files:
        return "_No state machines are defined._"
    sections = []
    for path in files:
        source = path.relative_to(root).as_posix()
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise AslError(f"{source}: not valid JSON: {error}") from error
        chart = render_flowchart(definition, source)
        sections.append(f"### {workflow_name(path)}\n\n```mermaid\n{chart}\n```")
    return "\n\n".join(sections)


# --------------------------------------------------------------------------------------
# The pages' regions
# --------------------------------------------------------------------------------------


class RegionError(ValueError):
    """No page, or more than one, holds a region; or its markers are not a well-formed pair."""


def markers(region: str) -> tuple[str, str]:
    return f"<!-- {region}:start -->", f"<!-- {region}:end -->"


def pages(root: Path) -> list[Path]:
    """The pages that may hold a generated region: README.md, then docs/*.md."""
    return [root / README, *sorted((root / DOCS).glob("*.md"))]


def locate(texts: Mapping[Path, str], region: str) -> Path:
    """The one page whose text holds the region's markers."""
    start_marker, end_marker = markers(region)
    holders = [path for path, text in texts.items() if start_marker in text or end_marker in text]
    if not holders:
        raise RegionError(
            f"{README} or a page of {DOCS}/ must contain {start_marker} and {end_marker}"
        )
    if len(holders) > 1:
        names = ", ".join(str(path) for path in holders)
        raise RegionError(f"region '{region}' is in more than one page: {names}")
    return holders[0]


def _span(text: str, region: str, page: str = README) -> tuple[int, int]:
    """Offsets of the text between a region's markers."""
    start_marker, end_marker = markers(region)
    if text.count(start_marker) != 1 or text.count(end_marker) != 1:
        raise RegionError(f"{page} must contain {start_marker} and {end_marker} exactly once each")
    begin = text.index(start_marker) + len(start_marker)
    finish = text.index(end_marker)
    if finish < begin:
        raise RegionError(f"{page}: {end_marker} comes before {start_marker}")
    return begin, finish


def current_region(text: str, region: str) -> str:
    begin, finish = _span(text, region)
    return text[begin:finish]


def replace_region(text: str, region: str, body: str, page: str = README) -> str:
    """text with the region's content replaced by body (on lines of its own)."""
    begin, finish = _span(text, region, page)
    return f"{text[:begin]}\n{body}\n{text[finish:]}"


def generators(root: Path) -> dict[str, Callable[[], str]]:
    def parameters() -> str:
        template = load_template((root / TEMPLATE).read_text(encoding="utf-8"))
        return render_parameters(template)

    return {"parameters": parameters, "workflows": lambda: render_workflows(root)}


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as handle:
        return handle.read()


def _write(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def regenerate(root: Path) -> tuple[dict[Path, str], list[tuple[Path, str]]]:
    """Every page's text with every region regenerated, and the (page, region) pairs that
    changed."""
    texts = {path: _read(path) for path in pages(root)}
    stale: list[tuple[Path, str]] = []
    for region, generate in generators(root).items():
        path = locate(texts, region)
        updated = replace_region(texts[path], region, generate(), str(path))
        if updated != texts[path]:
            stale.append((path, region))
            texts[path] = updated
    return texts, stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate the parameters table (docs/parameters.md) and the workflow "
        "diagrams (docs/workflows.md)."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if a generated region of a page is stale",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO_ROOT,
        help="repository root holding README.md, docs/, template.yaml and statemachines/ "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        texts, stale = regenerate(root)
    except (OSError, yaml.YAMLError, ValueError) as error:
        print(f"readme: error: {error}", file=sys.stderr)
        return 2
    if args.check:
        for path, region in stale:
            start_marker, end_marker = markers(region)
            print(
                f"{path}: region '{region}' ({start_marker} ... {end_marker}) is stale; "
                "run `python tools/readme.py` and commit the result",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in dict.fromkeys(path for path, _ in stale):
        _write(path, texts[path])
        regions = ", ".join(region for page, region in stale if page == path)
        print(f"{path}: regenerated {regions}")
    if not stale:
        print("the generated regions are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
