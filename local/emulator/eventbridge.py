"""EventBridge: delivery to Lambda and Step Functions targets, schedule-only rules, a bus's ``Ref``.

Scheduled rules are fired by ``local.emulator.scheduler``, through ``deliver_rule_event``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from local.emulator.gap import Context, Gap, Patch

log = logging.getLogger("local.emulator")


#: Each target's own delivery queue (see _queue_of).
_queues: dict[str, ThreadPoolExecutor] = {}
_queues_lock = threading.Lock()
#: How many deliveries to one target run at once (the runtime runs one invocation of a function
#: at a time; a state machine starts several executions at once).
DELIVERIES_PER_TARGET = 4
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


def _queue_of(target_arn: str) -> ThreadPoolExecutor:
    """The delivery queue of one target. Lambda queues each function's asynchronous invocations
    apart (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html), so a burst of
    events for one function (every EC2 state change of a long-lived stack's instances) never
    holds up another function's (the Host Ready a resume waits for): one queue shared by every
    target did, once its workers were all waiting on the busy function."""
    with _queues_lock:
        queue = _queues.get(target_arn)
        if queue is None:
            queue = _queues[target_arn] = ThreadPoolExecutor(
                max_workers=DELIVERIES_PER_TARGET, thread_name_prefix="eventbridge"
            )
        return queue


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
        _queue_of(target["Arn"]).submit(
            _deliver, target["Arn"], target_input(target, event), endpoint_url
        )
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


def event_targets_patch(endpoint_url: str | None) -> Callable[..., None]:
    """EVENTS_TARGETS: deliver to Lambda and Step Functions targets, asynchronously, honouring
    a target's ``Input``, ``InputPath`` and ``InputTransformer``.
    EVENTS_SCHEDULE_PATTERN: a rule with only a schedule matches no event put on its bus.
    The replacement of moto's ``Rule.send_to_targets``."""
    from moto.events import models

    original = models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if schedule_only(self) or not self.event_pattern.matches_event(original_event):
            return
        deliver_rule_event(self, original_event, endpoint_url, transform_input)

    send_to_targets._dcvfleet_original = original  # type: ignore[attr-defined]
    return send_to_targets


def install_targets(context: Context) -> list[Patch]:
    from moto.events import models

    return [Patch(models.Rule, "send_to_targets", event_targets_patch(context.endpoint_url))]


def install_bus_ref(context: Context) -> list[Patch]:
    """A bus's physical id (and so its ``Ref``) is its name, as in AWS."""
    from moto.events.models import EventBus

    return [Patch(EventBus, "physical_resource_id", property(lambda self: self.name))]


EVENTS_TARGETS = Gap(
    "EVENTS_TARGETS",
    moto_does="EventBridge delivers only to SQS, logs and bus targets and raises on Lambda and"
    " Step Functions targets",
    we_do="those two are delivered here, asynchronously, as EventBridge does, with what the"
    " target asks for: its Input (verbatim), InputPath or InputTransformer, else the event;"
    " each target from a queue of its own, as Lambda queues each function's invocations",
    install=install_targets,
)
EVENTS_SCHEDULE_PATTERN = Gap(
    "EVENTS_SCHEDULE_PATTERN",
    moto_does="a rule with a ScheduleExpression and no EventPattern matches every event put on"
    " its bus (every EC2 state change on the default bus would start a scheduled workflow)",
    we_do="such a rule matches no event, as on AWS: it is only fired by its schedule (in"
    " EVENTS_TARGETS's send_to_targets, installed with it)",
)
EVENTBUS_REF = Gap(
    "EVENTBUS_REF",
    moto_does="EventBus has no CloudFormation physical id, so Ref to a bus yields moto's object"
    " instead of the bus name and a rule on a custom bus fails to create",
    we_do="a bus's physical id (its Ref) is its name",
    install=install_bus_ref,
)
