"""The AWS emulator (moto, pinned in requirements) and every workaround for its gaps, in one place.

Each workaround names the gap it covers; ``tests/local/test_emulator_gaps.py`` shows each gap on
plain moto, so the test fails (and the workaround can go) when moto's behaviour changes.

Gaps worked around here:

* ``LAMBDA_RUNTIME`` - moto runs Lambda code only in Docker. Functions run in-process instead,
  bound to the real handler in ``functions/``, with the function's own environment (per thread)
  and their log lines saved to CloudWatch Logs as ``/aws/lambda/<name>``.
* ``EVENTS_TARGETS`` - EventBridge delivers only to SQS, logs and bus targets and raises on Lambda
  and Step Functions targets. Those two are delivered here, asynchronously, as EventBridge does.
* ``SFN_EXECUTION`` - state machines execute only after ``POST /moto-api/config`` switches the
  interpreter on, and its own clients call ``http://localhost:$MOTO_PORT``.
* ``SFN_FROM_CLOUDFORMATION`` - CloudFormation-created state machines ignore ``Definition`` /
  ``DefinitionSubstitutions`` and are not executable (handled by ``local.deploy``, which
  creates them through the API with their substitutions resolved).
* ``PUBLIC_PARAMETERS`` - AWS's public ``/aws/service/...`` SSM parameters (the AMI defaults of
  the launch templates) are missing apart from a few, and their names are reserved, so they are
  seeded into the emulator's parameter store directly.
* ``EVENTBUS_REF`` - moto's ``EventBus`` has no CloudFormation physical id, so ``Ref`` to a bus
  yields moto's object instead of the bus name and a rule on a custom bus fails to create.
* ``CFN_LIST_PARAMETERS`` - ``Fn::Join`` over a ``CommaDelimitedList`` parameter left at its
  default joins the characters of its raw string, and ``Ref`` to a ``List<...>`` parameter
  stringifies a Python list, so
  ``Fn::Join [",", Ref List]`` is replaced by the parameter's comma-separated value, as AWS
  would resolve it.
* ``DDB_ATOMIC_WRITES`` - DynamoDB conditional writes and transactions check their conditions,
  write, and (for a failed transaction) restore a copy of the table without a lock, so two
  threads can both pass a condition, or a rollback can undo another thread's write. DynamoDB
  serialises them; here one lock does.
* ``EC2_STATE_CHANGES`` - EC2 instances change state without the ``EC2 Instance State-change
  Notification`` events AWS puts on the default bus. After every run, start, stop and
  terminate, the emulator puts them (each transition: pending, running, stopping, stopped,
  shutting-down, terminated) and calls the local stack's listeners.
* ``CFN_PLACEHOLDERS`` - CloudFormation creates only placeholders for Cognito resources (created
  through the API by ``local.deploy``); ``AWS::ApiGateway::RestApi`` needs a ``Name``.

Gaps listed for moto 5.2.x that no workflow here depends on yet (each lands with its first user):
PascalCase parameter normalisation for batch/ecs/startExecution, JSONata, executions started
without a name, and ``$.a[0].b`` returning a list. Wait states and Retry back-off sleep in real
time; their durations come from template parameters, never from skipping them.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from local import faults

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"

# ------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------
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
    module_name, _, attr = handler.rpartition(".")
    module = importlib.import_module(module_name)
    fn: Callable[..., Any] = getattr(module, attr)
    return fn


_import_lock = threading.Lock()


def run_function(fn: Any, event: Any) -> tuple[str, bool, str]:
    """Run a moto ``LambdaFunction`` in-process: (payload, errored, log output)."""
    environ = {
        **dict(os.environ),
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
    }
    context = FunctionContext(fn.function_name, fn.function_arn, int(fn.memory_size), fn.timeout)
    if isinstance(event, str):
        event = json.loads(event or "{}")
    with _invocations_lock:
        INVOCATIONS.append(fn.function_name)
    with function_context(environ) as out:
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


def patch_lambda_runtime() -> None:
    """LAMBDA_RUNTIME: run functions in-process instead of in Docker."""
    from moto.awslambda import models

    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))
    if not isinstance(os.environ, LayeredEnviron):
        os.environ = LayeredEnviron(os.environ)  # type: ignore[assignment]  # noqa: B003
    if not isinstance(sys.stdout, ThreadStdout):
        sys.stdout = ThreadStdout(sys.stdout)

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return run_function(self, event)

    models.LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------
_delivery = ThreadPoolExecutor(max_workers=16, thread_name_prefix="eventbridge")


def patch_event_targets(endpoint_url: str) -> None:
    """EVENTS_TARGETS: deliver to Lambda and Step Functions targets, asynchronously."""
    import boto3
    from moto.events import models
    from moto.utilities.arns import parse_arn

    original = models.Rule.send_to_targets
    if getattr(original, "_dcvfleet", False):
        return

    def deliver(target_arn: str, event: dict[str, Any]) -> None:
        arn = parse_arn(target_arn)
        region = target_arn.split(":")[3]
        if arn.service == "lambda":
            client = boto3.client("lambda", endpoint_url=endpoint_url, region_name=region)
            client.invoke(FunctionName=target_arn, Payload=json.dumps(event).encode())
        else:
            client = boto3.client("stepfunctions", endpoint_url=endpoint_url, region_name=region)
            client.start_execution(
                stateMachineArn=target_arn, name=str(uuid.uuid4()), input=json.dumps(event)
            )

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in ("lambda", "states")]
        rest = [t for t in self.targets if t not in ours]
        event = dict(original_event)
        if isinstance(event.get("time"), (int, float)):
            event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["time"]))
        for target in ours:
            _delivery.submit(deliver, target["Arn"], event)
        if rest:
            clone = self.__class__.__new__(self.__class__)
            clone.__dict__.update(self.__dict__)
            clone.targets = rest
            original(clone, original_event, transform_input)

    send_to_targets._dcvfleet = True  # type: ignore[attr-defined]
    models.Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------
_dynamodb_lock = threading.RLock()
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def atomic_dynamodb_writes() -> dict[str, Callable[..., Any]]:
    """DDB_ATOMIC_WRITES: the emulator's write methods, each serialised by one lock."""
    from moto.dynamodb.models import DynamoDBBackend

    replacements: dict[str, Callable[..., Any]] = {}
    for name in DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_dcvfleet", False):
            continue

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(*args, **kwargs)

        locked._dcvfleet = True  # type: ignore[attr-defined]
        replacements[name] = locked
    return replacements


def patch_dynamodb_atomic_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name, replacement in atomic_dynamodb_writes().items():
        setattr(DynamoDBBackend, name, replacement)


#: Called with no arguments after any instance was run, started, stopped or terminated.
INSTANCE_LISTENERS: list[Callable[[], None]] = []
EC2_STATE_CHANGES = ("run_instances", "start_instances", "stop_instances", "terminate_instances")
#: The states EC2 reports on the way to each final state.
_TRANSITIONS = {
    "running": ("pending", "running"),
    "stopped": ("stopping", "stopped"),
    "terminated": ("shutting-down", "terminated"),
}


def _state_change_events(backend: Any, changed: list[tuple[Any, str | None]]) -> None:
    from moto.events.models import events_backends

    entries = []
    for instance, previous in changed:
        final = instance.state
        if final == previous:
            continue  # starting a running instance changes nothing, and says nothing
        arn = f"arn:aws:ec2:{backend.region_name}:{backend.account_id}:instance/{instance.id}"
        for state in _TRANSITIONS.get(final, (final,)):
            entries.append(
                {
                    "Source": "aws.ec2",
                    "DetailType": "EC2 Instance State-change Notification",
                    "Detail": json.dumps({"instance-id": instance.id, "state": state}),
                    "Resources": [arn],
                    "EventBusName": "default",
                }
            )
    if entries:
        events_backends[backend.account_id][backend.region_name].put_events(entries)


def patch_instance_state_changes() -> None:
    """EC2_STATE_CHANGES: put EC2's state-change events and tell the local stack's listeners."""
    from moto.ec2.models.instances import InstanceBackend

    for name in EC2_STATE_CHANGES:
        original = getattr(InstanceBackend, name)
        if getattr(original, "_dcvfleet_listeners", False):
            continue

        def notifying(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            result = __original(self, *args, **kwargs)
            changed: list[tuple[Any, str | None]]
            if hasattr(result, "instances"):  # run_instances: a reservation of new instances
                changed = [(instance, None) for instance in result.instances]
            else:  # start, stop, terminate: (instance, its previous state)
                changed = [(instance, previous.name) for instance, previous in result]
            _state_change_events(self, changed)
            for listener in list(INSTANCE_LISTENERS):
                listener()
            return result

        notifying._dcvfleet_listeners = True  # type: ignore[attr-defined]
        setattr(InstanceBackend, name, notifying)


def enable_execution(endpoint_url: str, port: int) -> None:
    """SFN_EXECUTION: switch the interpreter on and point its clients at this server."""
    os.environ["MOTO_PORT"] = str(port)
    resp = requests.post(
        f"{endpoint_url}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    )
    resp.raise_for_status()


def apply_all(endpoint_url: str, port: int) -> None:
    patch_lambda_runtime()
    faults.install()
    patch_event_targets(endpoint_url)
    patch_event_bus_ref()
    patch_dynamodb_atomic_writes()
    patch_instance_state_changes()
    enable_execution(endpoint_url, port)


#: Resource types whose CloudFormation resources moto only fakes; created through the API instead.
API_CREATED_TYPES = frozenset(
    {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolGroup",
        # moto's CloudFormation ignores a RestApi's Body, so a Deployment of it fails ("no
        # methods"); the Body is imported, deployed and staged through the API instead.
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        # moto's CloudFormation adds the permission but gives the resource no physical id.
        "AWS::Lambda::Permission",
    }
)


def patch_event_bus_ref() -> None:
    """EVENTBUS_REF: a bus's physical id (and so its ``Ref``) is its name, as in AWS."""
    from moto.events.models import EventBus

    if "physical_resource_id" not in vars(EventBus):
        EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]


def fix_template_for_emulator(template: dict[str, Any], parameters: dict[str, str]) -> None:
    """CFN_PLACEHOLDERS and CFN_LIST_PARAMETERS: rewrite what moto's CloudFormation can't take."""
    lists = {
        name: parameters.get(name, str(spec.get("Default", "")))
        for name, spec in template.get("Parameters", {}).items()
        if spec.get("Type") == "CommaDelimitedList" or spec.get("Type", "").startswith("List<")
    }

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        join = value.get("Fn::Join")
        if (
            len(value) == 1
            and isinstance(join, list)
            and join[0] == ","
            and isinstance(join[1], dict)
            and join[1].get("Ref") in lists
        ):
            return ",".join(x.strip() for x in lists[join[1]["Ref"]].split(","))
        return {k: walk(v) for k, v in value.items()}

    template["Resources"] = walk(template.get("Resources", {}))
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::ApiGateway::RestApi":
            resource.setdefault("Properties", {}).setdefault("Name", logical_id)


def seed_public_parameter(account_id: str, region: str, name: str, value: str) -> None:
    """PUBLIC_PARAMETERS: add an AWS-owned ``/aws/service/...`` parameter, as AWS provides it."""
    from datetime import UTC, datetime

    from moto.ssm.models import Parameter, ssm_backends

    store = ssm_backends[account_id][region]._parameters
    if store.get(name):
        return
    store[name].append(
        Parameter(  # type: ignore[abstract]
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=datetime.now(UTC),
            version=1,
            data_type="aws:ec2:image",
        )
    )
