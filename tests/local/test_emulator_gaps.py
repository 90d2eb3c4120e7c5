"""The emulator's gaps, each shown on plain moto, and each workaround in ``local/`` shown fixing it.

Every ``test_gap_*`` runs plain moto (the version pinned in requirements, no workaround applied)
and asserts the broken behaviour exactly, so it fails when moto changes: the workaround it names
can then go. Every ``test_workaround_*`` shows that workaround fixing the gap.

The workarounds that change a process for good (monkeypatches of moto, its interpreter switch,
``MOTO_PORT``) are exercised in one child process, started when this module starts so it runs
alongside the in-process tests; the process running these tests stays on plain moto.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from moto import mock_aws
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


def test_workaround_sfn_definition_substitutions() -> None:
    """``substitute_definition`` resolves ``${Name}`` placeholders and refuses to leave any."""
    resolved = deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {"Greeting": "hello"})
    assert json.loads(resolved)["States"]["P"]["Result"] == {"greeting": "hello"}
    with pytest.raises(ValueError, match="Greeting"):
        deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {})


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


def test_gap_cfn_list_parameters() -> None:
    """GAP CFN_LIST_PARAMETERS: ``Fn::Join`` over a ``CommaDelimitedList`` parameter left at
    its default joins the characters of the raw string, and ``Ref`` to a ``List<...>``
    parameter is a stringified Python list. When this fails, moto has changed: drop the list
    part of ``fix_template_for_emulator`` in local/emulator.py."""
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


def test_workaround_cfn_list_parameters() -> None:
    """``fix_template_for_emulator`` replaces ``Fn::Join [<separator>, Ref <list>]`` by the
    parameter's members (trimmed, as AWS does) joined by the separator."""
    template = _list_template("g5.xlarge, g6.xlarge")
    emulator.fix_template_for_emulator(template, {"SubnetIds": "subnet-1,subnet-2"})
    resources = template["Resources"]
    assert resources["JoinedTypes"]["Properties"]["Value"] == "g5.xlarge,g6.xlarge"
    assert resources["JoinedSubnets"]["Properties"]["Value"] == "subnet-1,subnet-2"
    with mock_aws():
        _create_stack("probe", template, Parameters=SUBNETS)
        assert _ssm_value("joined-types") == "g5.xlarge,g6.xlarge"
        assert _ssm_value("joined-subnets") == "subnet-1,subnet-2"
        assert json.loads(_ssm_value("quoted-types")) == ["g5.xlarge", "g6.xlarge"]


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
    assert deployment.apis == {"Api": {"stage": "v1", "body": SWAGGER_BODY}}
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
# SFN_FROM_CLOUDFORMATION, EVENTBUS_REF), shown in one child process.
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


results = {}

def run(name, scenario, *args):
    try:
        results[name] = {"result": scenario(*args)}
    except Exception:
        results[name] = {"error": traceback.format_exc()}

run("LAMBDA_RUNTIME", lambda_runtime)
run("EVENTBUS_REF", eventbus_ref)
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
