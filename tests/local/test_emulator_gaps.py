"""The emulator's gaps, each shown on plain moto, and each workaround in ``local/`` shown fixing it.

Every ``test_gap_*`` runs plain moto (the version pinned in requirements, no workaround applied)
and asserts the broken behaviour exactly, so it fails when moto changes: the workaround it names
can then go. Every ``test_workaround_*`` shows that workaround fixing the gap.

The workarounds that change a process for good (monkeypatches of moto, its interpreter switch,
``MOTO_PORT``) are exercised in one child process, started when this module starts so it runs
alongside the in-process tests; the process running these tests stays on plain moto.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from botocore.parsers import ResponseParserError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from local import deploy, emulator

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/gap-probe"
GPU_AMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
PASS_MACHINE = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}
#: An ASL file with a placeholder, as the project's ``statemachines/*.asl.json`` are.
ASL_WITH_PLACEHOLDER = json.dumps(
    {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": {"greeting": "${Greeting}"}, "End": True}},
    }
)
#: A Swagger 2.0 body with one method, as aws-sam-translator writes for an ``AWS::Serverless::Api``.
SWAGGER_BODY: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "fleet", "version": "1.0"},
    "paths": {
        "/sessions": {
            "get": {
                "x-amazon-apigateway-integration": {
                    "type": "aws_proxy",
                    "httpMethod": "POST",
                    "uri": (
                        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fleet-fn/invocations"
                    ),
                },
                "responses": {},
            }
        }
    },
}
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
#: A failed call fails the test at once (botocore would retry an unparsable error response).
NO_RETRIES = Config(retries={"total_max_attempts": 1})
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
#: Variables that would point a client, or moto's interpreter, somewhere else.
REDIRECTING_VARIABLES = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_PORT")


def _no_aws_files(directory: Path) -> dict[str, str]:
    """A developer's ~/.aws files may name a profile, a region or an endpoint of their own."""
    return {
        "AWS_CONFIG_FILE": str(directory / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "no-aws-credentials"),
    }


@pytest.fixture(autouse=True)
def fake_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REDIRECTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**FAKE_CREDENTIALS, **_no_aws_files(tmp_path)}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def _shared_moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_server(_shared_moto_server: str) -> Iterator[str]:
    """A plain moto server, emptied after each test, with moto's global config restored."""
    with mock.patch.dict(default_user_config):
        try:
            yield _shared_moto_server
        finally:
            requests.post(f"{_shared_moto_server}/moto-api/reset", timeout=10).raise_for_status()


# -- plain moto, or not ------------------------------------------------------------------------
def _lambda_runtime_patched() -> bool:
    from moto.awslambda.models import LambdaFunction

    return LambdaFunction._invoke_lambda.__module__ != "moto.awslambda.models"


def _event_targets_patched() -> bool:
    from moto.events.models import Rule

    return bool(getattr(Rule.send_to_targets, "_dcvfleet", False))


def _event_bus_ref_patched() -> bool:
    from moto.events.models import EventBus

    return "physical_resource_id" in vars(EventBus)


def _execution_switched_on() -> bool:
    return bool(default_user_config.get("stepfunctions", {}).get("execute_state_machine"))


def _require_plain_moto(patched: bool, workaround: str) -> None:
    if patched:
        pytest.skip(
            f"{workaround} is applied in this process (local.emulator.apply_all ran here), "
            "so plain moto's behaviour cannot be shown; run this file in a process of its own"
        )


# -- small helpers -----------------------------------------------------------------------------
def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


PROBE_CODE = _zip(
    {"probe.py": "def handler(event, context):\n    print('probe ran')\n    return {'ran': True}\n"}
)


def _client(service: str, endpoint_url: str | None = None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url, config=NO_RETRIES)


def _create_role(endpoint_url: str | None = None) -> None:
    _client("iam", endpoint_url).create_role(
        RoleName="gap-probe", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )


def _create_function(name: str, endpoint_url: str | None = None) -> str:
    """A Python function (its role created first); its ARN."""
    _create_role(endpoint_url)
    arn: str = _client("lambda", endpoint_url).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="probe.handler",
        Code={"ZipFile": PROBE_CODE},
    )["FunctionArn"]
    return arn


def _create_stack(name: str, template: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    cfn = _client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), **kwargs)
    stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return stack


def _stack_resources(name: str) -> list[dict[str, Any]]:
    response = _client("cloudformation").describe_stack_resources(StackName=name)
    resources: list[dict[str, Any]] = response["StackResources"]
    return resources


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _ssm_value(name: str) -> str:
    value: str = _client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    return value


def _wait_execution(sfn: Any, execution_arn: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution
        time.sleep(0.05)


def _resource_paths(apigateway: Any, api_id: str) -> dict[str, list[str]]:
    items = apigateway.get_resources(restApiId=api_id)["items"]
    return {item["path"]: sorted(item.get("resourceMethods", {})) for item in items}


# ==============================================================================================
# LAMBDA_RUNTIME (its workaround: test_workaround_lambda_runtime, with the child process below)
def test_gap_lambda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP LAMBDA_RUNTIME: moto runs a function's code only in Docker; without it, never.

    Without Docker moto echoes the event back (the handler never runs); with Docker configured
    but unreachable the invocation errors. When this fails, moto has changed: drop the
    workaround in local/emulator.py (``patch_lambda_runtime``).
    """
    _require_plain_moto(_lambda_runtime_patched(), "LAMBDA_RUNTIME")
    with mock_aws(config={"lambda": {"use_docker": False}}):
        _create_function("probe")
        response = _client("lambda").invoke(FunctionName="probe", Payload=json.dumps({"x": 1}))
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == {"x": 1}

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with mock_aws():
        _create_function("probe")
        response = _client("lambda").invoke(FunctionName="probe", Payload=b"{}")
        assert response["FunctionError"] == "Handled"
        assert response["Payload"].read().startswith(b"error running docker")


# ==============================================================================================
# EVENTS_TARGETS (its workaround: test_workaround_events_targets, with the child process below)
@pytest.mark.parametrize("service", ["lambda", "states"])
def test_gap_events_targets(service: str) -> None:
    """GAP EVENTS_TARGETS: EventBridge raises on a rule whose target is a Lambda function or a
    state machine (it delivers only to SQS, logs and buses). When this fails, moto has changed:
    drop the workaround in local/emulator.py (``patch_event_targets``)."""
    _require_plain_moto(_event_targets_patched(), "EVENTS_TARGETS")
    with mock_aws(config={"lambda": {"use_docker": False}}):
        if service == "lambda":
            target = _create_function("probe")
        else:
            target = _client("stepfunctions").create_state_machine(
                name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
            )["stateMachineArn"]
        events = _client("events")
        events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["dcvfleet.probe"]}))
        events.put_targets(Rule="probe", Targets=[{"Id": "probe", "Arn": target}])
        with pytest.raises(NotImplementedError, match="Expr not defined"):
            events.put_events(
                Entries=[{"Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": "{}"}]
            )


# ==============================================================================================
# SFN_EXECUTION (its workaround: test_workaround_sfn_execution, with the child process below)
def test_gap_sfn_execution_interpreter_is_off(moto_server: str) -> None:
    """GAP SFN_EXECUTION: moto's server does not execute state machines until
    ``POST /moto-api/config`` switches its interpreter on: an execution stays RUNNING, without
    output. When this fails, moto has changed: drop the workaround in local/emulator.py
    (``enable_execution``)."""
    _require_plain_moto(_execution_switched_on(), "SFN_EXECUTION")
    sfn = _client("stepfunctions", moto_server)
    machine = sfn.create_state_machine(
        name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")[
        "executionArn"
    ]
    execution = _wait_execution(sfn, execution_arn, timeout=0.5)
    assert execution["status"] == "RUNNING"
    assert "output" not in execution


def test_gap_sfn_execution_clients_call_moto_port(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GAP SFN_EXECUTION: once switched on, the interpreter's own clients (Task states) call
    ``http://localhost:$MOTO_PORT`` (default 5000), not the server they run in. When this
    fails, moto has changed: drop the ``MOTO_PORT`` part of ``enable_execution`` in
    local/emulator.py."""
    requests.post(
        f"{moto_server}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
    sqs = _client("sqs", moto_server)
    queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    send = {
        "StartAt": "Send",
        "States": {
            "Send": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": "probe"},
                "End": True,
            }
        },
    }
    sfn = _client("stepfunctions", moto_server)
    machine = sfn.create_state_machine(name="probe", definition=json.dumps(send), roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        monkeypatch.setenv("MOTO_PORT", str(closed_port))
        execution_arn = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")[
            "executionArn"
        ]
        execution = _wait_execution(sfn, execution_arn)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Runtime"
    refused = f'Could not connect to the endpoint URL: "http://localhost:{closed_port}/"'
    assert refused in execution["cause"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)


# ==============================================================================================
# SFN_FROM_CLOUDFORMATION (its workaround: test_workaround_sfn_from_cloudformation, below)
def _state_machine_template(**definition: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "probe",
                    "RoleArn": ROLE_ARN,
                    "DefinitionSubstitutions": {"Greeting": "hello"},
                    **definition,
                },
            }
        }
    }


@pytest.mark.parametrize(
    "definition",
    [
        {"DefinitionS3Location": {"Bucket": "artifacts", "Key": "asl/probe.asl.json"}},
        {"Definition": json.loads(ASL_WITH_PLACEHOLDER)},
    ],
    ids=["DefinitionS3Location", "Definition"],
)
def test_gap_sfn_from_cloudformation(definition: dict[str, Any]) -> None:
    """GAP SFN_FROM_CLOUDFORMATION: a state machine created by CloudFormation keeps neither its
    ``DefinitionS3Location`` (what ``sam package`` writes) nor its ``Definition``, nor their
    ``DefinitionSubstitutions``, and the interpreter's backend does not know it. When this
    fails, moto has changed: drop ``Deployer._create_state_machines`` in local/deploy.py."""
    template = _state_machine_template(**definition)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        s3 = _client("s3")
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(Bucket="artifacts", Key="asl/probe.asl.json", Body=ASL_WITH_PLACEHOLDER)
        _create_stack("probe", template)
        (machine,) = _stack_resources("probe")
        described = _client("stepfunctions").describe_state_machine(
            stateMachineArn=machine["PhysicalResourceId"]
        )
        assert described["definition"] == ""

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        _create_stack("probe", template)
        (machine,) = _stack_resources("probe")
        with pytest.raises(ClientError) as err:
            _client("stepfunctions").start_execution(
                stateMachineArn=machine["PhysicalResourceId"], input="{}"
            )
        assert err.value.response["Error"]["Code"] == "StateMachineDoesNotExist"


class _TaskFailureCall:
    """A SendTaskFailure request as moto's response handler sees it, and what reaches the backend."""

    def __init__(self) -> None:
        self.params = {
            "taskToken": "token-1",
            "error": "JobFailedError",
            "cause": "DCV did not start",
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Backend:
            def send_task_failure(self, task_token: str, **kwargs: Any) -> None:
                outer.calls.append((task_token, kwargs))

        self.stepfunction_backend = Backend()

    def _get_param(self, name: str) -> Any:
        return self.params.get(name)


# SFN_TASK_FAILURE_CAUSE (its workaround: test_workaround_sfn_task_failure_cause, below)
def test_gap_sfn_task_failure_drops_the_cause() -> None:
    """GAP SFN_TASK_FAILURE_CAUSE: SendTaskFailure passes the error on, not the cause, so a
    Catch never sees why the task failed."""
    from moto.stepfunctions.responses import StepFunctionResponse

    handler = StepFunctionResponse.send_task_failure
    _require_plain_moto(getattr(handler, "_dcvfleet", False), "SFN_TASK_FAILURE_CAUSE")
    request = _TaskFailureCall()
    handler(request)  # type: ignore[arg-type]
    assert request.calls == [("token-1", {"error": "JobFailedError"})]


def test_workaround_sfn_task_failure_cause() -> None:
    request = _TaskFailureCall()
    emulator.sfn_task_failure_with_cause()(request)
    assert request.calls == [("token-1", {"error": "JobFailedError", "cause": "DCV did not start"})]


def test_workaround_sfn_definition_substitutions() -> None:
    """``substitute_definition`` resolves ``${Name}`` placeholders and refuses to leave any."""
    resolved = deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {"Greeting": "hello"})
    assert json.loads(resolved)["States"]["P"]["Result"] == {"greeting": "hello"}
    with pytest.raises(ValueError, match="Greeting"):
        deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {})


# ==============================================================================================
# EC2_PAGE_TOKEN
def _three_reservations() -> Any:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    for _ in range(3):
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    return ec2


def test_gap_ec2_page_token() -> None:
    """GAP EC2_PAGE_TOKEN: a NextToken DescribeInstances never gave is a server error (500)."""
    from moto.ec2.responses.instances import InstanceResponse

    patched = getattr(InstanceResponse.describe_instances, "_dcvfleet", False)
    _require_plain_moto(patched, "EC2_PAGE_TOKEN")
    with mock_aws():
        ec2 = _three_reservations()
        with pytest.raises(ValueError, match="is not in list"):
            ec2.describe_instances(NextToken="not-a-token")


def test_workaround_ec2_page_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in emulator.ec2_page_token_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        ec2 = _three_reservations()
        for token in ("not-a-token", "\x01control\x00"):
            with pytest.raises(ClientError) as refused:
                ec2.describe_instances(NextToken=token)
            assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
        first = ec2.describe_instances(MaxResults=2)
        rest = ec2.describe_instances(MaxResults=2, NextToken=first["NextToken"])
        assert len(first["Reservations"]) + len(rest["Reservations"]) == 3
        assert "NextToken" not in rest


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
    fails, moto has changed: drop ``seed_public_parameter`` in local/emulator.py."""
    with mock_aws():
        ssm = _client("ssm")
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
        emulator.seed_public_parameter(ACCOUNT, REGION, GPU_AMI_PARAMETER, "ami-0123456789abcdef0")
        emulator.seed_public_parameter(ACCOUNT, REGION, GPU_AMI_PARAMETER, "ami-ffffffffffffffff0")
        parameter = _client("ssm").get_parameter(Name=GPU_AMI_PARAMETER)["Parameter"]
        assert parameter["Value"] == "ami-0123456789abcdef0"
        assert parameter["Version"] == 1
        assert parameter["DataType"] == "aws:ec2:image"
        stack = _create_stack("probe", AMI_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert _outputs(stack) == {"GpuAmiId": "ami-0123456789abcdef0"}


# ==============================================================================================
# EVENTBUS_REF (its workaround: test_workaround_eventbus_ref, with the child process below)
BUS_OUTPUT_TEMPLATE: dict[str, Any] = {
    "Resources": {"Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "fleet-bus"}}},
    "Outputs": {"BusName": {"Value": {"Ref": "Bus"}}},
}
BUS_RULE_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "rule-bus"}},
        "Rule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": "probe",
                "EventBusName": {"Ref": "Bus"},
                "EventPattern": {"source": ["dcvfleet.probe"]},
            },
        },
    }
}


def test_gap_eventbus_ref() -> None:
    """GAP EVENTBUS_REF: an ``AWS::Events::EventBus`` has no physical id, so ``Ref`` to it is
    moto's Python object, not the bus name, and a rule on it fails to create. When this fails,
    moto has changed: drop ``patch_event_bus_ref`` in local/emulator.py."""
    _require_plain_moto(_event_bus_ref_patched(), "EVENTBUS_REF")
    with mock_aws():
        stack = _create_stack("probe", BUS_OUTPUT_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert _outputs(stack)["BusName"].startswith("<moto.events.models.EventBus object at ")
        (bus,) = _stack_resources("probe")
        assert bus["LogicalResourceId"] == "Bus"
        assert "PhysicalResourceId" not in bus

        with pytest.raises(AttributeError, match="'EventBus' object has no attribute 'split'"):
            _create_stack("rule", BUS_RULE_TEMPLATE)


# ==============================================================================================
# CFN_LIST_PARAMETERS
def _list_template(types_default: str) -> dict[str, Any]:
    return {
        "Parameters": {
            "InstanceTypes": {"Type": "CommaDelimitedList", "Default": types_default},
            "SubnetIds": {"Type": "List<AWS::EC2::Subnet::Id>"},
        },
        "Resources": {
            "JoinedTypes": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "joined-types",
                    "Type": "String",
                    "Value": {"Fn::Join": [",", {"Ref": "InstanceTypes"}]},
                },
            },
            "JoinedSubnets": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "joined-subnets",
                    "Type": "String",
                    "Value": {"Fn::Join": [",", {"Ref": "SubnetIds"}]},
                },
            },
            "QuotedTypes": {  # a JSON list of them, as the agent settings parameter is built
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "quoted-types",
                    "Type": "String",
                    "Value": {
                        "Fn::Sub": [
                            '["${Types}"]',
                            {"Types": {"Fn::Join": ['", "', {"Ref": "InstanceTypes"}]}},
                        ]
                    },
                },
            },
        },
    }


SUBNETS = [{"ParameterKey": "SubnetIds", "ParameterValue": "subnet-1,subnet-2"}]


#: A list-valued property given ``Ref`` to a list parameter, as a compute environment's
#: ``InstanceTypes`` is: a rule's event pattern shows what moto made of it.
LIST_RULE: dict[str, Any] = {
    "Type": "AWS::Events::Rule",
    "Properties": {"Name": "types", "EventPattern": {"detail-type": {"Ref": "InstanceTypes"}}},
}


def test_gap_cfn_list_parameters() -> None:
    """GAP CFN_LIST_PARAMETERS: ``Fn::Join`` over a ``CommaDelimitedList`` parameter left at
    its default joins the characters of the raw string, ``Ref`` to a ``List<...>`` parameter
    is a stringified Python list, and ``Ref`` to a ``CommaDelimitedList`` left at its default,
    given to a list-valued property, is its raw string (a compute environment then has the
    instance types "g", "5", ...; a rule's pattern is refused). When this fails, moto has
    changed: drop the list part of ``fix_template_for_emulator`` in local/emulator.py."""
    template = _list_template("g5.xlarge,g6.xlarge")
    template["Resources"]["RefSubnets"] = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {"Name": "ref-subnets", "Type": "String", "Value": {"Ref": "SubnetIds"}},
    }
    with mock_aws():
        _create_stack("probe", template, Parameters=SUBNETS)
        assert _ssm_value("joined-types") == "g,5,.,x,l,a,r,g,e,,,g,6,.,x,l,a,r,g,e"
        assert _ssm_value("quoted-types").startswith('["g", "5", ".", "x"')
        assert _ssm_value("ref-subnets") == "['subnet-1', 'subnet-2']"
    template = _list_template("g5.xlarge,g6.xlarge")
    template["Resources"]["Types"] = LIST_RULE
    with (
        mock_aws(),
        pytest.raises(ResponseParserError, match=r"detail-type\W+ must be an object or an array"),
    ):
        _create_stack("probe", template, Parameters=SUBNETS)


def test_workaround_cfn_list_parameters() -> None:
    """``fix_template_for_emulator`` replaces ``Fn::Join [<separator>, Ref <list>]`` by the
    parameter's members (trimmed, as AWS does) joined by the separator, and any other ``Ref``
    to a list parameter by its members."""
    template = _list_template("g5.xlarge, g6.xlarge")
    template["Resources"]["Types"] = LIST_RULE
    emulator.fix_template_for_emulator(template, {"SubnetIds": "subnet-1,subnet-2"})
    resources = template["Resources"]
    assert resources["JoinedTypes"]["Properties"]["Value"] == "g5.xlarge,g6.xlarge"
    assert resources["JoinedSubnets"]["Properties"]["Value"] == "subnet-1,subnet-2"
    with mock_aws():
        _create_stack("probe", template, Parameters=SUBNETS)
        assert _ssm_value("joined-types") == "g5.xlarge,g6.xlarge"
        assert _ssm_value("joined-subnets") == "subnet-1,subnet-2"
        assert json.loads(_ssm_value("quoted-types")) == ["g5.xlarge", "g6.xlarge"]
        pattern = _client("events").describe_rule(Name="types")["EventPattern"]
        assert json.loads(pattern) == {"detail-type": ["g5.xlarge", "g6.xlarge"]}


# ==============================================================================================
# CFN_PLACEHOLDERS
COGNITO_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "UserPool": {
            "Type": "AWS::Cognito::UserPool",
            "Properties": {
                "UserPoolName": "fleet",
                "Schema": [{"Name": "email", "AttributeDataType": "String", "Required": True}],
            },
        },
        "UserPoolClient": {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {"UserPoolId": {"Ref": "UserPool"}, "ClientName": "portal"},
        },
        "AdminsGroup": {
            "Type": "AWS::Cognito::UserPoolGroup",
            "Properties": {"UserPoolId": {"Ref": "UserPool"}, "GroupName": "admins"},
        },
    },
    "Outputs": {"UserPoolId": {"Value": {"Ref": "UserPool"}}},
}


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_gap_cfn_placeholders_cognito() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation "creates" Cognito resources as placeholders: the
    stack completes, but no user pool exists, the resources have no ids and outputs referring
    to them are dropped. When this fails, moto has changed: drop the Cognito types from
    ``API_CREATED_TYPES`` in local/emulator.py."""
    with mock_aws():
        stack = _create_stack("probe", COGNITO_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert "Outputs" not in stack
        resources = _stack_resources("probe")
        assert len(resources) == 3
        assert all("PhysicalResourceId" not in r for r in resources)
        assert _client("cognito-idp").list_user_pools(MaxResults=10)["UserPools"] == []


def test_workaround_cfn_placeholders_cognito(moto_server: str) -> None:
    """The Cognito types are created through the API (``Deployer._create_cognito``)."""
    assert {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolGroup",
    } <= emulator.API_CREATED_TYPES
    deployment = deploy.Deployment(REGION, ACCOUNT, {}, COGNITO_TEMPLATE)
    deploy.Deployer(moto_server, REGION)._create_cognito(COGNITO_TEMPLATE["Resources"], deployment)
    pool_id = deployment.physical["UserPool"]
    idp = _client("cognito-idp", moto_server)
    assert idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Name"] == "fleet"
    client = idp.describe_user_pool_client(
        UserPoolId=pool_id, ClientId=deployment.physical["UserPoolClient"]
    )
    assert client["UserPoolClient"]["ClientName"] == "portal"
    group = idp.get_group(UserPoolId=pool_id, GroupName=deployment.physical["AdminsGroup"])
    assert group["Group"]["GroupName"] == "admins"
    assert deployment.attributes[("UserPool", "Arn")].endswith(f"userpool/{pool_id}")


def test_gap_cfn_placeholders_rest_api_body_ignored() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation ignores an ``AWS::ApiGateway::RestApi``'s ``Body``,
    so the API has no methods and an ``AWS::ApiGateway::Deployment`` of it fails. When this
    fails, moto has changed: drop ``AWS::ApiGateway::Deployment`` (and ``Stage``) from
    ``API_CREATED_TYPES`` in local/emulator.py."""
    api = {
        "Type": "AWS::ApiGateway::RestApi",
        "Properties": {"Name": "fleet", "Body": SWAGGER_BODY},
    }
    deployed = {
        "Resources": {
            "Api": api,
            "Deployment": {
                "Type": "AWS::ApiGateway::Deployment",
                "Properties": {"RestApiId": {"Ref": "Api"}},
            },
        }
    }
    with mock_aws():
        _create_stack("api", {"Resources": {"Api": api}})
        (resource,) = _stack_resources("api")
        assert _resource_paths(_client("apigateway"), resource["PhysicalResourceId"]) == {"/": []}
        # In-process the error reaches the client as an unparsable (JSON, not XML) response.
        with pytest.raises((ClientError, ResponseParserError), match="contain any methods"):
            _create_stack("deployed", deployed)


def test_gap_cfn_placeholders_put_rest_api_swagger() -> None:
    """GAP CFN_PLACEHOLDERS: ``put_rest_api`` imports only OpenAPI 3, while aws-sam-translator
    writes Swagger 2.0, so the body cannot be imported through the API either. When this fails,
    moto has changed: the body could be imported instead of served by ``local.apigw``."""
    openapi3 = {"openapi": "3.0.1", "info": SWAGGER_BODY["info"], "paths": SWAGGER_BODY["paths"]}
    with mock_aws():
        apigateway = _client("apigateway")
        swagger_api = apigateway.create_rest_api(name="swagger")["id"]
        with pytest.raises(ClientError) as err:
            apigateway.put_rest_api(
                restApiId=swagger_api, mode="overwrite", body=json.dumps(SWAGGER_BODY).encode()
            )
        assert err.value.response["Error"]["Code"] == "BadRequestException"
        assert err.value.response["Error"]["Message"] == (
            "Only OpenAPI 3.x.x are currently supported"
        )
        assert _resource_paths(apigateway, swagger_api) == {"/": []}

        # The same paths as OpenAPI 3 are imported.
        openapi_api = apigateway.create_rest_api(name="openapi3")["id"]
        apigateway.put_rest_api(
            restApiId=openapi_api, mode="overwrite", body=json.dumps(openapi3).encode()
        )
        assert _resource_paths(apigateway, openapi_api) == {"/": [], "/sessions": ["GET"]}


def test_workaround_cfn_placeholders_api_served_locally() -> None:
    """The Deployment and Stage are left out of the stack; ``Deployer._deploy_apis`` keeps the
    RestApi's resolved body and stage for the local API server, and says so."""
    assert {"AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"} <= (emulator.API_CREATED_TYPES)
    body = json.loads(json.dumps(SWAGGER_BODY))
    body["paths"]["/sessions"]["get"]["x-amazon-apigateway-integration"]["uri"] = {
        "Fn::Sub": (
            "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            "${Fn.Arn}/invocations"
        )
    }
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": body}},
            "ApiStage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "v1"},
            },
        }
    }
    deployment = deploy.Deployment(
        REGION, ACCOUNT, {}, template, physical={"Fn": "fleet-fn", "Api": "abc123"}
    )
    api_created = {"ApiStage": template["Resources"]["ApiStage"]}
    # No call reaches the emulator: the body is resolved from the deployment alone.
    deploy.Deployer("http://127.0.0.1:9", REGION)._deploy_apis(api_created, template, deployment)
    assert deployment.apis == {"Api": {"stage": "v1", "body": SWAGGER_BODY, "methodSettings": []}}
    assert deployment.not_emulated == [
        "ApiStage (AWS::ApiGateway::Stage): served by the local API server"
    ]


def test_gap_cfn_placeholders_rest_api_needs_name() -> None:
    """GAP CFN_PLACEHOLDERS: an ``AWS::ApiGateway::RestApi`` without ``Name`` (SAM writes none
    next to a ``Body``; AWS takes the body's title) fails to create. When this fails, moto has
    changed: drop the ``Name`` default in ``fix_template_for_emulator`` in local/emulator.py."""
    template = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": SWAGGER_BODY}}
        }
    }
    with mock_aws(), pytest.raises(KeyError, match="Name"):
        _create_stack("api", template)


def test_workaround_cfn_placeholders_rest_api_name() -> None:
    """``fix_template_for_emulator`` names a nameless RestApi after its logical id."""
    template: dict[str, Any] = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": SWAGGER_BODY}},
            "Named": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "mine"}},
        }
    }
    emulator.fix_template_for_emulator(template, {})
    assert template["Resources"]["Api"]["Properties"]["Name"] == "Api"
    assert template["Resources"]["Named"]["Properties"]["Name"] == "mine"
    with mock_aws():
        assert _create_stack("api", template)["StackStatus"] == "CREATE_COMPLETE"
        apis = _client("apigateway").get_rest_apis()["items"]
        assert sorted(a["name"] for a in apis) == ["Api", "mine"]


PERMISSION_SOURCE_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/GET/sessions"
PERMISSION: dict[str, Any] = {
    "Type": "AWS::Lambda::Permission",
    "Properties": {
        "FunctionName": {"Ref": "Fn"},
        "Action": "lambda:InvokeFunction",
        "Principal": "apigateway.amazonaws.com",
        "SourceArn": PERMISSION_SOURCE_ARN,
    },
}


def test_gap_cfn_placeholders_lambda_permission_has_no_id() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation does add an ``AWS::Lambda::Permission``'s statement
    to the function's policy, but gives the resource no physical id, which ``local.deploy``
    requires of every resource ("not emulated"). When this fails, moto has changed: drop
    ``AWS::Lambda::Permission`` from ``API_CREATED_TYPES`` in local/emulator.py."""
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "fleet-fn",
                    "Runtime": "python3.12",
                    "Handler": "probe.handler",
                    "Role": ROLE_ARN,
                    "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
                },
            },
            "Permission": PERMISSION,
        }
    }
    with mock_aws():
        _create_role()
        assert _create_stack("probe", template)["StackStatus"] == "CREATE_COMPLETE"
        resources = {r["LogicalResourceId"]: r for r in _stack_resources("probe")}
        assert resources["Permission"]["ResourceStatus"] == "CREATE_COMPLETE"
        assert "PhysicalResourceId" not in resources["Permission"]
        policy = _client("lambda").get_policy(FunctionName="fleet-fn")["Policy"]
        (statement,) = json.loads(policy)["Statement"]
        assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
        assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": PERMISSION_SOURCE_ARN}}


def test_workaround_cfn_placeholders_lambda_permission(moto_server: str) -> None:
    """Lambda permissions are added through the API (``Deployer._add_permissions``), the
    logical id their statement id and physical id."""
    assert "AWS::Lambda::Permission" in emulator.API_CREATED_TYPES
    _create_function("fleet-fn", moto_server)
    template = {"Resources": {"Permission": PERMISSION}}
    deployment = deploy.Deployment(REGION, ACCOUNT, {}, template, physical={"Fn": "fleet-fn"})
    deploy.Deployer(moto_server, REGION)._add_permissions(template["Resources"], deployment)
    assert deployment.physical["Permission"] == "Permission"
    policy = _client("lambda", moto_server).get_policy(FunctionName="fleet-fn")["Policy"]
    (statement,) = json.loads(policy)["Statement"]
    assert statement["Sid"] == "Permission"
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": PERMISSION_SOURCE_ARN}}


# ==============================================================================================
# The process-global workarounds (LAMBDA_RUNTIME, EVENTS_TARGETS, SFN_EXECUTION,
# SFN_FROM_CLOUDFORMATION, EVENTBUS_REF, CODEBUILD_FROM_CLOUDFORMATION), shown in one child
# process.
#: Runs each scenario after applying (only) the workarounds it needs on top of the earlier ones,
#: and reports each scenario's result or traceback on one ``RESULT`` line.
CHILD_SCRIPT = r"""
import json, os, pathlib, sys, time, traceback
import boto3, requests
from botocore.config import Config
from moto import mock_aws
from moto.server import ThreadedMotoServer

C = json.loads(sys.argv[1])
WORKDIR = pathlib.Path(C["workdir"])
sys.path.insert(0, str(WORKDIR))
from local import deploy, emulator

(WORKDIR / "gap_probe_handler.py").write_text(
    "import os\n"
    "def handler(event, context):\n"
    "    print('probe ran for', context.function_name)\n"
    "    return {'event': event, 'greeting': os.environ['GREETING']}\n"
)
(WORKDIR / "gap_probe_target.py").write_text(
    "import json, os\n"
    "def handler(event, context):\n"
    "    with open(os.environ['PROBE_OUT'], 'a') as out:\n"
    "        out.write(json.dumps(event) + '\\n')\n"
)

def client(service, url=None):
    return boto3.client(
        service, region_name=C["region"], endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}),
    )

def create_function(name, handler, url=None, **kwargs):
    client("iam", url).create_role(
        RoleName="gap-probe", AssumeRolePolicyDocument=json.dumps(C["trust"])
    )
    return client("lambda", url).create_function(
        FunctionName=name, Runtime="python3.12", Role=C["role_arn"], Handler=handler,
        Code={"ZipFile": b"in-process: the handler is imported"}, **kwargs,
    )["FunctionArn"]

def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()

def finished(sfn, arn):
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
    return sfn.describe_execution(executionArn=arn)


def lambda_runtime():
    emulator.patch_lambda_runtime()
    with mock_aws():
        create_function(
            "probe", "gap_probe_handler.handler",
            Environment={"Variables": {"GREETING": "hello"}},
        )
        response = client("lambda").invoke(FunctionName="probe", Payload='{"x": 1}')
        logs = client("logs").filter_log_events(logGroupName="/aws/lambda/probe")["events"]
        return {
            "error": response.get("FunctionError"),
            "payload": json.loads(response["Payload"].read()),
            "logs": [e["message"] for e in logs],
            "leaked": "GREETING" in os.environ,
        }


def eventbus_ref():
    emulator.patch_event_bus_ref()
    with mock_aws():
        cfn = client("cloudformation")
        cfn.create_stack(StackName="probe", TemplateBody=json.dumps(C["bus_output_template"]))
        cfn.create_stack(StackName="rule", TemplateBody=json.dumps(C["bus_rule_template"]))
        stack = cfn.describe_stacks(StackName="probe")["Stacks"][0]
        resources = cfn.describe_stack_resources(StackName="probe")["StackResources"]
        return {
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]},
            "physical": [r.get("PhysicalResourceId") for r in resources],
            "rule_status": cfn.describe_stacks(StackName="rule")["Stacks"][0]["StackStatus"],
            "rules": [r["Name"] for r in client("events").list_rules(EventBusName="rule-bus")["Rules"]],
        }


def sfn_execution(url, port):
    emulator.enable_execution(url, port)
    sqs, sfn = client("sqs", url), client("stepfunctions", url)
    queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    send = {"StartAt": "Send", "States": {"Send": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": queue_url, "MessageBody": "probe"}, "End": True,
    }}}
    executions = {}
    for name, definition in (("pass", C["pass_machine"]), ("send", send)):
        machine = sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=C["role_arn"]
        )["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")["executionArn"]
        execution = finished(sfn, arn)
        executions[name] = [execution["status"], json.loads(execution.get("output", "null"))]
    messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    return {"executions": executions, "bodies": [m["Body"] for m in messages]}


def sfn_from_cloudformation(url, port):
    emulator.enable_execution(url, port)
    s3, cfn, sfn = client("s3", url), client("cloudformation", url), client("stepfunctions", url)
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="asl/probe.asl.json", Body=C["asl"])
    template = C["machine_template"]
    cfn.create_stack(StackName="probe", TemplateBody=json.dumps(template))
    (resource,) = cfn.describe_stack_resources(StackName="probe")["StackResources"]
    deployment = deploy.Deployment(
        C["region"], C["account"], {}, template,
        physical={"Machine": resource["PhysicalResourceId"]},
    )
    deploy.Deployer(url, C["region"])._create_state_machines(template, deployment)
    arn = deployment.physical["Machine"]
    execution_arn = sfn.start_execution(stateMachineArn=arn, name="e1", input="{}")["executionArn"]
    execution = finished(sfn, execution_arn)
    return {
        "cfn_arn": resource["PhysicalResourceId"], "arn": arn,
        "status": execution["status"], "output": execution.get("output"),
    }


def events_targets(url, port):
    emulator.patch_event_targets(url)
    out = WORKDIR / "delivered.jsonl"
    function_arn = create_function(
        "probe", "gap_probe_target.handler", url,
        Environment={"Variables": {"PROBE_OUT": str(out)}},
    )
    sfn, sqs, events = client("stepfunctions", url), client("sqs", url), client("events", url)
    machine_arn = sfn.create_state_machine(
        name="probe", definition=json.dumps(C["pass_machine"]), roleArn=C["role_arn"]
    )["stateMachineArn"]
    queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["dcvfleet.probe"]}))
    events.put_targets(Rule="probe", Targets=[
        {"Id": "fn", "Arn": function_arn},
        {"Id": "sm", "Arn": machine_arn},
        {"Id": "q", "Arn": queue_arn},
    ])
    events.put_events(Entries=[
        {"Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": '{"n": 7}'},
    ])
    listed = lambda: sfn.list_executions(stateMachineArn=machine_arn)["executions"]
    wait_for(out.exists)
    wait_for(listed)
    messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    return {
        "lambda": [json.loads(line) for line in out.read_text().splitlines()],
        "states": [
            json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in listed()
        ],
        "sqs": [json.loads(m["Body"]) for m in messages],
    }


def codebuild_from_cloudformation():
    emulator.codebuild_project_model()
    with mock_aws():
        cfn = client("cloudformation")
        cfn.create_stack(StackName="probe", TemplateBody=json.dumps(C["codebuild_template"]))
        stack = cfn.describe_stacks(StackName="probe")["Stacks"][0]
        projects = client("codebuild").batch_get_projects(names=["probe-image"])["projects"]
        return {
            "status": stack["StackStatus"],
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]},
            "projects": [
                {k: p[k] for k in ("name", "arn", "serviceRole", "environment", "source")}
                for p in projects
            ],
        }


results = {}

def run(name, scenario, *args):
    try:
        results[name] = {"result": scenario(*args)}
    except Exception:
        results[name] = {"error": traceback.format_exc()}

run("LAMBDA_RUNTIME", lambda_runtime)
run("EVENTBUS_REF", eventbus_ref)
run("CODEBUILD_FROM_CLOUDFORMATION", codebuild_from_cloudformation)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
url = f"http://{host}:{port}"
for name, scenario in (
    ("SFN_EXECUTION", sfn_execution),
    ("SFN_FROM_CLOUDFORMATION", sfn_from_cloudformation),
    ("EVENTS_TARGETS", events_targets),
):
    run(name, scenario, url, port)
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
server.stop()
sys.__stdout__.write("RESULT " + json.dumps(results, default=str) + "\n")
sys.__stdout__.flush()
"""


class IsolatedWorkarounds:
    """The child process's results, waited for on first use."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._results: dict[str, Any] | None = None

    def result(self, gap: str) -> Any:
        if self._results is None:
            stdout, stderr = self.process.communicate(timeout=120)
            assert self.process.returncode == 0, stderr[-4000:]
            lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            assert lines, f"no result reported:\n{stdout[-2000:]}\n{stderr[-2000:]}"
            self._results = json.loads(lines[-1].removeprefix("RESULT "))
        entry = self._results[gap]
        if "error" in entry:
            pytest.fail(f"the {gap} workaround failed in the child process:\n{entry['error']}")
        return entry["result"]


def _child_config(workdir: Path) -> dict[str, Any]:
    return {
        "workdir": str(workdir),
        "region": REGION,
        "account": ACCOUNT,
        "role_arn": ROLE_ARN,
        "trust": LAMBDA_TRUST,
        "pass_machine": PASS_MACHINE,
        "asl": ASL_WITH_PLACEHOLDER,
        "machine_template": _state_machine_template(
            DefinitionS3Location={"Bucket": "artifacts", "Key": "asl/probe.asl.json"}
        ),
        "bus_output_template": BUS_OUTPUT_TEMPLATE,
        "bus_rule_template": BUS_RULE_TEMPLATE,
        "codebuild_template": CODEBUILD_TEMPLATE,
    }


@pytest.fixture(scope="module", autouse=True)
def isolated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IsolatedWorkarounds | None]:
    """Started with the module (if any selected test needs it), so it runs alongside."""
    wanted = any(
        "isolated" in getattr(item, "fixturenames", ()) and item.module is request.module
        for item in request.session.items
        if isinstance(item, pytest.Function)
    )
    if not wanted:
        yield None
        return
    workdir = tmp_path_factory.mktemp("isolated")
    env = {k: v for k, v in os.environ.items() if k not in REDIRECTING_VARIABLES}
    env.update(FAKE_CREDENTIALS, **_no_aws_files(workdir), PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, json.dumps(_child_config(workdir))],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield IsolatedWorkarounds(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_workaround_lambda_runtime(isolated: IsolatedWorkarounds) -> None:
    """``patch_lambda_runtime`` runs the handler in-process, with the function's own
    environment (not leaking into the process) and its log lines in ``/aws/lambda/<name>``."""
    result = isolated.result("LAMBDA_RUNTIME")
    assert result["error"] is None
    assert result["payload"] == {"event": {"x": 1}, "greeting": "hello"}
    assert result["logs"] == ["probe ran for probe"]
    assert result["leaked"] is False


def test_workaround_events_targets(isolated: IsolatedWorkarounds) -> None:
    """``patch_event_targets`` delivers to Lambda and Step Functions targets (asynchronously)
    and leaves the targets moto supports (here SQS) to moto."""
    result = isolated.result("EVENTS_TARGETS")
    for delivered in (result["lambda"], result["states"], result["sqs"]):
        assert len(delivered) == 1
        assert delivered[0]["source"] == "dcvfleet.probe"
        assert delivered[0]["detail"] == {"n": 7}
    # Lambda and Step Functions get the event's time in ISO 8601, as on AWS.
    assert result["lambda"][0]["time"].endswith("Z")
    assert result["states"][0]["time"].endswith("Z")


def test_workaround_sfn_execution(isolated: IsolatedWorkarounds) -> None:
    """``enable_execution`` switches the interpreter on and points its clients at the server:
    a Pass state runs, and a Task state reaches SQS on the server's own port."""
    result = isolated.result("SFN_EXECUTION")
    assert result["executions"]["pass"] == ["SUCCEEDED", {"ok": 1}]
    status, output = result["executions"]["send"]
    assert status == "SUCCEEDED"
    assert "MessageId" in output
    assert result["bodies"] == ["probe"]


def test_workaround_sfn_from_cloudformation(isolated: IsolatedWorkarounds) -> None:
    """``Deployer._create_state_machines`` re-creates a CloudFormation state machine through
    the API, same name and ARN, its definition read from S3 and its substitutions resolved."""
    result = isolated.result("SFN_FROM_CLOUDFORMATION")
    assert result["arn"] == result["cfn_arn"]
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == {"greeting": "hello"}


def test_workaround_eventbus_ref(isolated: IsolatedWorkarounds) -> None:
    """``patch_event_bus_ref`` makes a bus's physical id (so its ``Ref``) its name: the output
    is the name and a rule on the bus is created."""
    result = isolated.result("EVENTBUS_REF")
    assert result["outputs"] == {"BusName": "fleet-bus"}
    assert result["physical"] == ["fleet-bus"]
    assert result["rule_status"] == "CREATE_COMPLETE"
    assert result["rules"] == ["probe"]


# -- DDB_ATOMIC_WRITES -------------------------------------------------------------------------
def _race_two_limited_creates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two transactions that each add a session under a limit of one, made to check the limit at
    the same moment (a barrier after moto evaluates the condition); returns each outcome."""
    import contextlib
    import threading

    from moto.dynamodb import models as dynamodb_models

    from dcvfleet.errors import SessionLimitExceededError
    from dcvfleet.model import Session, Status
    from dcvfleet.store import DynamoSessionStore

    barrier = threading.Barrier(2, timeout=1.0)
    original_filter = dynamodb_models.get_filter_expression
    original_parser = dynamodb_models.create_condition_expression_parser

    def checked_together(condition: Any) -> Any:
        evaluate = condition.expr

        def expr(item: Any) -> Any:
            passed = evaluate(item)
            if threading.current_thread().name.startswith("create-"):
                # both transactions have checked the limit before either writes, unless
                # something serialises them (then the other one is held back: go on alone)
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return passed

        condition.expr = expr
        return condition

    def filter_expression(expression: Any, *args: Any, **kwargs: Any) -> Any:
        condition = original_filter(expression, *args, **kwargs)
        return checked_together(condition) if "active <" in str(expression) else condition

    def condition_parser(expression: Any, *args: Any, **kwargs: Any) -> Any:
        parser = original_parser(expression, *args, **kwargs)
        if "active <" in str(expression):
            parse = parser.parse
            parser.parse = lambda: checked_together(parse())
        return parser

    monkeypatch.setattr(dynamodb_models, "get_filter_expression", filter_expression)
    monkeypatch.setattr(dynamodb_models, "create_condition_expression_parser", condition_parser)
    db = boto3.client("dynamodb", region_name=REGION)
    db.create_table(
        TableName="sessions",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoSessionStore(db, "sessions")
    outcomes: list[str] = []

    def create(n: int) -> None:
        session = Session(
            session_id=f"s{n}",
            owner="alice",
            backend="ec2",
            os="linux",
            instance_type="g5.xlarge",
            status=Status.PROVISIONING,
            created_at="2026-01-01T00:00:00.000Z",
            updated_at="2026-01-01T00:00:00.000Z",
        )
        try:
            store.create(session, max_active=1)
            outcomes.append("created")
        except SessionLimitExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(n,), name=f"create-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


@mock_aws
def test_gap_ddb_atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP DDB_ATOMIC_WRITES: two transactions both pass the limit's condition, because moto
    checks, then writes, without a lock. When this fails, moto has changed: drop the workaround
    in local/emulator.py."""
    from moto.dynamodb.models import DynamoDBBackend

    _require_plain_moto(
        getattr(DynamoDBBackend.transact_write_items, "_dcvfleet", False), "DDB_ATOMIC_WRITES"
    )
    assert _race_two_limited_creates(monkeypatch) == ["created", "created"]


@mock_aws
def test_workaround_ddb_atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the emulator's lock, the same race lets exactly one transaction through."""
    from moto.dynamodb.models import DynamoDBBackend

    for name, replacement in emulator.atomic_dynamodb_writes().items():
        monkeypatch.setattr(DynamoDBBackend, name, replacement)
    assert _race_two_limited_creates(monkeypatch) == ["created", "refused"]


# -- EC2_STATE_CHANGES -------------------------------------------------------------------------
@mock_aws
def test_gap_ec2_state_changes() -> None:
    """GAP EC2_STATE_CHANGES: moto changes an instance's state without the EventBridge
    notification AWS sends. When this fails, moto has changed: the local stack can listen to its
    events instead of the listeners in local/emulator.py."""
    sqs, events, ec2 = _client("sqs"), _client("events"), _client("ec2")
    queue = sqs.create_queue(QueueName="ec2-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(Name="ec2", EventPattern=json.dumps({"source": ["aws.ec2"]}))
    events.put_targets(Rule="ec2", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


@mock_aws
def test_workaround_ec2_state_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """After every run, stop, start and terminate, the default bus carries EC2's state-change
    events in order, and listeners hear of it once the change is made."""
    from moto.ec2.models.instances import InstanceBackend

    originals = {name: getattr(InstanceBackend, name) for name in emulator.EC2_STATE_CHANGES}
    for name, original in originals.items():
        monkeypatch.setattr(InstanceBackend, name, original)  # restored after the test
    emulator.patch_instance_state_changes()
    sqs, events, ec2 = _client("sqs"), _client("events"), _client("ec2")
    queue = sqs.create_queue(QueueName="ec2-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name="ec2",
        EventPattern=json.dumps(
            {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}
        ),
    )
    events.put_targets(Rule="ec2", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    heard: list[list[str]] = []

    def listener() -> None:
        found = ec2.describe_instances()["Reservations"]
        heard.append([i["State"]["Name"] for r in found for i in r["Instances"]])

    monkeypatch.setattr(emulator, "INSTANCE_LISTENERS", [listener])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.start_instances(InstanceIds=[instance_id])
    ec2.start_instances(InstanceIds=[instance_id])  # already running: no change, no event
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert heard == [["running"], ["stopped"], ["running"], ["running"], ["terminated"]]
    states = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            event = json.loads(message["Body"])
            assert event["detail"]["instance-id"] == instance_id
            assert event["resources"] == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"]
            states.append(event["detail"]["state"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert states == [
        "pending",
        "running",
        "stopping",
        "stopped",
        "pending",
        "running",
        "shutting-down",
        "terminated",
    ]


# -- EVENTS_SCHEDULE_PATTERN -------------------------------------------------------------------
def _queue(name: str) -> tuple[str, str]:
    sqs = _client("sqs")
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _drain(queue_url: str) -> list[dict[str, Any]]:
    sqs, bodies = _client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _put_ec2_event() -> None:
    detail = json.dumps({"instance-id": "i-0123456789abcdef0", "state": "stopped"})
    _client("events").put_events(
        Entries=[
            {
                "Source": "aws.ec2",
                "DetailType": "EC2 Instance State-change Notification",
                "Detail": detail,
            }
        ]
    )


@mock_aws
def test_gap_events_schedule_pattern() -> None:
    """GAP EVENTS_SCHEDULE_PATTERN: a rule with only a ScheduleExpression matches every event
    put on its bus (on AWS it matches none). When this fails, moto has changed: drop
    ``schedule_only`` from ``event_targets_patch`` in local/emulator.py."""
    _require_plain_moto(_event_targets_patched(), "EVENTS_SCHEDULE_PATTERN")
    queue_url, queue_arn = _queue("scheduled")
    events = _client("events")
    events.put_rule(Name="sweep", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="sweep", Targets=[{"Id": "q", "Arn": queue_arn}])
    _put_ec2_event()
    assert [e["source"] for e in _drain(queue_url)] == ["aws.ec2"]


@mock_aws
def test_workaround_events_schedule_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``event_targets_patch``, the schedule-only rule gets no put event; a rule with a
    pattern on the same bus still does."""
    from moto.events.models import Rule

    monkeypatch.setattr(Rule, "send_to_targets", emulator.event_targets_patch(None))
    scheduled_url, scheduled_arn = _queue("scheduled")
    matched_url, matched_arn = _queue("matched")
    events = _client("events")
    events.put_rule(Name="sweep", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="sweep", Targets=[{"Id": "q", "Arn": scheduled_arn}])
    events.put_rule(Name="ec2", EventPattern=json.dumps({"source": ["aws.ec2"]}))
    events.put_targets(Rule="ec2", Targets=[{"Id": "q", "Arn": matched_arn}])
    _put_ec2_event()
    assert _drain(scheduled_url) == []
    assert [e["source"] for e in _drain(matched_url)] == ["aws.ec2"]


# -- EVENTS_SCHEDULES --------------------------------------------------------------------------
def test_gap_events_schedules(moto_server: str) -> None:
    """GAP EVENTS_SCHEDULES: moto stores a rule's ScheduleExpression (to validate and describe
    it) and never fires the rule: nothing in moto's events package reads the expression
    otherwise or runs a timer, and a ``rate(1 minute)`` rule's target gets nothing. When this
    fails, moto has changed: check whether it fires schedules now, and drop ``Scheduler`` from
    local/emulator.py if it does."""
    import moto.events

    package = Path(moto.events.__file__).parent
    reads = sorted(
        line.strip()
        for source in package.glob("*.py")
        for line in source.read_text(encoding="utf-8").splitlines()
        if re.search(r"\.scheduled_expression\b", line)
    )
    assert reads == [
        '"ScheduleExpression": self.scheduled_expression,',
        "self.scheduled_expression = schedule_exp",
    ]
    assert not any(
        "threading" in source.read_text(encoding="utf-8") for source in package.glob("*.py")
    )
    sqs, events = _client("sqs", moto_server), _client("events", moto_server)
    queue_url = sqs.create_queue(QueueName="scheduled")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events.put_rule(Name="every-minute", ScheduleExpression="rate(1 minute)")
    events.put_targets(
        Rule="every-minute", Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}]
    )
    assert events.describe_rule(Name="every-minute")["ScheduleExpression"] == "rate(1 minute)"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)


@mock_aws(config={"stepfunctions": {"execute_state_machine": False}})
def test_workaround_events_schedules(caplog: pytest.LogCaptureFixture) -> None:
    """``Scheduler`` fires an ENABLED rate rule on its rate (one minute compressed to 0.1 s)
    with EventBridge's "Scheduled Event" envelope, honours a target's ``Input`` and
    ``InputPath``, skips DISABLED rules, names a ``cron(...)`` rule once in a warning instead of
    running it, and ``run_now`` fires any of them at once."""
    queue_url, queue_arn = _queue("scheduled")
    sfn, events = _client("stepfunctions"), _client("events")
    machine = sfn.create_state_machine(
        name="sweep", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
    )["stateMachineArn"]
    rule_arn = events.put_rule(Name="sweep", ScheduleExpression="rate(1 minute)")["RuleArn"]
    events.put_targets(
        Rule="sweep",
        Targets=[
            {"Id": "q", "Arn": queue_arn},
            {"Id": "sm", "Arn": machine, "RoleArn": ROLE_ARN, "Input": '{"kind": "sweep"}'},
            {"Id": "path", "Arn": machine, "RoleArn": ROLE_ARN, "InputPath": "$.resources"},
            {"Id": "event", "Arn": machine, "RoleArn": ROLE_ARN},
        ],
    )
    events.put_rule(Name="off", ScheduleExpression="rate(1 minute)", State="DISABLED")
    events.put_targets(Rule="off", Targets=[{"Id": "q", "Arn": queue_arn}])
    events.put_rule(Name="nightly", ScheduleExpression="cron(0 3 * * ? *)")
    events.put_targets(Rule="nightly", Targets=[{"Id": "q", "Arn": queue_arn}])
    scheduler = emulator.Scheduler(None, minute_seconds=0.1)
    with caplog.at_level("WARNING", logger="local.emulator"):
        started = time.monotonic()
        scheduler.start()
        while scheduler.fired.get(rule_arn, 0) < 3 and time.monotonic() - started < 10:
            time.sleep(0.02)
        scheduler.stop()
        elapsed = time.monotonic() - started
    fired = _drain(queue_url)
    # every 0.1 s, the first one rate after the rule was first seen; never faster
    assert 3 <= len(fired) <= elapsed / 0.1
    assert {e["resources"][0] for e in fired} == {rule_arn}
    envelope = fired[0]
    assert (envelope["source"], envelope["detail-type"], envelope["detail"]) == (
        "aws.events",
        "Scheduled Event",
        {},
    )
    assert {"version", "id", "time", "region"} <= set(envelope)  # moto's SQS delivery drops account
    warnings = [r.getMessage() for r in caplog.records if "nightly" in r.getMessage()]
    assert len(warnings) == 1
    assert "cron(0 3 * * ? *)" in warnings[0]

    def inputs() -> list[Any]:
        listed = sfn.list_executions(stateMachineArn=machine)["executions"]
        return [
            json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in listed
        ]

    deadline = time.monotonic() + 5
    while len(inputs()) < 3 * len(fired) and time.monotonic() < deadline:
        time.sleep(0.05)
    executions = inputs()
    assert executions.count({"kind": "sweep"}) == len(fired)
    assert executions.count([rule_arn]) == len(fired)
    whole = [i for i in executions if isinstance(i, dict) and "detail-type" in i]
    assert len(whole) == len(fired)
    assert set(whole[0]) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert whole[0]["time"].endswith("Z")
    assert scheduler.run_now("nightly") == ["nightly"]
    assert [e["resources"] for e in _drain(queue_url)] == [[rule_arn.replace("sweep", "nightly")]]
    with pytest.raises(ValueError, match="DISABLED"):
        scheduler.run_now("off")
    with pytest.raises(KeyError):
        scheduler.run_now("nope")
    assert sorted(scheduler.run_now()) == ["nightly", "sweep"]


def test_rate_expressions_the_scheduler_runs() -> None:
    assert emulator.rate_minutes("rate(1 minute)") == 1
    assert emulator.rate_minutes("rate(5 minutes)") == 5
    assert emulator.rate_minutes("rate(2 hours)") == 120
    assert emulator.rate_minutes("rate(1 day)") == 1440
    for unsupported in ("cron(0 3 * * ? *)", "rate(0 minutes)", "rate(five minutes)", ""):
        assert emulator.rate_minutes(unsupported) is None


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
    drop ``document_from_cloudformation`` in local/emulator.py."""
    from moto.ssm.models import Document

    _require_plain_moto(
        getattr(Document.create_from_cloudformation_json, "_dcvfleet", False),
        "SSM_DOCUMENT_FROM_CLOUDFORMATION",
    )
    with mock_aws(), pytest.raises(ClientError, match="Invalid document format None"):
        _create_stack("probe", _document_template())
    with mock_aws():
        stack = _create_stack("probe", _document_template(DocumentFormat="JSON"))
        name = _outputs(stack)["Name"]
        content = _client("ssm").get_document(Name=name)["Content"]
        assert content == str(COMMAND_CONTENT)
        with pytest.raises(AttributeError, match="'dict' object has no attribute 'encode'"):
            _client("ssm").describe_document(Name=name)


@mock_aws
def test_workaround_ssm_document_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``document_from_cloudformation`` creates the document as CloudFormation does: JSON by
    default, its content as JSON text, named ``<stack>-<LogicalId>-<suffix>``."""
    from moto.ssm.models import Document

    monkeypatch.setattr(
        Document, "create_from_cloudformation_json", emulator.document_from_cloudformation()
    )
    stack = _create_stack("probe", _document_template())
    name = _outputs(stack)["Name"]
    assert re.fullmatch(r"probe-Doc-[A-Za-z0-9]+", name)
    ssm = _client("ssm")
    document = ssm.get_document(Name=name)
    assert (document["DocumentFormat"], document["DocumentType"]) == ("JSON", "Command")
    assert json.loads(document["Content"]) == COMMAND_CONTENT
    described = ssm.describe_document(Name=name)["Document"]
    assert [p["Name"] for p in described["Parameters"]] == ["greeting"]


# -- SSM_RUN_COMMAND ---------------------------------------------------------------------------
def _run_instance() -> str:
    instance_id: str = _client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    return instance_id


def _create_command_document() -> str:
    _client("ssm").create_document(
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
    ``run_command_patches`` in local/emulator.py (or the parts moto now does)."""
    from moto.ssm.models import SimpleSystemManagerBackend

    _require_plain_moto(
        getattr(SimpleSystemManagerBackend.send_command, "_dcvfleet", False), "SSM_RUN_COMMAND"
    )
    ssm = _client("ssm")
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
def test_workaround_ssm_run_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_command_patches``: SendCommand checks what SSM checks, then runs the node's step
    in its own directory and environment with the parameters substituted; the invocation ends
    with the script's real status and output (the other platform's step Skipped)."""
    from moto.ssm.models import SimpleSystemManagerBackend

    for name, replacement in emulator.run_command_patches().items():
        monkeypatch.setattr(SimpleSystemManagerBackend, name, replacement)
    instance_id = _run_instance()
    node = emulator.ManagedNode("Linux", True, dict(os.environ), str(tmp_path))
    monkeypatch.setattr(emulator, "MANAGED_NODES", [lambda i: node if i == instance_id else None])
    ssm = _client("ssm")
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


# -- ECR_FROM_CLOUDFORMATION -------------------------------------------------------------------
LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "untagged go after a day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


def _repository_template(**properties: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "ImageRepository": {
                "Type": "AWS::ECR::Repository",
                "Properties": {
                    "ImageScanningConfiguration": {"ScanOnPush": True},
                    "ImageTagMutability": "IMMUTABLE",
                    "EncryptionConfiguration": {"EncryptionType": "KMS"},
                    "LifecyclePolicy": {"LifecyclePolicyText": LIFECYCLE_POLICY},
                    **properties,
                },
            }
        },
        "Outputs": {"Uri": {"Value": {"Fn::GetAtt": ["ImageRepository", "RepositoryUri"]}}},
    }


def test_gap_ecr_from_cloudformation() -> None:
    """GAP ECR_FROM_CLOUDFORMATION: a repository without ``RepositoryName`` is named after the
    stack and logical id in mixed case, which ECR refuses, so the stack fails; with a name, the
    scanning and encryption configurations are kept in CloudFormation's casing (DescribeRepositories
    shows neither) and the ``LifecyclePolicy`` is dropped. When this fails, moto has changed:
    drop ``repository_from_cloudformation`` in local/emulator.py."""
    from moto.ecr.models import Repository

    _require_plain_moto(
        getattr(Repository.create_from_cloudformation_json, "_dcvfleet", False),
        "ECR_FROM_CLOUDFORMATION",
    )
    with mock_aws(), pytest.raises(ClientError, match="repositoryName"):
        _create_stack("probe", _repository_template())
    with mock_aws():
        _create_stack("probe", _repository_template(RepositoryName="desktop"))
        ecr = _client("ecr")
        (repository,) = ecr.describe_repositories()["repositories"]
        assert repository["imageScanningConfiguration"] == {}
        assert repository["encryptionConfiguration"] == {}
        with pytest.raises(ClientError, match="LifecyclePolicyNotFoundException"):
            ecr.get_lifecycle_policy(repositoryName="desktop")


@mock_aws
def test_workaround_ecr_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``repository_from_cloudformation`` names the repository in lower case, as CloudFormation
    does, and keeps its scanning, encryption and lifecycle policy."""
    from moto.ecr.models import Repository

    monkeypatch.setattr(
        Repository, "create_from_cloudformation_json", emulator.repository_from_cloudformation()
    )
    stack = _create_stack("probe", _repository_template())
    ecr = _client("ecr")
    (repository,) = ecr.describe_repositories()["repositories"]
    name = repository["repositoryName"]
    assert re.fullmatch(r"probe-imagerepository-[a-z0-9]+", name)
    assert _outputs(stack)["Uri"] == repository["repositoryUri"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert repository["imageTagMutability"] == "IMMUTABLE"
    policy = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
    assert json.loads(policy) == json.loads(LIFECYCLE_POLICY)


# -- BATCH_FROM_CLOUDFORMATION -----------------------------------------------------------------
def _batch_network() -> dict[str, str]:
    """A subnet, a security group and an instance profile for a compute environment."""
    ec2, iam = _client("ec2"), _client("iam")
    iam.create_instance_profile(InstanceProfileName="batch-instances")
    return {
        "subnet": ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        "group": ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"],
        "profile": "batch-instances",
    }


def _batch_template(network: dict[str, str]) -> dict[str, Any]:
    """A compute environment without ServiceRole, its queue and a job definition, as the
    project's template declares them (its vCPUs a Number parameter)."""
    return {
        "Parameters": {"Vcpus": {"Type": "Number", "Default": 4}},
        "Resources": {
            "Environment": {
                "Type": "AWS::Batch::ComputeEnvironment",
                "Properties": {
                    "Type": "MANAGED",
                    "State": "ENABLED",
                    "Tags": {"dcvfleet:fleet": "probe"},
                    "ComputeResources": {
                        "Type": "SPOT",
                        "AllocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED",
                        "MinvCpus": 0,
                        "MaxvCpus": 8,
                        "InstanceTypes": ["g5.xlarge"],
                        "Subnets": [network["subnet"]],
                        "SecurityGroupIds": [network["group"]],
                        "InstanceRole": network["profile"],
                        "Ec2Configuration": [{"ImageType": "ECS_AL2023_NVIDIA"}],
                    },
                },
            },
            "Queue": {
                "Type": "AWS::Batch::JobQueue",
                "Properties": {
                    "Priority": 1,
                    "ComputeEnvironmentOrder": [
                        {"Order": 1, "ComputeEnvironment": {"Ref": "Environment"}}
                    ],
                },
            },
            "Definition": {
                "Type": "AWS::Batch::JobDefinition",
                "Properties": {
                    "Type": "container",
                    "PlatformCapabilities": ["EC2"],
                    "PropagateTags": True,
                    "Timeout": {"AttemptDurationSeconds": 600},
                    "Tags": {"dcvfleet:fleet": "probe", "Owner": "desktops"},
                    "RetryStrategy": {"Attempts": 1},
                    "ContainerProperties": {
                        "Image": "desktop:initial",
                        "ResourceRequirements": [
                            {"Type": "GPU", "Value": "1"},
                            {"Type": "VCPU", "Value": {"Ref": "Vcpus"}},
                            {"Type": "MEMORY", "Value": "15000"},
                        ],
                        "LogConfiguration": {
                            "LogDriver": "awslogs",
                            "Options": {"awslogs-stream-prefix": "desktop"},
                        },
                    },
                },
            },
        },
        "Outputs": {"Queue": {"Value": {"Ref": "Queue"}}},
    }


def _environment_resources(network: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "EC2",
        "minvCpus": 0,
        "maxvCpus": 8,
        "instanceTypes": ["g5.xlarge"],
        "subnets": [network["subnet"]],
        "securityGroupIds": [network["group"]],
        "instanceRole": network["profile"],
    }


def test_gap_batch_from_cloudformation() -> None:
    """GAP BATCH_FROM_CLOUDFORMATION: a compute environment needs a ``ServiceRole`` (on AWS,
    without one Batch uses its service-linked role): the stack fails and CreateComputeEnvironment
    refuses; given one, it loses its ``Tags``; a job definition from CloudFormation loses its
    ``PlatformCapabilities``, ``PropagateTags`` and ``Timeout``, mangles its tag keys, and keeps
    a resource requirement given by a Number parameter a number (the API's is a string), so the
    SDK refuses to register it back as a new revision. When this fails, moto has changed: drop
    ``batch_cloudformation_patches`` in local/emulator.py (or the parts moto now does)."""
    from moto.batch.models import BatchBackend

    _require_plain_moto(
        getattr(BatchBackend.create_compute_environment, "_dcvfleet", False),
        "BATCH_FROM_CLOUDFORMATION",
    )
    with mock_aws():
        template = _batch_template(_batch_network())
        with pytest.raises(KeyError, match="ServiceRole"):
            _create_stack("probe", template)
        role = _client("iam").create_role(RoleName="batch", AssumeRolePolicyDocument="{}")
        template["Resources"]["Environment"]["Properties"]["ServiceRole"] = role["Role"]["Arn"]
        _create_stack("with-role", template)
        (environment,) = _client("batch").describe_compute_environments()["computeEnvironments"]
        assert environment["tags"] == {}
    with mock_aws():
        network = _batch_network()
        with pytest.raises(ClientError, match="ServiceRole is required"):
            _client("batch").create_compute_environment(
                computeEnvironmentName="desktops",
                type="MANAGED",
                computeResources=_environment_resources(network),
            )
        template = _batch_template(network)
        del template["Resources"]["Environment"], template["Resources"]["Queue"]
        template["Outputs"] = {}
        _create_stack("probe", template)
        (definition,) = _client("batch").describe_job_definitions()["jobDefinitions"]
        assert "platformCapabilities" not in definition
        assert "propagateTags" not in definition
        assert "timeout" not in definition
        assert definition["tags"] == {"dcvfleet:fleet": "probe", "owner": "desktops"}
        requirements = definition["containerProperties"]["resourceRequirements"]
        assert {"type": "VCPU", "value": 4} in requirements
        with pytest.raises(ParamValidationError, match="resourceRequirements"):
            _client("batch").register_job_definition(
                jobDefinitionName=definition["jobDefinitionName"],
                type="container",
                containerProperties=definition["containerProperties"],
            )


@mock_aws
def test_workaround_batch_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``batch_cloudformation_patches``: without a service role the compute environment uses
    Batch's service-linked role (through CloudFormation and the API alike), keeps its tags, and
    the job definition keeps what its template says."""
    for owner, name, replacement in emulator.batch_cloudformation_patches():
        monkeypatch.setattr(owner, name, replacement)
    network = _batch_network()
    stack = _create_stack("probe", _batch_template(network))
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    batch = _client("batch")
    (environment,) = batch.describe_compute_environments()["computeEnvironments"]
    linked = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/batch.amazonaws.com/"
    assert environment["serviceRole"] == linked + "AWSServiceRoleForBatch"
    assert environment["tags"] == {"dcvfleet:fleet": "probe"}
    assert environment["computeResources"]["ec2Configuration"] == [
        {"imageType": "ECS_AL2023_NVIDIA"}
    ]
    (queue,) = batch.describe_job_queues()["jobQueues"]
    assert _outputs(stack)["Queue"] == queue["jobQueueArn"]
    assert (
        queue["computeEnvironmentOrder"][0]["computeEnvironment"]
        == (environment["computeEnvironmentArn"])
    )
    (definition,) = batch.describe_job_definitions()["jobDefinitions"]
    assert definition["platformCapabilities"] == ["EC2"]
    assert definition["propagateTags"] is True
    assert definition["timeout"] == {"attemptDurationSeconds": 600}
    assert definition["tags"] == {"dcvfleet:fleet": "probe", "Owner": "desktops"}
    assert definition["containerProperties"]["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-stream-prefix": "desktop"},
    }
    assert definition["containerProperties"]["resourceRequirements"] == [
        {"type": "GPU", "value": "1"},
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "15000"},
    ]
    revision = batch.register_job_definition(
        jobDefinitionName=definition["jobDefinitionName"],
        type="container",
        containerProperties=definition["containerProperties"],
    )
    assert revision["revision"] == definition["revision"] + 1
    batch.create_compute_environment(
        computeEnvironmentName="by-api",
        type="MANAGED",
        computeResources=_environment_resources(network),
    )
    by_api = batch.describe_compute_environments(computeEnvironments=["by-api"])
    assert by_api["computeEnvironments"][0]["serviceRole"] == linked + "AWSServiceRoleForBatch"


# -- BATCH_JOBS --------------------------------------------------------------------------------
def _job_queue(batch: Any, network: dict[str, str], role_arn: str | None) -> tuple[str, str]:
    """A queue on one managed compute environment and a GPU job definition: (queue, definition)."""
    extra = {"serviceRole": role_arn} if role_arn else {}
    environment = batch.create_compute_environment(
        computeEnvironmentName="desktops",
        type="MANAGED",
        computeResources=_environment_resources(network),
        **extra,
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName="desktops",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="desktop",
        type="container",
        containerProperties={
            "image": "desktop:initial",
            "jobRoleArn": ROLE_ARN,
            "resourceRequirements": [
                {"type": "GPU", "value": "1"},
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "15000"},
            ],
            "environment": [{"name": "DCVFLEET_EVENT_BUS_NAME", "value": "fleet"}],
        },
    )["jobDefinitionArn"]
    return queue, definition


def _batch_events(sqs: Any, events: Any, name: str) -> str:
    """A queue that gets every ``Batch Job State Change`` on the default bus."""
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(
            {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"]}
        ),
    )
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    return url


SESSION_ENVIRONMENT = [{"name": "DCVFLEET_SESSION_ID", "value": "s-1"}]


def test_gap_batch_jobs(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP BATCH_JOBS: moto runs a job in Docker; without Docker the job is FAILED within a
    second, with no statusReason, no instance, no container instance, an attempt whose
    ``containerInstanceArn`` is "TBD" and whose ``taskArn`` is the job definition's ARN, and no
    ``Batch Job State Change`` event; and every DescribeJobs adds one more
    ``AWS_BATCH_JOB_ID`` to the job's environment. When this fails, moto has changed: revisit
    ``batch_job_patches`` in local/emulator.py (and local/containers.py)."""
    from moto.batch.models import Job

    _require_plain_moto(getattr(Job.run, "_dcvfleet", False), "BATCH_JOBS")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no Docker here
    batch, iam = _client("batch", moto_server), _client("iam", moto_server)
    ec2, sqs = _client("ec2", moto_server), _client("sqs", moto_server)
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]
    iam.create_instance_profile(InstanceProfileName="batch-instances")
    network = {
        "subnet": ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        "group": ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"],
        "profile": "batch-instances",
    }
    queue, definition = _job_queue(batch, network, role["Arn"])
    events_url = _batch_events(sqs, _client("events", moto_server), "batch-changes")
    job_id = batch.submit_job(
        jobName="desktop-job",
        jobQueue=queue,
        jobDefinition=definition,
        containerOverrides={"environment": SESSION_ENVIRONMENT},
    )["jobId"]
    deadline = time.monotonic() + 10
    while batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] != "FAILED":
        assert time.monotonic() < deadline, "the job did not fail without Docker"
        time.sleep(0.1)
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert "statusReason" not in job
    assert {"containerInstanceArn", "taskArn", "exitCode"}.isdisjoint(job["container"])
    (attempt,) = job["attempts"]
    assert attempt["container"]["containerInstanceArn"] == "TBD"
    assert attempt["container"]["taskArn"] == definition
    assert ec2.describe_instances()["Reservations"] == []
    counts = [
        [
            e["name"]
            for e in batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["environment"]
        ].count("AWS_BATCH_JOB_ID")
        for _ in range(2)
    ]
    assert counts[1] == counts[0] + 1
    assert "Messages" not in sqs.receive_message(QueueUrl=events_url)


@mock_aws
def test_workaround_batch_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``batch_job_patches``: a submitted job goes PENDING, then RUNNABLE, and stays there until
    it is placed; ``job_started``, ``job_running`` and ``job_ended`` move it along with its
    container's fields; every change is a ``Batch Job State Change`` on the default bus whose
    detail is the job as DescribeJobs shows it; its environment is stable; TerminateJob ends a
    job that has not started at once and asks the simulator to stop one that has; CancelJob
    leaves a started job alone."""
    for owner, name, replacement in [
        *emulator.batch_cloudformation_patches(),
        *emulator.batch_job_patches(),
    ]:
        monkeypatch.setattr(owner, name, replacement)
    woken: list[int] = []
    monkeypatch.setattr(emulator, "JOB_LISTENERS", [lambda: woken.append(1)])
    batch, sqs = _client("batch"), _client("sqs")
    events_url = _batch_events(sqs, _client("events"), "batch-changes")
    queue, definition = _job_queue(batch, _batch_network(), None)

    def submit() -> Any:
        job_id = batch.submit_job(
            jobName="desktop-job",
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides={"environment": SESSION_ENVIRONMENT},
            timeout={"attemptDurationSeconds": 600},
        )["jobId"]
        deadline = time.monotonic() + 5
        while batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] != "RUNNABLE":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return next(j for j in emulator.batch_jobs() if j.job_id == job_id)

    job = submit()
    time.sleep(0.3)
    described = batch.describe_jobs(jobs=[job.job_id])["jobs"][0]
    assert described["status"] == "RUNNABLE"
    assert woken
    environments = [
        batch.describe_jobs(jobs=[job.job_id])["jobs"][0]["container"]["environment"]
        for _ in range(2)
    ]
    assert (
        environments[0]
        == environments[1]
        == [
            *SESSION_ENVIRONMENT,
            {"name": "DCVFLEET_EVENT_BUS_NAME", "value": "fleet"},
            {"name": "AWS_BATCH_JOB_ID", "value": job.job_id},
        ]
    )
    cluster = "arn:aws:ecs:us-east-1:123456789012:container-instance/desktops/1"
    task = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/desktops/{'a' * 32}"
    assert emulator.job_started(
        job, container_instance_arn=cluster, task_arn=task, log_stream="desktop/default/a"
    )
    emulator.job_running(job)
    running = batch.describe_jobs(jobs=[job.job_id])["jobs"][0]
    assert running["status"] == "RUNNING"
    assert "startedAt" in running
    container = running["container"]
    assert container["containerInstanceArn"] == cluster
    assert container["taskArn"] == task
    assert container["logStreamName"] == "desktop/default/a"
    assert container["image"] == "desktop:initial"
    assert container["jobRoleArn"] == ROLE_ARN
    assert {"type": "GPU", "value": "1"} in container["resourceRequirements"]
    emulator.job_ended(job, reason=emulator.CONTAINER_EXITED, exit_code=3)
    ended = batch.describe_jobs(jobs=[job.job_id])["jobs"][0]
    assert (ended["status"], ended["statusReason"]) == ("FAILED", emulator.CONTAINER_EXITED)
    assert ended["container"]["exitCode"] == 3
    (attempt,) = ended["attempts"]
    assert attempt["container"]["taskArn"] == task
    assert attempt["container"]["exitCode"] == 3
    assert attempt["stoppedAt"] >= attempt["startedAt"]
    changes = [e for e in _drain(events_url) if e["detail"]["jobId"] == job.job_id]
    assert [e["detail"]["status"] for e in changes] == [
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "FAILED",
    ]
    assert all(e["source"] == "aws.batch" for e in changes)
    assert changes[-1]["resources"] == [ended["jobArn"]]
    assert changes[-1]["detail"]["container"]["exitCode"] == 3
    assert changes[3]["detail"]["container"]["taskArn"] == task

    waiting = submit()
    batch.terminate_job(jobId=waiting.job_id, reason="no longer wanted")
    cancelled = batch.describe_jobs(jobs=[waiting.job_id])["jobs"][0]
    assert (cancelled["status"], cancelled["statusReason"]) == ("FAILED", "no longer wanted")
    assert "startedAt" not in cancelled

    started = submit()
    assert emulator.job_started(
        started, container_instance_arn=cluster, task_arn=task, log_stream="desktop/default/b"
    )
    emulator.job_running(started)
    batch.cancel_job(jobId=started.job_id, reason="too late to cancel")
    assert batch.describe_jobs(jobs=[started.job_id])["jobs"][0]["status"] == "RUNNING"
    woken.clear()
    batch.terminate_job(jobId=started.job_id, reason="user deleted the desktop")
    assert emulator.stop_requested(started) == "user deleted the desktop"
    assert woken
    assert batch.describe_jobs(jobs=[started.job_id])["jobs"][0]["status"] == "RUNNING"
    assert not emulator.job_started(
        waiting, container_instance_arn=cluster, task_arn=task, log_stream="x"
    )


# -- CODEBUILD_FROM_CLOUDFORMATION (its workaround runs in the child process above) ------------
CODEBUILD_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "ImageBuildProject": {
            "Type": "AWS::CodeBuild::Project",
            "Properties": {
                "Name": "probe-image",
                "ServiceRole": ROLE_ARN,
                "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"},
                "Artifacts": {"Type": "NO_ARTIFACTS"},
                "Environment": {
                    "Type": "LINUX_CONTAINER",
                    "ComputeType": "BUILD_GENERAL1_MEDIUM",
                    "Image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
                    "PrivilegedMode": True,
                },
            },
        }
    },
    "Outputs": {
        "Name": {"Value": {"Ref": "ImageBuildProject"}},
        "Arn": {"Value": {"Fn::GetAtt": ["ImageBuildProject", "Arn"]}},
    },
}


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_gap_codebuild_from_cloudformation() -> None:
    """GAP CODEBUILD_FROM_CLOUDFORMATION: moto's CloudFormation has no ``AWS::CodeBuild::Project``:
    a ``Fn::GetAtt`` of one fails the stack, and without one the stack completes with no project.
    When this fails, moto has changed: drop ``codebuild_project_model`` in local/emulator.py."""
    _require_plain_moto(bool(emulator._codebuild_model), "CODEBUILD_FROM_CLOUDFORMATION")
    with mock_aws(), pytest.raises(AttributeError, match="has_cfn_attr"):
        _create_stack("probe", CODEBUILD_TEMPLATE)
    with mock_aws():
        stack = _create_stack("probe", {"Resources": CODEBUILD_TEMPLATE["Resources"]})
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert _client("codebuild").list_projects()["projects"] == []


def test_workaround_codebuild_from_cloudformation(isolated: IsolatedWorkarounds) -> None:
    """``codebuild_project_model`` creates the project through CodeBuild, with its service role,
    environment and source in the API's casing; ``Ref`` is its name, ``Arn`` its ARN."""
    result = isolated.result("CODEBUILD_FROM_CLOUDFORMATION")
    assert result["status"] == "CREATE_COMPLETE"
    arn = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/probe-image"
    assert result["outputs"] == {"Name": "probe-image", "Arn": arn}
    (project,) = result["projects"]
    assert project["serviceRole"] == ROLE_ARN
    assert project["environment"]["privilegedMode"] is True
    assert project["source"] == {"type": "NO_SOURCE", "buildspec": "version: 0.2"}


# -- CODEBUILD_BUILDS --------------------------------------------------------------------------
BUILDS_BUCKET = "probe-builds"
SOURCE_KEY = "image-source/dcvfleet-image.zip"
SOURCE_BUNDLE = _zip(
    {
        "container/buildspec.yml": "version: 0.2\n",
        "container/Dockerfile": "FROM scratch\n",
        "agent/build.py": "print('agent archive')\n",
    }
)
IMAGE_REPOSITORY = "probe-desktop"
REPOSITORY_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{IMAGE_REPOSITORY}"


def _tarball(files: dict[str, str]) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _image_project(source: dict[str, Any] | None = None) -> None:
    """The image build project as the template declares it (S3 source, the repository's URI)."""
    _client("codebuild").create_project(
        name="probe-image",
        source=source
        or {
            "type": "S3",
            "location": f"{BUILDS_BUCKET}/{SOURCE_KEY}",
            "buildspec": "container/buildspec.yml",
        },
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "computeType": "BUILD_GENERAL1_MEDIUM",
            "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
            "privilegedMode": True,
            "environmentVariables": [
                {"name": "IMAGE_REPOSITORY_URI", "value": REPOSITORY_URI, "type": "PLAINTEXT"}
            ],
        },
        serviceRole=ROLE_ARN,
    )


def _start_build(version: str, key: str | None = None, snapshot: str = "20261201T000000Z") -> str:
    artifact = f"s3://{BUILDS_BUCKET}/{key or f'builds/{version}.tar.gz'}"
    build_id: str = _client("codebuild").start_build(
        projectName="probe-image",
        environmentVariablesOverride=[
            {"name": "BUILD_VERSION", "value": version, "type": "PLAINTEXT"},
            {"name": "BUILD_ARTIFACT_S3_URI", "value": artifact, "type": "PLAINTEXT"},
            {"name": "UBUNTU_SNAPSHOT", "value": snapshot, "type": "PLAINTEXT"},
        ],
    )["build"]["id"]
    return build_id


def _build(build_id: str) -> dict[str, Any]:
    (build,) = _client("codebuild").batch_get_builds(ids=[build_id])["builds"]
    return dict(build)


def _finished_build(build_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (build := _build(build_id))["buildStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, "the build never finished"
        time.sleep(0.02)
    return build


def _image_tags() -> list[str]:
    images = _client("ecr").describe_images(repositoryName=IMAGE_REPOSITORY)["imageDetails"]
    return sorted(tag for image in images for tag in image.get("imageTags", []))


@mock_aws
def test_gap_codebuild_builds() -> None:
    """GAP CODEBUILD_BUILDS: StartBuild drops ``environmentVariablesOverride`` and records a
    made-up source (CODECOMMIT, not the project's S3 bundle); BatchGetBuilds reports the build
    SUCCEEDED the first time it is asked, with every phase SUCCEEDED, though its application
    build does not even exist, and nothing is pushed. When this fails, moto has changed: revisit
    ``codebuild_build_patches`` in local/emulator.py."""
    from moto.codebuild.responses import CodeBuildResponse

    _require_plain_moto(
        getattr(CodeBuildResponse.start_build, "_dcvfleet", False), "CODEBUILD_BUILDS"
    )
    _client("ecr").create_repository(repositoryName=IMAGE_REPOSITORY)
    _image_project()
    build_id = _start_build("1.0.0")  # no bucket, no source bundle, no application build
    build = _build(build_id)
    assert build["buildStatus"] == "SUCCEEDED"
    assert {p.get("phaseStatus") for p in build["phases"]} == {"SUCCEEDED"}
    assert build["environment"]["environmentVariables"] == []
    assert build["source"]["type"] == "CODECOMMIT"
    assert _image_tags() == []


def test_workaround_codebuild_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``codebuild_build_patches``: a build keeps its variables and the project's source, runs
    after ``BUILD_SECONDS`` and pushes an image tagged with its version; a missing source bundle
    or application build, an application build with ``FAIL_BUILD`` in it and a version already
    pushed each fail their phase with a reason, and push nothing."""
    apply = [*emulator.codebuild_build_patches()]
    for owner, name, replacement in apply:
        monkeypatch.setattr(owner, name, replacement)
    monkeypatch.setattr(emulator, "BUILD_SECONDS", 0.2)
    with mock_aws():
        s3, logs = _client("s3"), _client("logs")
        s3.create_bucket(Bucket=BUILDS_BUCKET)
        _client("ecr").create_repository(
            repositoryName=IMAGE_REPOSITORY, imageTagMutability="IMMUTABLE"
        )
        _image_project()
        builds = {"1.0.0": _tarball({"app/start": "#!/bin/sh\n"})}
        builds["1.1.0"] = _tarball({"app/start": "#!/bin/sh\n", "app/FAIL_BUILD": "no GPU\n"})
        for version, body in builds.items():
            s3.put_object(Bucket=BUILDS_BUCKET, Key=f"builds/{version}.tar.gz", Body=body)

        # no source bundle yet: the source download fails
        missing_source = _finished_build(_start_build("1.0.0"))
        assert missing_source["buildStatus"] == "FAILED"
        assert missing_source["phases"][-3]["phaseType"] == "DOWNLOAD_SOURCE"
        assert "NoSuchKey" in missing_source["phases"][-3]["contexts"][0]["message"]
        s3.put_object(Bucket=BUILDS_BUCKET, Key=SOURCE_KEY, Body=SOURCE_BUNDLE)

        build_id = _start_build("1.0.0")
        started = _build(build_id)
        assert started["buildStatus"] == "IN_PROGRESS"
        variables = {v["name"]: v["value"] for v in started["environment"]["environmentVariables"]}
        assert variables == {
            "IMAGE_REPOSITORY_URI": REPOSITORY_URI,
            "BUILD_VERSION": "1.0.0",
            "BUILD_ARTIFACT_S3_URI": f"s3://{BUILDS_BUCKET}/builds/1.0.0.tar.gz",
            "UBUNTU_SNAPSHOT": "20261201T000000Z",
        }
        assert started["source"]["location"] == f"{BUILDS_BUCKET}/{SOURCE_KEY}"
        built = _finished_build(build_id)
        assert built["buildStatus"] == "SUCCEEDED", built["phases"]
        assert [p["phaseType"] for p in built["phases"]] == list(emulator.BUILD_PHASES)
        assert _image_tags() == ["1.0.0"]
        exported = {v["name"]: v["value"] for v in built["exportedEnvironmentVariables"]}
        assert exported["IMAGE_URI"] == f"{REPOSITORY_URI}:1.0.0"
        (image,) = _client("ecr").describe_images(
            repositoryName=IMAGE_REPOSITORY, imageIds=[{"imageTag": "1.0.0"}]
        )["imageDetails"]
        assert image["imageDigest"] == exported["IMAGE_DIGEST"]
        events = logs.get_log_events(
            logGroupName=built["logs"]["groupName"], logStreamName=built["logs"]["streamName"]
        )["events"]
        assert any("Phase complete: POST_BUILD State: SUCCEEDED" in e["message"] for e in events)

        def failed(version: str, key: str | None = None, snapshot: str = "") -> tuple[str, str]:
            build = _finished_build(_start_build(version, key, snapshot or "20261201T000000Z"))
            assert build["buildStatus"] == "FAILED"
            phase = next(p for p in build["phases"] if p.get("phaseStatus") == "FAILED")
            return phase["phaseType"], phase["contexts"][0]["message"]

        phase, message = failed("1.1.0")  # the application build says it cannot be built
        assert (phase, message) == (
            "BUILD",
            "docker build failed (app/FAIL_BUILD in the application build): no GPU",
        )
        phase, message = failed("1.2.0")  # no such application build
        assert phase == "PRE_BUILD"
        assert 'Key "builds/1.2.0.tar.gz" does not exist' in message
        phase, message = failed("1.0.0")  # that version was pushed already
        assert (phase, message) == (
            "PRE_BUILD",
            f"buildspec: {REPOSITORY_URI}:1.0.0 already exists",
        )
        phase, message = failed("latest")
        assert (phase, message) == ("PRE_BUILD", "buildspec: BUILD_VERSION must not be 'latest'")
        phase, message = failed("1.3.0", snapshot="2025-06-01")  # not a snapshot id
        assert (phase, message) == (
            "PRE_BUILD",
            "buildspec: UBUNTU_SNAPSHOT '2025-06-01' is not an Ubuntu snapshot id (YYYYMMDDTHHMMSSZ)",
        )
        assert _image_tags() == ["1.0.0"]


# -- SFN_AWS_SDK_CASING ------------------------------------------------------------------------
#: Two aws-sdk Tasks written as AWS documents them (PascalCase in, PascalCase out).
SDK_MACHINE = {
    "StartAt": "Start",
    "States": {
        "Start": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:codebuild:startBuild",
            "Parameters": {
                "ProjectName.$": "$.project",
                "EnvironmentVariablesOverride": [
                    {"Name": "BUILD_VERSION", "Value": "1.0.0", "Type": "PLAINTEXT"}
                ],
            },
            "ResultSelector": {"id.$": "$.Build.Id"},
            "ResultPath": "$.build",
            "Catch": [
                {
                    "ErrorEquals": ["CodeBuild.ResourceNotFoundException"],
                    "ResultPath": "$.error",
                    "Next": "NoProject",
                }
            ],
            "Next": "Check",
        },
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:codebuild:batchGetBuilds",
            "Parameters": {"Ids.$": "States.Array($.build.id)"},
            "ResultSelector": {"status.$": "$.Builds[0].BuildStatus"},
            "End": True,
        },
        "NoProject": {"Type": "Pass", "End": True},
    },
}


def _run_sdk_machine(project: str) -> dict[str, Any]:
    sfn = _client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"probe-{project}", definition=json.dumps(SDK_MACHINE), roleArn=ROLE_ARN
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"project": project}))[
        "executionArn"
    ]
    return _wait_execution(sfn, arn)


def test_gap_sfn_aws_sdk_casing() -> None:
    """GAP SFN_AWS_SDK_CASING: an aws-sdk Task hands its parameters to the SDK as written, so
    the PascalCase AWS documents (``ProjectName``) fails the state with States.Runtime (a
    KeyError); its result keeps the API's casing (``$.build.id``, not ``$.Build.Id``). When this
    fails, moto has changed: drop ``sfn_aws_sdk_patches`` in local/emulator.py."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
    )

    _require_plain_moto(
        getattr(
            state_task_service_aws_sdk.StateTaskServiceAwsSdk._normalise_parameters,
            "_dcvfleet",
            False,
        ),
        "SFN_AWS_SDK_CASING",
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        _image_project({"type": "NO_SOURCE", "location": "-", "buildspec": "version: 0.2"})
        execution = _run_sdk_machine("probe-image")
        assert (execution["status"], execution["error"]) == ("FAILED", "States.Runtime")
        assert "'ProjectName'" in execution["cause"]
        camel = {
            "StartAt": "Start",
            "States": {
                "Start": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:codebuild:startBuild",
                    "Parameters": {"projectName": "probe-image"},
                    "ResultSelector": {"id.$": "$.build.id"},
                    "End": True,
                }
            },
        }
        sfn = _client("stepfunctions")
        machine = sfn.create_state_machine(
            name="camel", definition=json.dumps(camel), roleArn=ROLE_ARN
        )["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        execution = _wait_execution(sfn, arn)
        assert execution["status"] == "SUCCEEDED"
        assert json.loads(execution["output"])["id"].startswith("probe-image:")


def test_workaround_sfn_aws_sdk_casing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sfn_aws_sdk_patches``: PascalCase parameters reach the API, the result is PascalCase
    (``$.Build.Id``, ``$.Builds[0].BuildStatus``) and a service error is caught by its Step
    Functions name (``CodeBuild.ResourceNotFoundException``)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
    )

    for owner, name, replacement in [
        *emulator.sfn_aws_sdk_patches(),
        *emulator.sfn_json_path_patches(),  # $.Builds[0].BuildStatus: SFN_JSONPATH_INDEX
    ]:
        monkeypatch.setattr(owner, name, replacement)
    assert state_task_service_aws_sdk._SERVICE_ERROR_NAMES["codebuild"] == "CodeBuild"
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        _image_project({"type": "NO_SOURCE", "location": "-", "buildspec": "version: 0.2"})
        execution = _run_sdk_machine("probe-image")
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        assert json.loads(execution["output"]) == {"status": "SUCCEEDED"}
        execution = _run_sdk_machine("no-such-project")
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        error = json.loads(execution["output"])["error"]
        assert error["Error"] == "CodeBuild.ResourceNotFoundException"


# -- S3_FROM_CLOUDFORMATION --------------------------------------------------------------------
BUCKET_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "BuildsBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "NotificationConfiguration": {
                    "EventBridgeConfiguration": {"EventBridgeEnabled": True}
                },
            },
        }
    },
    "Outputs": {"Name": {"Value": {"Ref": "BuildsBucket"}}},
}


def _build_uploads(bucket: str) -> str:
    """A queue behind the release workflow's rule (default bus): builds/ in the bucket."""
    url, arn = _queue("uploads")
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "builds/"}]}},
    }
    events = _client("events")
    events.put_rule(Name="uploads", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="uploads", Targets=[{"Id": "q", "Arn": arn}])
    return url


@mock_aws
def test_gap_s3_from_cloudformation() -> None:
    """GAP S3_FROM_CLOUDFORMATION: a bucket made by CloudFormation loses its
    ``NotificationConfiguration`` (an upload puts no event on the default bus) and its
    ``VersioningConfiguration``. When this fails, moto has changed: drop
    ``bucket_cloudformation_patches`` in local/emulator.py."""
    from moto.s3.models import FakeBucket

    _require_plain_moto(
        getattr(FakeBucket.create_from_cloudformation_json, "_dcvfleet", False),
        "S3_FROM_CLOUDFORMATION",
    )
    bucket = _outputs(_create_stack("probe", BUCKET_TEMPLATE))["Name"]
    s3 = _client("s3")
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    queue_url = _build_uploads(bucket)
    s3.put_object(Bucket=bucket, Key="builds/1.0.0.tar.gz", Body=b"build")
    assert _drain(queue_url) == []


@mock_aws
def test_workaround_s3_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bucket_cloudformation_patches``: the bucket is versioned and sends its events to
    EventBridge, where a rule on the default bus matches an upload under ``builds/`` (the
    bucket's name and the object's key where AWS puts them) and nothing else."""
    for owner, name, replacement in emulator.bucket_cloudformation_patches():
        monkeypatch.setattr(owner, name, replacement)
    bucket = _outputs(_create_stack("probe", BUCKET_TEMPLATE))["Name"]
    s3 = _client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    queue_url = _build_uploads(bucket)
    s3.put_object(Bucket=bucket, Key="builds/1.0.0.tar.gz", Body=b"build")
    s3.put_object(Bucket=bucket, Key="image-source/dcvfleet-image.zip", Body=b"source")
    (event,) = _drain(queue_url)
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["detail"]["bucket"]["name"] == bucket
    assert event["detail"]["object"]["key"] == "builds/1.0.0.tar.gz"
    assert event["detail"]["object"]["version-id"] not in ("", "null")


# -- SFN_JSONPATH_INDEX ------------------------------------------------------------------------
#: Paths into ``{"Builds": [{"BuildStatus": "SUCCEEDED"}, {"BuildStatus": "FAILED"}]}``.
PATH_MACHINE = {
    "StartAt": "Select",
    "States": {
        "Select": {
            "Type": "Pass",
            "Parameters": {
                "first.$": "$.Builds[0].BuildStatus",
                "all.$": "$.Builds[*].BuildStatus",
                "failed.$": "$.Builds[?(@.BuildStatus == 'FAILED')].BuildStatus",
            },
            "Next": "Succeeded",
        },
        "Succeeded": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.first", "StringEquals": "SUCCEEDED", "Next": "Yes"}],
            "Default": "No",
        },
        "Yes": {"Type": "Pass", "Result": "yes", "ResultPath": "$.choice", "End": True},
        "No": {"Type": "Pass", "Result": "no", "ResultPath": "$.choice", "End": True},
    },
}
PATH_INPUT = {"Builds": [{"BuildStatus": "SUCCEEDED"}, {"BuildStatus": "FAILED"}]}


def _select_paths() -> dict[str, Any]:
    sfn = _client("stepfunctions")
    machine = sfn.create_state_machine(
        name="paths", definition=json.dumps(PATH_MACHINE), roleArn=ROLE_ARN
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(PATH_INPUT))["executionArn"]
    execution = _wait_execution(sfn, arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output: dict[str, Any] = json.loads(execution["output"])
    return output


def test_gap_sfn_jsonpath_index() -> None:
    """GAP SFN_JSONPATH_INDEX: a definite path through an array index yields a one-element list,
    so a Choice comparing it to a string goes to its Default. When this fails, moto has changed:
    drop ``sfn_json_path_patches`` in local/emulator.py."""
    from moto.stepfunctions.parser.asl.utils import json_path

    _require_plain_moto(getattr(json_path.extract_json, "_dcvfleet", False), "SFN_JSONPATH_INDEX")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        output = _select_paths()
    assert output == {"first": ["SUCCEEDED"], "all": ["SUCCEEDED", "FAILED"],
                      "failed": ["FAILED"], "choice": "no"}  # fmt: skip


def test_workaround_sfn_jsonpath_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sfn_json_path_patches``: the definite path yields the value; wildcards and filters still
    yield lists, as in Step Functions."""
    for owner, name, replacement in emulator.sfn_json_path_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        output = _select_paths()
    assert output == {"first": "SUCCEEDED", "all": ["SUCCEEDED", "FAILED"],
                      "failed": ["FAILED"], "choice": "yes"}  # fmt: skip


# -- a Fail state naming a reserved error (checked, not a gap) -------------------------------
#: A Fail state whose ErrorPath yields a name Step Functions reserves, and one that yields ours.
FAIL_MACHINE = {
    "StartAt": "Failed",
    "States": {"Failed": {"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$.cause"}},
}


def _fail_with(error: str) -> dict[str, Any]:
    sfn = _client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"fail-{len(sfn.list_state_machines()['stateMachines'])}",
        definition=json.dumps(FAIL_MACHINE),
        roleArn=ROLE_ARN,
    )["stateMachineArn"]
    body = json.dumps({"error": error, "cause": "no verified Host Ready event"})
    arn = sfn.start_execution(stateMachineArn=machine, input=body)["executionArn"]
    execution = _wait_execution(sfn, arn)
    assert execution["status"] == "FAILED", execution
    return {"error": execution.get("error"), "cause": execution.get("cause")}


def test_no_gap_sfn_fail_reserved_error() -> None:
    """NOT A GAP: a Fail state whose ErrorPath yields ``States.Timeout`` fails the execution with
    ``States.Runtime``, as Step Functions does (it reserves ``States.*`` names for its own
    errors: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html),
    and a name of ours fails it with that name and cause. The workflows' Fail states rely on
    both (tests/template/test_workflow_errors.py); when this fails, moto has changed and a
    workaround belongs in local/emulator.py."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        reserved = _fail_with("States.Timeout")
        ours = _fail_with("HostNotReadyError")
    assert reserved["error"] == "States.Runtime"
    assert "'States.Timeout'" in str(reserved["cause"])
    assert ours == {"error": "HostNotReadyError", "cause": "no verified Host Ready event"}


# -- COGNITO_SRP -------------------------------------------------------------------------------
def _cognito_user(idp: Any, password: str) -> str:
    """A pool, its portal client (SRP and password flows) and a confirmed user "alice"."""
    pool_id = idp.create_user_pool(PoolName="fleet-users")["UserPool"]["Id"]
    client_id: str = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="portal",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH"],
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(
        UserPoolId=pool_id, Username="alice", TemporaryPassword=password, MessageAction="SUPPRESS"
    )
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password=password, Permanent=True
    )
    return client_id


@mock_aws
def test_gap_cognito_srp() -> None:
    """GAP COGNITO_SRP: USER_SRP_AUTH answers with uuid hex for ``SALT`` and ``SRP_B`` (its
    ``SECRET_BLOCK`` the session id) and signs in with any ``PASSWORD_CLAIM_SIGNATURE``, so with
    no password at all. When this fails, moto has changed: drop ``cognito_srp_patches`` in
    local/emulator.py (tests/local/test_cognito_srp.py shows Cognito's behaviour)."""
    from moto.cognitoidp.models import CognitoIdpBackend

    _require_plain_moto(getattr(CognitoIdpBackend.initiate_auth, "_dcvfleet", False), "COGNITO_SRP")
    idp = _client("cognito-idp")
    client_id = _cognito_user(idp, "Correct-Horse-42")
    challenge = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_SRP_AUTH",
        AuthParameters={"USERNAME": "alice", "SRP_A": "1"},
    )
    parameters = challenge["ChallengeParameters"]
    assert re.fullmatch(r"[0-9a-f]{32}", parameters["SALT"])
    assert re.fullmatch(r"[0-9a-f]{32}", parameters["SRP_B"])
    assert parameters["SECRET_BLOCK"] == challenge["Session"]
    answer = {
        "USERNAME": "alice",
        "TIMESTAMP": "Mon Jan 1 00:00:00 UTC 2024",
        "PASSWORD_CLAIM_SECRET_BLOCK": parameters["SECRET_BLOCK"],
        "PASSWORD_CLAIM_SIGNATURE": "forged",
    }
    tokens = idp.respond_to_auth_challenge(
        ClientId=client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=answer
    )["AuthenticationResult"]
    assert idp.get_user(AccessToken=tokens["AccessToken"])["Username"] == "alice"


# -- COGNITO_AUTH_FLOWS ------------------------------------------------------------------------
def _srp_only_client(idp: Any) -> tuple[str, str]:
    """A pool whose portal client allows what template.yaml's does (SRP and refresh), with a
    confirmed user "alice"; the pool and client ids."""
    pool_id = idp.create_user_pool(PoolName="fleet-users")["UserPool"]["Id"]
    client_id: str = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="portal",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(
        UserPoolId=pool_id, Username="alice", TemporaryPassword="Correct-Horse-42",
        MessageAction="SUPPRESS",
    )  # fmt: skip
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password="Correct-Horse-42", Permanent=True
    )
    return pool_id, client_id


def _password_sign_in(idp: Any, client_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
    )
    return answer


@mock_aws
def test_gap_cognito_auth_flows() -> None:
    """GAP COGNITO_AUTH_FLOWS: a client that allows only SRP and refresh signs alice in with
    USER_PASSWORD_AUTH and ADMIN_USER_PASSWORD_AUTH. When this fails, moto has changed: drop
    ``cognito_auth_flow_patches`` in local/emulator.py."""
    from moto.cognitoidp.models import CognitoIdpBackend

    _require_plain_moto(
        getattr(CognitoIdpBackend.initiate_auth, "_dcvfleet_flows", False), "COGNITO_AUTH_FLOWS"
    )
    idp = _client("cognito-idp")
    pool_id, client_id = _srp_only_client(idp)
    assert "IdToken" in _password_sign_in(idp, client_id)["AuthenticationResult"]
    admin = idp.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
    )
    assert "IdToken" in admin["AuthenticationResult"]


def test_workaround_cognito_auth_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cognito_auth_flow_patches``: the flows the client does not allow are refused as Cognito
    refuses them; SRP and refresh still sign in."""
    for owner, name, replacement in emulator.cognito_auth_flow_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        idp = _client("cognito-idp")
        pool_id, client_id = _srp_only_client(idp)
        with pytest.raises(ClientError) as refused:
            _password_sign_in(idp, client_id)
        assert refused.value.response["Error"] == {
            "Code": "InvalidParameterException",
            "Message": "USER_PASSWORD_AUTH flow not enabled for this client",
        }
        with pytest.raises(ClientError) as admin_refused:
            idp.admin_initiate_auth(
                UserPoolId=pool_id,
                ClientId=client_id,
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
            )
        assert admin_refused.value.response["Error"]["Code"] == "InvalidParameterException"
        srp = idp.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_SRP_AUTH",
            AuthParameters={"USERNAME": "alice", "SRP_A": "1"},
        )
        assert srp["ChallengeName"] == "PASSWORD_VERIFIER"
    # what a client allows by default, and legacy values
    assert emulator.auth_flow_allowed(None, "USER_SRP_AUTH")
    assert not emulator.auth_flow_allowed(None, "USER_PASSWORD_AUTH")
    assert emulator.auth_flow_allowed(["USER_PASSWORD_AUTH"], "USER_PASSWORD_AUTH")
    assert emulator.auth_flow_allowed(["ADMIN_NO_SRP_AUTH"], "REFRESH_TOKEN_AUTH")
    assert not emulator.auth_flow_allowed(["ALLOW_USER_SRP_AUTH"], "REFRESH_TOKEN_AUTH")


# -- COGNITO_READ_ATTRIBUTES -------------------------------------------------------------------
def _id_token_claims(idp: Any) -> dict[str, Any]:
    """The ID token's claims of a user with an e-mail address, signed in through a client
    without ReadAttributes (as template.yaml's)."""
    pool_id = idp.create_user_pool(PoolName="fleet-users")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="portal", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(
        UserPoolId=pool_id,
        Username="alice",
        UserAttributes=[
            {"Name": "email", "Value": "alice@example.com"},
            {"Name": "email_verified", "Value": "true"},
        ],
        MessageAction="SUPPRESS",
    )
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password="Correct-Horse-42", Permanent=True
    )
    token = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
    )["AuthenticationResult"]["IdToken"]
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@mock_aws
def test_gap_cognito_read_attributes() -> None:
    """GAP COGNITO_READ_ATTRIBUTES: without ReadAttributes the ID token has no ``email``. When
    this fails, moto has changed: drop ``cognito_read_attribute_patches`` in local/emulator.py."""
    from moto.cognitoidp.models import CognitoIdpUserPool

    _require_plain_moto(
        getattr(CognitoIdpUserPool.get_user_extra_data_by_client_id, "_dcvfleet", False),
        "COGNITO_READ_ATTRIBUTES",
    )
    claims = _id_token_claims(_client("cognito-idp"))
    assert "email" not in claims
    assert claims["cognito:username"] == "alice"


def test_workaround_cognito_read_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cognito_read_attribute_patches``: the ID token carries the user's e-mail address."""
    for owner, name, replacement in emulator.cognito_read_attribute_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        claims = _id_token_claims(_client("cognito-idp"))
    assert claims["email"] == "alice@example.com"


# -- COGNITO_TOTP ------------------------------------------------------------------------------
def _verify_code(idp: Any, code: str) -> dict[str, Any]:
    """alice, signed in, associates an authenticator app and verifies ``code`` from it."""
    pool_id = idp.create_user_pool(PoolName="fleet-users")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="portal", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password="Correct-Horse-42", Permanent=True
    )
    access = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
    )["AuthenticationResult"]["AccessToken"]
    idp.associate_software_token(AccessToken=access)
    answer: dict[str, Any] = idp.verify_software_token(AccessToken=access, UserCode=code)
    return answer


@mock_aws
def test_gap_cognito_totp(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP COGNITO_TOTP: without the setting, any code verifies. When this fails, moto has
    changed: drop ``enable_totp_checks`` in local/emulator.py."""
    monkeypatch.setenv(emulator.TOTP_SETTING, "false")
    assert _verify_code(_client("cognito-idp"), "000000")["Status"] == "SUCCESS"


@mock_aws
def test_workaround_cognito_totp(monkeypatch: pytest.MonkeyPatch) -> None:
    """``enable_totp_checks``: a wrong code is refused."""
    monkeypatch.setenv(emulator.TOTP_SETTING, "false")
    emulator.enable_totp_checks()
    with pytest.raises(ClientError) as refused:
        _verify_code(_client("cognito-idp"), "000000")
    assert refused.value.response["Error"]["Code"] == "CodeMismatchException"


# -- SNS_EMAIL ---------------------------------------------------------------------------------
def _topic_with_addresses(sns: Any) -> tuple[str, dict[str, str]]:
    """A topic and two e-mail subscriptions, each filtered on its owner (as the API makes
    them); the topic's ARN and each owner's subscription ARN."""
    topic = sns.create_topic(Name="users")["TopicArn"]
    subscriptions = {}
    for owner in ("alice", "bob"):
        subscriptions[owner] = sns.subscribe(
            TopicArn=topic,
            Protocol="email",
            Endpoint=f"{owner}@example.com",
            Attributes={
                "FilterPolicyScope": "MessageAttributes",
                "FilterPolicy": json.dumps({"owner": [owner]}),
            },
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    return topic, subscriptions


def _publish_for(sns: Any, topic: str, owner: str, text: str) -> None:
    sns.publish(
        TopicArn=topic,
        Subject="Your desktop is ready",
        Message=text,
        MessageAttributes={"owner": {"DataType": "String", "StringValue": owner}},
    )


@mock_aws
def test_gap_sns_email() -> None:
    """GAP SNS_EMAIL: an e-mail subscription is confirmed at once, and what it delivers is kept
    nowhere: the SNS backend holds the message only as the topic's (every subscriber's) sent
    notification. When this fails, moto has changed: drop ``sns_email_patches`` in
    local/emulator.py."""
    from moto.sns.models import Subscription, sns_backends

    _require_plain_moto(getattr(Subscription.publish, "_dcvfleet", False), "SNS_EMAIL")
    sns = _client("sns")
    topic, subscriptions = _topic_with_addresses(sns)
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscriptions["alice"])
    assert attributes["Attributes"]["PendingConfirmation"] == "false"
    backend = sns_backends[DEFAULT_ACCOUNT_ID][REGION]
    text = "for-alice-7f3c"
    _publish_for(sns, topic, "alice", text)
    (sent,) = backend.topics[topic].sent_notifications
    assert sent[1] == text
    backend.topics[topic].sent_notifications.clear()
    assert text not in repr(vars(backend))  # no record of alice's e-mail anywhere else
    assert emulator.mailbox() == []


def test_workaround_sns_email(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sns_email_patches``: each address receives what its filter policy lets through: alice
    her notification, bob his, neither the other's."""
    for owner, name, replacement in emulator.sns_email_patches():
        monkeypatch.setattr(owner, name, replacement)
    monkeypatch.setattr(emulator, "SNS_MAILBOX", [])
    with mock_aws():
        sns = _client("sns")
        topic, _ = _topic_with_addresses(sns)
        _publish_for(sns, topic, "alice", "ready for alice")
        _publish_for(sns, topic, "bob", "ready for bob")
        _publish_for(sns, topic, "carol", "ready for carol")
    assert [(m["to"], m["message"]) for m in emulator.mailbox()] == [
        ("alice@example.com", "ready for alice"),
        ("bob@example.com", "ready for bob"),
    ]
    assert emulator.mailbox()[0]["subject"] == "Your desktop is ready"
    assert emulator.mailbox()[0]["attributes"] == {"owner": "alice"}


# -- SNS_SUBSCRIBE_ATTRIBUTES -------------------------------------------------------------------
def _subscribe_for(sns: Any, topic: str, owner: str, address: str) -> str:
    arn: str = sns.subscribe(
        TopicArn=topic,
        Protocol="email",
        Endpoint=address,
        Attributes={
            "FilterPolicyScope": "MessageAttributes",
            "FilterPolicy": json.dumps({"owner": [owner]}),
        },
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return arn


def _filter_of(sns: Any, arn: str) -> Any:
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    return json.loads(attributes["FilterPolicy"])


@mock_aws
def test_gap_sns_subscribe_attributes() -> None:
    """GAP SNS_SUBSCRIBE_ATTRIBUTES: bob subscribing alice's address with his own filter policy
    takes her subscription over. When this fails, moto has changed: drop
    ``sns_subscribe_patches`` in local/emulator.py."""
    from moto.sns.responses import SNSResponse

    _require_plain_moto(
        getattr(SNSResponse.subscribe, "_dcvfleet", False), "SNS_SUBSCRIBE_ATTRIBUTES"
    )
    sns = _client("sns")
    topic = sns.create_topic(Name="users")["TopicArn"]
    alices = _subscribe_for(sns, topic, "alice", "alice@example.com")
    assert _subscribe_for(sns, topic, "bob", "alice@example.com") == alices
    assert _filter_of(sns, alices) == {"owner": ["bob"]}


def test_workaround_sns_subscribe_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sns_subscribe_patches``: refused, alice's subscription unchanged; the same request again
    answers her subscription."""
    for owner, name, replacement in emulator.sns_subscribe_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        sns = _client("sns")
        topic = sns.create_topic(Name="users")["TopicArn"]
        alices = _subscribe_for(sns, topic, "alice", "alice@example.com")
        with pytest.raises(ClientError) as refused:
            _subscribe_for(sns, topic, "bob", "alice@example.com")
        assert refused.value.response["Error"]["Code"] == "InvalidParameter"
        assert (
            "already exists with different attributes" in refused.value.response["Error"]["Message"]
        )
        assert _filter_of(sns, alices) == {"owner": ["alice"]}
        assert _subscribe_for(sns, topic, "alice", "alice@example.com") == alices


def test_no_gap_browser_calls(moto_server: str) -> None:
    """Checked, not a gap: a browser's unsigned JSON call (no ``Authorization``, as the portal
    calls Cognito) reaches cognito-idp by its ``X-Amz-Target``; a CORS preflight to the server's
    root allows the page's origin and headers; answers (errors too) carry
    ``Access-Control-Allow-Origin``. When this fails, moto has changed: the portal's sign-in on
    the local stack needs a workaround in local/emulator.py."""
    origin = "http://localhost:5173"
    client_id = _cognito_user(_client("cognito-idp", moto_server), "Correct-Horse-42")
    preflight = requests.options(
        f"{moto_server}/",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-amz-target",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    allowed = {h.strip() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-amz-target"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    def sign_in(password: str) -> requests.Response:
        return requests.post(
            f"{moto_server}/",
            headers={
                "Origin": origin,
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            },
            data=json.dumps(
                {
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "ClientId": client_id,
                    "AuthParameters": {"USERNAME": "alice", "PASSWORD": password},
                }
            ),
            timeout=10,
        )

    signed_in = sign_in("Correct-Horse-42")
    assert signed_in.status_code == 200, signed_in.text
    assert "AccessToken" in signed_in.json()["AuthenticationResult"]
    assert signed_in.headers["Access-Control-Allow-Origin"] == origin
    refused = sign_in("wrong")
    assert refused.status_code == 400
    assert refused.json()["__type"] == "NotAuthorizedException"
    assert refused.headers["Access-Control-Allow-Origin"] == origin


@mock_aws
@pytest.mark.parametrize(
    ("resource_type", "properties"),
    [
        (
            "AWS::CloudFront::OriginAccessControl",
            {
                "OriginAccessControlConfig": {
                    "Name": "portal",
                    "OriginAccessControlOriginType": "s3",
                    "SigningBehavior": "always",
                    "SigningProtocol": "sigv4",
                }
            },
        ),
        (
            "AWS::CloudFront::ResponseHeadersPolicy",
            {"ResponseHeadersPolicyConfig": {"Name": "portal-headers"}},
        ),
        ("AWS::Lambda::LayerVersion", {"Content": {"S3Bucket": "layers", "S3Key": "k.zip"}}),
    ],
)
def test_gap_cloudfront_and_layers_not_in_cloudformation(
    resource_type: str, properties: dict[str, Any]
) -> None:
    """GAP CLOUDFRONT (and the layer and bucket policy entries of API_CREATED_TYPES): moto's
    CloudFormation makes nothing of a CloudFront resource or a layer version: the stack
    completes and the resource has no physical id. When this fails, moto has changed: drop
    the type from ``LOCALLY_SERVED_TYPES`` / ``API_CREATED_TYPES`` in local/emulator.py."""
    s3 = _client("s3")
    s3.create_bucket(Bucket="layers")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr("index.html", "<!doctype html>")
    s3.put_object(Bucket="layers", Key="k.zip", Body=archive.getvalue())
    template = {"Resources": {"Probe": {"Type": resource_type, "Properties": properties}}}
    _create_stack("probe", template)
    resources = {r.get("LogicalResourceId"): r for r in _stack_resources("probe")}
    assert "PhysicalResourceId" not in resources.get("Probe", {})


@mock_aws
def test_gap_bucket_policy_not_in_cloudformation() -> None:
    """GAP (API_CREATED_TYPES): a bucket policy from CloudFormation is skipped (moto warns), so
    the bucket has none. When this fails, drop AWS::S3::BucketPolicy from API_CREATED_TYPES."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteBucket",
                "Resource": "arn:aws:s3:::probe-portal",
            }
        ],
    }
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "probe-portal"}},
            "Policy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": policy},
            },
        }
    }
    with pytest.warns(UserWarning, match="BucketPolicy"):
        _create_stack("probe", template)
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        _client("s3").get_bucket_policy(Bucket="probe-portal")


ALARM_PROPERTIES = {
    "Namespace": "AWS/SQS",
    "MetricName": "ApproximateNumberOfMessagesVisible",
    "Dimensions": [{"Name": "QueueName", "Value": "dlq"}],
    "Statistic": "Maximum",
    "Period": 300,
    "EvaluationPeriods": 1,
    "Threshold": 1,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
}


@mock_aws
def test_gap_cloudwatch_alarms_not_in_cloudformation() -> None:
    """GAP CLOUDWATCH_ALARMS: moto's CloudFormation makes no alarm of an AWS::CloudWatch::Alarm.
    When this fails, moto has changed: drop
    the alarm and dashboard entries of API_CREATED_TYPES in local/emulator.py."""
    template = {
        "Resources": {"Probe": {"Type": "AWS::CloudWatch::Alarm", "Properties": ALARM_PROPERTIES}}
    }
    with contextlib.suppress(ClientError):
        _create_stack("probe", template)
    assert _client("cloudwatch").describe_alarms()["MetricAlarms"] == []


@mock_aws
def test_gap_apigateway_account_not_in_cloudformation() -> None:
    """GAP APIGW_ACCOUNT: moto's CloudFormation does not set the account's CloudWatch role from an
    AWS::ApiGateway::Account. When this fails, moto has changed: drop the AWS::ApiGateway::Account
    entry of API_CREATED_TYPES in local/emulator.py and ``_set_api_gateway_account`` in
    local/deploy.py."""
    role = "arn:aws:iam::123456789012:role/apigateway-logs"
    template = {
        "Resources": {
            "Probe": {"Type": "AWS::ApiGateway::Account", "Properties": {"CloudWatchRoleArn": role}}
        }
    }
    with warnings.catch_warnings(), contextlib.suppress(ClientError):
        warnings.simplefilter("ignore")
        _create_stack("probe", template)
    assert _client("apigateway").get_account().get("cloudwatchRoleArn") != role


# ==============================================================================================
# SERVICE_QUOTAS_EC2
def test_gap_service_quotas_ec2() -> None:
    """GAP SERVICE_QUOTAS_EC2: Service Quotas knows only VPC's quotas; EC2's G and VT vCPU quotas
    are NoSuchResourceException and GetAWSDefaultServiceQuota is not implemented."""
    from moto.servicequotas.models import ServiceQuotasBackend

    patched = getattr(ServiceQuotasBackend.get_service_quota, "_dcvfleet", False)
    _require_plain_moto(patched, "SERVICE_QUOTAS_EC2")
    with mock_aws():
        quotas = boto3.client("service-quotas", region_name=REGION)
        for code in emulator.EC2_QUOTAS:
            with pytest.raises(ClientError) as refused:
                quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)
            assert refused.value.response["Error"]["Code"] == "NoSuchResourceException"
            with pytest.raises(NotImplementedError):
                quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)


def test_workaround_service_quotas_ec2(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in emulator.service_quota_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        quotas = boto3.client("service-quotas", region_name=REGION)
        quota = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-DB2E81BA")["Quota"]
        assert quota["QuotaName"] == "Running On-Demand G and VT instances"
        assert quota["Value"] == emulator.EC2_QUOTA_VCPUS
        emulator.set_ec2_quota(ACCOUNT, REGION, "L-3819A6DF", 8)
        spot = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-3819A6DF")["Quota"]
        assert (spot["QuotaName"], spot["Value"]) == ("All G and VT Spot Instance Requests", 8.0)
        # the others stay moto's
        vpc = quotas.list_aws_default_service_quotas(ServiceCode="vpc")["Quotas"][0]
        assert quotas.get_service_quota(ServiceCode="vpc", QuotaCode=vpc["QuotaCode"])["Quota"]
        with pytest.raises(ClientError):
            quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")


# ==============================================================================================
# DEFAULT_VPC_INTERNET
def _default_vpc_routes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
    )["InternetGateways"]
    tables = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    return gateways, tables[0]["Routes"]


def test_gap_default_vpc_internet() -> None:
    """GAP DEFAULT_VPC_INTERNET: the default VPC has no internet gateway, and its main route
    table only the local route."""
    from moto.ec2.models.vpcs import VPCBackend

    _require_plain_moto(
        getattr(VPCBackend.create_default_vpc, "_dcvfleet", False), "DEFAULT_VPC_INTERNET"
    )
    with mock_aws():
        gateways, routes = _default_vpc_routes()
        assert gateways == []
        assert [r.get("GatewayId") for r in routes] == ["local"]


def test_workaround_default_vpc_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in emulator.default_vpc_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        gateways, routes = _default_vpc_routes()
        assert len(gateways) == 1
        to_internet = [r for r in routes if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert [r["GatewayId"] for r in to_internet] == [gateways[0]["InternetGatewayId"]]


# ==============================================================================================
# CFN_STACK_LIST_PARAMETERS
LIST_PARAMETER_TEMPLATE: dict[str, Any] = {
    "Parameters": {"Subnets": {"Type": "List<AWS::EC2::Subnet::Id>"}},
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
}


def _list_parameter_value() -> str:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="lists",
        TemplateBody=json.dumps(LIST_PARAMETER_TEMPLATE),
        Parameters=[{"ParameterKey": "Subnets", "ParameterValue": "subnet-a,subnet-b"}],
    )
    (stack,) = cfn.describe_stacks(StackName="lists")["Stacks"]
    return str(stack["Parameters"][0]["ParameterValue"])


def test_gap_cfn_stack_list_parameters() -> None:
    """GAP CFN_STACK_LIST_PARAMETERS: DescribeStacks gives a list parameter as a Python repr."""
    from moto.cloudformation.models import Stack

    patched = getattr(Stack.parameter_list.fget, "_dcvfleet", False)
    _require_plain_moto(patched, "CFN_STACK_LIST_PARAMETERS")
    with mock_aws():
        assert _list_parameter_value() == "['subnet-a', 'subnet-b']"


def test_workaround_cfn_stack_list_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in emulator.stack_parameter_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        assert _list_parameter_value() == "subnet-a,subnet-b"


# ==============================================================================================
# CFN_DYNAMIC_REFERENCES
DYNAMIC_REFERENCE_TEMPLATE: dict[str, Any] = {
    "Parameters": {"Source": {"Type": "String", "Default": "/probe/image"}},
    "Resources": {
        "Copy": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": "/probe/copy",
                "Type": "String",
                "Value": {"Fn::Sub": "{{resolve:ssm:${Source}}}"},
            },
        }
    },
}


def _copied_by_dynamic_reference(resolve: bool, source: str = "/probe/image") -> str:
    ssm = _client("ssm")
    ssm.put_parameter(Name="/probe/image", Value="ami-0123456789abcdef0", Type="String")
    template = json.loads(json.dumps(DYNAMIC_REFERENCE_TEMPLATE))
    if resolve:
        emulator.resolve_ssm_references(template, {"Source": source}, ACCOUNT, REGION)
    _create_stack("dynref", template)
    return str(ssm.get_parameter(Name="/probe/copy")["Parameter"]["Value"])


def test_gap_cfn_dynamic_references() -> None:
    """GAP CFN_DYNAMIC_REFERENCES: moto's CloudFormation leaves ``{{resolve:ssm:...}}`` as
    written; AWS puts the parameter's value there. When this fails, moto has changed: drop
    ``resolve_ssm_references`` in local/emulator.py."""
    with mock_aws():
        assert _copied_by_dynamic_reference(resolve=False) == "{{resolve:ssm:/probe/image}}"


def test_workaround_cfn_dynamic_references() -> None:
    """``resolve_ssm_references`` puts the parameter's value in, and a reference to a parameter
    that does not exist fails the deploy, as CloudFormation fails the stack."""
    with mock_aws():
        assert _copied_by_dynamic_reference(resolve=True) == "ami-0123456789abcdef0"
    with mock_aws(), pytest.raises(ValueError, match="no SSM parameter /probe/missing"):
        _copied_by_dynamic_reference(resolve=True, source="/probe/missing")
