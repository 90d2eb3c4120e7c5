"""Step Functions: the interpreter switched on, and its differences from Step Functions closed.

Not a gap but noise: moto's interpreter logs an ERROR for every path a Choice's ``IsPresent``
finds missing, though the execution goes on correctly.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

from local.emulator.gap import Context, Gap, Patch

log = logging.getLogger("local.emulator")


def execution_patches(port: int) -> list[Patch]:
    """SFN_EXECUTION: the interpreter switched on (what ``POST /moto-api/config`` sets) and its
    own clients pointed at this server (moto reads ``MOTO_PORT``)."""
    from moto.core.config import default_user_config

    return [
        Patch(os.environ, "MOTO_PORT", str(port)),
        Patch(default_user_config, "stepfunctions", {"execute_state_machine": True}),
    ]


def sfn_task_failure_with_cause() -> Callable[[Any], Any]:
    """SFN_TASK_FAILURE_CAUSE: SendTaskFailure's handler, handing its cause on as well."""
    from moto.core.responses import EmptyResult

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    return send_task_failure


def install_task_failure_cause(context: Context) -> list[Patch]:
    from moto.stepfunctions.responses import StepFunctionResponse

    return [Patch(StepFunctionResponse, "send_task_failure", sfn_task_failure_with_cause())]


# SFN_AWS_SDK_CASING
#: Step Functions' service names in aws-sdk error names, where they are not the resource's.
SDK_ERROR_SERVICE_NAMES = {"codebuild": "CodeBuild"}
_service_models: dict[str, Any] = {}
_service_models_lock = threading.Lock()


def sdk_operation_model(service: str, action: str) -> Any | None:
    """botocore's model of a service's operation (``action`` in snake case), None if unknown."""
    import botocore.session
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    with _service_models_lock:
        model = _service_models.get(service)
        if model is None:
            model = botocore.session.get_session().get_service_model(service)
            _service_models[service] = model
    for name in model.operation_names:
        if camel_to_snake_case(name) == action:
            return model.operation_model(name)
    return None


def sfn_aws_sdk_patches() -> list[Patch]:
    """SFN_AWS_SDK_CASING: an ``aws-sdk`` Task's parameters in Step Functions' PascalCase become
    the API's member names (``ProjectName`` -> ``projectName``), its result's members PascalCase
    (``build.id`` -> ``Build.Id``), and a service error is ``<Service>.<Error>Exception`` in
    Step Functions' spelling of the service (``CodeBuild.ResourceNotFoundException``), as AWS
    documents for its SDK integrations.."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    task = aws_sdk.StateTaskServiceAwsSdk

    def operation(self: Any, service: str | None, action: str | None) -> Any | None:
        return sdk_operation_model(
            self._get_boto_service_name(service), self._get_boto_service_action(action)
        )

    def normaliser(shape: str, convert: str) -> Callable[..., None]:
        """The parameters (``input_shape``, ``_to_boto_request``) or the result
        (``output_shape``, ``_from_boto_response``) converted by the operation's model."""

        def normalise(
            self: Any,
            value: Any,
            boto_service_name: str | None = None,
            service_action_name: str | None = None,
        ) -> None:
            model = operation(self, boto_service_name, service_action_name)
            found = None if model is None else getattr(model, shape)
            if found is not None:
                getattr(self, convert)(value, found)

        return normalise

    names = {**aws_sdk._SERVICE_ERROR_NAMES, **SDK_ERROR_SERVICE_NAMES}
    return [
        Patch(task, "_normalise_parameters", normaliser("input_shape", "_to_boto_request")),
        Patch(task, "_normalise_response", normaliser("output_shape", "_from_boto_response")),
        Patch(aws_sdk, "_SERVICE_ERROR_NAMES", names),
    ]


# SFN_JSONPATH_INDEX
#: What makes a JSONPath indefinite (it may select several nodes, so Step Functions gives a list):
#: recursive descent, a wildcard, a filter, a slice or a union.
INDEFINITE_PATH = re.compile(r"\.\.|\*|\[\?|\[[^\]]*[:,][^\]]*\]")


def definite_json_path(original: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """SFN_JSONPATH_INDEX: a definite path (``$.Builds[0].BuildStatus``) selects one value, as in
    Step Functions; indefinite ones are left to moto."""

    def extract_json(path: str, data: Any) -> Any:
        if path == "$" or (path.startswith("$.") and not INDEFINITE_PATH.search(path)):
            from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

            matches = parse(path).find(data)
            if len(matches) == 1:
                return matches[0].value
        return original(path, data)  # none found (moto's error), or indefinite

    return extract_json


def sfn_json_path_patches() -> list[Patch]:
    """SFN_JSONPATH_INDEX: ``extract_json`` replaced in moto's JSONPath module and in every module
    of its interpreter that imported it."""
    import moto.stepfunctions.parser.asl.parse.preprocessor  # noqa: F401 - loads every holder
    from moto.stepfunctions.parser.asl.utils import json_path

    original = json_path.extract_json
    replacement = definite_json_path(original)
    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser")
        and getattr(module, "extract_json", None) is original
    ]
    return [Patch(module, "extract_json", replacement) for module in holders]


# SFN_COST
def sfn_cost_patches() -> list[Patch]:
    """SFN_COST: the parse tree of each definition kept (every execution still gets components of
    its own from it), and the interpreter's boto3 clients kept per region and service (a state's
    own credentials still get a client of their own).."""
    import moto.stepfunctions.parser.asl.parse.preprocessor  # noqa: F401 - loads every holder
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
    from moto.stepfunctions.parser.asl.utils import boto_client

    parse = asl_parser.AmazonStateLanguageParser.parse
    trees: dict[str, Any] = {}
    make_client = boto_client.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def parse_once(definition: str) -> tuple[Any, Any]:
        tree = trees.get(definition)
        if tree is None:
            program, tree = parse(definition)  # a definition that does not parse raises here
            trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    def client_once(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return make_client(region, service, state_credentials)
        with lock:
            if (region, service) not in clients:
                clients[(region, service)] = make_client(region, service)
            return clients[(region, service)]

    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser")
        and getattr(module, "boto_client_for", None) is make_client
    ]
    return [
        Patch(asl_parser.AmazonStateLanguageParser, "parse", staticmethod(parse_once)),
        *[Patch(module, "boto_client_for", client_once) for module in holders],
    ]


def stopped_stays_stopped(original: Callable[..., None]) -> Callable[..., None]:
    """SFN_STOP_EXECUTION: an execution that was stopped keeps its end (ABORTED) when a task
    it had started fails afterwards."""
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    def set_error(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return
        original(self, error)

    return set_error


def install_stopped_stays_stopped(context: Context) -> list[Patch]:
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    return [Patch(Environment, "set_error", stopped_stays_stopped(Environment.set_error))]


SFN_EXECUTION = Gap(
    "SFN_EXECUTION",
    moto_does="state machines execute only after POST /moto-api/config switches the interpreter"
    " on, and its own clients call http://localhost:$MOTO_PORT",
    we_do="the interpreter is switched on and MOTO_PORT names this server",
    install=lambda context: execution_patches(context.port),
)
SFN_TASK_FAILURE_CAUSE = Gap(
    "SFN_TASK_FAILURE_CAUSE",
    moto_does="SendTaskFailure passes only the error on: its cause is dropped, so a Catch sees"
    ' {"Error": ...} without the reason',
    we_do="the cause goes on too",
    install=install_task_failure_cause,
)
SFN_FROM_CLOUDFORMATION = Gap(
    "SFN_FROM_CLOUDFORMATION",
    moto_does="CloudFormation-created state machines ignore Definition /"
    " DefinitionSubstitutions and are not executable",
    we_do="the deployer (local.deploy) creates them through the API with their substitutions"
    " resolved",
)
SFN_AWS_SDK_CASING = Gap(
    "SFN_AWS_SDK_CASING",
    moto_does="an aws-sdk:<service>:<action> Task passes its parameters to the SDK as written,"
    " so PascalCase names (what AWS documents: ProjectName) fail the state with States.Runtime"
    " for every camelCase API, its result keeps the API's casing (build.id where AWS gives"
    " Build.Id), and a service error is named after the resource's lower-case service"
    " (codebuild.*)",
    we_do="parameters are matched to the API's members by botocore's model, results come back"
    " PascalCase, and errors are CodeBuild.<Error>Exception as Step Functions names them",
    install=lambda context: sfn_aws_sdk_patches(),
)
SFN_JSONPATH_INDEX = Gap(
    "SFN_JSONPATH_INDEX",
    moto_does="a definite path through an array index ($.Builds[0].BuildStatus) yields a"
    " one-element list, so a Choice on it never matches",
    we_do="a definite path (no .., *, filter, slice or union) that selects one node yields its"
    " value, as Step Functions gives it; indefinite paths stay moto's",
    install=lambda context: sfn_json_path_patches(),
)
SFN_COST = Gap(
    "SFN_COST",
    moto_does="(not a gap but a cost) the interpreter parses a definition again (ANTLR) for"
    " every execution, about 0.1 s of CPU for the provisioning workflow, and makes a new boto3"
    " client for every Task; with 200 desktops asked for at once (bench.load) that was up to a"
    " third of the emulator's time",
    we_do="the parse tree is kept per definition and the clients per region and service",
    install=lambda context: sfn_cost_patches(),
)
SFN_STOP_EXECUTION = Gap(
    "SFN_STOP_EXECUTION",
    moto_does="an execution stopped (StopExecution) while a Task it started is still running"
    " ends FAILED with that task's error once the task fails, instead of ABORTED",
    we_do="a stopped execution stays stopped: a task's later failure does not change its end,"
    " as in Step Functions, where StopExecution ends the execution at once"
    " (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html)",
    install=install_stopped_stays_stopped,
)
