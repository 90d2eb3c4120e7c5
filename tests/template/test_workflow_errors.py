"""Every error a workflow reports is one of DCV Fleet's, never a name Step Functions reserves.

"States can report errors with other names. However, these error names can't begin with the
``States.`` prefix" (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
a Fail state whose ``ErrorPath`` yields ``States.Timeout`` fails the execution with
``States.Runtime`` instead. moto's interpreter reports the reserved name as given
(``SFN_FAIL_RESERVED_ERROR`` in local/emulator/registry.py), so these checks read the ASL itself: what
each Fail state's ``Error`` says, what its ``ErrorPath`` can yield (traced to the state that
wrote it), and every error object a Pass state builds.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from dcvfleet.errors import all_error_classes

ROOT = Path(__file__).resolve().parents[2]
ASL_FILES = sorted((ROOT / "statemachines").glob("*.asl.json"))
NAMES = {c.__name__ for c in all_error_classes()}
#: Tasks whose result carries the error an execution fails with. Their handlers name it with
#: ``dcvfleet.errors.workflow_error`` (so a class here, whatever was caught): shown by
#: tests/unit/test_service.py (compensate) and tests/unit/test_lifecycle.py (recover).
NAMED_BY_CODE = {
    ("provision_session.asl.json", "Compensate"),
    ("idle_session.asl.json", "Recover"),
}


def _scopes(definition: dict[str, Any]) -> list[dict[str, dict[str, Any]]]:
    """The states of the workflow, and of each Map's iteration (a scope of its own data)."""
    found = [definition["States"]]
    for state in definition["States"].values():
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found += _scopes(processor)
    return found


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for scope in _scopes(definition) for name, state in scope.items()}


def _under(path: str, slot: str) -> str | None:
    """The rest of ``path`` below ``slot`` ("" for the slot itself), or None if not below it."""
    if path == slot:
        return ""
    if path.startswith(slot + "."):
        return path[len(slot) + 1 :]
    return None


def _literal(body: Any, rest: str) -> tuple[bool, Any]:
    """(True, value) when ``rest`` names a literal in a Pass's Parameters or Result."""
    node = body
    for part in rest.split("."):
        if not isinstance(node, dict):
            return False, None
        if part in node:
            node = node[part]
        else:
            return False, None  # absent, or computed ("<part>.$")
    return True, node


def what_error_path_yields(
    workflow: str, states: dict[str, dict[str, Any]], path: str
) -> list[str]:
    """Problems with what ``path`` can hold when a Fail state reads it: one per writer of it."""
    problems: list[str] = []
    for name, state in states.items():
        for catcher in state.get("Catch", []):
            rest = _under(path, str(catcher.get("ResultPath", "$")))
            if rest is None or catcher.get("ResultPath") is None:
                continue
            caught = set(catcher["ErrorEquals"])
            if any(e.startswith("States.") for e in caught) or not caught <= NAMES:
                problems.append(
                    f"{path} holds what {name}'s Catch caught ({sorted(caught)}): any error "
                    "name, States.* included"
                )
        result_path = state.get("ResultPath", "$")
        rest = None if result_path is None else _under(path, result_path)
        if rest is None or state["Type"] in ("Choice", "Wait", "Succeed", "Fail"):
            continue
        if state["Type"] == "Pass":
            known, value = _literal(state.get("Parameters", state.get("Result")), rest)
            if not known or value not in NAMES:
                problems.append(f"{path} holds {value!r} from {name}, not an error class in code")
        elif state["Type"] == "Task":
            selected = state.get("ResultSelector", {}).get(f"{rest}.$", "")
            if (workflow, name) not in NAMED_BY_CODE or not selected.startswith("$.Payload."):
                problems.append(f"{path} holds {name}'s result, which no code names")
        else:
            problems.append(f"{path} holds a {state['Type']} state's result ({name})")
    return problems


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_fail_state_reports_an_error_class_in_code(path: Path) -> None:
    problems = []
    scopes = _scopes(json.loads(path.read_text()))
    for states, (name, state) in ((s, item) for s in scopes for item in s.items()):
        if state["Type"] != "Fail":
            continue
        if "Error" in state and state["Error"] not in NAMES:
            problems.append(f"{name}: Error {state['Error']} has no class in dcvfleet.errors")
        if "ErrorPath" in state:
            found = what_error_path_yields(path.name, states, state["ErrorPath"])
            problems += [f"{name}: {p}" for p in found]
        if "Error" not in state and "ErrorPath" not in state:
            problems.append(f"{name}: names no error")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_error_a_pass_state_builds_is_a_class_in_code(path: Path) -> None:
    for name, state in _states(json.loads(path.read_text())).items():
        body = state.get("Parameters", state.get("Result"))
        if state["Type"] == "Pass" and isinstance(body, dict) and "Error" in body:
            assert body["Error"] in NAMES, (
                f"{name}: {body['Error']} has no class in dcvfleet.errors"
            )
            assert not str(body["Error"]).startswith("States.")


def test_no_class_in_code_takes_a_reserved_name() -> None:
    assert not [n for n in NAMES if n.startswith("States")]


def test_task_failures_are_sent_only_with_an_error_class() -> None:
    # SendTaskFailure (a Catch sees its error) is called in one place, which takes a DcvFleetError
    calls = []
    for source in (ROOT / "functions").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "send_task_failure":
                calls.append(source.relative_to(ROOT).as_posix())
    assert calls == ["functions/dcvfleet/adapters.py"]
    from dcvfleet.adapters import Workflows
    from dcvfleet.errors import JobFailedError

    class Sfn:
        def __init__(self) -> None:
            self.sent: list[dict[str, str]] = []

        def send_task_failure(self, **params: str) -> None:
            self.sent.append(params)

    sfn = Sfn()
    assert Workflows(sfn).fail("token-1", JobFailedError("its job no longer exists"))
    assert sfn.sent == [
        {"taskToken": "token-1", "error": "JobFailedError", "cause": "its job no longer exists"}
    ]
