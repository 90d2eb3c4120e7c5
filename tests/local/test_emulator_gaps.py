"""The emulator's gaps, each shown on plain moto, and each workaround in ``local/`` shown fixing it.

Every ``test_gap_*`` runs plain moto (the version pinned in requirements, no workaround applied)
and asserts the broken behaviour exactly, so it fails when moto changes: the workaround it names
can then go. Every ``test_workaround_*`` shows that workaround fixing the gap. The workarounds
that change this process for good (monkeypatches of moto, its interpreter switch, ``MOTO_PORT``)
run in a child process, so the process running these tests stays on plain moto.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import requests
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
GPU_AMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
)
PASS_MACHINE = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}
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


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A plain moto server on a free port; moto's global config is restored afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    with mock.patch.dict(default_user_config):
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        try:
            yield url
        finally:
            requests.post(f"{url}/moto-api/reset", timeout=10)
            server.stop()


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
            "so plain moto's behaviour cannot be shown; run this file in its own process"
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


def _create_stack(name: str, template: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), **kwargs)
    stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return stack


def _stack_resources(name: str) -> list[dict[str, Any]]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    resources: list[dict[str, Any]] = cfn.describe_stack_resources(StackName=name)[
        "StackResources"
    ]
    return resources


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _ssm_value(name: str) -> str:
    value: str = boto3.client("ssm", region_name=REGION).get_parameter(Name=name)["Parameter"][
        "Value"
    ]
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


PRELUDE = """\
import json, sys, time
import boto3
from moto import mock_aws
from moto.server import ThreadedMotoServer
from local import emulator

def start_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}", port

def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()

def report(result):
    sys.__stdout__.write("RESULT " + json.dumps(result, default=str) + "\\n")
    sys.__stdout__.flush()
"""


def _run_isolated(script: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``script`` (after ``PRELUDE``) in a child process; what it reported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result reported:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


# ==============================================================================================
# LAMBDA_RUNTIME
def test_gap_lambda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP LAMBDA_RUNTIME: moto runs a function's code only in Docker; without it, never.

    Without Docker moto echoes the event back (the handler never runs); with Docker configured
    but unreachable the invocation errors. When this fails, moto has changed: drop the
    workaround in local/emulator.py (``patch_lambda_runtime``).
    """
    _require_plain_moto(_lambda_runtime_patched(), "LAMBDA_RUNTIME")
    with mock_aws(config={"lambda": {"use_docker": False}}):
        lam = boto3.client("lambda", region_name=REGION)
        lam.create_function(
            FunctionName="probe",
            Runtime="python3.12",
            Role=ROLE_ARN,
            Handler="probe.handler",
            Code={"ZipFile": PROBE_CODE},
        )
        response = lam.invoke(FunctionName="probe", Payload=json.dumps({"x": 1}))
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == {"x": 1}

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with mock_aws():
        lam = boto3.client("lambda", region_name=REGION)
        lam.create_function(
            FunctionName="probe",
            Runtime="python3.12",
            Role=ROLE_ARN,
            Handler="probe.handler",
            Code={"ZipFile": PROBE_CODE},
        )
        response = lam.invoke(FunctionName="probe", Payload=b"{}")
        assert response["FunctionError"] == "Handled"
        assert response["Payload"].read().startswith(b"error running docker")


def test_workaround_lambda_runtime(tmp_path: Path) -> None:
    """``patch_lambda_runtime`` runs the handler in-process, with the function's own
    environment (not leaking into the process) and its log lines in ``/aws/lambda/<name>``."""
    (tmp_path / "gap_probe_handler.py").write_text(
        "import os\n"
        "def handler(event, context):\n"
        "    print('probe ran for', context.function_name)\n"
        "    return {'event': event, 'greeting': os.environ['GREETING']}\n",
        encoding="utf-8",
    )
    result = _run_isolated(
        f"""
        import os
        emulator.patch_lambda_runtime()
        with mock_aws():
            lam = boto3.client("lambda", region_name="{REGION}")
            lam.create_function(
                FunctionName="probe", Runtime="python3.12", Role="{ROLE_ARN}",
                Handler="gap_probe_handler.handler", Code={{"ZipFile": b"unused"}},
                Environment={{"Variables": {{"GREETING": "hello"}}}},
            )
            response = lam.invoke(FunctionName="probe", Payload=json.dumps({{"x": 1}}))
            logs = boto3.client("logs", region_name="{REGION}").filter_log_events(
                logGroupName="/aws/lambda/probe"
            )["events"]
            report({{
                "error": response.get("FunctionError"),
                "payload": json.loads(response["Payload"].read()),
                "logs": [e["message"] for e in logs],
                "leaked": "GREETING" in os.environ,
            }})
        """,
        tmp_path,
    )
    assert result["error"] is None
    assert result["payload"] == {"event": {"x": 1}, "greeting": "hello"}
    assert result["logs"] == ["probe ran for probe"]
    assert result["leaked"] is False


# ==============================================================================================
# EVENTS_TARGETS
@pytest.mark.parametrize("service", ["lambda", "states"])
def test_gap_events_targets(service: str) -> None:
    """GAP EVENTS_TARGETS: EventBridge raises on a rule whose target is a Lambda function or a
    state machine (it delivers only to SQS, logs and buses). When this fails, moto has changed:
    drop the workaround in local/emulator.py (``patch_event_targets``)."""
    _require_plain_moto(_event_targets_patched(), "EVENTS_TARGETS")
    with mock_aws(config={"lambda": {"use_docker": False}}):
        if service == "lambda":
            target = boto3.client("lambda", region_name=REGION).create_function(
                FunctionName="probe",
                Runtime="python3.12",
                Role=ROLE_ARN,
                Handler="probe.handler",
                Code={"ZipFile": PROBE_CODE},
            )["FunctionArn"]
        else:
            target = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
                name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
            )["stateMachineArn"]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["dcvfleet.probe"]}))
        events.put_targets(Rule="probe", Targets=[{"Id": "probe", "Arn": target}])
        with pytest.raises(NotImplementedError, match="Expr not defined"):
            events.put_events(
                Entries=[{"Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": "{}"}]
            )


def test_workaround_events_targets(tmp_path: Path) -> None:
    """``patch_event_targets`` delivers to Lambda and Step Functions targets (asynchronously)
    and leaves the targets moto supports (here SQS) to moto."""
    (tmp_path / "gap_probe_target.py").write_text(
        "import json, os\n"
        "def handler(event, context):\n"
        "    with open(os.environ['PROBE_OUT'], 'a') as out:\n"
        "        out.write(json.dumps(event) + '\\n')\n",
        encoding="utf-8",
    )
    out = tmp_path / "delivered.jsonl"
    result = _run_isolated(
        f"""
        import pathlib
        server, url, port = start_server()
        emulator.patch_lambda_runtime()
        emulator.patch_event_targets(url)
        client = lambda service: boto3.client(service, endpoint_url=url, region_name="{REGION}")
        function_arn = client("lambda").create_function(
            FunctionName="probe", Runtime="python3.12", Role="{ROLE_ARN}",
            Handler="gap_probe_target.handler", Code={{"ZipFile": b"unused"}},
            Environment={{"Variables": {{"PROBE_OUT": "{out}"}}}},
        )["FunctionArn"]
        sfn = client("stepfunctions")
        machine_arn = sfn.create_state_machine(
            name="probe", definition=json.dumps({PASS_MACHINE!r}), roleArn="{ROLE_ARN}"
        )["stateMachineArn"]
        sqs = client("sqs")
        queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        events = client("events")
        events.put_rule(Name="probe", EventPattern=json.dumps({{"source": ["dcvfleet.probe"]}}))
        events.put_targets(Rule="probe", Targets=[
            {{"Id": "fn", "Arn": function_arn}},
            {{"Id": "sm", "Arn": machine_arn}},
            {{"Id": "q", "Arn": queue_arn}},
        ])
        events.put_events(Entries=[{{
            "Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": '{{"n": 7}}',
        }}])
        out = pathlib.Path("{out}")
        wait_for(out.exists)
        executions = lambda: sfn.list_executions(stateMachineArn=machine_arn)["executions"]
        wait_for(executions)
        messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        report({{
            "lambda": [json.loads(line) for line in out.read_text().splitlines()],
            "states": [
                json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
                for e in executions()
            ],
            "sqs": [json.loads(m["Body"]) for m in messages],
        }})
        server.stop()
        """,
        tmp_path,
    )
    for delivered in (result["lambda"], result["states"], result["sqs"]):
        assert len(delivered) == 1
        assert delivered[0]["source"] == "dcvfleet.probe"
        assert delivered[0]["detail"] == {"n": 7}
    # EventBridge sends Lambda and Step Functions an ISO 8601 time, as it does on AWS.
    assert result["lambda"][0]["time"].endswith("Z")
    assert result["states"][0]["time"].endswith("Z")


# ==============================================================================================
# SFN_EXECUTION
def test_gap_sfn_execution_interpreter_is_off(moto_server: str) -> None:
    """GAP SFN_EXECUTION: moto's server does not execute state machines until
    ``POST /moto-api/config`` switches its interpreter on: an execution stays RUNNING forever,
    without output. When this fails, moto has changed: drop the workaround in
    local/emulator.py (``enable_execution``)."""
    _require_plain_moto(_execution_switched_on(), "SFN_EXECUTION")
    sfn = boto3.client("stepfunctions", endpoint_url=moto_server, region_name=REGION)
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
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        monkeypatch.setenv("MOTO_PORT", str(closed_port))
        sqs = boto3.client("sqs", endpoint_url=moto_server, region_name=REGION)
        queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
        sfn = boto3.client("stepfunctions", endpoint_url=moto_server, region_name=REGION)
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
        machine = sfn.create_state_machine(
            name="probe", definition=json.dumps(send), roleArn=ROLE_ARN
        )["stateMachineArn"]
        execution_arn = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")[
            "executionArn"
        ]
        execution = _wait_execution(sfn, execution_arn)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Runtime"
    assert f'Could not connect to the endpoint URL: "http://localhost:{closed_port}/"' in (
        execution["cause"]
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)


def test_workaround_sfn_execution(tmp_path: Path) -> None:
    """``enable_execution`` switches the interpreter on and points its clients at the server:
    a Pass state runs and a Task state reaches SQS on the server's own port."""
    result = _run_isolated(
        f"""
        server, url, port = start_server()
        emulator.enable_execution(url, port)
        client = lambda service: boto3.client(service, endpoint_url=url, region_name="{REGION}")
        sqs, sfn = client("sqs"), client("stepfunctions")
        queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
        send = {{"StartAt": "Send", "States": {{"Send": {{
            "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {{"QueueUrl": queue_url, "MessageBody": "probe"}}, "End": True,
        }}}}}}
        statuses = {{}}
        for name, definition in (("pass", {PASS_MACHINE!r}), ("send", send)):
            machine = sfn.create_state_machine(
                name=name, definition=json.dumps(definition), roleArn="{ROLE_ARN}"
            )["stateMachineArn"]
            arn = sfn.start_execution(stateMachineArn=machine, name="e1", input="{{}}")[
                "executionArn"
            ]
            wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
            execution = sfn.describe_execution(executionArn=arn)
            statuses[name] = [execution["status"], json.loads(execution.get("output", "null"))]
        messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        report({{"statuses": statuses, "bodies": [m["Body"] for m in messages]}})
        server.stop()
        """,
        tmp_path,
    )
    assert result["statuses"]["pass"] == ["SUCCEEDED", {"ok": 1}]
    assert result["statuses"]["send"][0] == "SUCCEEDED"
    assert "MessageId" in result["statuses"]["send"][1]
    assert result["bodies"] == ["probe"]


# ==============================================================================================
# SFN_FROM_CLOUDFORMATION
ASL_WITH_PLACEHOLDER = json.dumps(
    {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "${Greeting}", "End": True}}}
)


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


def test_gap_sfn_from_cloudformation() -> None:
    """GAP SFN_FROM_CLOUDFORMATION: a state machine created by CloudFormation keeps neither its
    ``DefinitionS3Location`` (what ``sam package`` writes) nor ``Definition``, nor their
    ``DefinitionSubstitutions``, and the executing backend does not know it. When this fails,
    moto has changed: drop ``_create_state_machines`` in local/deploy.py."""
    for definition in (
        {"Definition": json.loads(ASL_WITH_PLACEHOLDER)},
        {"DefinitionS3Location": {"Bucket": "artifacts", "Key": "asl/probe.asl.json"}},
    ):
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="artifacts")
            s3.put_object(Bucket="artifacts", Key="asl/probe.asl.json", Body=ASL_WITH_PLACEHOLDER)
            _create_stack("probe", _state_machine_template(**definition))
            (machine,) = _stack_resources("probe")
            sfn = boto3.client("stepfunctions", region_name=REGION)
            described = sfn.describe_state_machine(stateMachineArn=machine["PhysicalResourceId"])
            assert described["definition"] == ""

        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            _create_stack("probe", _state_machine_template(**definition))
            (machine,) = _stack_resources("probe")
            sfn = boto3.client("stepfunctions", region_name=REGION)
            with pytest.raises(ClientError) as err:
                sfn.start_execution(stateMachineArn=machine["PhysicalResourceId"], input="{}")
            assert err.value.response["Error"]["Code"] == "StateMachineDoesNotExist"


def test_workaround_sfn_from_cloudformation(tmp_path: Path) -> None:
    """``Deployer._create_state_machines`` re-creates a CloudFormation state machine through
    the API, same name and ARN, its definition read from S3 and its substitutions resolved."""
    template = _state_machine_template(
        DefinitionS3Location={"Bucket": "artifacts", "Key": "asl/probe.asl.json"}
    )
    result = _run_isolated(
        f"""
        from local import deploy
        server, url, port = start_server()
        emulator.enable_execution(url, port)
        client = lambda service: boto3.client(service, endpoint_url=url, region_name="{REGION}")
        s3, cfn, sfn = client("s3"), client("cloudformation"), client("stepfunctions")
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(Bucket="artifacts", Key="asl/probe.asl.json", Body={ASL_WITH_PLACEHOLDER!r})
        template = {template!r}
        cfn.create_stack(StackName="probe", TemplateBody=json.dumps(template))
        (resource,) = cfn.describe_stack_resources(StackName="probe")["StackResources"]
        deployment = deploy.Deployment(
            "{REGION}", "{ACCOUNT}", {{}}, template,
            physical={{"Machine": resource["PhysicalResourceId"]}},
        )
        deploy.Deployer(url, "{REGION}")._create_state_machines(template, deployment)
        arn = deployment.physical["Machine"]
        execution_arn = sfn.start_execution(stateMachineArn=arn, name="e1", input="{{}}")[
            "executionArn"
        ]
        wait_for(lambda: sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING")
        execution = sfn.describe_execution(executionArn=execution_arn)
        report({{
            "cfn_arn": resource["PhysicalResourceId"], "arn": arn,
            "status": execution["status"], "output": execution.get("output"),
        }})
        server.stop()
        """,
        tmp_path,
    )
    assert result["arn"] == result["cfn_arn"]
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == "hello"


def test_workaround_sfn_definition_substitutions() -> None:
    """``substitute_definition`` resolves ``${Name}`` placeholders and refuses to leave any."""
    resolved = deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {"Greeting": "hello"})
    assert json.loads(resolved)["States"]["P"]["Result"] == "hello"
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
        ssm = boto3.client("ssm", region_name=REGION)
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
        parameter = boto3.client("ssm", region_name=REGION).get_parameter(Name=GPU_AMI_PARAMETER)
        assert parameter["Parameter"]["Value"] == "ami-0123456789abcdef0"
        assert parameter["Parameter"]["Version"] == 1
        assert parameter["Parameter"]["DataType"] == "aws:ec2:image"
        stack = _create_stack("probe", AMI_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert _outputs(stack) == {"GpuAmiId": "ami-0123456789abcdef0"}


# ==============================================================================================
# EVENTBUS_REF
BUS_OUTPUT_TEMPLATE: dict[str, Any] = {
    "Resources": {"Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "fleet-bus"}}},
    "Outputs": {"BusName": {"Value": {"Ref": "Bus"}}},
}
BUS_RULE_TEMPLATE: dict[str, Any] = {
    "Resources": {
        **BUS_OUTPUT_TEMPLATE["Resources"],
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


def test_workaround_eventbus_ref(tmp_path: Path) -> None:
    """``patch_event_bus_ref`` makes a bus's physical id (its ``Ref``) its name."""
    result = _run_isolated(
        f"""
        emulator.patch_event_bus_ref()
        with mock_aws():
            cfn = boto3.client("cloudformation", region_name="{REGION}")
            cfn.create_stack(StackName="probe", TemplateBody=json.dumps({BUS_OUTPUT_TEMPLATE!r}))
            cfn.create_stack(StackName="rule", TemplateBody=json.dumps({BUS_RULE_TEMPLATE!r}))
            stack = cfn.describe_stacks(StackName="probe")["Stacks"][0]
            rules = boto3.client("events", region_name="{REGION}").list_rules(
                EventBusName="fleet-bus"
            )["Rules"]
            report({{
                "outputs": {{o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}},
                "physical": [
                    r.get("PhysicalResourceId")
                    for r in cfn.describe_stack_resources(StackName="probe")["StackResources"]
                ],
                "rule_status": cfn.describe_stacks(StackName="rule")["Stacks"][0]["StackStatus"],
                "rules": [r["Name"] for r in rules],
            }})
        """,
        tmp_path,
    )
    assert result["outputs"] == {"BusName": "fleet-bus"}
    assert result["physical"] == ["fleet-bus"]
    assert result["rule_status"] == "CREATE_COMPLETE"
    assert result["rules"] == ["probe"]


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
        assert _ssm_value("joined-types") == ",".join("g5.xlarge,g6.xlarge")
        assert _ssm_value("ref-subnets") == "['subnet-1', 'subnet-2']"


def test_workaround_cfn_list_parameters() -> None:
    """``fix_template_for_emulator`` replaces ``Fn::Join [",", Ref <list>]`` by the
    parameter's comma-separated value (members trimmed, as AWS does)."""
    template = _list_template("g5.xlarge, g6.xlarge")
    emulator.fix_template_for_emulator(template, {"SubnetIds": "subnet-1,subnet-2"})
    resources = template["Resources"]
    assert resources["JoinedTypes"]["Properties"]["Value"] == "g5.xlarge,g6.xlarge"
    assert resources["JoinedSubnets"]["Properties"]["Value"] == "subnet-1,subnet-2"
    with mock_aws():
        _create_stack("probe", template, Parameters=SUBNETS)
        assert _ssm_value("joined-types") == "g5.xlarge,g6.xlarge"
        assert _ssm_value("joined-subnets") == "subnet-1,subnet-2"


# ==============================================================================================
# CFN_PLACEHOLDERS
COGNITO_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "UserPool": {"Type": "AWS::Cognito::UserPool", "Properties": {"UserPoolName": "fleet"}},
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
        idp = boto3.client("cognito-idp", region_name=REGION)
        assert idp.list_user_pools(MaxResults=10)["UserPools"] == []


def test_workaround_cfn_placeholders_cognito(moto_server: str) -> None:
    """The Cognito types are created through the API (``Deployer._create_cognito``)."""
    assert {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolGroup",
    } <= emulator.API_CREATED_TYPES
    deployment = deploy.Deployment(REGION, ACCOUNT, {}, COGNITO_TEMPLATE)
    deploy.Deployer(moto_server, REGION)._create_cognito(
        COGNITO_TEMPLATE["Resources"], deployment
    )
    pool_id = deployment.physical["UserPool"]
    idp = boto3.client("cognito-idp", endpoint_url=moto_server, region_name=REGION)
    assert idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Name"] == "fleet"
    client = idp.describe_user_pool_client(
        UserPoolId=pool_id, ClientId=deployment.physical["UserPoolClient"]
    )
    assert client["UserPoolClient"]["ClientName"] == "portal"
    group = idp.get_group(UserPoolId=pool_id, GroupName=deployment.physical["AdminsGroup"])
    assert group["Group"]["GroupName"] == "admins"
    assert deployment.attributes[("UserPool", "Arn")].endswith(f"userpool/{pool_id}")


def test_gap_cfn_placeholders_rest_api_body_ignored() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation ignores an ``AWS::ApiGateway::RestApi``'s
    ``Body``, so the API has no methods and an ``AWS::ApiGateway::Deployment`` of it fails.
    When this fails, moto has changed: drop ``AWS::ApiGateway::Deployment`` (and ``Stage``)
    from ``API_CREATED_TYPES`` in local/emulator.py."""
    api = {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "fleet", "Body": SWAGGER_BODY}}
    with mock_aws():
        _create_stack("api", {"Resources": {"Api": api}})
        (resource,) = _stack_resources("api")
        apigateway = boto3.client("apigateway", region_name=REGION)
        assert _resource_paths(apigateway, resource["PhysicalResourceId"]) == {"/": []}

        deployed = {
            "Resources": {
                "Api": api,
                "Deployment": {
                    "Type": "AWS::ApiGateway::Deployment",
                    "Properties": {"RestApiId": {"Ref": "Api"}},
                },
            }
        }
        with pytest.raises(
            (ClientError, ResponseParserError), match="REST API doesn't contain any methods"
        ):
            _create_stack("deployed", deployed)


def test_gap_cfn_placeholders_put_rest_api_swagger() -> None:
    """GAP CFN_PLACEHOLDERS: ``put_rest_api`` imports only OpenAPI 3, while aws-sam-translator
    writes Swagger 2.0, so the body cannot be imported through the API either. When this fails,
    moto has changed: import the body instead of serving it from ``local.apigw``."""
    openapi3 = {
        "openapi": "3.0.1",
        "info": SWAGGER_BODY["info"],
        "paths": SWAGGER_BODY["paths"],
    }
    with mock_aws():
        apigateway = boto3.client("apigateway", region_name=REGION)
        swagger_api = apigateway.create_rest_api(name="swagger")["id"]
        with pytest.raises(ClientError) as err:
            apigateway.put_rest_api(
                restApiId=swagger_api, mode="overwrite", body=json.dumps(SWAGGER_BODY).encode()
            )
        assert err.value.response["Error"]["Code"] == "BadRequestException"
        assert "Only OpenAPI 3.x.x are currently supported" in str(err.value)
        assert _resource_paths(apigateway, swagger_api) == {"/": []}

        openapi_api = apigateway.create_rest_api(name="openapi3")["id"]
        apigateway.put_rest_api(
            restApiId=openapi_api, mode="overwrite", body=json.dumps(openapi3).encode()
        )
        assert _resource_paths(apigateway, openapi_api) == {"/": [], "/sessions": ["GET"]}


def test_workaround_cfn_placeholders_api_served_locally() -> None:
    """The Deployment and Stage are left out of the stack; ``Deployer._deploy_apis`` keeps the
    RestApi's resolved body and stage for the local API server, and says so."""
    assert {"AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"} <= (
        emulator.API_CREATED_TYPES
    )
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
    deploy.Deployer("http://127.0.0.1:9", REGION)._deploy_apis(api_created, template, deployment)
    assert deployment.apis["Api"]["stage"] == "v1"
    assert deployment.apis["Api"]["body"] == SWAGGER_BODY
    assert deployment.not_emulated == [
        "ApiStage (AWS::ApiGateway::Stage): served by the local API server"
    ]


def test_gap_cfn_placeholders_rest_api_needs_name() -> None:
    """GAP CFN_PLACEHOLDERS: an ``AWS::ApiGateway::RestApi`` without ``Name`` (SAM writes none,
    AWS takes the Body's title) fails. When this fails, moto has changed: drop the ``Name``
    default in ``fix_template_for_emulator`` in local/emulator.py."""
    template = {
        "Resources": {"Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": {}}}}
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
        names = boto3.client("apigateway", region_name=REGION).get_rest_apis()["items"]
        assert sorted(a["name"] for a in names) == ["Api", "mine"]


PERMISSION_SOURCE_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/GET/sessions"
PERMISSION = {
    "Type": "AWS::Lambda::Permission",
    "Properties": {
        "FunctionName": {"Ref": "Fn"},
        "Action": "lambda:InvokeFunction",
        "Principal": "apigateway.amazonaws.com",
        "SourceArn": PERMISSION_SOURCE_ARN,
    },
}


def test_gap_cfn_placeholders_lambda_permission_has_no_id() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation adds an ``AWS::Lambda::Permission``'s statement to
    the function's policy but gives the resource no physical id, so ``local.deploy`` (which
    requires one of every resource) cannot accept it. When this fails, moto has changed: drop
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
        assert _create_stack("probe", template)["StackStatus"] == "CREATE_COMPLETE"
        permission = next(r for r in _stack_resources("probe") if r["LogicalResourceId"] == "Permission")
        assert permission["ResourceStatus"] == "CREATE_COMPLETE"
        assert "PhysicalResourceId" not in permission
        policy = boto3.client("lambda", region_name=REGION).get_policy(FunctionName="fleet-fn")
        (statement,) = json.loads(policy["Policy"])["Statement"]
        assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}


def test_workaround_cfn_placeholders_lambda_permission(moto_server: str) -> None:
    """Lambda permissions are added through the API (``Deployer._add_permissions``), with the
    logical id as statement id and physical id."""
    assert "AWS::Lambda::Permission" in emulator.API_CREATED_TYPES
    lam = boto3.client("lambda", endpoint_url=moto_server, region_name=REGION)
    lam.create_function(
        FunctionName="fleet-fn",
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="probe.handler",
        Code={"ZipFile": PROBE_CODE},
    )
    template = {"Resources": {"Permission": PERMISSION}}
    deployment = deploy.Deployment(REGION, ACCOUNT, {}, template, physical={"Fn": "fleet-fn"})
    deploy.Deployer(moto_server, REGION)._add_permissions(template["Resources"], deployment)
    assert deployment.physical["Permission"] == "Permission"
    (statement,) = json.loads(lam.get_policy(FunctionName="fleet-fn")["Policy"])["Statement"]
    assert statement["Sid"] == "Permission"
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": PERMISSION_SOURCE_ARN}}
