"""The workarounds that change a process for good in moto's own modules (LAMBDA_RUNTIME,
EVENTS_TARGETS, SFN_EXECUTION, SFN_FROM_CLOUDFORMATION, EVENTBUS_REF,
CODEBUILD_FROM_CLOUDFORMATION), shown in one child process, started when this module starts so
it runs alongside the in-process tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.emulator.support import (
    ACCOUNT,
    ASL_WITH_PLACEHOLDER,
    BUS_OUTPUT_TEMPLATE,
    BUS_RULE_TEMPLATE,
    CODEBUILD_TEMPLATE,
    FAKE_CREDENTIALS,
    LAMBDA_TRUST,
    PASS_MACHINE,
    REDIRECTING_VARIABLES,
    REGION,
    ROLE_ARN,
    ROOT,
    no_aws_files,
    state_machine_template,
)

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
from local import deploy
from local.emulator import registry
from local.emulator.gap import Context
from local.emulator.hooks import SimulatorHooks


def install(name, url=None, port=0):
    # the gap installed as the local stack installs it (and, in this process, for good)
    registry.apply([registry.gap(name)], Context(url, port, SimulatorHooks()))

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
    install("LAMBDA_RUNTIME")
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
    install("EVENTBUS_REF")
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
    install("SFN_EXECUTION", url, port)
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
    install("SFN_EXECUTION", url, port)
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
    install("EVENTS_TARGETS", url)
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
    install("CODEBUILD_FROM_CLOUDFORMATION")
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
        "machine_template": state_machine_template(
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
    env.update(FAKE_CREDENTIALS, **no_aws_files(workdir), PYTHONPATH=str(ROOT))
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
    """LAMBDA_RUNTIME's install runs the handler in-process, with the function's own
    environment (not leaking into the process) and its log lines in ``/aws/lambda/<name>``."""
    result = isolated.result("LAMBDA_RUNTIME")
    assert result["error"] is None
    assert result["payload"] == {"event": {"x": 1}, "greeting": "hello"}
    assert result["logs"] == ["probe ran for probe"]
    assert result["leaked"] is False


def test_workaround_events_targets(isolated: IsolatedWorkarounds) -> None:
    """EVENTS_TARGETS's install delivers to Lambda and Step Functions targets (asynchronously)
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
    """SFN_EXECUTION's install switches the interpreter on and points its clients at the server:
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
    """EVENTBUS_REF's install makes a bus's physical id (so its ``Ref``) its name: the output
    is the name and a rule on the bus is created."""
    result = isolated.result("EVENTBUS_REF")
    assert result["outputs"] == {"BusName": "fleet-bus"}
    assert result["physical"] == ["fleet-bus"]
    assert result["rule_status"] == "CREATE_COMPLETE"
    assert result["rules"] == ["probe"]


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
