"""SnapStart on the functions of the pooled path (an ec2 desktop's, a warm pool hit's included),
held to the rules AWS documents for it, read from the template as the SAM translator makes it.

The rules (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html, "Supported features and
limitations"): SnapStart takes the Java 11+, Python 3.12+ and .NET 8+ managed runtimes, not
OS-only runtimes nor container images; it does not support provisioned concurrency, Amazon EFS,
or ephemeral storage over 512 MB; and it applies only to published versions and the aliases
that point at them, never to $LATEST. So a function with SnapStart must be invoked through its
alias: the workflow's substitution names the alias (SAM's ``<Function>Alias<Name>``, made by
``AutoPublishAlias``: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-resource-function.html#sam-function-autopublishalias),
and the workflow's role may invoke that alias's ARN
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html). The tests at the
end run the check on functions made to break each rule.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from bench import coldstart
from tests.support.template import translated

#: The managed runtimes SnapStart takes, and the first version of each it takes.
SNAPSTART_RUNTIMES = {"python": (3, 12), "java": (11,), "dotnet": (8,)}
MAX_EPHEMERAL_MB = 512


def runtime_problem(runtime: str) -> str | None:
    found = re.fullmatch(r"(python|java|dotnet)(\d+(?:\.\d+)?)", runtime)
    if found is None:
        return f"runtime {runtime}: not a managed runtime SnapStart takes"
    version = tuple(int(part) for part in found[2].split("."))
    least = SNAPSTART_RUNTIMES[found[1]]
    if version < least:
        return f"runtime {runtime}: SnapStart takes {found[1]} {'.'.join(map(str, least))}+"
    return None


def snapstart_problems(function: dict[str, Any], aliases: list[dict[str, Any]]) -> list[str]:
    """What keeps SnapStart from applying to a translated AWS::Lambda::Function (and its
    aliases); [] when it applies."""
    props = function["Properties"]
    problems = []
    if props.get("PackageType") == "Image":
        problems.append("a container image: SnapStart takes only managed runtimes")
    else:
        problem = runtime_problem(str(props.get("Runtime", "")))
        if problem:
            problems.append(problem)
    if props.get("FileSystemConfigs"):
        problems.append("Amazon EFS (FileSystemConfigs): not supported with SnapStart")
    size = int(props.get("EphemeralStorage", {}).get("Size", 512))
    if size > MAX_EPHEMERAL_MB:
        problems.append(f"ephemeral storage {size} MB: SnapStart takes at most 512 MB")
    if not aliases:
        problems.append("no alias: SnapStart applies only to published versions and their aliases")
    for alias in aliases:
        if "ProvisionedConcurrencyConfig" in alias["Properties"]:
            problems.append("provisioned concurrency on its alias: not supported with SnapStart")
    return problems


RESOURCES: dict[str, Any] = translated()["Resources"]


def snapstart_functions(resources: dict[str, Any]) -> list[str]:
    return [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and resource["Properties"].get("SnapStart", {}).get("ApplyOn") == "PublishedVersions"
    ]


def aliases_of(resources: dict[str, Any], function: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Alias"
        and resource["Properties"]["FunctionName"] == {"Ref": function}
    }


def test_the_pooled_paths_functions_have_snapstart() -> None:
    path = coldstart.provisioning_path(coldstart.ROOT)
    assert path  # the path is read from the workflow
    assert sorted(set(path) - set(snapstart_functions(RESOURCES))) == []


@pytest.mark.parametrize("function", snapstart_functions(RESOURCES))
def test_each_snapstart_function_keeps_the_documented_limits(function: str) -> None:
    aliases = list(aliases_of(RESOURCES, function).values())
    assert snapstart_problems(RESOURCES[function], aliases) == []


def invokers_of(resources: dict[str, Any], function: str) -> dict[str, Any]:
    """Every resource but the function's own version and alias, by logical id."""
    return {
        name: resource
        for name, resource in resources.items()
        if name != function
        and not (
            resource["Type"] in ("AWS::Lambda::Version", "AWS::Lambda::Alias")
            and resource["Properties"]["FunctionName"] == {"Ref": function}
        )
    }


@pytest.mark.parametrize("function", snapstart_functions(RESOURCES))
def test_a_snapstart_function_is_invoked_only_through_its_alias(function: str) -> None:
    (alias,) = aliases_of(RESOURCES, function)
    others = json.dumps(invokers_of(RESOURCES, function))
    # nothing names the unqualified function ($LATEST, which SnapStart does not cover): no
    # workflow substitution, rule target, permission or invoke policy by its ARN or its name
    assert json.dumps({"Fn::GetAtt": [function, "Arn"]}) not in others
    assert json.dumps({"Ref": function}) not in others
    # and something invokes its alias: a workflow (whose role may invoke it) or a rule
    workflow = RESOURCES["ProvisionStateMachine"]["Properties"]
    if workflow["DefinitionSubstitutions"].get(f"{function}Arn") is not None:
        assert workflow["DefinitionSubstitutions"][f"{function}Arn"] == {"Ref": alias}
        role = RESOURCES["ProvisionStateMachineRole"]["Properties"]["Policies"]
        invokable = [
            resource
            for policy in role
            for statement in policy["PolicyDocument"]["Statement"]
            if "lambda:InvokeFunction" in json.dumps(statement["Action"])
            for resource in (
                statement["Resource"]
                if isinstance(statement["Resource"], list)
                else [statement["Resource"]]
            )
        ]
        assert {"Ref": alias} in invokable
    else:
        targets = [
            target["Arn"]
            for resource in RESOURCES.values()
            if resource["Type"] == "AWS::Events::Rule"
            for target in resource["Properties"].get("Targets", [])
        ]
        assert {"Ref": alias} in targets


# -- the check itself, on functions made to break each rule --------------------------------------
def _broken(change: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    function = copy.deepcopy(RESOURCES["LaunchInstanceFunction"])
    aliases = copy.deepcopy(list(aliases_of(RESOURCES, "LaunchInstanceFunction").values()))
    props = function["Properties"]
    if change == "python3.11":
        props["Runtime"] = "python3.11"
    elif change == "os-only runtime":
        props["Runtime"] = "provided.al2023"
    elif change == "container image":
        props["PackageType"] = "Image"
    elif change == "efs":
        props["FileSystemConfigs"] = [
            {"Arn": "arn:aws:elasticfilesystem:x", "LocalMountPath": "/mnt/x"}
        ]
    elif change == "ephemeral storage":
        props["EphemeralStorage"] = {"Size": 1024}
    elif change == "provisioned concurrency":
        aliases[0]["Properties"]["ProvisionedConcurrencyConfig"] = {
            "ProvisionedConcurrentExecutions": 1
        }
    elif change == "no alias":
        aliases = []
    return function, aliases


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("python3.11", "SnapStart takes python 3.12+"),
        ("os-only runtime", "not a managed runtime"),
        ("container image", "a container image"),
        ("efs", "Amazon EFS"),
        ("ephemeral storage", "at most 512 MB"),
        ("provisioned concurrency", "provisioned concurrency"),
        ("no alias", "only to published versions"),
    ],
)
def test_the_check_refuses_a_function_that_breaks_a_documented_rule(
    change: str, reason: str
) -> None:
    function, aliases = _broken(change)
    problems = snapstart_problems(function, aliases)
    assert any(reason in problem for problem in problems), problems


def test_the_check_accepts_the_later_python_runtimes() -> None:
    assert runtime_problem("python3.12") is None
    assert runtime_problem("python3.13") is None
