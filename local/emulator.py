"""The AWS emulator (moto, pinned in requirements) and every workaround for its gaps, in one place.

Each workaround names the gap it covers; ``tests/local/test_emulator_gaps.py`` shows each gap on
plain moto, so the test fails (and the workaround can go) when moto's behaviour changes.

Gaps worked around here:

* ``LAMBDA_RUNTIME`` - moto runs Lambda code only in Docker. Functions run in-process instead,
  bound to the real handler in ``functions/``, with the function's own environment (per thread)
  and their log lines saved to CloudWatch Logs as ``/aws/lambda/<name>``.
* ``EVENTS_TARGETS`` - EventBridge delivers only to SQS, logs and bus targets and raises on Lambda
  and Step Functions targets. Those two are delivered here, asynchronously, as EventBridge does,
  with what the target asks for: its ``Input`` (verbatim), ``InputPath`` or ``InputTransformer``,
  else the event (moto keeps all three on the target).
* ``EVENTS_SCHEDULE_PATTERN`` - a rule with a ``ScheduleExpression`` and no ``EventPattern``
  matches every event put on its bus (so every EC2 state change on the default bus would start
  a scheduled workflow). On AWS it matches none: here it is only fired by its schedule.
* ``EVENTS_SCHEDULES`` - rules with a ``ScheduleExpression`` are stored but never fired.
  ``Scheduler`` fires every ENABLED ``rate(N minute|minutes|hour|hours|day|days)`` rule on its
  rate (the first time one rate after it first sees the rule), sending the "Scheduled Event"
  envelope EventBridge sends (source ``aws.events``, detail ``{}``, resources ``[rule ARN]``)
  through the EVENTS_TARGETS delivery. One schedule minute lasts ``minute_seconds`` real
  seconds (``python -m local --minute-seconds S``, default 60). ``cron(...)`` rules are not run
  on their own (a warning names each once); ``POST /schedules/run`` on ``control_url`` fires
  any schedule rule at once.
* ``SSM_DOCUMENT_FROM_CLOUDFORMATION`` - an ``AWS::SSM::Document`` without ``DocumentFormat``
  fails the stack ("Invalid document format None"; AWS defaults to JSON), and a ``Content``
  object (how a template writes it) is kept as a Python repr, so ``GetDocument`` returns no JSON
  and ``DescribeDocument`` fails. Created here as CloudFormation does (JSON text, named
  ``<stack>-<LogicalId>-<suffix>`` without ``Name``).
* ``SSM_RUN_COMMAND`` - ``SendCommand`` records a command without checking its document, its
  parameters or its instances and never runs it; ``GetCommandInvocation`` answers "Success" with
  no output. Here ``SendCommand`` fails as SSM does: ``InvalidDocument`` (no such document),
  ``InvalidParameters`` (a name the document does not declare, a required one missing, a value
  outside ``allowedValues`` or not fully matching ``allowedPattern``), ``InvalidInstanceId`` (an
  instance EC2 does not know, one shutting down or terminated, or one that is not a simulated
  host and so has no SSM Agent; the message is this emulator's, the code is SSM's). A command
  for a simulated host runs: each ``mainSteps`` step whose ``platformType`` precondition fits
  the host runs, in order, through ``bash`` in the host's workdir and environment (``dcv`` and
  ``nvidia-smi`` on ``PATH`` are its simulators), with ``{{ name }}`` placeholders replaced by
  the parameters; the others are reported ``Success``/``Skipped``. Simulated hosts run Linux,
  so a Windows host's ``aws:runPowerShellScript`` step runs the document's
  ``aws:runShellScript`` lines instead (reported under the PowerShell step's name, as on a
  Windows node). While the host is stopped or still booting the invocation stays ``Pending``
  and runs when it is up, or ends ``TimedOut``/``DeliveryTimedOut`` after the command's
  ``TimeoutSeconds`` (default 3600), as SSM's delivery timeout; a host terminated meanwhile
  ends ``Failed``/``Undeliverable``. ``GetCommandInvocation`` reports each step's real
  ``Status`` (``Pending``, ``InProgress``, ``Success``, ``Failed``, ``TimedOut``),
  ``ResponseCode`` (-1 until it ran), ``StandardOutputContent`` and ``StandardErrorContent``
  (their first 24,000 characters); as the API reference says, a document with more than one
  step needs ``PluginName`` (the step's name), else ``InvalidPluginName``.
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
  ``Fn::Join [<separator>, Ref List]`` is replaced by the parameter's members joined by the
  separator, as AWS would resolve it.
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

Not a gap but noise: moto's Step Functions interpreter logs an ERROR for every path a Choice's
``IsPresent`` finds missing, though the execution goes on correctly.

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
import logging
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

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
#: The target services EventBridge delivers to here (moto raises on them).
DELIVERED_HERE = ("lambda", "states")


def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends a target, as JSON text: its ``Input`` verbatim, else the part of
    the event its ``InputPath`` selects, else its ``InputTransformer``'s result, else the event."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        parsed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=cast(Any, {**event, "ingestion-time": event.get("ingestion-time", time.time())}),
        )
        return json.dumps(parsed)
    return json.dumps(event)


def _deliver(target_arn: str, payload: str, endpoint_url: str | None) -> None:
    import boto3
    from moto.utilities.arns import parse_arn

    region = target_arn.split(":")[3]
    if parse_arn(target_arn).service == "lambda":
        client = boto3.client("lambda", endpoint_url=endpoint_url, region_name=region)
        client.invoke(FunctionName=target_arn, Payload=payload.encode())
    else:
        client = boto3.client("stepfunctions", endpoint_url=endpoint_url, region_name=region)
        client.start_execution(stateMachineArn=target_arn, name=str(uuid.uuid4()), input=payload)


def deliver_rule_event(
    rule: Any, original_event: dict[str, Any], endpoint_url: str | None, transform: bool = True
) -> None:
    """Send an event a rule matched (or a schedule fired) to every target of the rule: Lambda and
    Step Functions targets here, asynchronously; the rest through moto's own delivery."""
    from moto.events import models
    from moto.utilities.arns import parse_arn

    ours = [t for t in rule.targets if parse_arn(t["Arn"]).service in DELIVERED_HERE]
    rest = [t for t in rule.targets if t not in ours]
    event = dict(original_event)
    if isinstance(event.get("time"), (int, float)):
        event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["time"]))
    for target in ours:
        _delivery.submit(_deliver, target["Arn"], target_input(target, event), endpoint_url)
    if rest:
        moto_send = getattr(
            models.Rule.send_to_targets, "_dcvfleet_original", models.Rule.send_to_targets
        )
        clone = rule.__class__.__new__(rule.__class__)
        clone.__dict__.update(rule.__dict__)
        clone.targets = rest
        # moto's own delivery reads the ingestion time its put_events adds
        stamped = {"ingestion-time": time.time(), **original_event}
        moto_send(clone, cast(Any, stamped), transform)


def schedule_only(rule: Any) -> bool:
    """A rule with a schedule and no event pattern: on AWS it matches no event put on a bus."""
    return bool(rule.scheduled_expression) and not rule.event_pattern.get_pattern()


def event_targets_patch(endpoint_url: str | None) -> Callable[..., None] | None:
    """EVENTS_TARGETS: deliver to Lambda and Step Functions targets, asynchronously, honouring
    a target's ``Input``, ``InputPath`` and ``InputTransformer``.
    EVENTS_SCHEDULE_PATTERN: a rule with only a schedule matches no event put on its bus.
    The replacement of moto's ``Rule.send_to_targets`` (None when it is already replaced)."""
    from moto.events import models

    original = models.Rule.send_to_targets
    if getattr(original, "_dcvfleet", False):
        return None

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if schedule_only(self) or not self.event_pattern.matches_event(original_event):
            return
        deliver_rule_event(self, original_event, endpoint_url, transform_input)

    send_to_targets._dcvfleet = True  # type: ignore[attr-defined]
    send_to_targets._dcvfleet_original = original  # type: ignore[attr-defined]
    return send_to_targets


def patch_event_targets(endpoint_url: str) -> None:
    from moto.events import models

    replacement = event_targets_patch(endpoint_url)
    if replacement is not None:
        models.Rule.send_to_targets = replacement  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------
RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
UNIT_MINUTES = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}
log = logging.getLogger("local.emulator")


def rate_minutes(expression: str) -> int | None:
    """``rate(5 minutes)`` -> 5; None for anything the local scheduler does not run."""
    match = RATE.match(expression or "")
    if not match or int(match.group(1)) < 1:
        return None
    return int(match.group(1)) * UNIT_MINUTES[match.group(2)]


def schedule_rules() -> list[Any]:
    """Every rule with a ScheduleExpression, in every account and region the emulator holds."""
    from moto.events.models import events_backends

    rules: list[Any] = []
    for regions in list(events_backends.values()):
        for backend in list(regions.values()):
            for bus in list(backend.event_buses.values()):
                rules.extend(r for r in list(bus.rules.values()) if r.scheduled_expression)
    return rules


def scheduled_event(rule: Any) -> dict[str, Any]:
    """The envelope EventBridge sends a scheduled rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": int(time.time()),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }


class Scheduler:
    """EVENTS_SCHEDULES: fire every ENABLED rule with ``rate(N minute|minutes|hour|hours|day|days)``
    on its rate, as EventBridge does: first one rate after the scheduler first sees the rule
    (or sees it enabled, or its expression changed), then every rate. One schedule minute lasts
    ``minute_seconds`` real seconds (time compression for tests and benchmarks; nothing else in
    the stack is compressed). ``cron(...)`` rules are not run on their own: each is logged once,
    and ``run_now`` fires them like any other. Each firing sends a "Scheduled Event" envelope
    (source "aws.events", detail {}, resources [the rule's ARN]) to the rule's targets through
    ``deliver_rule_event``, the EVENTS_TARGETS delivery."""

    def __init__(self, endpoint_url: str | None, minute_seconds: float = 60.0) -> None:
        if minute_seconds <= 0:
            raise ValueError("minute_seconds must be > 0")
        self.endpoint_url = endpoint_url
        self.minute_seconds = minute_seconds
        self.tick = max(0.02, min(0.5, minute_seconds / 4))
        self._due: dict[str, tuple[str, float]] = {}  # rule ARN -> (expression, next firing)
        self._reported: set[tuple[str, str]] = set()
        self.fired: dict[str, int] = {}  # rule ARN -> how many times it fired
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="eventbridge-scheduler", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def period(self, expression: str) -> float | None:
        minutes = rate_minutes(expression)
        return None if minutes is None else minutes * self.minute_seconds

    def _fire(self, rule: Any) -> None:
        with self._lock:
            self.fired[rule.arn] = self.fired.get(rule.arn, 0) + 1
        try:
            deliver_rule_event(rule, scheduled_event(rule), self.endpoint_url)
        except Exception:  # a broken target must not stop the scheduler
            log.exception("scheduled rule %s: delivery failed", rule.name)

    def run_due(self, now: float | None = None) -> list[str]:
        """Fire the rules whose time has come; their names."""
        now = time.monotonic() if now is None else now
        fired, seen = [], set()
        for rule in schedule_rules():
            expression = rule.scheduled_expression
            if rule.state != "ENABLED":
                continue
            period = self.period(expression)
            if period is None:
                if (rule.arn, expression) not in self._reported:
                    self._reported.add((rule.arn, expression))
                    log.warning(
                        "schedule rule %s: %r is not run by the local scheduler (only rate(...)"
                        " is); fire it with POST /schedules/run",
                        rule.name,
                        expression,
                    )
                continue
            seen.add(rule.arn)
            known = self._due.get(rule.arn)
            if known is None or known[0] != expression:
                self._due[rule.arn] = (expression, now + period)
                continue
            if now >= known[1]:
                # one firing per tick; a scheduler that fell behind catches up from now
                self._due[rule.arn] = (expression, max(known[1] + period, now + period / 2))
                self._fire(rule)
                fired.append(rule.name)
        for arn in [a for a in self._due if a not in seen]:
            del self._due[arn]  # deleted, disabled or changed to cron: starts afresh
        return fired

    def run_now(self, name: str | None = None) -> list[str]:
        """Fire every ENABLED schedule rule (or the one named) at once; the names fired.

        Raises KeyError for a name no schedule rule has, ValueError for a DISABLED one."""
        rules = [r for r in schedule_rules() if name is None or r.name == name]
        if name is not None and not rules:
            raise KeyError(name)
        enabled = [r for r in rules if r.state == "ENABLED"]
        if name is not None and not enabled:
            raise ValueError(f"rule {name} is {rules[0].state}")
        for rule in enabled:
            self._fire(rule)
        return [r.name for r in enabled]

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "name": rule.name,
                "arn": rule.arn,
                "expression": rule.scheduled_expression,
                "state": rule.state,
                "runsLocally": self.period(rule.scheduled_expression) is not None,
                "fired": self.fired.get(rule.arn, 0),
                "nextInSeconds": (
                    round(max(0.0, self._due[rule.arn][1] - now), 3)
                    if rule.arn in self._due
                    else None
                ),
            }
            for rule in schedule_rules()
        ]

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due()
            except Exception:  # the emulator is shutting down, or a rule changed under us
                log.debug("scheduler tick failed", exc_info=True)


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


# ------------------------------------------------------------------------------------------------
# SSM_RUN_COMMAND
@dataclass(frozen=True)
class ManagedNode:
    """A simulated host as Run Command sees it: its ``platformType``, whether its SSM Agent is
    reachable (the host is up), and the shell environment a command runs in."""

    platform: str  # "Linux" or "Windows"
    online: bool
    environ: Mapping[str, str]
    cwd: str


#: Lookups the local stack registers (the host simulator): instance id -> its managed node, or
#: None when the instance is not one of theirs (then it has no SSM Agent).
MANAGED_NODES: list[Callable[[str], ManagedNode | None]] = []
#: GetCommandInvocation returns the first 24,000 characters of each output.
OUTPUT_LIMIT = 24000
NODE_POLL_SECONDS = 0.2
DEFAULT_EXECUTION_TIMEOUT = 3600
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
SHELL_STEP, POWERSHELL_STEP = "aws:runShellScript", "aws:runPowerShellScript"
#: The platform each script action runs on when its step names no precondition.
ACTION_PLATFORM = {SHELL_STEP: "Linux", POWERSHELL_STEP: "Windows"}


def managed_node(instance_id: str) -> ManagedNode | None:
    for lookup in list(MANAGED_NODES):
        node = lookup(instance_id)
        if node is not None:
            return node
    return None


def _ssm_error(code: str, message: str) -> Exception:
    from moto.ssm.exceptions import SSMException

    return SSMException(code, message)


def resolve_parameters(content: dict[str, Any], given: dict[str, Any]) -> dict[str, list[str]]:
    """A document's parameters for one command, as SSM checks them: every given name declared,
    every parameter without a default given, a String given one value, each given value within
    ``allowedValues``, fully matching ``allowedPattern`` and within ``minChars``/``maxChars``.
    Raises InvalidParameters otherwise."""
    declared: dict[str, Any] = content.get("parameters") or {}
    for name in given:
        if name not in declared:
            raise _ssm_error(
                "InvalidParameters", f'Parameter "{name}" is not declared by the document.'
            )
    resolved: dict[str, list[str]] = {}
    for name, spec in declared.items():
        if name not in given:
            if "default" not in spec:
                raise _ssm_error(
                    "InvalidParameters", f'Parameter "{name}" is required and was not given.'
                )
            default = spec["default"]
            resolved[name] = (
                [str(v) for v in default] if isinstance(default, list) else [str(default)]
            )
            continue
        values = given[name] if isinstance(given[name], list) else [given[name]]
        if spec.get("type", "String") == "String" and len(values) != 1:
            raise _ssm_error(
                "InvalidParameters", f'Parameter "{name}" is a String: give exactly one value.'
            )
        for value in map(str, values):
            problem = _parameter_problem(spec, value)
            if problem:
                raise _ssm_error(
                    "InvalidParameters", f'Parameter "{name}" value "{value}" {problem}.'
                )
        resolved[name] = [str(v) for v in values]
    return resolved


def _parameter_problem(spec: dict[str, Any], value: str) -> str:
    allowed = spec.get("allowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"is not one of the allowed values {allowed}"
    pattern = spec.get("allowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        return f"does not match the allowed pattern {pattern}"
    if "minChars" in spec and len(value) < int(spec["minChars"]):
        return f"is shorter than {spec['minChars']} characters"
    if "maxChars" in spec and len(value) > int(spec["maxChars"]):
        return f"is longer than {spec['maxChars']} characters"
    return ""


def substitute(lines: list[str], parameters: dict[str, list[str]]) -> list[str]:
    """``{{ name }}`` -> the parameter's value; a line that is only a list parameter becomes one
    line per value. Placeholders naming no parameter (``{{ssm:...}}``) stay as written."""
    out: list[str] = []
    for line in lines:
        whole = PLACEHOLDER.fullmatch(line.strip())
        if whole and whole.group(1) in parameters:
            out.extend(parameters[whole.group(1)])
            continue
        out.append(
            PLACEHOLDER.sub(
                lambda m: (
                    "\n".join(parameters[m.group(1)]) if m.group(1) in parameters else m.group(0)
                ),
                line,
            )
        )
    return out


def step_applies(step: dict[str, Any], platform: str) -> bool:
    """Whether a schemaVersion 2.2 step runs on a node: its ``platformType`` precondition, or
    (without one) whether its action is for the node's platform."""
    precondition = step.get("precondition")
    if isinstance(precondition, dict) and "StringEquals" in precondition:
        left, right = precondition["StringEquals"]
        if left == "platformType":
            return bool(right == platform)
    return ACTION_PLATFORM.get(step.get("action", ""), platform) == platform


def step_commands(step: dict[str, Any], steps: list[dict[str, Any]]) -> list[str] | str:
    """The shell lines a step runs on a simulated host (which runs Linux), or why it cannot run:
    a Windows node's ``aws:runPowerShellScript`` step runs the document's first
    ``aws:runShellScript`` step's lines instead."""
    action = step.get("action")
    if action == POWERSHELL_STEP:
        step = next((s for s in steps if s.get("action") == SHELL_STEP), {})
        if not step:
            return (
                "local stack: a simulated Windows host runs the document's aws:runShellScript"
                " step in place of its aws:runPowerShellScript step, and this document has none"
            )
    elif action != SHELL_STEP:
        return f"local stack: the {action} action is not emulated"
    commands = step.get("inputs", {}).get("runCommand", [])
    return [commands] if isinstance(commands, str) else [str(c) for c in commands]


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


@dataclass
class StepResult:
    name: str
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    started: str = ""
    ended: str = ""

    def finish(self, status: str, details: str, code: int, out: str = "", err: str = "") -> None:
        self.status, self.details, self.code = status, details, code
        self.stdout, self.stderr = out[:OUTPUT_LIMIT], err[:OUTPUT_LIMIT]
        self.ended = _now_iso()


@dataclass
class Invocation:
    """One command on one node, step by step, kept in step with moto's invocation record."""

    command: Any
    instance_id: str
    document_version: str
    steps: list[StepResult]
    record: dict[str, Any]
    status: str = "Pending"
    details: str = "Pending"

    def sync(self) -> None:
        """Moto's records (ListCommands, the command's status) follow the real outcome."""
        selected = [s for s in self.steps if s.details != "Skipped"] or self.steps
        failing = next((s for s in selected if s.status not in ("Success", "Pending")), None)
        shown = failing or (selected[-1] if selected else None)
        self.record.update(
            Status=self.status,
            StatusDetails=self.details,
            ResponseCode=shown.code if shown else -1,
            PluginName=shown.name if shown else "",
            StandardOutputContent="".join(s.stdout for s in selected)[:OUTPUT_LIMIT],
            StandardErrorContent="".join(s.stderr for s in selected)[:OUTPUT_LIMIT],
        )
        with _run_commands_lock:
            runs = [r for k, r in RUN_COMMANDS.items() if k[0] == self.command.command_id]
        done = [r for r in runs if r.status not in ("Pending", "InProgress")]
        failed = [r for r in done if r.status != "Success"]
        self.command.completed_count = len(done)
        self.command.error_count = len(failed)
        if len(done) < len(runs):
            status = "InProgress" if any(r.status == "InProgress" for r in runs) else "Pending"
        else:
            status = failed[0].status if failed else "Success"
        self.command.status = self.command.status_details = status


#: (command id, instance id) -> its invocation, for every command sent to a managed node.
RUN_COMMANDS: dict[tuple[str, str], Invocation] = {}
_run_commands_lock = threading.Lock()


def _run_script(
    lines: list[str], node: ManagedNode, where: Path, timeout: float
) -> tuple[int | None, str, str]:
    """Run the lines as one bash script in the node's environment: (exit code or None when it
    timed out, stdout, stderr); the script and its output stay in ``where``, as SSM Agent keeps
    them in its orchestration directory."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / "_script.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=node.cwd,
        env=dict(node.environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        out, err = process.communicate()
        code = None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    (where / "stdout").write_text(stdout, encoding="utf-8")
    (where / "stderr").write_text(stderr, encoding="utf-8")
    return code, stdout, stderr


def _deliver_invocation(
    invocation: Invocation,
    steps: list[dict[str, Any]],
    parameters: dict[str, list[str]],
    deadline: float,
) -> None:
    """Wait for the node's SSM Agent (until the delivery timeout), then run the steps in order."""
    while True:
        node = managed_node(invocation.instance_id)
        if node is None or node.online or time.monotonic() >= deadline:
            break
        time.sleep(NODE_POLL_SECONDS)
    if node is None or not node.online:
        status, details = (
            ("Failed", "Undeliverable") if node is None else ("TimedOut", "DeliveryTimedOut")
        )
        for result in invocation.steps:
            result.finish(status, details, -1)
        invocation.status, invocation.details = status, details
        invocation.sync()
        return
    invocation.status = invocation.details = "InProgress"
    invocation.record["ExecutionStartDateTime"] = _now_iso()
    invocation.sync()
    where = Path(node.cwd) / "ssm" / invocation.command.command_id
    for step, result in zip(steps, invocation.steps, strict=True):
        if not step_applies(step, node.platform):
            result.finish("Success", "Skipped", -1)
            continue
        result.started, result.status, result.details = _now_iso(), "InProgress", "InProgress"
        commands = step_commands(step, steps)
        if isinstance(commands, str):
            result.finish("Failed", "Failed", 1, err=commands + "\n")
            continue
        timeout = float(step.get("inputs", {}).get("timeoutSeconds", DEFAULT_EXECUTION_TIMEOUT))
        code, out, err = _run_script(
            substitute(commands, parameters), node, where / result.name, timeout
        )
        if code is None:
            result.finish("TimedOut", "ExecutionTimedOut", -1, out, err)
        elif code == 0:
            result.finish("Success", "Success", 0, out, err)
        else:
            result.finish("Failed", "Failed", code, out, err)
    ran = [r for r in invocation.steps if r.details != "Skipped"]
    failing = next((r for r in ran if r.status != "Success"), None)
    invocation.status = failing.status if failing else "Success"
    invocation.details = failing.details if failing else "Success"
    invocation.record["ExecutionEndDateTime"] = _now_iso()
    invocation.sync()


def run_command_patches() -> dict[str, Callable[..., Any]]:
    """SSM_RUN_COMMAND: SendCommand checks the document, its parameters and the nodes as SSM does,
    then runs the document's steps on each simulated host; GetCommandInvocation reports them."""
    import inspect

    from moto.ec2.models import ec2_backends
    from moto.ssm.models import MAX_TIMEOUT_SECONDS, SimpleSystemManagerBackend

    original_send = SimpleSystemManagerBackend.send_command
    original_get = SimpleSystemManagerBackend.get_command_invocation
    if getattr(original_send, "_dcvfleet", False):
        return {}
    signature = inspect.signature(original_send)

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs).arguments
        document = self._get_documents(call.get("document_name")).get_default_version()
        content: dict[str, Any] = document.content_json or {}
        parameters = resolve_parameters(content, call.get("parameters") or {})
        ec2 = ec2_backends[self.account_id][self.region_name]
        for instance_id in call.get("instance_ids") or []:
            instance = ec2.get_instance_by_id(instance_id)
            alive = instance is not None and instance.state not in ("shutting-down", "terminated")
            if not alive or managed_node(instance_id) is None:
                raise _ssm_error(
                    "InvalidInstanceId",
                    f"Instances [[{instance_id}]] not in a valid state for account"
                    f" {self.account_id}",
                )
        command = original_send(self, *args, **kwargs)
        steps = content.get("mainSteps") or [
            {"name": "unsupported", "action": f"schemaVersion {content.get('schemaVersion')}"}
        ]
        timeout = call.get("timeout_seconds") or MAX_TIMEOUT_SECONDS
        deadline = time.monotonic() + float(timeout)
        for record in command.invocations:
            invocation = Invocation(
                command=command,
                instance_id=record["InstanceId"],
                document_version=document.document_version,
                steps=[StepResult(str(step.get("name", ""))) for step in steps],
                record=record,
            )
            with _run_commands_lock:
                RUN_COMMANDS[(command.command_id, invocation.instance_id)] = invocation
        for record in command.invocations:
            invocation = RUN_COMMANDS[(command.command_id, record["InstanceId"])]
            invocation.sync()
            threading.Thread(
                target=_deliver_invocation,
                args=(invocation, steps, parameters, deadline),
                name=f"run-command-{invocation.instance_id}",
                daemon=True,
            ).start()
        return command

    def get_command_invocation(
        self: Any, command_id: str, instance_id: str, plugin_name: str | None
    ) -> dict[str, Any]:
        invocation = RUN_COMMANDS.get((command_id, instance_id))
        if invocation is None:
            return dict(original_get(self, command_id, instance_id, plugin_name))
        names = [s.name for s in invocation.steps]
        if plugin_name is None and len(names) > 1:
            raise _ssm_error(
                "InvalidPluginName",
                f"The document has {len(names)} steps ({', '.join(names)}): name one in"
                " PluginName.",
            )
        if plugin_name is not None and plugin_name not in names:
            raise _ssm_error("InvalidPluginName", f"The document has no step {plugin_name}.")
        step = invocation.steps[names.index(plugin_name) if plugin_name else 0]
        record = invocation.record
        return {
            "CommandId": command_id,
            "InstanceId": instance_id,
            "Comment": record.get("Comment", ""),
            "DocumentName": record.get("DocumentName"),
            "DocumentVersion": invocation.document_version,
            "PluginName": step.name,
            "ResponseCode": step.code,
            "ExecutionStartDateTime": step.started,
            "ExecutionElapsedTime": "",
            "ExecutionEndDateTime": step.ended,
            "Status": step.status,
            "StatusDetails": step.details,
            "StandardOutputContent": step.stdout,
            "StandardOutputUrl": "",
            "StandardErrorContent": step.stderr,
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {
                "CloudWatchLogGroupName": "",
                "CloudWatchOutputEnabled": False,
            },
        }

    send_command._dcvfleet = True  # type: ignore[attr-defined]
    get_command_invocation._dcvfleet = True  # type: ignore[attr-defined]
    return {"send_command": send_command, "get_command_invocation": get_command_invocation}


def patch_run_command() -> None:
    from moto.ssm.models import SimpleSystemManagerBackend

    for name, replacement in run_command_patches().items():
        setattr(SimpleSystemManagerBackend, name, replacement)


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
    patch_run_command()
    patch_ssm_document_from_cloudformation()
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


def document_from_cloudformation() -> classmethod[Any, ..., Any]:
    """SSM_DOCUMENT_FROM_CLOUDFORMATION: create an ``AWS::SSM::Document`` as CloudFormation
    does: ``DocumentFormat`` defaults to JSON, a ``Content`` object (how a template writes it)
    is stored as JSON (or YAML) text, and a document without ``Name`` is named
    ``<stack>-<LogicalId>-<suffix>``, which is its ``Ref``."""
    from moto.ssm.models import ssm_backends

    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        document_format = properties.get("DocumentFormat") or "JSON"
        content = properties.get("Content")
        if not isinstance(content, str):
            if document_format == "JSON":
                content = json.dumps(content)
            else:
                import yaml

                content = yaml.safe_dump(content, sort_keys=False)
        documents = ssm_backends[account_id][region_name].create_document(
            content=content,
            requires=properties.get("Requires"),
            attachments=properties.get("Attachments"),
            name=properties.get("Name") or resource_name,
            version_name=properties.get("VersionName"),
            document_type=properties.get("DocumentType") or "Command",
            document_format=document_format,
            target_type=properties.get("TargetType"),
            tags=properties.get("Tags"),
        )
        return documents.get_default_version()

    create._dcvfleet = True  # type: ignore[attr-defined]
    return classmethod(create)


def patch_ssm_document_from_cloudformation() -> None:
    from moto.ssm.models import Document

    if not getattr(Document.create_from_cloudformation_json, "_dcvfleet", False):
        setattr(Document, "create_from_cloudformation_json", document_from_cloudformation())  # noqa: B010


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
            and isinstance(join[0], str)
            and isinstance(join[1], dict)
            and join[1].get("Ref") in lists
        ):
            return join[0].join(x.strip() for x in lists[join[1]["Ref"]].split(","))
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
