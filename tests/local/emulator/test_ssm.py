"""Systems Manager's gaps: PUBLIC_PARAMETERS, SSM_DOCUMENT_FROM_CLOUDFORMATION, SSM_RUN_COMMAND."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator.hooks import ManagedNode
from local.emulator.ssm import (
    document_from_cloudformation,
    seed_public_parameter,
)
from tests.support.emulator import (
    ACCOUNT,
    GPU_AMI_PARAMETER,
    REGION,
    Installer,
    aws_client,
    create_stack,
    stack_outputs,
)

# ==============================================================================================
# PUBLIC_PARAMETERS
AMI_TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "GpuAmiId": {
            "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            "Default": GPU_AMI_PARAMETER,
        }
    },
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {"GpuAmiId": {"Value": {"Ref": "GpuAmiId"}}},
}


def test_gap_public_parameters() -> None:
    """GAP PUBLIC_PARAMETERS: AWS's public ``/aws/service/...`` parameter for the GPU AMI is
    missing (a few others exist) and its name is reserved, so it cannot be put either. When this
    fails, moto has changed: drop ``seed_public_parameter`` in local/emulator/ssm.py."""
    with mock_aws():
        ssm = aws_client("ssm")
        assert ssm.get_parameter(
            Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
        )["Parameter"]["Value"].startswith("ami-")
        with pytest.raises(ClientError) as missing:
            ssm.get_parameter(Name=GPU_AMI_PARAMETER)
        assert missing.value.response["Error"]["Code"] == "ParameterNotFound"
        with pytest.raises(ClientError) as reserved:
            ssm.put_parameter(Name=GPU_AMI_PARAMETER, Value="ami-12345678", Type="String")
        assert reserved.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "reserved parameter name" in reserved.value.response["Error"]["Message"]


def test_workaround_public_parameters() -> None:
    """``seed_public_parameter`` adds the public parameter (once), so a template parameter of
    type ``AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>`` defaulting to it resolves."""
    with mock_aws():
        seed_public_parameter(ACCOUNT, REGION, GPU_AMI_PARAMETER, "ami-0123456789abcdef0")
        seed_public_parameter(ACCOUNT, REGION, GPU_AMI_PARAMETER, "ami-ffffffffffffffff0")
        parameter = aws_client("ssm").get_parameter(Name=GPU_AMI_PARAMETER)["Parameter"]
        assert parameter["Value"] == "ami-0123456789abcdef0"
        assert parameter["Version"] == 1
        assert parameter["DataType"] == "aws:ec2:image"
        stack = create_stack("probe", AMI_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert stack_outputs(stack) == {"GpuAmiId": "ami-0123456789abcdef0"}


# -- SSM_DOCUMENT_FROM_CLOUDFORMATION ----------------------------------------------------------
COMMAND_CONTENT: dict[str, Any] = {
    "schemaVersion": "2.2",
    "description": "probe",
    "parameters": {
        "greeting": {"type": "String", "allowedPattern": "^[a-z]{1,10}$"},
    },
    "mainSteps": [
        {
            "action": "aws:runShellScript",
            "name": "linux",
            "precondition": {"StringEquals": ["platformType", "Linux"]},
            "inputs": {"runCommand": ["touch ran", "echo hello {{ greeting }}"]},
        },
        {
            "action": "aws:runPowerShellScript",
            "name": "windows",
            "precondition": {"StringEquals": ["platformType", "Windows"]},
            "inputs": {"runCommand": ["Write-Output 'hello {{ greeting }}'"]},
        },
    ],
}


def _document_template(**properties: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Doc": {
                "Type": "AWS::SSM::Document",
                "Properties": {"DocumentType": "Command", "Content": COMMAND_CONTENT, **properties},
            }
        },
        "Outputs": {"Name": {"Value": {"Ref": "Doc"}}},
    }


def test_gap_ssm_document_from_cloudformation() -> None:
    """GAP SSM_DOCUMENT_FROM_CLOUDFORMATION: without ``DocumentFormat`` (AWS defaults to JSON)
    the stack is refused; with it, the template's ``Content`` object is kept as a Python repr
    (GetDocument returns no JSON) and DescribeDocument fails. When this fails, moto has changed:
    drop ``document_from_cloudformation`` in local/emulator/ssm.py."""

    with mock_aws(), pytest.raises(ClientError, match="Invalid document format None"):
        create_stack("probe", _document_template())
    with mock_aws():
        stack = create_stack("probe", _document_template(DocumentFormat="JSON"))
        name = stack_outputs(stack)["Name"]
        content = aws_client("ssm").get_document(Name=name)["Content"]
        assert content == str(COMMAND_CONTENT)
        with pytest.raises(AttributeError, match="'dict' object has no attribute 'encode'"):
            aws_client("ssm").describe_document(Name=name)


@mock_aws
def test_workaround_ssm_document_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``document_from_cloudformation`` creates the document as CloudFormation does: JSON by
    default, its content as JSON text, named ``<stack>-<LogicalId>-<suffix>``."""
    from moto.ssm.models import Document

    monkeypatch.setattr(Document, "create_from_cloudformation_json", document_from_cloudformation())
    stack = create_stack("probe", _document_template())
    name = stack_outputs(stack)["Name"]
    assert re.fullmatch(r"probe-Doc-[A-Za-z0-9]+", name)
    ssm = aws_client("ssm")
    document = ssm.get_document(Name=name)
    assert (document["DocumentFormat"], document["DocumentType"]) == ("JSON", "Command")
    assert json.loads(document["Content"]) == COMMAND_CONTENT
    described = ssm.describe_document(Name=name)["Document"]
    assert [p["Name"] for p in described["Parameters"]] == ["greeting"]


# -- SSM_RUN_COMMAND ---------------------------------------------------------------------------
def _run_instance() -> str:
    instance_id: str = aws_client("ec2").run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    return instance_id


def _create_command_document() -> str:
    aws_client("ssm").create_document(
        Content=json.dumps(COMMAND_CONTENT),
        Name="probe",
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    return "probe"


@mock_aws
def test_gap_ssm_run_command(tmp_path: Path) -> None:
    """GAP SSM_RUN_COMMAND: SendCommand accepts a document that does not exist, a parameter
    value its allowedPattern refuses and an instance that does not exist, and runs nothing;
    GetCommandInvocation says Success with no output. When this fails, moto has changed: drop
    ``run_command_patches`` in local/emulator/ssm.py (or the parts moto now does)."""

    ssm = aws_client("ssm")
    instance_id = _run_instance()
    document = _create_command_document()
    for name, target, value in (
        (document, instance_id, "world"),
        (document, "i-0123456789abcdef0", "../etc"),
        ("no-such-document", instance_id, "world"),
    ):
        command = ssm.send_command(
            DocumentName=name, InstanceIds=[target], Parameters={"greeting": [value]}
        )["Command"]
        invocation = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=target)
        assert (invocation["Status"], invocation["ResponseCode"]) == ("Success", 0)
        assert invocation["StandardOutputContent"] == ""
    assert not (tmp_path / "ran").exists()


@mock_aws
def test_workaround_ssm_run_command(tmp_path: Path, install: Installer) -> None:
    """``run_command_patches``: SendCommand checks what SSM checks, then runs the node's step
    in its own directory and environment with the parameters substituted; the invocation ends
    with the script's real status and output (the other platform's step Skipped)."""
    hooks = install("SSM_RUN_COMMAND")
    instance_id = _run_instance()
    node = ManagedNode("Linux", True, dict(os.environ), str(tmp_path))
    hooks.on_managed_node(lambda i: node if i == instance_id else None)
    ssm = aws_client("ssm")
    document = _create_command_document()
    for name, target, value, code in (
        (document, instance_id, "../etc", "InvalidParameters"),
        (document, "i-0123456789abcdef0", "world", "InvalidInstanceId"),
        ("no-such-document", instance_id, "world", "InvalidDocument"),
    ):
        with pytest.raises(ClientError) as err:
            ssm.send_command(
                DocumentName=name, InstanceIds=[target], Parameters={"greeting": [value]}
            )
        assert err.value.response["Error"]["Code"] == code
    command = ssm.send_command(
        DocumentName=document, InstanceIds=[instance_id], Parameters={"greeting": ["world"]}
    )["Command"]
    deadline = time.monotonic() + 10
    while True:
        invocation = ssm.get_command_invocation(
            CommandId=command["CommandId"], InstanceId=instance_id, PluginName="linux"
        )
        if invocation["Status"] not in ("Pending", "InProgress") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Success", 0)
    assert invocation["StandardOutputContent"] == "hello world\n"
    assert (tmp_path / "ran").exists()
    skipped = ssm.get_command_invocation(
        CommandId=command["CommandId"], InstanceId=instance_id, PluginName="windows"
    )
    assert skipped["StatusDetails"] == "Skipped"
