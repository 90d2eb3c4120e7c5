"""One workflow state, one handler: every Lambda task of a workflow invokes a function of its own
whose handler does that step, never a function that dispatches on a field of its input. Two
states share a function only when they are the same step (Verify and Reverify, NotIdle and
Cancelled): the same input fields. Read from template.yaml and the ASL files."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tools import workflow_quotas as quotas

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = quotas.load_template(ROOT)
WORKFLOWS = quotas.state_machines(TEMPLATE)


def lambda_tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Lambda task (by its FunctionName) of ``states``, nested ones included."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        if "FunctionName" in (state.get("Parameters") or {}):
            found[name] = state
        for branch in state.get("Branches", []):
            found.update(lambda_tasks(branch["States"]))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found.update(lambda_tasks(state[key]["States"]))
    return found


def function_of(props: dict[str, Any], placeholder: str) -> str:
    """The function resource a ``${...FunctionArn}`` placeholder names."""
    value = props["DefinitionSubstitutions"][placeholder.strip("${}")]
    if "Ref" in value:  # a SnapStart function's alias: !Ref <Function>.Alias
        return str(value["Ref"]).removesuffix(".Alias")
    resource: str = value["Fn::GetAtt"][0]
    return resource


def steps_by_function(workflow: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """Function resource -> {state -> the fields of the input it gets}."""
    props = WORKFLOWS[workflow]
    definition = json.loads((ROOT / props["DefinitionUri"]).read_text())
    found: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for name, state in lambda_tasks(definition["States"]).items():
        parameters = state["Parameters"]
        fields = tuple(sorted(k.removesuffix(".$") for k in parameters.get("Payload") or {}))
        found[function_of(props, parameters["FunctionName"])][name] = fields
    return found


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS))
def test_every_state_invokes_a_function_of_its_own_step(workflow: str) -> None:
    functions = steps_by_function(workflow)
    assert functions, f"{workflow} invokes no function"
    for function, states in functions.items():
        # one step: every state that invokes it hands it the same fields, and none names a step
        assert len(set(states.values())) == 1, f"{function} serves different steps: {states}"
        assert all("step" not in fields for fields in states.values()), (function, states)


def test_no_two_functions_share_a_handler() -> None:
    handlers: dict[str, list[str]] = defaultdict(list)
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function" and "Handler" in resource["Properties"]:
            # a custom resource's entry point answers CloudFormation for the handler it names
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            handler = variables.get("CUSTOM_RESOURCE_HANDLER", resource["Properties"]["Handler"])
            handlers[handler].append(name)
    shared = {h: names for h, names in handlers.items() if len(names) > 1}
    assert shared == {}
