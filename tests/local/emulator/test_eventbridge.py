"""EventBridge's gaps: EVENTS_TARGETS, EVENTBUS_REF, EVENTS_SCHEDULE_PATTERN, EVENTS_SCHEDULES.

Their workarounds replace moto's behaviour for the whole process; each test installs them through
the registry, as the local stack does, and they are removed when it ends."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from local.emulator.eventbridge import event_targets_patch
from local.emulator.scheduler import Scheduler, rate_minutes
from tests.support.emulator import (
    BUS_OUTPUT_TEMPLATE,
    BUS_RULE_TEMPLATE,
    PASS_MACHINE,
    ROLE_ARN,
    Installer,
    aws_client,
    create_handler_function,
    create_probe_function,
    create_stack,
    drain,
    probe_queue,
    server_port,
    stack_outputs,
    stack_resources,
    wait_execution,
    wait_for,
)


# ==============================================================================================
# EVENTS_TARGETS
@pytest.mark.parametrize("service", ["lambda", "states"])
def test_gap_events_targets(service: str) -> None:
    """GAP EVENTS_TARGETS: EventBridge raises on a rule whose target is a Lambda function or a
    state machine (it delivers only to SQS, logs and buses). When this fails, moto has changed:
    drop the workaround in local/emulator/eventbridge.py (``EVENTS_TARGETS``)."""
    with mock_aws(config={"lambda": {"use_docker": False}}):
        if service == "lambda":
            target = create_probe_function("probe")
        else:
            target = aws_client("stepfunctions").create_state_machine(
                name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
            )["stateMachineArn"]
        events = aws_client("events")
        events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["dcvfleet.probe"]}))
        events.put_targets(Rule="probe", Targets=[{"Id": "probe", "Arn": target}])
        with pytest.raises(NotImplementedError, match="Expr not defined"):
            events.put_events(
                Entries=[{"Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": "{}"}]
            )


def test_gap_eventbus_ref() -> None:
    """GAP EVENTBUS_REF: an ``AWS::Events::EventBus`` has no physical id, so ``Ref`` to it is
    moto's Python object, not the bus name, and a rule on it fails to create. When this fails,
    moto has changed: drop ``EVENTBUS_REF`` in local/emulator/eventbridge.py."""
    with mock_aws():
        stack = create_stack("probe", BUS_OUTPUT_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert stack_outputs(stack)["BusName"].startswith("<moto.events.models.EventBus object at ")
        (bus,) = stack_resources("probe")
        assert bus["LogicalResourceId"] == "Bus"
        assert "PhysicalResourceId" not in bus

        with pytest.raises(AttributeError, match="'EventBus' object has no attribute 'split'"):
            create_stack("rule", BUS_RULE_TEMPLATE)


def _put_ec2_event() -> None:
    detail = json.dumps({"instance-id": "i-0123456789abcdef0", "state": "stopped"})
    aws_client("events").put_events(
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
    ``schedule_only`` from ``event_targets_patch`` in local/emulator/eventbridge.py."""
    queue_url, queue_arn = probe_queue("scheduled")
    events = aws_client("events")
    events.put_rule(Name="sweep", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="sweep", Targets=[{"Id": "q", "Arn": queue_arn}])
    _put_ec2_event()
    assert [e["source"] for e in drain(queue_url)] == ["aws.ec2"]


@mock_aws
def test_workaround_events_schedule_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``event_targets_patch``, the schedule-only rule gets no put event; a rule with a
    pattern on the same bus still does."""
    from moto.events.models import Rule

    monkeypatch.setattr(Rule, "send_to_targets", event_targets_patch(None))
    scheduled_url, scheduled_arn = probe_queue("scheduled")
    matched_url, matched_arn = probe_queue("matched")
    events = aws_client("events")
    events.put_rule(Name="sweep", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="sweep", Targets=[{"Id": "q", "Arn": scheduled_arn}])
    events.put_rule(Name="ec2", EventPattern=json.dumps({"source": ["aws.ec2"]}))
    events.put_targets(Rule="ec2", Targets=[{"Id": "q", "Arn": matched_arn}])
    _put_ec2_event()
    assert drain(scheduled_url) == []
    assert [e["source"] for e in drain(matched_url)] == ["aws.ec2"]


# -- EVENTS_SCHEDULES --------------------------------------------------------------------------
def test_gap_events_schedules(moto_server: str) -> None:
    """GAP EVENTS_SCHEDULES: moto stores a rule's ScheduleExpression (to validate and describe
    it) and never fires the rule: nothing in moto's events package reads the expression
    otherwise or runs a timer, and a ``rate(1 minute)`` rule's target gets nothing. When this
    fails, moto has changed: check whether it fires schedules now, and drop ``Scheduler`` from
    local/emulator/eventbridge.py if it does."""
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
    sqs, events = aws_client("sqs", moto_server), aws_client("events", moto_server)
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
    queue_url, queue_arn = probe_queue("scheduled")
    sfn, events = aws_client("stepfunctions"), aws_client("events")
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
    scheduler = Scheduler(None, minute_seconds=0.1)
    with caplog.at_level("WARNING", logger="local.emulator"):
        started = time.monotonic()
        scheduler.start()
        while scheduler.fired.get(rule_arn, 0) < 3 and time.monotonic() - started < 10:
            time.sleep(0.02)
        scheduler.stop()
        elapsed = time.monotonic() - started
    fired = drain(queue_url)
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
    assert [e["resources"] for e in drain(queue_url)] == [[rule_arn.replace("sweep", "nightly")]]
    with pytest.raises(ValueError, match="DISABLED"):
        scheduler.run_now("off")
    with pytest.raises(KeyError):
        scheduler.run_now("nope")
    assert sorted(scheduler.run_now()) == ["nightly", "sweep"]


def test_rate_expressions_the_scheduler_runs() -> None:
    assert rate_minutes("rate(1 minute)") == 1
    assert rate_minutes("rate(5 minutes)") == 5
    assert rate_minutes("rate(2 hours)") == 120
    assert rate_minutes("rate(1 day)") == 1440
    for unsupported in ("cron(0 3 * * ? *)", "rate(0 minutes)", "rate(five minutes)", ""):
        assert rate_minutes(unsupported) is None


def test_workaround_events_targets(moto_server: str, install: Installer, handlers: Path) -> None:
    """EVENTS_TARGETS's install delivers to Lambda and Step Functions targets (asynchronously)
    and leaves the targets moto supports (here SQS) to moto."""
    url = moto_server
    install(
        "LAMBDA_RUNTIME",
        "EVENTS_TARGETS",
        "SFN_EXECUTION",
        endpoint_url=url,
        port=server_port(url),
    )
    out = handlers / "delivered.jsonl"
    function_arn = create_handler_function(
        "probe",
        "gap_probe_target.handler",
        url,
        Environment={"Variables": {"PROBE_OUT": str(out)}},
    )
    sfn, sqs = aws_client("stepfunctions", url), aws_client("sqs", url)
    events = aws_client("events", url)
    machine_arn = sfn.create_state_machine(
        name="probe", definition=json.dumps(PASS_MACHINE), roleArn=ROLE_ARN
    )["stateMachineArn"]
    queue_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["dcvfleet.probe"]}))
    events.put_targets(
        Rule="probe",
        Targets=[
            {"Id": "fn", "Arn": function_arn},
            {"Id": "sm", "Arn": machine_arn},
            {"Id": "q", "Arn": queue_arn},
        ],
    )
    events.put_events(
        Entries=[{"Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": '{"n": 7}'}]
    )

    def listed() -> list[dict[str, Any]]:
        executions: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=machine_arn)[
            "executions"
        ]
        return executions

    wait_for(out.exists)
    wait_for(listed)
    for execution in listed():
        wait_execution(sfn, execution["executionArn"])  # done before the gaps are removed
    messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    delivered = {
        "lambda": [json.loads(line) for line in out.read_text().splitlines()],
        "states": [
            json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
            for e in listed()
        ],
        "sqs": [json.loads(m["Body"]) for m in messages],
    }
    for received in delivered.values():
        assert len(received) == 1
        assert received[0]["source"] == "dcvfleet.probe"
        assert received[0]["detail"] == {"n": 7}
    # Lambda and Step Functions get the event's time in ISO 8601, as on AWS.
    assert delivered["lambda"][0]["time"].endswith("Z")
    assert delivered["states"][0]["time"].endswith("Z")


def test_workaround_events_targets_a_busy_target_holds_up_no_other(
    moto_server: str, install: Installer, handlers: Path
) -> None:
    """EVENTS_TARGETS delivers to each target from a queue of its own, as Lambda queues each
    function's asynchronous invocations apart: events for a busy function wait for it, and an
    event for another function is delivered meanwhile."""
    url = moto_server
    install("LAMBDA_RUNTIME", "EVENTS_TARGETS", endpoint_url=url, port=server_port(url))
    release, held_out, probe_out = (handlers / n for n in ("release", "held.jsonl", "probe.jsonl"))
    held_arn = create_handler_function(
        "held",
        "gap_probe_held.handler",
        url,
        Environment={"Variables": {"PROBE_OUT": str(held_out), "PROBE_RELEASE": str(release)}},
    )
    probe_arn = aws_client("lambda", url).create_function(
        FunctionName="probe",
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="gap_probe_target.handler",
        Code={"ZipFile": b"in-process: the handler is imported"},
        Environment={"Variables": {"PROBE_OUT": str(probe_out)}},
    )["FunctionArn"]
    events = aws_client("events", url)
    for name, arn in (("busy", held_arn), ("probe", probe_arn)):
        events.put_rule(Name=name, EventPattern=json.dumps({"source": [f"dcvfleet.{name}"]}))
        events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": arn}])
    # Given a burst of 30 events for a function that is busy (more than any pool of workers
    # waiting on it would hold)
    burst = [{"Source": "dcvfleet.busy", "DetailType": "Busy", "Detail": "{}"}] * 10
    for _ in range(3):
        events.put_events(Entries=burst)
    try:
        # When an event for another function is put / Then it is delivered while the first
        # function is still busy
        events.put_events(
            Entries=[{"Source": "dcvfleet.probe", "DetailType": "Probe", "Detail": "{}"}]
        )
        assert wait_for(probe_out.exists, timeout=5), "held up behind another target's burst"
    finally:
        release.touch()
        # and the burst is delivered in full once the function is free (before the gaps go)
        assert wait_for(
            lambda: held_out.exists() and len(held_out.read_text().splitlines()) == 30,
            timeout=30,
        )


def test_workaround_eventbus_ref(install: Installer) -> None:
    """EVENTBUS_REF's install makes a bus's physical id (so its ``Ref``) its name: the output
    is the name and a rule on the bus is created."""
    install("EVENTBUS_REF")
    with mock_aws():
        cfn = aws_client("cloudformation")
        cfn.create_stack(StackName="probe", TemplateBody=json.dumps(BUS_OUTPUT_TEMPLATE))
        cfn.create_stack(StackName="rule", TemplateBody=json.dumps(BUS_RULE_TEMPLATE))
        stack = cfn.describe_stacks(StackName="probe")["Stacks"][0]
        resources = cfn.describe_stack_resources(StackName="probe")["StackResources"]
        assert stack_outputs(stack) == {"BusName": "fleet-bus"}
        assert [r.get("PhysicalResourceId") for r in resources] == ["fleet-bus"]
        rule_stack = cfn.describe_stacks(StackName="rule")["Stacks"][0]
        assert rule_stack["StackStatus"] == "CREATE_COMPLETE"
        rules = aws_client("events").list_rules(EventBusName="rule-bus")["Rules"]
        assert [r["Name"] for r in rules] == ["probe"]
