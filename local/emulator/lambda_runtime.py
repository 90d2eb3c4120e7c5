"""Lambda: functions run in-process, bound to the real handlers in ``functions/``.

Each function runs with its own environment (a per-thread overlay of ``os.environ``) and its own
stdout, one invocation at a time (Lambda gives each concurrent invocation an execution
environment of its own; here they would share the module's state), and its log lines are saved
to CloudWatch Logs as ``/aws/lambda/<name>``. A fault injected for a function (``local.faults``)
is raised inside the invocation, so it fails as a function's own error does.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from local import faults
from local.emulator import ROOT
from local.emulator.gap import Context, Gap, Patch

log = logging.getLogger("local.emulator")


FUNCTIONS_DIR = ROOT / "functions"

# Per-thread environment and stdout, so in-process functions each see their own configuration.
_local = threading.local()


class LayeredEnviron(MutableMapping[str, str]):
    """``os.environ`` with a per-thread overlay: a function's variables win inside its thread."""

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self._base = base

    def _overlay(self) -> dict[str, str] | None:
        return getattr(_local, "environ", None)

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            return overlay[key]
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            overlay[key] = value
        else:
            self._base[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            del overlay[key]
        else:
            del self._base[key]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay() or {}
        yield from overlay
        yield from (k for k in self._base if k not in overlay)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


class ThreadStdout(io.TextIOBase):
    """stdout that a function invocation captures for its own thread (its log lines)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, text: str) -> int:
        buffer = getattr(_local, "stdout", None)
        if buffer is not None:
            return int(buffer.write(text))
        return int(self._real.write(text))

    def flush(self) -> None:
        self._real.flush()


def in_function() -> bool:
    """Whether the calling thread is running a function invocation."""
    return getattr(_local, "environ", None) is not None


@contextlib.contextmanager
def function_context(environ: dict[str, str]) -> Iterator[io.StringIO]:
    previous_env = getattr(_local, "environ", None)
    previous_out = getattr(_local, "stdout", None)
    _local.environ = dict(environ)
    _local.stdout = io.StringIO()
    try:
        yield _local.stdout
    finally:
        _local.environ = previous_env
        _local.stdout = previous_out


class FunctionContext:
    """The Lambda context object handlers receive."""

    def __init__(self, name: str, arn: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


INVOCATIONS: list[str] = []
_invocations_lock = threading.Lock()


def _resolve_handler(handler: str) -> Callable[..., Any]:
    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))
    module_name, _, attr = handler.rpartition(".")
    module = importlib.import_module(module_name)
    fn: Callable[..., Any] = getattr(module, attr)
    return fn


_import_lock = threading.Lock()
#: One execution environment per function: an invocation waits for the one in progress. (Re-entrant,
#: so that a function invoked again from its own thread cannot wait for itself.)
_environments: dict[str, threading.RLock] = {}


def _environment(function_arn: str) -> threading.RLock:
    with _invocations_lock:
        return _environments.setdefault(function_arn, threading.RLock())


def run_function(fn: Any, event: Any) -> tuple[str, bool, str]:
    """Run a moto ``LambdaFunction`` in-process: (payload, errored, log output)."""
    environ = {
        **dict(os.environ),
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        # the version invoked: a published one's number when invoked by its alias
        "AWS_LAMBDA_FUNCTION_VERSION": str(getattr(fn, "version", "$LATEST")),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
    }
    context = FunctionContext(fn.function_name, fn.function_arn, int(fn.memory_size), fn.timeout)
    if isinstance(event, str):
        event = json.loads(event or "{}")
    with _invocations_lock:
        INVOCATIONS.append(fn.function_name)
    with _environment(fn.function_arn), function_context(environ) as out:
        try:
            faults.raise_function_fault(fn.function_name)
            with _import_lock:
                handler = _resolve_handler(fn.handler)
            result = handler(event, context)
            payload, errored = json.dumps(result), False
        except Exception as exc:  # the function errored: Lambda reports it, it does not crash
            payload = json.dumps(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:],
                }
            )
            errored = True
            out.write(payload + "\n")
        logs = out.getvalue()
    _ship_logs(fn, logs)
    return payload, errored, logs


def _ship_logs(fn: Any, logs: str) -> None:
    """Lambda writes a function's log lines to ``/aws/lambda/<name>``, creating the group."""
    if not logs.strip():
        return
    with _invocations_lock:
        if fn.logs_group_name not in fn.logs_backend.groups:
            fn.logs_backend.create_log_group(fn.logs_group_name, {})
    fn.save_logs(logs)


def install(context: Context) -> list[Patch]:
    from moto.awslambda import models

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return run_function(self, event)

    patches = [Patch(models.LambdaFunction, "_invoke_lambda", _invoke_lambda)]
    if not isinstance(os.environ, LayeredEnviron):
        patches.append(Patch(os, "environ", LayeredEnviron(os.environ)))
    if not isinstance(sys.stdout, ThreadStdout):
        patches.append(Patch(sys, "stdout", ThreadStdout(sys.stdout)))
    return patches


LAMBDA_RUNTIME = Gap(
    "LAMBDA_RUNTIME",
    moto_does="runs Lambda code only in Docker",
    we_do="functions run in-process, bound to the real handler in functions/, with the"
    " function's own environment (per thread), one invocation at a time per function (one"
    " execution environment), their log lines saved to /aws/lambda/<name>",
    install=install,
)


# LAMBDA_VERSIONS_FROM_CLOUDFORMATION
_version_models: list[tuple[Any, Any]] = []


def version_and_alias_models() -> tuple[Any, Any]:
    """LAMBDA_VERSIONS_FROM_CLOUDFORMATION: CloudFormation models of ``AWS::Lambda::Version`` and
    ``AWS::Lambda::Alias`` (what SAM's ``AutoPublishAlias`` makes), each made through Lambda's
    backend as CloudFormation would: a version is published (``Ref``: its ARN; ``Fn::GetAtt
    Version``: its number), an alias points at one (``Ref``: its ARN)
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-version.html,
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-alias.html).
    Not subclasses of moto's ``CloudFormationModel`` (that would register them with moto for
    good): ``version_model_patches`` adds them to moto's model lists."""
    if _version_models:
        return _version_models[0]
    from moto.awslambda.models import lambda_backends

    class Published:
        """What the models share: a physical id that is an ARN, CloudFormation's lifecycle."""

        def __init__(self, arn: str, attributes: dict[str, str]) -> None:
            self.arn, self.attributes = arn, attributes

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr in cls.ATTRIBUTES  # type: ignore[attr-defined]

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.attributes[attribute_name]

        @classmethod
        def update_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:
            return None  # as moto's CloudFormationModel: not updated in place

        @classmethod
        def delete_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:
            return None  # as moto's CloudFormationModel: left as it is

        def is_created(self) -> bool:
            return True

    class Version(Published):
        ATTRIBUTES = ("Version", "FunctionArn")

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Lambda::Version"

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Version:
            properties = cloudformation_json["Properties"]
            backend = lambda_backends[account_id][region_name]
            published = backend.publish_version(
                properties["FunctionName"], properties.get("Description", "")
            )
            if published is None:
                raise ValueError(f"{properties['FunctionName']}: no function to publish")
            arn = str(published.function_arn)
            return cls(arn, {"Version": str(published.version), "FunctionArn": arn})

    class Alias(Published):
        ATTRIBUTES = ("AliasArn",)

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Lambda::Alias"

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Alias:
            properties = cloudformation_json["Properties"]
            alias = lambda_backends[account_id][region_name].create_alias(
                name=properties["Name"],
                function_name=properties["FunctionName"],
                function_version=str(properties["FunctionVersion"]),
                description=properties.get("Description", ""),
                routing_config=properties.get("RoutingConfig"),
            )
            return cls(str(alias.arn), {"AliasArn": str(alias.arn)})

    _version_models.append((Version, Alias))
    return Version, Alias


def version_model_patches() -> list[Patch]:
    """LAMBDA_VERSIONS_FROM_CLOUDFORMATION: moto's CloudFormation takes the two models, moto's own
    version model replaced. It wraps the model lists as they are when installed (after
    CODEBUILD_FROM_CLOUDFORMATION's), computing them each time as that gap does."""
    from moto.cloudformation import parsing

    models = version_and_alias_models()
    model_list, model_map, name_type_map = (
        parsing.get_model_list,
        parsing.get_model_map,
        parsing.get_name_type_map,
    )
    ours = {model.cloudformation_type() for model in models}

    def with_ours_list() -> list[Any]:
        return [m for m in model_list() if m.cloudformation_type() not in ours] + list(models)

    def with_ours_map() -> dict[str, Any]:
        return {**model_map(), **{m.cloudformation_type(): m for m in models}}

    def with_ours_names() -> dict[str, str]:
        return {**name_type_map(), **{m.cloudformation_type(): "" for m in models}}

    return [
        Patch(parsing, "get_model_list", with_ours_list),
        Patch(parsing, "get_model_map", with_ours_map),
        Patch(parsing, "get_name_type_map", with_ours_names),
    ]


LAMBDA_VERSIONS_FROM_CLOUDFORMATION = Gap(
    "LAMBDA_VERSIONS_FROM_CLOUDFORMATION",
    moto_does="moto's CloudFormation has no AWS::Lambda::Alias (no alias is made; a Ref of one"
    " stays unresolved), and an AWS::Lambda::Version it publishes gets no physical id (a Ref of"
    " it is its logical id, where AWS gives the version's ARN) and no Version attribute",
    we_do="models of both, made through Lambda's backend: a version is published (Ref: its ARN,"
    " GetAtt Version: its number), an alias points at it (Ref: its ARN), so a workflow invokes"
    " a SnapStart function's alias as on AWS (version_model_patches)",
    install=lambda context: version_model_patches(),
)
