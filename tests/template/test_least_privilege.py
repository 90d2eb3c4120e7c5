"""Least privilege, read from the translated template: what every role may do, and to what."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dcvfleet.adapters import READER_TAG
from dcvfleet.config import FLEET_TAG_KEY
from tests.template.test_template import TEMPLATE, translated

#: Verbs that read and change nothing.
READ_ONLY = ("Describe", "List", "Get", "BatchGet")
#: State-changing actions allowed on "*", each because its service has no resource-level
#: permissions for it (Service Authorization Reference).
UNSCOPABLE = {
    # Step Functions' log delivery to CloudWatch Logs (vended logs)
    "logs:CreateLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:PutResourcePolicy",
}
#: Services whose state-changing actions must be conditioned on the fleet's tag.
FLEET_SCOPED = ("ec2:", "batch:", "secretsmanager:")
FLEET_CONDITION_KEYS = {
    f"aws:ResourceTag/{FLEET_TAG_KEY}",
    f"aws:RequestTag/{FLEET_TAG_KEY}",
    f"ssm:resourceTag/{FLEET_TAG_KEY}",
}
#: RunInstances also names what the instance is made from and put in; those carry no tag of
#: the fleet (the instance and its volumes, which do, are conditioned on aws:RequestTag).
LAUNCH_INPUTS = ("network-interface/*", "subnet/*", "security-group/*", "launch-template/*")


def _statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, res in translated()["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            for item in statements if isinstance(statements, list) else [statements]:
                statement = item["Fn::If"][1] if "Fn::If" in item else item
                if isinstance(statement, dict) and statement.get("Effect") == "Allow":
                    yield name, statement


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def _changes_state(action: str) -> bool:
    return not action.split(":", 1)[1].startswith(READ_ONLY)


def _arn_text(resource: Any) -> str:
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return str(resource)


def test_the_roles_are_read_and_there_are_many() -> None:
    roles = {name for name, _ in _statements()}
    assert len(roles) >= 20, roles
    assert {"HostRole", "DesktopJobRole", "ApiFunctionRole", "ProvisionStateMachineRole"} <= roles


def test_no_state_changing_action_is_allowed_on_every_resource() -> None:
    offending = [
        f"{role}: {action}"
        for role, statement in _statements()
        if "*" in _resources(statement)
        for action in _actions(statement)
        if _changes_state(action) and action not in UNSCOPABLE
    ]
    assert offending == []


def test_no_action_is_a_wildcard() -> None:
    assert [
        (role, action) for role, s in _statements() for action in _actions(s) if "*" in action
    ] == []


def test_ec2_batch_and_secrets_changes_are_conditioned_on_the_fleet_tag() -> None:
    unconditioned = []
    for role, statement in _statements():
        changing = [
            a for a in _actions(statement) if a.startswith(FLEET_SCOPED) and _changes_state(a)
        ]
        if not changing:
            continue
        keys = {key for test in statement.get("Condition", {}).values() for key in test}
        if keys & FLEET_CONDITION_KEYS:
            continue
        if changing == ["ec2:CreateTags"] and keys == {"ec2:CreateAction"}:
            continue  # tags only as part of a RunInstances that is itself conditioned
        if changing == ["ec2:RunInstances"] and all(
            _arn_text(r).endswith(LAUNCH_INPUTS) or _arn_text(r).endswith("::image/*")
            for r in _resources(statement)
        ):
            continue
        unconditioned.append(f"{role}: {changing}")
    assert unconditioned == []


def test_no_condition_key_hides_an_unsubstituted_parameter() -> None:
    # CloudFormation substitutes values, never map keys: "aws:ResourceTag/${Key}" would reach IAM
    # as written and match nothing.
    for name, res in TEMPLATE["Resources"].items():
        for key in _condition_keys(res):
            assert "${" not in key, f"{name}: condition key {key}"


def _condition_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Condition" and isinstance(value, dict):
                for test in value.values():
                    if isinstance(test, dict):
                        yield from test
            yield from _condition_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _condition_keys(item)


@pytest.mark.parametrize("role", ["HostRole", "DesktopJobRole"])
def test_a_host_or_container_reads_only_its_own_sessions_secret(role: str) -> None:
    reads = [
        s
        for name, s in _statements()
        if name == role and "secretsmanager:GetSecretValue" in _actions(s)
    ]
    assert len(reads) == 1
    assert reads[0]["Condition"] == {
        "StringEquals": {f"secretsmanager:ResourceTag/{READER_TAG}": "${aws:userid}"}
    }


@pytest.mark.parametrize("role", ["HostRole", "DesktopJobRole"])
def test_a_host_or_container_puts_events_only_as_the_agent_on_the_fleet_bus(role: str) -> None:
    puts = [s for name, s in _statements() if name == role and "events:PutEvents" in _actions(s)]
    assert len(puts) == 1
    assert puts[0]["Resource"] == {"Fn::GetAtt": ["FleetBus", "Arn"]}
    assert puts[0]["Condition"] == {"StringEquals": {"events:source": "dcvfleet.agent"}}
    others = [a for name, s in _statements() if name == role for a in _actions(s)]
    assert not [a for a in others if a.startswith(("ec2:", "batch:", "states:", "dynamodb:"))]
