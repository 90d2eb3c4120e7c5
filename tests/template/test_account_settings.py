"""Account-level settings the stack needs, read from the translated template.

A new account has no API Gateway CloudWatch Logs role, and a stage that logs cannot be created
without it ("CloudWatch Logs role ARN must be set in account settings to enable logging"):
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
The emulator has no such account setting, so this test stands in for AWS: every stage that logs
must be created after the stack's ``AWS::ApiGateway::Account`` when the stack sets it, and must
still be created when it does not (``make preflight`` then checks the account's own role).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.template import TEMPLATE, translated

SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def _references(node: Any) -> Iterator[str]:
    """Logical ids a resource refers to anywhere (properties and metadata), which CloudFormation
    creates first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value[0] if isinstance(value, list) else value.split(".")[0]
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                yield from SUB_NAME.findall(text)
                if isinstance(value, list):
                    yield from _references(value[1])
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _explicit(res: dict[str, Any]) -> list[str]:
    depends = res.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def _created_before(resources: dict[str, Any], start: str) -> dict[str, list[str]]:
    """Every resource ``start`` waits for, with the chain that makes it wait."""
    chains: dict[str, list[str]] = {}
    todo = [(start, [start])]
    while todo:
        name, chain = todo.pop()
        res = resources[name]
        for dep in [*_explicit(res), *_references(res)]:
            if dep in resources and dep not in chains:
                chains[dep] = [*chain, dep]
                todo.append((dep, chains[dep]))
    return chains


def _logging_stages(resources: dict[str, Any]) -> list[str]:
    return [
        name
        for name, res in resources.items()
        if res["Type"] == "AWS::ApiGateway::Stage"
        and (
            "AccessLogSetting" in res["Properties"]
            or any(
                "LoggingLevel" in s or s.get("DataTraceEnabled")
                for s in res["Properties"].get("MethodSettings", [])
            )
        )
    ]


def account_role_problems(resources: dict[str, Any]) -> list[str]:
    problems = []
    for stage in _logging_stages(resources):
        before = _created_before(resources, stage)
        accounts = [n for n in before if resources[n]["Type"] == "AWS::ApiGateway::Account"]
        if not accounts:
            problems.append(f"{stage} logs, but is not created after an AWS::ApiGateway::Account")
        for name in accounts:
            # A conditional resource reached through an explicit DependsOn would skip the stage
            # whenever its condition is false.
            chain = before[name]
            for waiting, waited in itertools.pairwise(chain):
                if waited in _explicit(resources[waiting]) and "Condition" in resources[waited]:
                    problems.append(
                        f"{waiting} DependsOn {waited}, which has a condition: with it false, "
                        f"{stage} would not be created at all"
                    )
    return problems


def test_a_stage_that_logs_waits_for_the_account_role_the_stack_sets() -> None:
    resources = translated()["Resources"]
    assert _logging_stages(resources), "the API's stage keeps access logs"
    assert account_role_problems(resources) == []


def test_the_account_role_is_the_stacks_by_default_and_outlives_it() -> None:
    param = TEMPLATE["Parameters"]["ApiGatewayAccountRole"]
    assert param["Default"] == "create"
    assert param["AllowedValues"] == ["create", "keep"]
    for name in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        res = TEMPLATE["Resources"][name]
        assert res["Condition"] == "CreateApiGatewayAccount"
        # other APIs of the account may log through it after the stack is gone
        assert res["DeletionPolicy"] == res["UpdateReplacePolicy"] == "Retain"
    trust = TEMPLATE["Resources"]["ApiGatewayCloudWatchRole"]["Properties"]
    statement = trust["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}


STAGE = {
    "Type": "AWS::ApiGateway::Stage",
    "Properties": {"RestApiId": {"Ref": "Rest"}, "AccessLogSetting": {"DestinationArn": "x"}},
}
ACCOUNT = {
    "Type": "AWS::ApiGateway::Account",
    "Condition": "Create",
    "Properties": {"CloudWatchRoleArn": "arn"},
}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        # the template as it was: access logs and no account role
        ({"Rest": {"Type": "AWS::ApiGateway::RestApi"}, "Stage": STAGE}, "is not created after"),
        # the account created, but the API not waiting for it
        (
            {"Rest": {"Type": "AWS::ApiGateway::RestApi"}, "Stage": STAGE, "Account": ACCOUNT},
            "is not created after",
        ),
        # the API waiting on the conditional account itself
        (
            {
                "Rest": {"Type": "AWS::ApiGateway::RestApi", "DependsOn": "Account"},
                "Stage": STAGE,
                "Account": ACCOUNT,
            },
            "would not be created at all",
        ),
    ],
    ids=["no-account", "not-waiting", "conditional-depends-on"],
)
def test_the_guard_refuses_a_stage_that_could_not_be_created(
    resources: dict[str, Any], expected: str
) -> None:
    problems = account_role_problems(resources)
    assert problems
    assert expected in problems[0]
