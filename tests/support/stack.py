"""The local stack as a test fixture: started in its own process, driven as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from dcvfleet import events
from dcvfleet.adapters import SessionSecrets
from local.client import Client
from local.stack import create_user

ROOT = Path(__file__).resolve().parents[2]
#: Short enough that a host that never reports fails fast; long enough for a booted host.
TEST_PARAMS = "HostReadyTimeoutSeconds=20 MaxActiveSessionsPerUser=1"
TERMINAL = ("READY", "FAILED")


class Stack:
    def __init__(self, info: dict[str, Any], process: subprocess.Popen[bytes], log: Path) -> None:
        self.info = info
        self.process = process
        self.log = log
        self.endpoint = info["aws_endpoint_url"]
        self.region = info["region"]

    def client(self, service: str) -> Any:
        """A client of the local stack, which takes any credentials: explicit ones, so that a
        module-scoped fixture (set up before each test's fake credentials) needs none around."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def control(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.info["control_url"] + path, json=body, timeout=10)

    def faults(self, **body: Any) -> None:
        resp = self.control("POST", "/faults", body)
        assert resp.status_code == 200, resp.text

    def agents(self, enabled: bool) -> None:
        assert self.control("POST", "/agents", {"enabled": enabled}).status_code == 200

    def host(self, instance_id: str) -> dict[str, Any]:
        """A simulated host as ``GET /hosts`` shows it."""
        hosts = self.control("GET", "/hosts").json()["hosts"]
        found = [h for h in hosts if h["instanceId"] == instance_id]
        assert found, f"no simulated host {instance_id}"
        return dict(found[0])

    def wait_host(self, instance_id: str, timeout: float = 20, **expected: Any) -> dict[str, Any]:
        """The host as ``GET /hosts`` shows it once each ``expected`` field has its value: the
        simulator follows the instance's state on its own thread, a little after EC2 does."""
        deadline = time.monotonic() + timeout
        while True:
            host = self.host(instance_id)
            if all(host.get(key) == value for key, value in expected.items()):
                return host
            assert time.monotonic() < deadline, f"host {instance_id} is {host}, not {expected}"
            time.sleep(0.2)

    def run_schedules(self, rule: str | None = None) -> list[str]:
        """Fire the schedule rules (or one) now, as their schedule would."""
        resp = self.control("POST", "/schedules/run", {} if rule is None else {"rule": rule})
        assert resp.status_code == 200, resp.text
        fired: list[str] = resp.json()["fired"]
        return fired

    def create_user(self, name: str, groups: tuple[str, ...] = ()) -> str:
        """An admin-created user named ``name``, a member of ``groups`` (``("admins",)`` for a
        fleet administrator); its password."""
        password = f"Pw-{uuid.uuid4().hex}A1"
        idp = self.client("cognito-idp")
        create_user(idp, self.info["user_pool_id"], name, password)
        for group in groups:
            idp.admin_add_user_to_group(
                UserPoolId=self.info["user_pool_id"], Username=name, GroupName=group
            )
        return password

    def new_user(self, name: str | None = None, groups: tuple[str, ...] = ()) -> Client:
        """A new user (``create_user``), signed in."""
        username = name or f"user{uuid.uuid4().hex[:10]}"
        client = Client(self.info)
        client.sign_in(username, self.create_user(username, groups))
        return client

    def wait_for(
        self,
        client: Client,
        session_id: str,
        statuses: tuple[str, ...] = TERMINAL,
        timeout: float = 30,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        session: dict[str, Any] = {}
        while time.monotonic() < deadline:
            session = client.call("GET", f"/sessions/{session_id}").json()
            if session.get("status") in statuses:
                return session
            time.sleep(0.1)
        raise AssertionError(f"session {session_id} never reached {statuses}: {session}")

    def request_desktop(self, user: Client | None = None) -> tuple[Client, str]:
        """A Linux EC2 desktop asked for by ``user`` (a new user when None): the user and the
        desktop's id, the request accepted."""
        user = user or self.new_user()
        resp = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
        assert resp.status_code == 202, resp.text
        return user, str(resp.json()["sessionId"])

    def ready_desktop(self, timeout: float = 30) -> tuple[Client, str, str]:
        """A new user's Linux EC2 desktop once READY: the user, its id and its instance's id."""
        user, session_id = self.request_desktop()
        session = self.wait_for(user, session_id, timeout=timeout)
        assert session["status"] == "READY", session
        return user, session_id, str(session["instanceId"])

    def connections(self, instance_id: str, count: int) -> None:
        """Set how many people the simulated host ``instance_id`` has connected."""
        resp = self.control("POST", f"/hosts/{instance_id}/connections", {"count": count})
        assert resp.status_code == 200, resp.text

    def execution_arn(self, session_id: str) -> str:
        machine = self.info["resources"]["ProvisionStateMachine"]
        return machine.replace(":stateMachine:", ":execution:") + f":{session_id}"

    def wait_execution(self, session_id: str, timeout: float = 30) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution: dict[str, Any] = sfn.describe_execution(
                executionArn=self.execution_arn(session_id)
            )
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.1)
        raise AssertionError(f"execution of {session_id} still running")

    def history(self, session_id: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        events: list[dict[str, Any]] = sfn.get_execution_history(
            executionArn=self.execution_arn(session_id), maxResults=1000
        )["events"]
        return events

    def states_entered(self, session_id: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(session_id)
            if e["type"].endswith("StateEntered")
        ]

    def live_instances(self, session_id: str) -> list[str]:
        resp = self.client("ec2").describe_instances(
            Filters=[
                {"Name": "tag:dcvfleet:session-id", "Values": [session_id]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                },
            ]
        )
        return [i["InstanceId"] for r in resp["Reservations"] for i in r["Instances"]]

    def secret_exists(self, session_id: str) -> bool:
        try:
            self.client("secretsmanager").describe_secret(
                SecretId=f"dcvfleet/sessions/{session_id}"
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
        return True

    def observe(self, source: str) -> BusObserver:
        """An operator's queue subscribed to the fleet bus for one event source."""
        return BusObserver(self, source)

    def event_key(self, session_id: str) -> str:
        """A session's event key, which only its own host (or container) can read."""
        secret = self.client("secretsmanager").get_secret_value(
            SecretId=SessionSecrets(None).name_for(session_id)
        )
        return str(json.loads(secret["SecretString"])["eventKey"])

    def signed(
        self, detail_type: str, detail: dict[str, Any], *, signer: str | None = "own"
    ) -> dict[str, Any]:
        """``detail`` signed as put_agent_event signs it."""
        if signer is None:
            return detail
        key = self.event_key(detail["sessionId"] if signer == "own" else signer)
        return {**detail, "signature": events.signature(key, detail_type, detail)}

    def put_agent_event(
        self, detail_type: str, detail: dict[str, Any], *, signer: str | None = "own"
    ) -> None:
        """Put an agent event on the fleet bus by hand, signed as a host's agent signs it: with
        its own session's key (``signer="own"``), another session's (``signer=<session id>``,
        a host speaking for a session not its own), or not at all (None)."""
        detail = self.signed(detail_type, detail, signer=signer)
        resp = self.client("events").put_events(
            Entries=[
                {
                    "Source": "dcvfleet.agent",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self.info["resources"]["FleetBus"],
                }
            ]
        )
        assert resp["FailedEntryCount"] == 0, resp

    def function_logs(self, logical_id: str) -> list[str]:
        logs = self.client("logs")
        group = f"/aws/lambda/{self.info['resources'][logical_id]}"
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            return []
        return [message for _, message in log_events(logs, group)]

    def function_records(self, logical_id: str, message: str) -> list[dict[str, Any]]:
        """The structured (JSON) records the function logged with ``message``."""
        records = []
        for line in self.function_logs(logical_id):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("message") == message:
                records.append(record)
        return records

    def assert_nothing_left(self, session_id: str) -> None:
        assert self.live_instances(session_id) == [], "an instance outlived its failed session"
        assert not self.secret_exists(session_id), "a secret outlived its failed session"


def log_events(logs: Any, group: str) -> Iterator[tuple[str, str]]:
    """(stream, message) for every event of a log group, every page of it: Lambda writes each
    invocation to a stream of its own, DescribeLogStreams answers 50 streams a page, and
    GetLogEvents pages a stream, repeating its forward token at the end
    (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html)."""
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group):
        for stream in page["logStreams"]:
            name = stream["logStreamName"]
            params: dict[str, Any] = {"startFromHead": True}
            while True:
                events = logs.get_log_events(logGroupName=group, logStreamName=name, **params)
                yield from ((name, event["message"]) for event in events["events"])
                token = events.get("nextForwardToken")
                if not events["events"] or token in (None, params.get("nextToken")):
                    break
                params["nextToken"] = token


class BusObserver:
    def __init__(self, stack: Stack, source: str) -> None:
        self.sqs = stack.client("sqs")
        name = f"observer-{uuid.uuid4().hex[:12]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        bus, bus_name = stack.client("events"), stack.info["resources"]["FleetBus"]
        bus.put_rule(
            Name=name, EventBusName=bus_name, EventPattern=json.dumps({"source": [source]})
        )
        bus.put_targets(
            Rule=name,
            EventBusName=bus_name,
            Targets=[{"Id": "observer", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.seen: list[dict[str, Any]] = []

    def wait_for(self, detail_type: str, session_id: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for envelope in self.seen:
                detail = envelope.get("detail", {})
                if envelope["detail-type"] == detail_type and detail.get("sessionId") == session_id:
                    return envelope
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            for message in messages.get("Messages", []):
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        raise AssertionError(f"no {detail_type} event for {session_id}")


def start_stack(
    state_dir: Path, params: str = TEST_PARAMS, minute_seconds: float | None = None
) -> Stack:
    """``python -m local`` in its own process; ``minute_seconds`` compresses schedule time."""
    log = state_dir / "stack.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "local", "--params", params, "--state-dir", str(state_dir)]
    if minute_seconds is not None:
        command += ["--minute-seconds", str(minute_seconds)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack_file = state_dir / "stack.json"
    deadline = time.monotonic() + 300  # minutes on a loaded 2-core machine; seconds when quiet
    while not stack_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"local stack did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    return Stack(json.loads(stack_file.read_text()), process, log)


def stop_stack(stack: Stack) -> int:
    stack.process.send_signal(signal.SIGINT)
    try:
        # every simulated host's agent is told to stop and flush; on a loaded 2-core machine
        # that, the scheduler and the servers winding down can take longer than 30 s
        return stack.process.wait(timeout=60)
    except subprocess.TimeoutExpired as late:
        stack.process.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
        time.sleep(2)
        stack.process.kill()
        stack.process.wait()
        tail = stack.log.read_text(errors="replace")[-6000:]
        raise AssertionError(
            f"the local stack did not stop within 60 s; its log ends:\n{tail}"
        ) from late


def module_stack(directory: str, params: str = TEST_PARAMS) -> Any:
    """A module-scoped fixture (named as the module names it): a stack of its own, started with
    ``params`` in a temporary ``directory`` for the module's tests, stopped after them."""

    @pytest.fixture(scope="module")
    def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        started = start_stack(tmp_path_factory.mktemp(directory), params)
        try:
            yield started
        finally:
            stop_stack(started)

    return running


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    stop_stack(running)


@pytest.fixture
def fleet(stack: Stack) -> Iterator[Stack]:
    """The stack, with faults and silent agents reset after each test."""
    yield stack
    stack.faults()
    stack.agents(True)
