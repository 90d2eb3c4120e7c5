"""LAMBDA_RUNTIME: moto runs Lambda code only in Docker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.support.emulator import (
    ACCOUNT,
    REGION,
    ROLE_ARN,
    Installer,
    aws_client,
    create_handler_function,
    create_probe_function,
    create_role,
    create_stack,
    stack_resources,
)


# ==============================================================================================
# LAMBDA_RUNTIME
def test_gap_lambda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP LAMBDA_RUNTIME: moto runs a function's code only in Docker; without it, never.

    Without Docker moto echoes the event back (the handler never runs); with Docker configured
    but unreachable the invocation errors. When this fails, moto has changed: drop the
    workaround in local/emulator/lambda_runtime.py (``LAMBDA_RUNTIME``).
    """
    with mock_aws(config={"lambda": {"use_docker": False}}):
        create_probe_function("probe")
        response = aws_client("lambda").invoke(FunctionName="probe", Payload=json.dumps({"x": 1}))
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == {"x": 1}

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with mock_aws():
        create_probe_function("probe")
        response = aws_client("lambda").invoke(FunctionName="probe", Payload=b"{}")
        assert response["FunctionError"] == "Handled"
        assert response["Payload"].read().startswith(b"error running docker")


def test_workaround_lambda_runtime(install: Installer, handlers: Path) -> None:
    """LAMBDA_RUNTIME's install runs the handler in-process, with the function's own
    environment (not leaking into the process) and its log lines in ``/aws/lambda/<name>``."""
    install("LAMBDA_RUNTIME")
    with mock_aws():
        create_handler_function(
            "probe",
            "gap_probe_handler.handler",
            Environment={"Variables": {"GREETING": "hello"}},
        )
        response = aws_client("lambda").invoke(FunctionName="probe", Payload='{"x": 1}')
        logs = aws_client("logs").filter_log_events(logGroupName="/aws/lambda/probe")["events"]
        assert response.get("FunctionError") is None
        assert json.loads(response["Payload"].read()) == {"event": {"x": 1}, "greeting": "hello"}
    assert [e["message"] for e in logs] == ["probe ran for probe"]
    assert "GREETING" not in os.environ


# ==============================================================================================
# LAMBDA_VERSIONS_FROM_CLOUDFORMATION
#: A function, a published version of it and an alias of that version, as SAM's AutoPublishAlias
#: makes them (``<Function>Version<hash>``, ``<Function>Alias<Name>``).
PUBLISHED_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Probe": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "probe",
                "Runtime": "python3.13",
                "Handler": "gap_probe_handler.handler",
                "Role": ROLE_ARN,
                "Code": {"ZipFile": "in-process: the handler is imported"},
                "SnapStart": {"ApplyOn": "PublishedVersions"},
                "Environment": {"Variables": {"GREETING": "published"}},
            },
        },
        "ProbeVersion0123456789": {
            "Type": "AWS::Lambda::Version",
            "Properties": {"FunctionName": {"Ref": "Probe"}},
        },
        "ProbeAliaslive": {
            "Type": "AWS::Lambda::Alias",
            "Properties": {
                "Name": "live",
                "FunctionName": {"Ref": "Probe"},
                "FunctionVersion": {"Fn::GetAtt": ["ProbeVersion0123456789", "Version"]},
            },
        },
    },
    "Outputs": {
        "Alias": {"Value": {"Ref": "ProbeAliaslive"}},
        "Version": {"Value": {"Ref": "ProbeVersion0123456789"}},
    },
}
ALIAS_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:probe:live"


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_gap_lambda_versions_from_cloudformation() -> None:
    """GAP LAMBDA_VERSIONS_FROM_CLOUDFORMATION: moto's CloudFormation makes no alias (its Ref, an
    output here, is left out) and gives a version no physical id (its Ref is its logical id).
    When this fails, moto has changed: drop ``version_and_alias_models`` in
    local/emulator/lambda_runtime.py."""
    with mock_aws():
        create_role()
        stack = create_stack("probe", PUBLISHED_TEMPLATE)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        listed = {r.get("LogicalResourceId"): r for r in stack_resources("probe")}
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert outputs == {"Version": "ProbeVersion0123456789"}
        assert "PhysicalResourceId" not in listed["ProbeVersion0123456789"]
        assert "ProbeAliaslive" not in listed
        assert aws_client("lambda").list_aliases(FunctionName="probe")["Aliases"] == []


def test_workaround_lambda_versions_from_cloudformation(install: Installer, handlers: Path) -> None:
    """The version is published and the alias made as CloudFormation makes them (each Ref its
    ARN), and invoking the alias's ARN runs the published version."""
    install("LAMBDA_RUNTIME", "LAMBDA_VERSIONS_FROM_CLOUDFORMATION")
    with mock_aws():
        create_role()
        stack = create_stack("probe", PUBLISHED_TEMPLATE)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        listed = {r.get("LogicalResourceId"): r for r in stack_resources("probe")}
        response = aws_client("lambda").invoke(FunctionName=ALIAS_ARN, Payload=b'{"x": 1}')
        response["Payload"] = response["Payload"].read()
        (alias,) = aws_client("lambda").list_aliases(FunctionName="probe")["Aliases"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs == {"Alias": ALIAS_ARN, "Version": ALIAS_ARN.replace(":live", ":1")}
    assert listed["ProbeAliaslive"]["PhysicalResourceId"] == ALIAS_ARN
    assert (alias["Name"], alias["FunctionVersion"]) == ("live", "1")
    assert response.get("FunctionError") is None, response
    assert json.loads(response["Payload"]) == {"event": {"x": 1}, "greeting": "published"}
