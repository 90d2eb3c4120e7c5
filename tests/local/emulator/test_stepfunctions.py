"""Step Functions' gaps: SFN_EXECUTION, SFN_FROM_CLOUDFORMATION, SFN_TASK_FAILURE_CAUSE,
SFN_AWS_SDK_CASING, SFN_JSONPATH_INDEX, SFN_COST, SFN_STOP_EXECUTION, and a Fail state's reserved error (checked, not
a gap)."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from local import deploy
from local.emulator.stepfunctions import (
    sfn_aws_sdk_patches,
    sfn_json_path_patches,
    sfn_task_failure_with_cause,
    stopped_stays_stopped,
)
from tests.support.emulator import (
    ACCOUNT,
    ASL_WITH_PLACEHOLDER,
    PASS_MACHINE,
    REGION,
    ROLE_ARN,
    Installer,
    aws_client,
    create_stack,
    image_project,
    server_port,
    stack_resources,
    state_machine_template,
    wait_execution,
)

# ==============================================================================================
# SFN_EXECUTION


def _execute(
    sfn: Any, machine: str, definition: dict[str, Any], execution_input: str = "{}", **start: Any
) -> dict[str, Any]:
    """The state machine ``machine`` made from ``definition``, then one execution of it with
    ``execution_input`` (and ``start``'s arguments), waited for to its end."""
    arn = sfn.create_state_machine(
        name=machine, definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=arn, input=execution_input, **start)[
        "executionArn"
    ]
    return wait_execution(sfn, execution_arn)


def _send_to(queue_url: str) -> dict[str, Any]:
    """A one-state machine whose Task sends "probe" to the SQS queue ``queue_url``."""
    return {
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


def test_gap_sfn_execution_interpreter_is_off(moto_server: str) -> None:
    """GAP SFN_EXECUTION: moto's server does not execute state machines until
    ``POST /moto-api/config`` switches its interpreter on: an execution stays RUNNING, without
    output. When this fails, moto has changed: drop the workaround in local/emulator/stepfunctions.py
    (``execution_patches``)."""
    sfn = aws_client("stepfunctions", moto_server)
    machine = sfn.create_state_machine(
        name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")[
        "executionArn"
    ]
    execution = wait_execution(sfn, execution_arn, timeout=0.5)
    assert execution["status"] == "RUNNING"
    assert "output" not in execution


def test_gap_sfn_execution_clients_call_moto_port(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GAP SFN_EXECUTION: once switched on, the interpreter's own clients (Task states) call
    ``http://localhost:$MOTO_PORT`` (default 5000), not the server they run in. When this
    fails, moto has changed: drop the ``MOTO_PORT`` part of ``execution_patches`` in
    local/emulator/stepfunctions.py."""
    requests.post(
        f"{moto_server}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    ).raise_for_status()
    sqs = aws_client("sqs", moto_server)
    queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    send = _send_to(queue_url)
    sfn = aws_client("stepfunctions", moto_server)
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
        execution = wait_execution(sfn, execution_arn)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Runtime"
    refused = f'Could not connect to the endpoint URL: "http://localhost:{closed_port}/"'
    assert refused in execution["cause"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)


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
    template = state_machine_template(**definition)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        s3 = aws_client("s3")
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(Bucket="artifacts", Key="asl/probe.asl.json", Body=ASL_WITH_PLACEHOLDER)
        create_stack("probe", template)
        (machine,) = stack_resources("probe")
        described = aws_client("stepfunctions").describe_state_machine(
            stateMachineArn=machine["PhysicalResourceId"]
        )
        assert described["definition"] == ""

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        create_stack("probe", template)
        (machine,) = stack_resources("probe")
        with pytest.raises(ClientError) as err:
            aws_client("stepfunctions").start_execution(
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
    request = _TaskFailureCall()
    handler(request)  # type: ignore[arg-type]
    assert request.calls == [("token-1", {"error": "JobFailedError"})]


def test_workaround_sfn_task_failure_cause() -> None:
    request = _TaskFailureCall()
    sfn_task_failure_with_cause()(request)
    assert request.calls == [("token-1", {"error": "JobFailedError", "cause": "DCV did not start"})]


def test_workaround_sfn_definition_substitutions() -> None:
    """``substitute_definition`` resolves ``${Name}`` placeholders and refuses to leave any."""
    resolved = deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {"Greeting": "hello"})
    assert json.loads(resolved)["States"]["P"]["Result"] == {"greeting": "hello"}
    with pytest.raises(ValueError, match="Greeting"):
        deploy.substitute_definition(ASL_WITH_PLACEHOLDER, {})


# -- SFN_AWS_SDK_CASING ------------------------------------------------------------------------
def _codebuild_task(
    action: str, parameters: dict[str, Any], selector: dict[str, str], **rest: Any
) -> dict[str, Any]:
    """An aws-sdk Task state calling CodeBuild's ``action`` with ``parameters``, its result
    selected by ``selector`` (``rest``: its other fields)."""
    return {
        "Type": "Task",
        "Resource": f"arn:aws:states:::aws-sdk:codebuild:{action}",
        "Parameters": parameters,
        "ResultSelector": selector,
        **rest,
    }


#: Two aws-sdk Tasks written as AWS documents them (PascalCase in, PascalCase out).
SDK_MACHINE = {
    "StartAt": "Start",
    "States": {
        "Start": _codebuild_task(
            "startBuild",
            {
                "ProjectName.$": "$.project",
                "EnvironmentVariablesOverride": [
                    {"Name": "BUILD_VERSION", "Value": "1.0.0", "Type": "PLAINTEXT"}
                ],
            },
            {"id.$": "$.Build.Id"},
            ResultPath="$.build",
            Catch=[
                {
                    "ErrorEquals": ["CodeBuild.ResourceNotFoundException"],
                    "ResultPath": "$.error",
                    "Next": "NoProject",
                }
            ],
            Next="Check",
        ),
        "Check": _codebuild_task(
            "batchGetBuilds",
            {"Ids.$": "States.Array($.build.id)"},
            {"status.$": "$.Builds[0].BuildStatus"},
            End=True,
        ),
        "NoProject": {"Type": "Pass", "End": True},
    },
}


def _run_sdk_machine(project: str) -> dict[str, Any]:
    sfn = aws_client("stepfunctions")
    return _execute(sfn, f"probe-{project}", SDK_MACHINE, json.dumps({"project": project}))


def test_gap_sfn_aws_sdk_casing() -> None:
    """GAP SFN_AWS_SDK_CASING: an aws-sdk Task hands its parameters to the SDK as written, so
    the PascalCase AWS documents (``ProjectName``) fails the state with States.Runtime (a
    KeyError); its result keeps the API's casing (``$.build.id``, not ``$.Build.Id``). When this
    fails, moto has changed: drop ``sfn_aws_sdk_patches`` in local/emulator/stepfunctions.py."""

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        image_project({"type": "NO_SOURCE", "location": "-", "buildspec": "version: 0.2"})
        execution = _run_sdk_machine("probe-image")
        assert (execution["status"], execution["error"]) == ("FAILED", "States.Runtime")
        assert "'ProjectName'" in execution["cause"]
        camel = {
            "StartAt": "Start",
            "States": {
                "Start": _codebuild_task(
                    "startBuild", {"projectName": "probe-image"}, {"id.$": "$.build.id"}, End=True
                )
            },
        }
        execution = _execute(aws_client("stepfunctions"), "camel", camel)
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
        *sfn_aws_sdk_patches(),
        *sfn_json_path_patches(),  # $.Builds[0].BuildStatus: SFN_JSONPATH_INDEX
    ]:
        monkeypatch.setattr(owner, name, replacement)
    assert state_task_service_aws_sdk._SERVICE_ERROR_NAMES["codebuild"] == "CodeBuild"
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        image_project({"type": "NO_SOURCE", "location": "-", "buildspec": "version: 0.2"})
        execution = _run_sdk_machine("probe-image")
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        assert json.loads(execution["output"]) == {"status": "SUCCEEDED"}
        execution = _run_sdk_machine("no-such-project")
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        error = json.loads(execution["output"])["error"]
        assert error["Error"] == "CodeBuild.ResourceNotFoundException"


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
    execution = _execute(aws_client("stepfunctions"), "paths", PATH_MACHINE, json.dumps(PATH_INPUT))
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output: dict[str, Any] = json.loads(execution["output"])
    return output


def test_gap_sfn_jsonpath_index() -> None:
    """GAP SFN_JSONPATH_INDEX: a definite path through an array index yields a one-element list,
    so a Choice comparing it to a string goes to its Default. When this fails, moto has changed:
    drop ``sfn_json_path_patches`` in local/emulator/stepfunctions.py."""

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        output = _select_paths()
    assert output == {"first": ["SUCCEEDED"], "all": ["SUCCEEDED", "FAILED"],
                      "failed": ["FAILED"], "choice": "no"}  # fmt: skip


def test_workaround_sfn_jsonpath_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sfn_json_path_patches``: the definite path yields the value; wildcards and filters still
    yield lists, as in Step Functions."""
    for owner, name, replacement in sfn_json_path_patches():
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
    sfn = aws_client("stepfunctions")
    name = f"fail-{len(sfn.list_state_machines()['stateMachines'])}"
    body = json.dumps({"error": error, "cause": "no verified Host Ready event"})
    execution = _execute(sfn, name, FAIL_MACHINE, body)
    assert execution["status"] == "FAILED", execution
    return {"error": execution.get("error"), "cause": execution.get("cause")}


def test_no_gap_sfn_fail_reserved_error() -> None:
    """NOT A GAP: a Fail state whose ErrorPath yields ``States.Timeout`` fails the execution with
    ``States.Runtime``, as Step Functions does (it reserves ``States.*`` names for its own
    errors: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html),
    and a name of ours fails it with that name and cause. The workflows' Fail states rely on
    both (tests/template/test_workflow_errors.py); when this fails, moto has changed and a
    workaround belongs in local/emulator/stepfunctions.py."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        reserved = _fail_with("States.Timeout")
        ours = _fail_with("HostNotReadyError")
    assert reserved["error"] == "States.Runtime"
    assert "'States.Timeout'" in str(reserved["cause"])
    assert ours == {"error": "HostNotReadyError", "cause": "no verified Host Ready event"}


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every definition moto's ANTLR parser parses from now on."""
    from moto.stepfunctions.parser.asl.parse import asl_parser

    parses: list[str] = []
    parse = asl_parser.AmazonStateLanguageParser.parse

    def counted(definition: str) -> Any:
        parses.append(definition)
        return parse(definition)

    monkeypatch.setattr(asl_parser.AmazonStateLanguageParser, "parse", staticmethod(counted))
    return parses


def _parses_of_three_executions(parses: list[str]) -> int:
    """How many parses three executions of one state machine cost."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = aws_client("stepfunctions")
        machine = sfn.create_state_machine(
            name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
        )["stateMachineArn"]
        before = len(parses)
        for n in range(3):
            arn = sfn.start_execution(stateMachineArn=machine, name=f"e{n}")["executionArn"]
            assert wait_execution(sfn, arn)["status"] == "SUCCEEDED"
        return len(parses) - before


def test_gap_sfn_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP SFN_COST (a cost, not a behaviour): moto's interpreter parses a state machine's
    definition again for every execution. When this fails, moto has changed: drop
    ``sfn_cost_patches``' parse cache in local/emulator/stepfunctions.py."""
    assert _parses_of_three_executions(_count_parses(monkeypatch)) == 3


def test_workaround_sfn_cost(monkeypatch: pytest.MonkeyPatch, install: Installer) -> None:
    """SFN_COST's install keeps each definition's parse tree: the definition is parsed once,
    when the state machine is created, and its three executions (which still succeed) parse
    nothing."""
    parses = _count_parses(monkeypatch)
    install("SFN_COST")
    assert _parses_of_three_executions(parses) == 0
    assert len(parses) == 1


def test_workaround_sfn_execution(moto_server: str, install: Installer) -> None:
    """SFN_EXECUTION's install switches the interpreter on and points its clients at the
    server: a Pass state runs, and a Task state reaches SQS on the server's own port."""
    url = moto_server
    install("SFN_EXECUTION", endpoint_url=url, port=server_port(url))
    sqs, sfn = aws_client("sqs", url), aws_client("stepfunctions", url)
    queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    send = _send_to(queue_url)
    executions = {}
    for name, definition in (("pass", PASS_MACHINE), ("send", send)):
        execution = _execute(sfn, name, definition, name="e1")
        executions[name] = [execution["status"], json.loads(execution.get("output", "null"))]
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=queue_url).get("Messages", [])]
    assert executions["pass"] == ["SUCCEEDED", {"ok": 1}]
    status, output = executions["send"]
    assert status == "SUCCEEDED"
    assert "MessageId" in output
    assert bodies == ["probe"]


def test_workaround_sfn_from_cloudformation(moto_server: str, install: Installer) -> None:
    """``Deployer._create_state_machines`` re-creates a CloudFormation state machine through
    the API, same name and ARN, its definition read from S3 and its substitutions resolved."""
    url = moto_server
    install("SFN_EXECUTION", endpoint_url=url, port=server_port(url))
    s3, cfn = aws_client("s3", url), aws_client("cloudformation", url)
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="asl/probe.asl.json", Body=ASL_WITH_PLACEHOLDER)
    template = state_machine_template(
        DefinitionS3Location={"Bucket": "artifacts", "Key": "asl/probe.asl.json"}
    )
    cfn.create_stack(StackName="probe", TemplateBody=json.dumps(template))
    (resource,) = cfn.describe_stack_resources(StackName="probe")["StackResources"]
    deployment = deploy.Deployment(
        REGION, ACCOUNT, {}, template, physical={"Machine": resource["PhysicalResourceId"]}
    )
    deploy.Deployer(url, REGION)._create_state_machines(template, deployment)
    arn = deployment.physical["Machine"]
    sfn = aws_client("stepfunctions", url)
    execution_arn = sfn.start_execution(stateMachineArn=arn, name="e1", input="{}")["executionArn"]
    execution = wait_execution(sfn, execution_arn)
    assert arn == resource["PhysicalResourceId"]
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {"greeting": "hello"}


# -- SFN_STOP_EXECUTION --------------------------------------------------------------------------
def _stopped_environment() -> Any:
    """moto's interpreter environment of an execution StopExecution stopped (its state, as
    ``Environment.set_stop`` leaves it), without an execution around it."""
    import datetime
    import threading

    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    env: Any = object.__new__(Environment)
    env._state_mutex = threading.RLock()
    env._frames = []
    env.program_state_event = threading.Event()
    stopped_at = datetime.datetime.now(datetime.UTC)
    env._program_state = ProgramStopped(stop_date=stopped_at, cause="cancelled", error="Abandoned")
    return env


def test_gap_sfn_stop_execution() -> None:
    """GAP SFN_STOP_EXECUTION: a task that fails after its execution was stopped turns the
    stopped execution into a failed one (moto's set_error overwrites the stop)."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError

    env = _stopped_environment()
    Environment.set_error(env, {"error": "SessionConflictError", "cause": "late"})
    assert isinstance(env.program_state(), ProgramError)


def test_workaround_sfn_stop_execution() -> None:
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import (
        ProgramError,
        ProgramRunning,
        ProgramStopped,
    )

    env = _stopped_environment()
    set_error = stopped_stays_stopped(Environment.set_error)
    set_error(env, {"error": "SessionConflictError", "cause": "late"})
    assert isinstance(env.program_state(), ProgramStopped)
    # and an execution still running fails as before
    running = _stopped_environment()
    running._program_state = ProgramRunning()  # type: ignore[no-untyped-call]
    set_error(running, {"error": "X", "cause": "y"})
    assert isinstance(running.program_state(), ProgramError)
