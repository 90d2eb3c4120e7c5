"""The fault matrix: each AWS or agent fault injected into the local stack (the real ASL,
handlers and agents), and the outcome it must have, with nothing leaked: no instance running
or kept without a live session, no orphan secret, no workflow left running, every record true
(``assert_records_true``). Faults come from ``local.faults`` (``POST /faults`` on the control
server); hand-made agent events go through ``Stack.put_agent_event`` only.

Rows covered elsewhere (not repeated here):

* no capacity for one type, which falls back:
  ``test_provision_workflow::test_capacity_falls_back_to_the_next_instance_type``;
* no capacity for any type (``"*"``), the user's limit freed:
  ``test_provision_workflow::test_no_capacity_anywhere_fails_with_a_clear_reason_and_nothing_left``;
* an agent that never reports:
  ``test_provision_workflow::test_host_never_ready_times_out_and_compensates``;
* a step's function that fails:
  ``test_provision_workflow::test_a_failure_in_any_step_compensates_and_leaves_nothing``;
* an agent that dies mid-session, nobody connected, stopped by the sweep:
  ``e2e/test_desktop_lifecycle::test_a_silent_agent_is_caught_by_the_sweep``;
* an event signed for another session: ``test_forged_events``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from dcvfleet import events
from dcvfleet.errors import GpuQuotaError, InsufficientCapacityError, LaunchError
from local.client import Client
from tests.support.stack import Stack, module_stack
from tests.support.workflows import COMPENSATION, HAPPY_PATH

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"
#: botocore's standard retry mode as functions/dcvfleet/aws.py configures it: max_attempts 5
#: retries after the first attempt.
SDK_MAX_ATTEMPTS = 6
#: The provisioning ASL's Retry of Lambda.* errors: MaxAttempts 3 after the first attempt.
ASL_LAMBDA_ATTEMPTS = 4
ACTIVE = ("PROVISIONING", "READY", "STOPPING", "TERMINATING")
#: What the EC2 state-change consumer logs for every notification it handled, and where its
#: records name the instance (its correlation id, or the key it appends).
STATE_CHANGE = "instance state change"
BY_INSTANCE = ("correlation_id", "instance_id")
_deserialize = TypeDeserializer().deserialize


# -- the system's records, read as an operator would -------------------------------------------
def _item(stack: Stack, key: str) -> dict[str, Any]:
    """A record of the sessions table as DynamoDB holds it ({} when there is none)."""
    resp = stack.client("dynamodb").get_item(
        TableName=stack.info["resources"]["SessionsTable"],
        Key={"pk": {"S": key}},
        ConsistentRead=True,
    )
    return {k: _deserialize(v) for k, v in resp.get("Item", {}).items()}


def _executions(stack: Stack, machine: str, session_id: str) -> list[dict[str, Any]]:
    """The executions of a state machine (logical id) about one session, oldest first."""
    sfn = stack.client("stepfunctions")
    arn = stack.info["resources"][machine]
    found = [
        e
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
        for e in page["executions"]
        if e["name"].startswith(session_id)
    ]
    return sorted(found, key=lambda e: e["startDate"])


def _states(stack: Stack, execution_arn: str) -> list[str]:
    history = stack.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]


def _task_errors(stack: Stack, session_id: str) -> list[str]:
    """The error of every failed task attempt in a session's provisioning, in order."""
    return [
        e["taskFailedEventDetails"]["error"]
        for e in stack.history(session_id)
        if e["type"] == "TaskFailed"
    ]


def _instances(stack: Stack, session_id: str) -> list[dict[str, Any]]:
    """Every instance tagged with the session, whatever its state."""
    resp = stack.client("ec2").describe_instances(
        Filters=[{"Name": "tag:dcvfleet:session-id", "Values": [session_id]}]
    )
    return [i for r in resp["Reservations"] for i in r["Instances"]]


def _instance_state(stack: Stack, instance_id: str) -> str:
    resp = stack.client("ec2").describe_instances(InstanceIds=[instance_id])
    state: str = resp["Reservations"][0]["Instances"][0]["State"]["Name"]
    return state


def _settled(stack: Stack, session_id: str, timeout: float = 30) -> None:
    """Wait until no provisioning or idle workflow about the session is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [
            e
            for machine in ("ProvisionStateMachine", "IdleStateMachine")
            for e in _executions(stack, machine, session_id)
            if e["status"] == "RUNNING"
        ]
        if not running:
            return
        time.sleep(0.2)
    raise AssertionError(f"a workflow about {session_id} is still running: {running}")


def assert_records_true(stack: Stack, session_id: str) -> dict[str, Any]:
    """Once its workflows settled, the session's record agrees with its instance, its secret
    and its owner's active-session count, and nothing it made outlives it. Returns the record."""
    _settled(stack, session_id)
    record = _item(stack, session_id)
    status = record["status"]
    assert status not in ("PROVISIONING", "STOPPING", "TERMINATING"), record
    assert "taskToken" not in record, f"a task token outlived provisioning: {record}"
    assert "idleCheck" not in record, f"an idle decision slot was never given back: {record}"
    live = stack.live_instances(session_id)
    if status == "READY":
        assert live == [record["instanceId"]], (live, record)
        assert _instance_state(stack, record["instanceId"]) == "running"
        assert record.get("connectionUrl"), record
        assert stack.secret_exists(session_id), "a READY desktop lost its credentials"
    elif status == "STOPPED":
        assert live == [record["instanceId"]], (live, record)
        assert _instance_state(stack, record["instanceId"]) == "stopped"
        assert "connectionUrl" not in record, record
        assert stack.secret_exists(session_id), "a STOPPED desktop lost its credentials"
    else:  # FAILED, TERMINATED: nothing of it is left, running or billed
        assert status in ("FAILED", "TERMINATED"), record
        stack.assert_nothing_left(session_id)
        assert "connectionUrl" not in record, record
    owner = record["owner"]
    mine = stack.client("dynamodb").query(
        TableName=stack.info["resources"]["SessionsTable"],
        IndexName="byOwner",
        KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": owner}},
    )["Items"]
    active = sum(1 for i in mine if i["status"]["S"] in ACTIVE)
    counter = _item(stack, f"user#{owner}").get("active", 0)
    assert counter == active, f"the owner's active count says {counter}, {active} are active"
    return record


def _clear_faults(stack: Stack) -> dict[str, Any]:
    """Switch every fault off; what the faults did (each API error's ``answered``)."""
    resp = stack.control("POST", "/faults", {})
    assert resp.status_code == 200, resp.text
    replaced: dict[str, Any] = resp.json()["replaced"]
    return replaced


def _now_ms() -> int:
    return int(time.time() * 1000)  # the stack runs on this machine, on its clock


def _handled(
    stack: Stack,
    function: str,
    about: str,
    *,
    since: int,
    message: str,
    count: int = 1,
    fields: tuple[str, ...] = ("correlation_id",),
    **where: Any,
) -> list[dict[str, Any]]:
    """The log records a function (logical id) wrote with ``message`` since ``since`` (ms)
    where one of ``fields`` is ``about`` (and the fields in ``where`` are as given); waits for
    ``count`` of them: the events were handled.

    A record names its subject in the field its code writes: the correlation id the handler
    sets, or an explicit ``session_id``. (In the emulator every function runs in one process and
    Powertools' formatter is shared, so a key another function appended can show in a record
    too: only the field the record's own code writes is trusted.)"""
    logs = stack.client("logs")
    group = f"/aws/lambda/{stack.info['resources'][function]}"
    deadline = time.monotonic() + 30
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            found = logs.filter_log_events(
                logGroupName=group, startTime=since, filterPattern=f'"{about}"'
            )["events"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            found = []
        records = []
        for event in found:
            try:
                record = json.loads(event["message"])
            except json.JSONDecodeError:
                continue
            wanted = {"message": message, **where}
            if all(record.get(k) == v for k, v in wanted.items()) and any(
                record.get(f) == about for f in fields
            ):
                records.append(record)
        if len(records) >= count:
            return records
        time.sleep(0.2)
    raise AssertionError(f"{function} logged {len(records)} {message!r} about {about}, not {count}")


def _sample_detail(name: str, **fields: Any) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads((SAMPLES / name).read_text())["detail"]
    detail.update(sentAt=_fresh_sent_at(), **fields)
    return detail


def _fresh_sent_at() -> str:
    """A sentAt the consumer takes as fresh, and newer than any the desktop's own agent stamped
    before it (a second ahead: the consumer accepts an agent event only if it is newer than the
    last it accepted from the session)."""
    millis = _now_ms() + 1000
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"
    )


def _agent_event(kind: str, record: dict[str, Any], instance_id: str) -> tuple[str, dict[str, Any]]:
    """A schema-valid agent event about a session's host, as its agent sends it."""
    ids = {
        "sessionId": record["pk"],
        "instanceId": instance_id,
        "dcvSessionId": record.get("dcvSessionId", "desktop"),
    }
    if kind == "host-ready":
        return "Host Ready", _sample_detail("agent-host-ready.json", **ids)
    if kind == "heartbeat":
        return "Host Heartbeat", _sample_detail("agent-host-heartbeat.json", **ids)
    return "Session Idle", _sample_detail("agent-session-idle.json", **ids)


def _refused(stack: Stack, session_id: str, since: int, *why: str) -> None:
    """The agent-event consumer refused one claim about the session, for one of ``why``."""
    (record,) = _handled(
        stack, "AgentEventsFunction", session_id, since=since, message="agent claim rejected"
    )
    reason = str(record["reason"])
    assert not reason.startswith("signature:"), ("refused for its signature, not its claim", reason)
    assert any(text in reason for text in why), reason


def _state_changes_handled(
    stack: Stack, instance_id: str, *, since: int, count: int = 1
) -> list[dict[str, Any]]:
    """The ``count`` EC2 state changes about the instance the consumer handled since ``since``."""
    return _handled(
        stack,
        "InstanceStateFunction",
        instance_id,
        since=since,
        message=STATE_CHANGE,
        count=count,
        fields=BY_INSTANCE,
    )


def _put_ec2_state(stack: Stack, instance_id: str, state: str) -> None:
    """An ``EC2 Instance State-change Notification`` on the default bus, as EC2 puts it."""
    arn = f"arn:aws:ec2:{stack.region}:123456789012:instance/{instance_id}"
    resp = stack.client("events").put_events(
        Entries=[
            {
                "Source": "aws.ec2",
                "DetailType": "EC2 Instance State-change Notification",
                "Detail": json.dumps({"instance-id": instance_id, "state": state}),
                "Resources": [arn],
                "EventBusName": "default",
            }
        ]
    )
    assert resp["FailedEntryCount"] == 0, resp


def _snapshot(stack: Stack, session_id: str) -> dict[str, Any]:
    """What a late or repeated event must not change: the session's record (every attribute and
    its version; a READY desktop's own live agent may refresh its heartbeat, nothing else), the
    workflows ever started about it, and the state of every instance tagged with it."""
    record = _item(stack, session_id)
    if record.get("status") == "READY":
        record.pop("lastHeartbeatAt", None)
        record.pop("heartbeat", None)
    runs = sorted(
        e["name"]
        for machine in ("ProvisionStateMachine", "IdleStateMachine")
        for e in _executions(stack, machine, session_id)
    )
    instances = {i["InstanceId"]: i["State"]["Name"] for i in _instances(stack, session_id)}
    return {"record": record, "workflows": runs, "instances": instances}


# -- 1. throttling -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "code", "scope"),
    [
        ("ec2:RunInstances", "RequestLimitExceeded", None),
        ("dynamodb:TransactWriteItems", "ThrottlingException", "username"),
        ("stepfunctions:StartExecution", "ThrottlingException", "ProvisionStateMachine"),
    ],
    ids=["ec2-RequestLimitExceeded", "dynamodb-ThrottlingException", "sfn-ThrottlingException"],
)
def test_throttling_is_retried_with_back_off_by_the_sdk_and_the_desktop_is_ready(
    fleet: Stack, operation: str, code: str, scope: str | None
) -> None:
    # Given AWS throttles the operation twice (EC2 launching the host, DynamoDB writing the new
    # session and its owner's count, Step Functions starting the provisioning)
    username = f"throttled{int(time.time() * 1000)}"
    spec: dict[str, Any] = {"code": code, "times": 2}
    if scope == "username":
        spec["matching"] = username
    elif scope is not None:
        spec["resource"] = scope
    fleet.faults(apiErrors={operation: spec})
    # When a desktop is requested
    user, session_id = fleet.request_desktop(fleet.new_user(username))
    # Then it is READY: the function's botocore client retried both throttled calls itself
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "READY", session
    assert _clear_faults(fleet)["apiErrors"][operation]["answered"] == 2
    # And the workflow never saw an error: no task failed, no retry, no compensation
    assert fleet.wait_execution(session_id)["status"] == "SUCCEEDED"
    assert fleet.states_entered(session_id) == HAPPY_PATH
    assert _task_errors(fleet, session_id) == []
    assert_records_true(fleet, session_id)


def test_throttled_lambda_invoke_is_retried_by_the_workflow(fleet: Stack) -> None:
    # Given Lambda answers TooManyRequestsException twice to Step Functions' invocation of
    # the LaunchInstance step (Step Functions' own client does not retry)
    fleet.faults(
        apiErrors={
            "lambda:Invoke": {
                "code": "TooManyRequestsException",
                "times": 2,
                "resource": "LaunchInstanceFunction",
            }
        }
    )
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then the ASL's Retry took both as Lambda.TooManyRequestsException, and the third attempt
    # launched the host: READY, no compensation
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "READY", session
    assert _clear_faults(fleet)["apiErrors"]["lambda:Invoke"]["answered"] == 2
    assert fleet.wait_execution(session_id)["status"] == "SUCCEEDED"
    assert _task_errors(fleet, session_id) == ["Lambda.TooManyRequestsException"] * 2
    assert fleet.states_entered(session_id) == HAPPY_PATH
    assert len(_instances(fleet, session_id)) == 1
    assert_records_true(fleet, session_id)


def test_a_throttle_that_outlasts_every_sdk_retry_fails_clearly_with_nothing_left(
    fleet: Stack,
) -> None:
    observer = fleet.observe("dcvfleet")
    # Given EC2 throttles every RunInstances
    fleet.faults(apiErrors={"ec2:RunInstances": {"code": "RequestLimitExceeded"}})
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then botocore gave up after its attempts, the step failed (not a Lambda.* error: the ASL
    # does not retry it) and the workflow compensated: FAILED, saying the host was not launched
    session = fleet.wait_for(user, session_id, timeout=60)
    assert session["status"] == "FAILED", session
    assert session["statusReason"] == LaunchError.user_message
    assert _clear_faults(fleet)["apiErrors"]["ec2:RunInstances"]["answered"] == SDK_MAX_ATTEMPTS
    assert _task_errors(fleet, session_id) == ["LaunchError"]
    assert fleet.wait_execution(session_id)["status"] == "FAILED"
    assert fleet.states_entered(session_id)[-len(COMPENSATION) :] == COMPENSATION
    failed = observer.wait_for("Session Failed", session_id)
    assert failed["detail"]["reason"] == session["statusReason"]
    # And nothing was launched or kept; the user's active count is back to none
    assert _instances(fleet, session_id) == []
    assert_records_true(fleet, session_id)


def test_a_throttle_that_outlasts_every_workflow_retry_fails_clearly_with_nothing_left(
    fleet: Stack,
) -> None:
    # Given Lambda throttles every invocation of the LaunchInstance step
    fleet.faults(
        apiErrors={
            "lambda:Invoke": {
                "code": "TooManyRequestsException",
                "resource": "LaunchInstanceFunction",
            }
        }
    )
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then the ASL retried it MaxAttempts times, then compensated: FAILED, its secret deleted
    session = fleet.wait_for(user, session_id, timeout=60)
    assert session["status"] == "FAILED", session
    assert session["statusReason"] == "The desktop could not be prepared."
    answered = _clear_faults(fleet)["apiErrors"]["lambda:Invoke"]["answered"]
    assert answered == ASL_LAMBDA_ATTEMPTS
    assert _task_errors(fleet, session_id) == ["Lambda.TooManyRequestsException"] * answered
    assert fleet.wait_execution(session_id)["status"] == "FAILED"
    assert fleet.states_entered(session_id)[-len(COMPENSATION) :] == COMPENSATION
    assert _instances(fleet, session_id) == []
    assert_records_true(fleet, session_id)


# -- 2. no capacity on any type in any subnet ----------------------------------------------------
def test_no_capacity_on_every_type_in_every_subnet_tries_each_once_then_fails_naming_them(
    fleet: Stack,
) -> None:
    # Given no capacity for the requested type nor any fallback type, in any subnet
    types = ["g5.xlarge", "g4dn.xlarge", "g6.xlarge"]  # LinuxInstanceType, then the fallbacks
    subnets = fleet.info["parameters"]["SubnetIds"].split(",")
    assert len(subnets) >= 2, "the local stack deploys into two subnets"
    fleet.faults(noCapacity=types)
    since = _now_ms()
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then every type was tried in every subnet, each once, subnet by subnet
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "FAILED", session
    expected = [f"InsufficientInstanceCapacity: {t} in {s}" for s in subnets for t in types]
    refused = _handled(
        fleet,
        "LaunchInstanceFunction",
        session_id,
        since=since,
        message="no capacity",
        count=len(expected),
        fields=("session_id",),
    )
    assert [r["attempt"] for r in refused] == expected
    # And it FAILED with a plain reason for its owner; every type and subnet is named in the
    # operator's detail on the record (admin views only)
    assert session["statusReason"] == InsufficientCapacityError.user_message
    assert "statusDetail" not in session
    detail = _item(fleet, session_id)["statusDetail"]
    for name in (*types, *subnets):
        assert name in detail, detail
    assert _task_errors(fleet, session_id) == ["InsufficientCapacityError"]
    # And no instance was ever made, its secret is gone, and the user's limit is free again:
    # once there is capacity, the same user gets a desktop
    assert _instances(fleet, session_id) == []
    assert_records_true(fleet, session_id)
    fleet.faults()
    _, again = fleet.request_desktop(user)
    assert fleet.wait_for(user, again, timeout=40)["status"] == "READY"
    assert_records_true(fleet, again)


# -- 2b. a new account: no vCPU quota for GPU instances ------------------------------------------
def _operator_inbox(stack: Stack) -> str:
    """An operator's queue subscribed to the operators' topic (OperatorTopic); its URL."""
    sqs = stack.client("sqs")
    url: str = sqs.create_queue(QueueName=f"operators-{_now_ms()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    stack.client("sns").subscribe(
        TopicArn=stack.info["resources"]["OperatorTopic"],
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
    )
    return url


def _operator_notices(
    stack: Stack, url: str, about: str, settle: float = 3
) -> list[dict[str, Any]]:
    """Every notice the operators got about ``about``, read until none came for ``settle`` s."""
    sqs, found = stack.client("sqs"), []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            notice = json.loads(message["Body"])
            if about in notice["Message"]:
                found.append(notice)
                quiet_since = time.monotonic()
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not messages:
            time.sleep(0.2)
    return found


def test_a_new_accounts_gpu_vcpu_quota_fails_at_once_in_plain_words_and_tells_the_operators(
    fleet: Stack,
) -> None:
    inbox = _operator_inbox(fleet)
    observer = fleet.observe("dcvfleet")
    # Given a new AWS account: EC2 refuses every GPU launch for its vCPU quota, which is 0
    # (VcpuLimitExceeded; https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)
    fleet.faults(apiErrors={"ec2:RunInstances": {"code": "VcpuLimitExceeded"}})
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then EC2 was asked once: the requested type and every fallback (g4dn, g6) are G types,
    # under the one quota, which no other subnet has either; the SDK does not retry it
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "FAILED", session
    assert _clear_faults(fleet)["apiErrors"]["ec2:RunInstances"]["answered"] == 1
    assert _task_errors(fleet, session_id) == ["GpuQuotaError"]
    # And the user reads, on the record and in Session Failed, that GPU desktops are not enabled
    assert session["statusReason"] == GpuQuotaError.user_message
    assert session["statusReason"] == (
        "GPU desktops are not enabled in this AWS account yet. Your administrator has been told."
    )
    failed = observer.wait_for("Session Failed", session_id)
    assert failed["detail"]["reason"] == session["statusReason"]
    assert failed["detail"]["error"] == "GpuQuotaError"
    # And the operators were told once: the quota, its code, the Region, how to raise it
    (notice,) = _operator_notices(fleet, inbox, session_id)
    region = fleet.region
    assert "L-DB2E81BA" in notice["Subject"], notice
    message = notice["Message"]
    assert "Running On-Demand G and VT instances (L-DB2E81BA)" in message
    assert f"Region {region}" in message
    assert f"servicequotas/home/services/ec2/quotas/L-DB2E81BA?region={region}" in message
    assert (
        f"aws service-quotas request-service-quota-increase --region {region} "
        "--service-code ec2 --quota-code L-DB2E81BA"
    ) in message
    # And nothing was launched or kept, and the user's slot is free: once the quota is raised,
    # the same user gets a desktop
    assert _instances(fleet, session_id) == []
    assert_records_true(fleet, session_id)
    _, again = fleet.request_desktop(user)
    assert fleet.wait_for(user, again, timeout=40)["status"] == "READY"
    assert_records_true(fleet, again)


# -- 3. an agent that stops reporting mid-session -----------------------------------------------
SILENCE_TIMEOUT = 4
SILENT_PARAMS = (
    "HostReadyTimeoutSeconds=20 MaxActiveSessionsPerUser=1 IdleTimeoutSeconds=600 "
    f"IdleGraceSeconds=2 HeartbeatIntervalSeconds=1 SignalSampleSeconds=1 "
    f"HeartbeatTimeoutSeconds={SILENCE_TIMEOUT} SweepIntervalMinutes=60"
)


#: A stack whose sweep calls an agent silent after a few seconds (the shared stack waits
#: HeartbeatTimeoutSeconds' default, 5 minutes); agents never claim idle on their own.
silent = module_stack("silent", SILENT_PARAMS)


def test_an_agent_silent_mid_session_is_stopped_only_when_the_host_confirms_nobody_is_on(
    silent: Stack,
) -> None:
    observer = silent.observe("dcvfleet")
    # Given two READY desktops whose agents die mid-session: someone is still connected to
    # one of them, nobody to the other
    desktops: list[tuple[Client, str, str]] = []
    threads = [threading.Thread(target=lambda: desktops.append(silent.ready_desktop(timeout=40)))]
    threads.append(
        threading.Thread(target=lambda: desktops.append(silent.ready_desktop(timeout=40)))
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(desktops) == 2
    (used_user, used, used_host), (left_user, left, left_host) = desktops
    silent.connections(used_host, 1)
    for host in (used_host, left_host):
        resp = silent.control("POST", f"/hosts/{host}/agent", {"running": False})
        assert resp.status_code == 200, resp.text
    time.sleep(SILENCE_TIMEOUT + 1.5)
    # When the sweep runs
    assert silent.run_schedules()
    # Then the desktop nobody uses is stopped, saying its agent went silent and nobody was on
    session = silent.wait_for(left_user, left, ("STOPPED",), timeout=40)
    assert "silent" in session["statusReason"], session
    assert "nobody is connected" in session["statusReason"], session
    stopped = observer.wait_for("Session Stopped", left, timeout=20)
    assert stopped["detail"]["trigger"] == "agent-silent"
    assert stopped["detail"]["evidence"]["connections"] == 0
    # And the one in use stays READY: the host said someone is connected, so the idle check
    # ended without warning or stopping it, and gave its slot back
    (check,) = _executions(silent, "IdleStateMachine", used)
    assert "-agent-silent-" in check["name"]
    _settled(silent, used)
    states = _states(silent, check["executionArn"])
    assert "StaysReady" in states, states
    assert not {"Warn", "Act"} & set(states), states
    assert used_user.call("GET", f"/sessions/{used}").json()["status"] == "READY"
    (stop,) = _executions(silent, "IdleStateMachine", left)
    assert "-agent-silent-" in stop["name"]
    # And every record is true: one running and READY, one stopped (disk and secret kept)
    assert assert_records_true(silent, used)["status"] == "READY"
    assert assert_records_true(silent, left)["status"] == "STOPPED"


# -- 4. duplicate, late and out-of-order events --------------------------------------------------
def test_duplicate_host_ready_after_ready_changes_nothing(fleet: Stack) -> None:
    # Given a READY desktop
    _, session_id, instance_id = fleet.ready_desktop(timeout=40)
    _settled(fleet, session_id)
    before = _snapshot(fleet, session_id)
    since = _now_ms()
    # When its Host Ready comes again (EventBridge delivers at least once)
    fleet.put_agent_event(*_agent_event("host-ready", before["record"], instance_id))
    # Then the claim is refused as not provisioning, and nothing changed or started
    _refused(fleet, session_id, since, "is READY, not provisioning")
    assert _snapshot(fleet, session_id) == before
    assert_records_true(fleet, session_id)


def _event_key_while_provisioning(stack: Stack, session_id: str) -> str:
    """The session's event key, read as its host reads it at boot (before a failure deletes it
    with the secret)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            return stack.event_key(session_id)
        except ClientError:
            time.sleep(0.05)
    raise AssertionError(f"session {session_id} never had an event key")


def test_late_host_ready_for_a_failed_desktop_changes_nothing(fleet: Stack) -> None:
    # Given a desktop whose host reported ready, then failed in its last step and was cleaned
    # up (its secret, and the event key in it, deleted); its agent still holds the key
    fleet.faults(functionErrors={"MarkReadyFunction": "RuntimeError"})
    user, session_id = fleet.request_desktop()
    key = _event_key_while_provisioning(fleet, session_id)
    assert fleet.wait_for(user, session_id)["status"] == "FAILED"
    assert_records_true(fleet, session_id)
    (instance,) = _instances(fleet, session_id)
    before = _snapshot(fleet, session_id)
    since = _now_ms()
    # When a late Host Ready about it arrives, signed by its agent with that key
    detail_type, detail = _agent_event(
        "host-ready", {**before["record"], "dcvSessionId": "desktop"}, instance["InstanceId"]
    )
    detail["signature"] = events.signature(key, detail_type, detail)
    fleet.put_agent_event(detail_type, detail, signer=None)  # signed above, as the agent signs
    # Then it is refused (a failed desktop has no key left to check it by, nor anything to be
    # ready for); the record, the terminated host and the workflows stay as they were
    _refused(fleet, session_id, since, "has no event key", "is FAILED, not provisioning")
    assert _snapshot(fleet, session_id) == before
    assert _instance_state(fleet, instance["InstanceId"]) == "terminated"
    assert_records_true(fleet, session_id)


@pytest.fixture(scope="module")
def stopped_desktop(stack: Stack) -> tuple[Client, str, str]:
    """A desktop its user stopped (its instance stopped, its disk and secret kept)."""
    user, session_id, instance_id = stack.ready_desktop(timeout=40)
    assert user.call("POST", f"/sessions/{session_id}/stop").status_code == 202
    assert stack.wait_for(user, session_id, ("STOPPED",), timeout=30)["status"] == "STOPPED"
    assert_records_true(stack, session_id)
    return user, session_id, instance_id


@pytest.mark.parametrize("kind", ["host-ready", "heartbeat", "session-idle"])
def test_late_agent_event_for_a_stopped_desktop_changes_nothing(
    fleet: Stack, stopped_desktop: tuple[Client, str, str], kind: str
) -> None:
    # Given a desktop its user stopped
    _, session_id, instance_id = stopped_desktop
    before = _snapshot(fleet, session_id)
    since = _now_ms()
    # When an agent event from before the stop arrives late
    fleet.put_agent_event(*_agent_event(kind, before["record"], instance_id))
    # Then it is refused; the record (its heartbeat too), the workflows and the stopped
    # instance stay as they were: nothing is restarted, checked or recorded
    _refused(fleet, session_id, since, "is STOPPED, not", "does not match a ready session")
    assert _snapshot(fleet, session_id) == before
    assert before["instances"] == {instance_id: "stopped"}


def test_out_of_order_ec2_stopped_before_stopping_changes_nothing_for_a_stopped_desktop(
    fleet: Stack, stopped_desktop: tuple[Client, str, str]
) -> None:
    # Given a desktop its user stopped
    _, session_id, instance_id = stopped_desktop
    before = _snapshot(fleet, session_id)
    since = _now_ms()
    # When EC2's notifications of that stop come again, "stopped" before "stopping"
    _put_ec2_state(fleet, instance_id, "stopped")
    _put_ec2_state(fleet, instance_id, "stopping")
    # Then each is handled as nothing to do; the record and workflows are unchanged
    handled = _state_changes_handled(fleet, instance_id, since=since, count=2)
    assert sorted(r["state"] for r in handled) == ["stopped", "stopping"]
    assert all(r["outcome"].startswith("nothing to do") for r in handled), handled
    assert _snapshot(fleet, session_id) == before
    assert before["instances"] == {instance_id: "stopped"}


def test_late_ec2_running_for_a_terminated_desktop_changes_nothing(fleet: Stack) -> None:
    # Given a desktop its user deleted
    user, session_id, instance_id = fleet.ready_desktop(timeout=40)
    assert user.call("DELETE", f"/sessions/{session_id}").status_code == 202
    assert fleet.wait_for(user, session_id, ("TERMINATED",), timeout=30)["status"] == "TERMINATED"
    assert_records_true(fleet, session_id)
    before = _snapshot(fleet, session_id)
    since = _now_ms()
    # When the "running" notification of its launch arrives late, then (as a marker that the
    # bus has delivered what came before) its "terminated" one once more
    _put_ec2_state(fleet, instance_id, "running")
    _put_ec2_state(fleet, instance_id, "terminated")
    # Then "running" (which reaches the consumer for the warm pool's sake) and the repeated
    # "terminated" are nothing to do for a desktop, and the record, the instance and the
    # workflows are unchanged
    handled = _state_changes_handled(fleet, instance_id, since=since, count=2)
    assert sorted(h["state"] for h in handled) == ["running", "terminated"], handled
    assert all(h["outcome"].startswith("nothing to do") for h in handled), handled
    assert _snapshot(fleet, session_id) == before
    assert before["instances"] == {instance_id: "terminated"}


def test_late_ec2_stop_notification_never_stops_a_resumed_desktop(fleet: Stack) -> None:
    # Given a desktop its user stopped, then started again: READY on the same instance
    user, session_id, instance_id = fleet.ready_desktop(timeout=40)
    assert user.call("POST", f"/sessions/{session_id}/stop").status_code == 202
    fleet.wait_for(user, session_id, ("STOPPED",), timeout=30)
    _settled(fleet, session_id)
    assert user.call("POST", f"/sessions/{session_id}/start").status_code == 202
    assert fleet.wait_for(user, session_id, ("READY", "FAILED"), timeout=40)["status"] == "READY"
    _settled(fleet, session_id)
    before = _snapshot(fleet, session_id)
    since = _now_ms()
    # When the notifications of the earlier stop arrive late (out of order with the start's)
    _put_ec2_state(fleet, instance_id, "stopping")
    _put_ec2_state(fleet, instance_id, "stopped")
    _state_changes_handled(fleet, instance_id, since=since, count=2)
    # Then the running desktop is left alone: its record, its workflows, its running instance
    time.sleep(1)
    _settled(fleet, session_id)
    assert _snapshot(fleet, session_id) == before
    assert before["instances"] == {instance_id: "running"}


# -- 5. a Lambda that times out ------------------------------------------------------------------
def test_a_stop_whose_step_fails_leaves_the_desktop_ready_and_names_the_error(
    fleet: Stack,
) -> None:
    # Given a READY desktop, and the idle workflow's step that stops it failing
    user, session_id, _ = fleet.ready_desktop(timeout=40)
    fleet.faults(functionErrors={"ActOnSessionFunction": "RuntimeError"})
    # When its user stops it
    assert user.call("POST", f"/sessions/{session_id}/stop").status_code == 202
    _settled(fleet, session_id)
    # Then Recover leaves it READY (its host still runs), every record true
    assert assert_records_true(fleet, session_id)["status"] == "READY"
    # And the execution fails with one of DCV Fleet's errors (a Fail state may not name a
    # States.* one), the caught error's name first in its cause
    (run,) = _executions(fleet, "IdleStateMachine", session_id)
    execution = fleet.client("stepfunctions").describe_execution(executionArn=run["executionArn"])
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "WorkflowStepError", execution
    assert execution["cause"].startswith("RuntimeError"), execution


def test_a_step_that_times_out_after_launching_is_compensated_with_nothing_left(
    fleet: Stack,
) -> None:
    # Given the LaunchInstance step runs past its Timeout (its instance launched, its answer lost)
    fleet.faults(functionTimeouts={"LaunchInstanceFunction": 1})
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then Step Functions reports Sandbox.Timedout, which no Retry takes and the Catch
    # compensates: FAILED, with a reason a user can read
    session = fleet.wait_for(user, session_id, timeout=40)
    assert session["status"] == "FAILED", session
    assert session["statusReason"] == "The desktop could not be prepared."
    assert _task_errors(fleet, session_id) == ["Sandbox.Timedout"]
    assert fleet.wait_execution(session_id)["status"] == "FAILED"
    assert fleet.states_entered(session_id)[-len(COMPENSATION) :] == COMPENSATION
    # And the host the timed-out step launched was found by its tag and terminated
    launched = _instances(fleet, session_id)
    assert len(launched) == 1
    assert launched[0]["State"]["Name"] in ("shutting-down", "terminated")
    assert_records_true(fleet, session_id)


def test_a_step_that_times_out_once_after_marking_ready_is_retried_and_the_desktop_is_ready(
    fleet: Stack,
) -> None:
    observer = fleet.observe("dcvfleet")
    # Given the MarkReady step runs past its Timeout once, after it recorded the desktop READY
    fleet.faults(functionTimeouts={"MarkReadyFunction": 1})
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    # Then the workflow retried the (idempotent) step, which found the desktop READY: it is
    # announced ready, and nothing failed or was compensated
    assert fleet.wait_for(user, session_id, timeout=40)["status"] == "READY"
    assert fleet.wait_execution(session_id)["status"] == "SUCCEEDED"
    assert _clear_faults(fleet)["functionTimeouts"] == {
        "MarkReadyFunction": {"times": 1, "timedOut": 1}
    }
    assert _task_errors(fleet, session_id) == ["Sandbox.Timedout"]
    assert fleet.states_entered(session_id) == HAPPY_PATH
    observer.wait_for("Session Ready", session_id)
    assert_records_true(fleet, session_id)


def test_a_step_that_keeps_timing_out_after_marking_ready_never_contradicts_the_record(
    fleet: Stack,
) -> None:
    observer = fleet.observe("dcvfleet")
    # Given the MarkReady step runs past its Timeout every time, after it recorded READY
    fleet.faults(functionTimeouts=["MarkReadyFunction"])
    # When a desktop is requested
    user, session_id = fleet.request_desktop()
    session = fleet.wait_for(user, session_id, timeout=40)
    fleet.wait_execution(session_id)
    fleet.faults()
    # Then what the user is told agrees with the record: a READY desktop is never announced
    # as failed, a FAILED one leaves nothing behind
    record = assert_records_true(fleet, session_id)
    if record["status"] == "READY":
        observer.wait_for("Session Ready", session_id, timeout=5)
        with pytest.raises(AssertionError):
            observer.wait_for("Session Failed", session_id, timeout=3)
    else:
        assert session["status"] == "FAILED"


# -- 6. conditional-check failures under concurrency --------------------------------------------
def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


#: What each accepted call does to a desktop, from the status it needs: its workflow then takes
#: the desktop to the next status (a delete ends it).
TRANSITIONS = {
    ("READY", "stop"): "STOPPED",
    ("READY", "terminate"): "TERMINATED",
    ("STOPPED", "terminate"): "TERMINATED",
    ("STOPPED", "resume"): "READY",
}


def _accepted_transitions(stack: Stack, session_id: str) -> list[tuple[int, str]]:
    """(version written, action) of every transition a user's call made, in order: a stop or a
    delete starts the idle workflow ``<id>-user-<version>``, a start ``<id>-resume-<version>``."""
    sfn = stack.client("stepfunctions")
    made = []
    for run in _executions(stack, "IdleStateMachine", session_id):
        if "-user-" in run["name"]:
            action = json.loads(sfn.describe_execution(executionArn=run["executionArn"])["input"])
            made.append((int(run["name"].rsplit("-", 1)[1]), str(action["action"])))
    for run in _executions(stack, "ProvisionStateMachine", session_id):
        if "-resume-" in run["name"]:
            made.append((int(run["name"].rsplit("-", 1)[1]), "resume"))
    return sorted(made)


def test_concurrent_stop_delete_and_start_make_one_transition_at_a_time(fleet: Stack) -> None:
    # Given a READY desktop
    user, session_id, instance_id = fleet.ready_desktop(timeout=40)
    # When its user stops, deletes and starts it at once, three times each
    calls: list[Callable[[], Any]] = []
    for _ in range(3):
        calls.append(lambda: ("stop", user.call("POST", f"/sessions/{session_id}/stop")))
        calls.append(lambda: ("terminate", user.call("DELETE", f"/sessions/{session_id}")))
        calls.append(lambda: ("resume", user.call("POST", f"/sessions/{session_id}/start")))
    results = _at_once(calls)
    # (The emulator runs one invocation of a function at a time, as one execution environment:
    # the calls reach the API one after another, and a start may come once the stop finished)
    # Then every call was accepted (202) or refused with a 409 naming the status it met
    assert {r.status_code for _, r in results} <= {202, 409}, [(k, r.text) for k, r in results]
    for kind, resp in results:
        if resp.status_code == 409:
            assert resp.json().get("status") in (*ACTIVE, "STOPPED", "TERMINATED"), (
                kind,
                resp.text,
            )
    accepted = sorted(kind for kind, r in results if r.status_code == 202)
    assert accepted, "no call was accepted"
    # And the accepted ones made one transition at a time, each from a status that allows it
    # (a stop, a start once it was STOPPED, ...), each carried out by exactly one workflow
    deadline = time.monotonic() + 30
    made = _accepted_transitions(fleet, session_id)
    while len(made) < len(accepted) and time.monotonic() < deadline:
        time.sleep(0.2)
        made = _accepted_transitions(fleet, session_id)
    assert sorted(action for _, action in made) == accepted, (made, accepted)
    assert len({version for version, _ in made}) == len(made), made
    status = "READY"
    for _, action in made:
        assert (status, action) in TRANSITIONS, f"{action} accepted while {status}: {made}"
        status = TRANSITIONS[(status, action)]
    # And the desktop ended where the last of them took it, every record true
    record = assert_records_true(fleet, session_id)
    assert record["status"] == status, (record, made)
    expected = {"READY": "running", "STOPPED": "stopped", "TERMINATED": "terminated"}[status]
    assert _instance_state(fleet, instance_id) == expected


def test_concurrent_stop_by_the_user_and_outside_dcv_fleet_has_one_winner(fleet: Stack) -> None:
    # Given a READY desktop, and DynamoDB throttling the first write about it three times, so
    # that whoever writes first is still backing off when the other writes
    user, session_id, instance_id = fleet.ready_desktop(timeout=40)
    fleet.faults(
        apiErrors={
            "dynamodb:UpdateItem": {
                "code": "ThrottlingException",
                "times": 3,
                "matching": session_id,
            }
        }
    )
    # When its user stops it while an operator stops its instance outside DCV Fleet
    answer: list[Any] = []
    stopping = threading.Thread(
        target=lambda: answer.append(user.call("POST", f"/sessions/{session_id}/stop"))
    )
    stopping.start()
    time.sleep(0.3)  # the user's stop has read the record and is backing off from its write
    fleet.client("ec2").stop_instances(InstanceIds=[instance_id])
    stopping.join()
    (resp,) = answer
    # Then, though both found it READY, the conditional write let one of them make the
    # transition: the other's write failed its check, and it saw the desktop already stopping
    assert fleet.wait_for(user, session_id, ("STOPPED",), timeout=40)["status"] == "STOPPED"
    assert _clear_faults(fleet)["apiErrors"]["dynamodb:UpdateItem"]["answered"] == 3
    runs = _executions(fleet, "IdleStateMachine", session_id)
    assert len(runs) == 1, [r["name"] for r in runs]
    record = assert_records_true(fleet, session_id)
    if resp.status_code == 202:  # the user's stop won; the outside stop found it taken
        assert "-user-" in runs[0]["name"]
        assert record["statusReason"] == "Stopped by you."
    else:  # the outside stop won; the user is told the desktop is already stopping
        assert resp.status_code == 409, resp.text
        assert resp.json()["status"] in ("STOPPING", "STOPPED"), resp.text
        assert "-external-" in runs[0]["name"]
        assert "outside DCV Fleet" in record["statusReason"]
    assert _instance_state(fleet, instance_id) == "stopped"


def _verdicts(
    stack: Stack, session_id: str, since: int, count: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The agent-event consumer's accepted and rejected records about the session since
    ``since`` (ms), once there are ``count`` in all."""
    deadline = time.monotonic() + 30
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        logs = stack.client("logs")
        group = f"/aws/lambda/{stack.info['resources']['AgentEventsFunction']}"
        found = logs.filter_log_events(
            logGroupName=group, startTime=since, filterPattern=f'"{session_id}"'
        )["events"]
        records = [json.loads(e["message"]) for e in found if e["message"].startswith("{")]
        mine = [r for r in records if r.get("correlation_id") == session_id]
        accepted = [r for r in mine if r.get("message") == "agent event accepted"]
        rejected = [r for r in mine if r.get("message") == "agent claim rejected"]
        if len(accepted) + len(rejected) >= count:
            return accepted, rejected
        time.sleep(0.2)
    raise AssertionError(f"the consumer handled {len(accepted) + len(rejected)} of {count}")


def test_concurrent_idle_claims_start_one_check_and_never_stop_a_desktop_in_use(
    fleet: Stack,
) -> None:
    # Given a READY desktop someone is connected to
    _, session_id, instance_id = fleet.ready_desktop(timeout=40)
    fleet.connections(instance_id, 1)
    record = _item(fleet, session_id)
    since = _now_ms()
    # When eight Session Idle claims about it arrive at once: four copies of each of two claims
    # its agent signed (EventBridge delivers at least once; or someone replays them)
    claims = [_agent_event("session-idle", record, instance_id)]
    time.sleep(0.01)
    claims.append(_agent_event("session-idle", record, instance_id))
    assert claims[0][1]["sentAt"] < claims[1][1]["sentAt"]
    signed = [(kind, fleet.signed(kind, detail)) for kind, detail in claims]
    _at_once([lambda c=c: fleet.put_agent_event(*c, signer=None) for c in signed * 4])
    # Then of each claim's copies at most one was accepted (the others, and a claim older than
    # one accepted, were rejected for their sentAt), and exactly one idle check started; an
    # accepted claim that came second found it deciding
    accepted, rejected = _verdicts(fleet, session_id, since, count=8)
    reasons = sorted(r["reason"] for r in accepted)
    assert reasons in (["started"], ["already-checking", "started"]), (accepted, rejected)
    assert all("is not newer than the last event accepted" in r["reason"] for r in rejected)
    (check,) = _executions(fleet, "IdleStateMachine", session_id)
    # And the check asked the host, found the user connected, and left the desktop READY
    _settled(fleet, session_id)
    states = _states(fleet, check["executionArn"])
    assert "StaysReady" in states, states
    assert "Act" not in states, states
    assert assert_records_true(fleet, session_id)["status"] == "READY"
