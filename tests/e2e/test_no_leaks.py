"""Nothing leaks: a desktop's password lives in its Secrets Manager secret and nowhere else.

docs/architecture.md: "Secrets never travel through workflow input or output, logs or events: only
their ARNs do." On its own local stack this module provisions desktops of every kind (EC2 Linux,
EC2 Windows, a Batch container), reveals each one's credentials to its owner, lets one idle until
it is stopped and resumes it, stops one through the API and deletes them all. Then it reads
everything the stack wrote or sent on the way (every workflow execution and its history, every
CloudWatch Logs line, the stack's own log and the hosts' agent logs, every event on every bus,
every SNS notification, every DynamoDB item, every Run Command, Batch job and instance) and looks
for every string of every session secret, as written and in its JSON-, URL- and base64-encoded
forms: none may be there, and no secret of a deleted desktop may be left.

A hit names where it was found and which secret (the session, the field, the form), never the
secret itself. The scan is shown not to be blind: every category holds something, the session
ids (which are meant to be everywhere) are found in each, and in the workflows' state inputs and
outputs themselves, not only in the executions' names.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.client import Client
from tests.support.stack import Stack, log_events, module_stack

IDLE_TIMEOUT = 10  # the least IdleTimeoutSeconds the template allows (its MinValue)
GRACE = 4
#: Idling in seconds; three desktops for one user at once; functions log at DEBUG, since a
#: password logged at DEBUG leaks the day an operator turns DEBUG on.
PARAMS = (
    "HostReadyTimeoutSeconds=30 MaxActiveSessionsPerUser=3 "
    f"IdleTimeoutSeconds={IDLE_TIMEOUT} IdleGraceSeconds={GRACE} "
    "HeartbeatIntervalSeconds=1 SignalSampleSeconds=1 HeartbeatTimeoutSeconds=30 "
    "SweepIntervalMinutes=60 LambdaLogLevel=DEBUG"
)
SECRET_PREFIX = "dcvfleet/sessions/"
SESSION_TAG = "dcvfleet:session-id"
#: The secret's one field that is not secret: the desktop's OS user name, made from the owner's
#: user name (``dcv_username``) and shown wherever the owner is. Every other string is scanned.
PUBLIC_FIELDS = frozenset({"username"})
#: A form shorter than this could match by chance; session passwords are 24 characters.
MIN_NEEDLE = 8
JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
#: The taps are drained until no message came for this long (the agents' last events, the
#: workflows' last notifications); a message that comes later resets the wait.
QUIET_SECONDS = 3.0

HISTORIES = "workflow executions and histories"
CLOUDWATCH = "CloudWatch Logs lines"
STACK_LOG = "the local stack's log"
HOST_LOGS = "the hosts' agent logs and Run Command files"
EVENTS = "events on the buses"
NOTIFICATIONS = "SNS notifications"
TABLES = "DynamoDB items"
RESOURCES = "Run Commands, Batch jobs and instances"


# ------------------------------------------------------------------------------------- the scanner
@dataclass(frozen=True)
class Needle:
    """One form of one secret string; ``label`` names it without showing it."""

    label: str
    text: str


def _base64_cores(raw: bytes, encode: Any) -> Iterator[tuple[int, str]]:
    """What ``raw`` looks like inside any longer base64 text, at each of its 3 alignments: the
    base64 groups made only of ``raw``'s own bytes."""
    for shift in range(3):
        encoded = encode(b"\0" * shift + raw).decode()
        first = 1 if shift else 0
        last = (shift + len(raw)) // 3
        yield shift, encoded[4 * first : 4 * last]


def forms(value: str) -> dict[str, str]:
    """Every form of a secret string a leak could take: as is, JSON-escaped (as a string inside
    JSON, and inside JSON inside JSON), HTML-safe JSON, URL-encoded, and base64 (standard and
    URL-safe) at any offset inside a longer base64 text."""
    escaped = json.dumps(value)[1:-1]
    found = {
        "as is": value,
        "JSON-escaped": escaped,
        "JSON-escaped twice": json.dumps(escaped)[1:-1],
        "JSON-escaped, non-ASCII kept": json.dumps(value, ensure_ascii=False)[1:-1],
        "HTML-safe JSON": escaped.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026"),
        "URL-encoded": urllib.parse.quote(value, safe=""),
        "form-encoded": urllib.parse.quote_plus(value),
    }
    for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        for shift, core in _base64_cores(value.encode(), encode):
            found[f"{name} at offset {shift}"] = core
    return {name: text for name, text in found.items() if len(text) >= MIN_NEEDLE}


def needles(secrets: dict[str, str]) -> list[Needle]:
    """``secrets``: a label (session and field) for each secret string."""
    found: dict[str, Needle] = {}
    for label, value in secrets.items():
        for form, text in forms(value).items():
            found.setdefault(text, Needle(f"{label} ({form})", text))
    return list(found.values())


def leaves(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value (keys too); bytes as text."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (bytes, bytearray)):
        yield bytes(value).decode("utf-8", "replace")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from leaves(item)


@dataclass
class Corpus:
    """Everything scanned, by category: (where it was, its text)."""

    items: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, category: str, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else "\n".join(leaves(value))
        self.items.setdefault(category, []).append((where, text))

    def of(self, *categories: str) -> list[tuple[str, str]]:
        return [item for category in categories for item in self.items.get(category, [])]

    def counts(self) -> dict[str, int]:
        return {category: len(found) for category, found in self.items.items()}


def hits(items: Iterable[tuple[str, str]], found: list[Needle]) -> list[str]:
    """Where each needle is, as "<label> in <where>" (the needle's text is never in it)."""
    return [
        f"{needle.label} in {where}"
        for where, text in items
        for needle in found
        if needle.text in text
    ]


def assert_no_secret(run: Run, *categories: str) -> None:
    found = hits(run.corpus.of(*categories), run.needles)
    if found:
        shown = "\n  ".join(found[:40]) + ("\n  ..." if len(found) > 40 else "")
        pytest.fail(
            f"{len(found)} session secret(s) found in {', '.join(categories)}:\n  {shown}",
            pytrace=False,
        )


# ---------------------------------------------------------------------------------- the observers
class Tap:
    """An SQS queue that keeps every message one bus rule or one topic sends it."""

    def __init__(self, sqs: Any, name: str, what: str) -> None:
        self.what = what
        self.sqs = sqs
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        self.arn: str = attributes["Attributes"]["QueueArn"]
        self.bodies: list[str] = []

    def receive(self) -> int:
        """Keep what the queue holds now; how many messages that was."""
        count = 0
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return count
            count += len(messages)
            for message in messages:
                self.bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def drain_until_quiet(taps: list[Tap], quiet: float = QUIET_SECONDS, timeout: float = 60) -> None:
    """Receive from every tap until none got a message for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last_message = time.monotonic()
    while time.monotonic() - last_message < quiet:
        if sum(tap.receive() for tap in taps):
            last_message = time.monotonic()
        assert time.monotonic() < deadline, f"the taps were never quiet for {quiet}s"
        time.sleep(0.2)


def tap_bus(stack: Stack, bus: str, index: int) -> Tap:
    """Every event of ``bus``, whatever its source."""
    name = f"noleaks-bus-{index}"
    tap = Tap(stack.client("sqs"), name, f"bus {bus}")
    events = stack.client("events")
    pattern = {"source": [{"prefix": ""}]}
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap.arn}])
    return tap


def tap_topic(stack: Stack, topic_arn: str, index: int) -> Tap:
    """Every notification published on ``topic_arn`` (an SQS subscription, as an email one)."""
    tap = Tap(
        stack.client("sqs"), f"noleaks-topic-{index}", f"topic {topic_arn.rsplit(':', 1)[-1]}"
    )
    stack.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=tap.arn)
    return tap


# ---------------------------------------------------------------------------------- the lifecycle
@dataclass
class Desktop:
    role: str
    request: dict[str, str]
    session_id: str = ""
    instance_id: str = ""
    secret_arn: str = ""
    #: "<field> of <role> session <id>" -> every secret string of its secret
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    stack: Stack
    desktops: list[Desktop]
    taps: list[Tap]
    corpus: Corpus
    needles: list[Needle]


def _paginate(client: Any, operation: str, key: str, **params: Any) -> Iterator[Any]:
    for page in client.get_paginator(operation).paginate(**params):
        yield from page.get(key, [])


def _wait_all_ready(stack: Stack, user: Client, desktops: list[Desktop], timeout: float) -> None:
    """Each desktop READY, someone connected to it as soon as it is (so none idles but the one
    the test lets idle)."""
    waiting = {d.session_id: d for d in desktops}
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for session_id, desktop in list(waiting.items()):
            session = user.call("GET", f"/sessions/{session_id}").json()
            if session.get("status") == "READY":
                desktop.instance_id = session["instanceId"]
                stack.connections(desktop.instance_id, 1)
                del waiting[session_id]
            elif session.get("status") not in ("PROVISIONING", None):
                pytest.fail(f"the {desktop.role} desktop did not become READY: {session}")
        time.sleep(0.2)
    assert not waiting, f"never READY: {sorted(d.role for d in waiting.values())}"


def _learn_secrets(stack: Stack, user: Client, desktop: Desktop) -> None:
    """The password as its owner sees it (the API), and every string of the secret itself."""
    resp = user.call("GET", f"/sessions/{desktop.session_id}/credentials")
    assert resp.status_code == 200, f"credentials of the {desktop.role} desktop: {resp.status_code}"
    revealed = resp.json()
    value = stack.client("secretsmanager").get_secret_value(
        SecretId=f"{SECRET_PREFIX}{desktop.session_id}"
    )
    desktop.secret_arn = value["ARN"]
    stored = json.loads(value["SecretString"])
    same = revealed.get("password") == stored.get("password") and bool(stored.get("password"))
    assert same, f"the {desktop.role} desktop's revealed password is not its secret's"
    where = f"of the {desktop.role} desktop {desktop.session_id}"
    desktop.secrets[f"password revealed to the owner {where}"] = str(revealed["password"])
    for key, text in _secret_strings(stored):
        if key not in PUBLIC_FIELDS:
            desktop.secrets[f"secret field {key!r} {where}"] = text
    desktop.secrets[f"whole secret string {where}"] = value["SecretString"]


def _secret_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_strings(item, f"{path}[{index}]")


def _wait_workflows_done(stack: Stack, timeout: float = 60) -> None:
    """No execution of any state machine still running (their last steps publish and notify)."""
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        running = [
            e["name"]
            for machine in _paginate(sfn, "list_state_machines", "stateMachines")
            for e in _paginate(
                sfn,
                "list_executions",
                "executions",
                stateMachineArn=machine["stateMachineArn"],
                statusFilter="RUNNING",
            )
        ]
        if not running:
            return
        assert time.monotonic() < deadline, f"executions still running: {running}"
        time.sleep(0.3)


def _drive(stack: Stack, taps: list[Tap]) -> list[Desktop]:
    """Provision, reveal, idle, stop, resume and delete; the desktops, with their secrets."""
    idled = Desktop("idled EC2 Linux", {"backend": "ec2", "os": "linux"})
    stopped = Desktop("stopped EC2 Windows", {"backend": "ec2", "os": "windows"})
    container = Desktop("Batch container", {"backend": "batch", "os": "linux"})
    desktops = [idled, stopped, container]
    user = stack.new_user()
    for desktop in desktops:
        resp = user.call("POST", "/sessions", desktop.request)
        assert resp.status_code == 202, resp.text
        desktop.session_id = resp.json()["sessionId"]
    _wait_all_ready(stack, user, desktops, timeout=60)
    for desktop in desktops:
        _learn_secrets(stack, user, desktop)

    # the EC2 Linux desktop is left alone: the idle workflow warns, waits and stops it
    stack.connections(idled.instance_id, 0)
    # the Windows one is stopped by its owner
    resp = user.call("POST", f"/sessions/{stopped.session_id}/stop")
    assert resp.status_code == 202, resp.text
    stack.wait_for(user, stopped.session_id, ("STOPPED",), timeout=30)
    session = stack.wait_for(
        user, idled.session_id, ("STOPPED",), timeout=IDLE_TIMEOUT + GRACE + 40
    )
    assert "no one has used it" in session.get("statusReason", ""), session
    # the idled one is resumed, on its own instance, with its own credentials
    resp = user.call("POST", f"/sessions/{idled.session_id}/start")
    assert resp.status_code == 202, resp.text
    session = stack.wait_for(user, idled.session_id, ("READY", "FAILED"), timeout=40)
    assert session["status"] == "READY", session
    stack.connections(idled.instance_id, 1)
    _learn_secrets(stack, user, idled)

    # every desktop is deleted: READY (EC2 and Batch) and STOPPED alike
    for desktop in desktops:
        resp = user.call("DELETE", f"/sessions/{desktop.session_id}")
        assert resp.status_code == 202, f"delete {desktop.role}: {resp.text}"
    for desktop in desktops:
        stack.wait_for(user, desktop.session_id, ("TERMINATED",), timeout=40)
    _wait_workflows_done(stack)
    drain_until_quiet(taps)
    return desktops


# ------------------------------------------------------------------------- reading what was left
def _read_histories(stack: Stack, corpus: Corpus) -> None:
    """Every execution (its input and output) and every event of its history; each state's input
    and output are also kept apart, where the proof of the scan looks for them."""
    sfn = stack.client("stepfunctions")
    for machine in _paginate(sfn, "list_state_machines", "stateMachines"):
        machine_name = machine["name"]
        executions = _paginate(
            sfn, "list_executions", "executions", stateMachineArn=machine["stateMachineArn"]
        )
        for execution in executions:
            arn, name = execution["executionArn"], execution["name"]
            described = sfn.describe_execution(executionArn=arn)
            described.pop("ResponseMetadata", None)
            corpus.add(HISTORIES, f"execution {name} of {machine_name} (input, output)", described)
            for event in _paginate(sfn, "get_execution_history", "events", executionArn=arn):
                where = f"history of {machine_name} execution {name}, event {event['id']} "
                corpus.add(HISTORIES, where + f"({event['type']})", event)
                details = event.get("stateEnteredEventDetails") or event.get(
                    "stateExitedEventDetails", {}
                )
                for part in ("input", "output"):
                    if part in details:
                        state = details.get("name", "")
                        corpus.add(HISTORIES, where + f"(state {state} {part})", details[part])


def _read_cloudwatch_logs(stack: Stack, corpus: Corpus) -> None:
    logs = stack.client("logs")
    for group in _paginate(logs, "describe_log_groups", "logGroups"):
        name = group["logGroupName"]
        for stream_name, message in log_events(logs, name):
            corpus.add(CLOUDWATCH, f"log group {name}, stream {stream_name}", message)


def _read_files(stack: Stack, corpus: Corpus) -> None:
    for log in (stack.log, stack.log.parent / "local.log"):  # the terminal's, the debug log
        for line in log.read_text(errors="replace").splitlines():
            corpus.add(STACK_LOG, f"the stack's log {log}", line)
    hosts = stack.log.parent / "hosts"
    files = [*hosts.glob("*/agent.log"), *(p for p in hosts.glob("*/ssm/**/*") if p.is_file())]
    for path in files:
        where = f"host file {path.relative_to(hosts)}"
        for line in path.read_text(errors="replace").splitlines():
            corpus.add(HOST_LOGS, where, line)


def _read_messages(taps: list[Tap], corpus: Corpus) -> None:
    for tap in taps:
        category = NOTIFICATIONS if tap.what.startswith("topic") else EVENTS
        for index, body in enumerate(tap.bodies):
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = None
            kind = parsed.get("detail-type", "") if isinstance(parsed, dict) else ""
            where = f"{tap.what}, message {index}" + (f" ({kind})" if kind else "")
            corpus.add(category, where, [body, parsed])


def _read_tables(stack: Stack, corpus: Corpus) -> None:
    dynamodb = stack.client("dynamodb")
    for table in _paginate(dynamodb, "list_tables", "TableNames"):
        for item in _paginate(dynamodb, "scan", "Items", TableName=table):
            key = {k: v for k, v in item.items() if k in ("sessionId", "pk", "sk", "id")}
            corpus.add(TABLES, f"table {table}, item {json.dumps(key)}", item)


def _read_resources(stack: Stack, corpus: Corpus) -> None:
    for command in _paginate(stack.client("ssm"), "list_commands", "Commands"):
        corpus.add(RESOURCES, f"Run Command {command['CommandId']}", command)
    batch = stack.client("batch")
    job_ids: set[str] = set()
    for queue in _paginate(batch, "describe_job_queues", "jobQueues"):
        for status in JOB_STATUSES:
            jobs = batch.list_jobs(jobQueue=queue["jobQueueArn"], jobStatus=status)
            job_ids.update(j["jobId"] for j in jobs["jobSummaryList"])
    ordered = sorted(job_ids)
    for start in range(0, len(ordered), 100):
        for job in batch.describe_jobs(jobs=ordered[start : start + 100])["jobs"]:
            corpus.add(RESOURCES, f"Batch job {job['jobId']} ({job['jobName']})", job)
    ec2 = stack.client("ec2")
    for reservation in _paginate(ec2, "describe_instances", "Reservations"):
        for instance in reservation["Instances"]:
            instance_id = instance["InstanceId"]
            user_data = ec2.describe_instance_attribute(
                InstanceId=instance_id, Attribute="userData"
            )
            encoded = user_data.get("UserData", {}).get("Value", "")
            decoded = base64.b64decode(encoded).decode("utf-8", "replace") if encoded else ""
            corpus.add(RESOURCES, f"instance {instance_id} (tags, user data)", [instance, decoded])


def _read_everything(stack: Stack, taps: list[Tap]) -> Corpus:
    corpus = Corpus()
    _read_histories(stack, corpus)
    _read_cloudwatch_logs(stack, corpus)
    _read_files(stack, corpus)
    _read_messages(taps, corpus)
    _read_tables(stack, corpus)
    _read_resources(stack, corpus)
    return corpus


# ------------------------------------------------------------------------------------ the fixtures
leaks_stack = module_stack("noleaks", PARAMS)


@pytest.fixture(scope="module")
def run(leaks_stack: Stack) -> Run:
    stack = leaks_stack
    # Given observers on every bus (every source) and every topic, before anything happens
    buses = [b["Name"] for b in stack.client("events").list_event_buses()["EventBuses"]]
    assert stack.info["resources"]["FleetBus"] in buses, buses
    topics = [t["TopicArn"] for t in _paginate(stack.client("sns"), "list_topics", "Topics")]
    taps = [tap_bus(stack, bus, i) for i, bus in enumerate(buses)]
    taps += [tap_topic(stack, topic, i) for i, topic in enumerate(topics)]
    # When desktops of every kind are provisioned, revealed, idled, stopped, resumed, deleted
    desktops = _drive(stack, taps)
    # Then everything the stack wrote or sent on the way is read, to be searched
    corpus = _read_everything(stack, taps)
    secrets = {label: text for d in desktops for label, text in d.secrets.items()}
    return Run(stack, desktops, taps, corpus, needles(secrets))


# --------------------------------------------------------------------------------------- the tests
def test_the_scanner_finds_a_password_in_every_form_a_leak_could_take() -> None:
    # Given a password as the control plane makes them (24 characters, every type)
    password = "aB3#kL9!mN2@pQ7%rS5^tU8&"
    found = needles({"password of session s-1": password})
    blob = base64.b64encode(b'{"user": "x", "password": "' + password.encode() + b'"}').decode()
    # When it is hidden in each way a log line, an event or a history could hold it
    leaked = {
        "a log line": f"INFO creds {password} for s-1",
        "a JSON event": json.dumps({"detail": {"p": password}}),
        "JSON inside JSON": json.dumps({"input": json.dumps({"p": password})}),
        "a URL": "https://host/?p=" + urllib.parse.quote(password, safe=""),
        "a base64 blob": blob,
        "a URL-safe base64 blob at offset 1": base64.urlsafe_b64encode(b"x" + password.encode())
        .decode()
        .rstrip("="),
        "an HTML-safe JSON body": json.dumps(password).replace("&", "\\u0026"),
    }
    # Then the scan finds it in each, naming where and which secret, never showing it
    for where, text in leaked.items():
        found_here = hits([(where, text)], found)
        assert found_here, f"the scanner misses a password in {where}"
        assert all(password not in hit for hit in found_here)
    assert hits([("a clean line", "INFO session s-1 READY")], found) == []


class _Queue:
    """SQS as a tap uses it, in memory: one queue, its messages received in batches of ten."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.lock = threading.Lock()

    def create_queue(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"https://sqs/{QueueName}"}

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:123456789012:q"}}

    def send(self, body: str) -> None:
        with self.lock:
            self.messages.append(body)

    def receive_message(self, **_: Any) -> dict[str, Any]:
        with self.lock:
            batch, self.messages = self.messages[:10], self.messages[10:]
        return {"Messages": [{"Body": b, "ReceiptHandle": b} for b in batch]}

    def delete_message(self, **_: Any) -> None:
        pass


def test_the_taps_are_drained_until_quiet_so_a_late_message_is_read() -> None:
    # Given a tap, and a message that comes a second after the tap is first found empty
    queue = _Queue()
    tap = Tap(queue, "late", "bus late")
    late = threading.Timer(1.0, queue.send, args=("late event",))
    late.start()
    try:
        # When it is drained
        drain_until_quiet([tap], quiet=2.0, timeout=10)
    finally:
        late.join()
    # Then the late message was read
    assert tap.bodies == ["late event"]


def test_the_scan_reads_every_category_and_sees_every_session_in_it(run: Run) -> None:
    # Given the lifecycle has run and everything was read
    counts = run.corpus.counts()
    print(f"scanned for {len(run.needles)} secret forms: {json.dumps(counts, indent=1)}")
    # Then no category is empty, so no clean result is a vacuous one
    for category in (HISTORIES, CLOUDWATCH, STACK_LOG, HOST_LOGS, EVENTS, NOTIFICATIONS, TABLES):
        assert counts.get(category, 0) > 0, f"nothing read from {category}: {counts}"
    assert counts.get(RESOURCES, 0) > 0, f"nothing read from {RESOURCES}: {counts}"
    # And each session id (meant to be everywhere) is found in each main category: the same
    # search that finds no password finds what is there
    for category in (HISTORIES, CLOUDWATCH, EVENTS, NOTIFICATIONS, TABLES):
        texts = [text for _, text in run.corpus.of(category)]
        for desktop in run.desktops:
            seen = any(desktop.session_id in text for text in texts)
            assert seen, f"the {desktop.role} session id is nowhere in {category}"
    # And in the workflows' state inputs and outputs themselves (not only in the executions'
    # names, which hold it too)
    for part in ("input", "output"):
        texts = [text for where, text in run.corpus.of(HISTORIES) if where.endswith(f" {part})")]
        assert texts, f"no workflow state {part} was read"
        for desktop in run.desktops:
            seen = any(desktop.session_id in text for text in texts)
            assert seen, f"the {desktop.role} session id is in no workflow state {part}"
    # And the bus taps saw both sources of the fleet bus, the control plane's and the agents'
    sources = {json.loads(body).get("source") for tap in run.taps for body in tap.bodies}
    assert {"dcvfleet", "dcvfleet.agent"} <= sources, sources
    # And every desktop had a password to look for
    for desktop in run.desktops:
        assert any(label.startswith("password") for label in desktop.secrets), desktop.role


def test_no_workflow_execution_or_history_holds_a_session_secret(run: Run) -> None:
    # Given every execution of every state machine, its input, output and every history event
    # Then no session secret is in any of them
    assert_no_secret(run, HISTORIES)


def test_no_log_line_holds_a_session_secret(run: Run) -> None:
    # Given every line of every CloudWatch Logs group and stream (every function, the Batch jobs'
    # containers, the release builds), the local stack's own log and the hosts' agent logs
    # Then no session secret is in any of them
    assert_no_secret(run, CLOUDWATCH, STACK_LOG, HOST_LOGS)


def test_no_published_event_or_notification_holds_a_session_secret(run: Run) -> None:
    # Given every event put on every bus (control plane, agents, AWS) and every SNS notification
    # Then no session secret is in any of them
    assert_no_secret(run, EVENTS, NOTIFICATIONS)


def test_no_table_item_holds_a_session_secret(run: Run) -> None:
    # Given every item of every DynamoDB table (the sessions, their counts, the releases)
    # Then no session secret is in any of them
    assert_no_secret(run, TABLES)


def test_no_run_command_batch_job_or_instance_holds_a_session_secret(run: Run) -> None:
    # Given every Run Command (its parameters), every Batch job (its environment, command) and
    # every instance (its tags and user data)
    # Then no session secret is in any of them
    assert_no_secret(run, RESOURCES)


def test_deleted_desktops_leave_no_secret_behind(run: Run) -> None:
    sm = run.stack.client("secretsmanager")
    # Given every desktop deleted (TERMINATED)
    # When Secrets Manager is asked for every secret, those scheduled for deletion included
    listed = list(_paginate(sm, "list_secrets", "SecretList", IncludePlannedDeletion=True))
    for desktop in run.desktops:
        name = f"{SECRET_PREFIX}{desktop.session_id}"
        # Then none is the desktop's, by name, ARN or session tag
        left = [
            f"{s['Name']} (deleted {s.get('DeletedDate', 'no')})"
            for s in listed
            if s["Name"] == name
            or s["ARN"] == desktop.secret_arn
            or {"Key": SESSION_TAG, "Value": desktop.session_id} in s.get("Tags", [])
        ]
        assert left == [], f"the {desktop.role} desktop left its secret: {left}"
        # And its value cannot be read any more, by name or by ARN
        for secret_id in (name, desktop.secret_arn):
            with pytest.raises(ClientError) as refused:
                sm.get_secret_value(SecretId=secret_id)
            code = refused.value.response["Error"]["Code"]
            assert code == "ResourceNotFoundException", f"{desktop.role}: {code}"
