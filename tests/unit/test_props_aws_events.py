"""Property-based tests (hypothesis) of the consumers of AWS's own events and of the envelope
validator: generated and garbled events get an answer, never a crash, and never change a record
they should not change.

* ``dcvfleet.events.validate_envelope``: any JSON value is None (valid) or a reason naming the
  field, never an exception.
* ``InstanceStateFunction`` (``handlers.lifecycle.instance_state``, ``EC2 Instance State-change
  Notification``) and ``JobStateFunction`` (``handlers.lifecycle.job_state``, ``Batch Job State
  Change``). Their contract: every event gets ``{"outcome": ...}``; one that is not the
  notification the function consumes is ``{"outcome": "rejected", "reason": ...}`` and changes
  nothing; a notification only ever changes the record of the desktop on that instance (running
  that job), along the lifecycle's transitions, and starts no workflow for any other.

The consumers run in-process against moto (DynamoDB with the sessions table of template.yaml,
EC2, Batch, Step Functions, Secrets Manager), with the local stack's own Batch job simulation
(``local.emulator.batch.batch_job_patches``) and with DynamoDB's key size limit, which moto does not
check on reads. Events are made from the samples in ``events/samples`` (AWS's events have AWS's
schemas, not ours); ids of the desktops, instances and jobs that exist are drawn as placeholders
(``known``) and resolved against the world seeded for each example.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC
from types import ModuleType
from typing import Any

import boto3
import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from dcvfleet import events
from dcvfleet.adapters import SESSION_TAG, BatchJobs
from dcvfleet.aws import client
from dcvfleet.model import TRANSITIONS, Session, Status
from dcvfleet.store import DynamoSessionStore
from local.emulator import batch
from local.emulator.hooks import SimulatorHooks
from tests.support.properties import (
    ACCOUNT,
    BATCH_DETAIL_TYPE,
    BATCH_SOURCE,
    EC2_DETAIL_TYPE,
    EC2_DOWN,
    EC2_SOURCE,
    EC2_STATES,
    ENV,
    IDLE_MACHINE,
    IMAGE,
    JOB_ENDED,
    JOB_QUEUE,
    JOB_STATUSES,
    PROVISION_MACHINE,
    REGION,
    SAMPLES,
    SIMULATED_JOB_STATES,
    STACK,
    TABLE,
    LambdaContext,
    dynamodb_key_size_limit,
    examples,
    garbled_envelope,
    json_values,
    known,
    not_the_notification,
    odd_ids,
    put_session,
    sample,
)
from tests.support.sessions import a_session
from tests.support.tables import create_table

#: Powertools' log_metrics warns on every invocation that records no metric (most of them).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

#: What EC2 takes for an instance id.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def ec2_malformed_ids() -> list[tuple[Any, str, Any]]:
    """EC2 answers ``InvalidInstanceID.Malformed`` to a DescribeInstances naming something that
    is no instance id; moto looks it up and echoes it in its XML answer, which a control
    character makes unreadable. A replacement of moto's DescribeInstances that answers as EC2."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.describe_instances

    def describe_instances(self: Any) -> Any:
        for instance_id in self._get_param("InstanceIds", []):
            if not INSTANCE_ID.fullmatch(instance_id):
                shown = json.dumps(instance_id[:64])  # no control character unescaped
                raise EC2ClientError("InvalidInstanceID.Malformed", f"Invalid id: {shown}")
        return original(self)

    return [(InstanceResponse, "describe_instances", describe_instances)]


def envelopes(name: str, details: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Sample ``name`` around generated details, with its id, time and resources as AWS sets
    them (the resource is the detail's ``instance-id``'s instance, or its ``jobArn``)."""

    def build(detail: dict[str, Any], event_id: uuid.UUID, at: int) -> dict[str, Any]:
        envelope = sample(name)
        if "instance-id" in detail:
            resource = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{detail['instance-id']}"
        else:
            resource = detail["jobArn"]
        envelope.update(
            id=str(event_id),
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            resources=[resource],
            detail=detail,
        )
        return envelope

    return st.builds(build, details, st.uuids(), st.integers(1_700_000_000, 1_900_000_000))


# -- the seeded world -----------------------------------------------------------------------------
#: EC2 desktops: role -> (the record's status, the instance's real state).
EC2_DESKTOPS: dict[str, tuple[Status, str]] = {
    "ready": (Status.READY, "running"),
    "ready-stopped-outside": (Status.READY, "stopped"),  # by its owner, in the EC2 console
    "ready-terminated-outside": (Status.READY, "terminated"),
    "provisioning": (Status.PROVISIONING, "running"),
    "stopping": (Status.STOPPING, "stopped"),
    "stopped": (Status.STOPPED, "stopped"),
    "terminating": (Status.TERMINATING, "terminated"),
    "terminated": (Status.TERMINATED, "terminated"),
}
#: Instances no record names: one tagged for a session that has no record, one tagged for the
#: READY desktop but not its instance, one without the session tag.
STRAY_INSTANCES = ("orphan", "imposter", "untagged")
#: Batch desktops: role -> (the record's status, whether the record has its job id yet).
BATCH_DESKTOPS: dict[str, tuple[Status, bool]] = {
    "b-provisioning": (Status.PROVISIONING, True),
    "b-submitting": (Status.PROVISIONING, False),
    "b-ready": (Status.READY, True),
    "b-terminating": (Status.TERMINATING, True),
    "b-terminated": (Status.TERMINATED, True),
}
#: Jobs no record runs: one named for a session that has no record, the READY desktop's
#: previous job (its name), one that is not a desktop's.
STRAY_JOBS = ("b-orphan", "b-previous", "b-foreign")
JOB_NAMES = {"b-previous": known("jobName", "b-ready"), "b-foreign": "nightly-render"}


@dataclass(repr=False)
class World:
    """moto holding the fleet: the sessions table, instances, jobs, the workflows.

    Each example starts from the same records (``seed``): only what the previous example changed
    is written back, and what the consumer asks of Step Functions is recorded as it is asked
    (moto answers a repeated StartExecution with the execution it already has)."""

    handlers: ModuleType
    ddb: Any
    batch: Any
    session_ids: dict[str, str]
    instance_ids: dict[str, str]
    secret_arns: dict[str, str]
    #: Batch desktop or stray job role -> simulated state -> a job of that role in that state.
    jobs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The job each batch role has in the current example.
    job_ids: dict[str, str] = field(default_factory=dict)
    #: The seeded records and counters, as stored, by key; and the table as last seen.
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (operation, parameters) of every Step Functions call of the current run.
    workflow_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Session id -> how far its seeded version is moved on: an execution named after a version
    #: (``<session>-external-<version>``) is never started twice with another input, as on AWS,
    #: where versions only grow.
    bumps: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:  # a failure report shows the ids, not every stored item
        return f"World(sessions={self.session_ids}, instances={self.instance_ids})"

    @property
    def store(self) -> DynamoSessionStore:
        return DynamoSessionStore(self.ddb, TABLE)

    # -- setting up ----------------------------------------------------------------------------
    def create(self) -> None:
        """The records (the batch desktops' naming a RUNNING job)."""
        self.job_ids = {role: self.job(role, "RUNNING") for role in [*BATCH_DESKTOPS, *STRAY_JOBS]}
        for role, (status, _) in EC2_DESKTOPS.items():
            session = self._session(role, status, "ec2")
            put_session(self.store, replace(session, instance_id=self.instance_ids[role]))
        for role, (status, has_job) in BATCH_DESKTOPS.items():
            session = self._session(role, status, "batch")
            job_id = self.job_ids[role] if has_job else None
            put_session(self.store, replace(session, job_id=job_id))
        self.baseline = self.current = self.table()

    def _session(self, role: str, status: Status, backend: str) -> Session:
        return a_session(
            self.session_ids[role],
            owner=f"owner-{role}",
            backend=backend,
            instance_type="g5.xlarge" if backend == "ec2" else "GPU",
            status=status,
            updated_at="2026-11-22T03:05:00.000Z",
            version=7,
            secret_arn=self.secret_arns[role],
            task_token=f"token-{role}" if status == Status.PROVISIONING else None,
            ready_at=None if status == Status.PROVISIONING else "2026-11-22T03:04:00.000Z",
            extra={"username": role},
        )

    def job(self, role: str, state: str) -> str:
        """The job of ``role`` (a batch desktop's or a stray one) in ``state``: made the first
        time, put in that state by the simulation."""
        made = self.jobs.setdefault(role, {})
        if state not in made:
            made[state] = self._new_job(role, state)
        return made[state]

    def _new_job(self, role: str, state: str) -> str:
        name = self.resolve(JOB_NAMES.get(role, known("jobName", role)))
        job_id: str = self.batch.submit_job(
            jobName=name, jobQueue=JOB_QUEUE, jobDefinition="desktop"
        )["jobId"]
        job = next(j for j in batch.batch_jobs() if j.job_id == job_id)
        deadline = time.monotonic() + 30
        while job.status != "RUNNABLE":  # the simulation's Job.run, on the job's own thread
            assert time.monotonic() < deadline, f"job {job_id} never became RUNNABLE"
            time.sleep(0.001)
        if state in ("STARTING", "RUNNING", *JOB_ENDED):
            cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
            batch.job_started(
                job,
                container_instance_arn=f"{cluster}:container-instance/desktops/{job_id[:8]}",
                task_arn=f"{cluster}:task/desktops/{job_id.replace('-', '')}",
                log_stream=f"desktop/{job_id}",
            )
        if state in ("RUNNING", *JOB_ENDED):
            batch.job_running(job)
        if state in JOB_ENDED:
            code = 0 if state == "SUCCEEDED" else 67
            batch.job_ended(job, reason=batch.CONTAINER_EXITED, exit_code=code, succeeded=code == 0)
        return job_id

    # -- per example ---------------------------------------------------------------------------
    def seed(self, job_states: dict[str, str] | None = None) -> None:
        """The seeded records again; with ``job_states`` (role -> state), each batch role's job
        is its job in that state (the batch desktops' records name it)."""
        wanted = dict(self.baseline)
        for key, bump in self.bumps.items():
            version = int(wanted[key]["version"]["N"]) + bump
            wanted[key] = {**wanted[key], "version": {"N": str(version)}}
        if job_states is not None:
            self.job_ids = {role: self.job(role, state) for role, state in job_states.items()}
            for role, (_, has_job) in BATCH_DESKTOPS.items():
                key = self.session_ids[role]
                if has_job:
                    wanted[key] = {**wanted[key], "jobId": {"S": self.job_ids[role]}}
        for key in set(wanted) | set(self.current):
            if key not in wanted:
                self.ddb.delete_item(TableName=TABLE, Key={"pk": {"S": key}})
            elif self.current.get(key) != wanted[key]:
                self.ddb.put_item(TableName=TABLE, Item=wanted[key])
        self.current = wanted

    def resolve(self, value: Any) -> Any:
        """``value`` with every placeholder (``known``) replaced by the id it stands for."""
        if isinstance(value, str):
            if "@@" not in value:
                return value
            for role, session_id in self.session_ids.items():
                value = value.replace(known("session", role), session_id)
                value = value.replace(known("jobName", role), BatchJobs.name_for(session_id))
            for role, instance_id in self.instance_ids.items():
                value = value.replace(known("instance", role), instance_id)
            for role, job_id in self.job_ids.items():
                value = value.replace(known("job", role), job_id)
            return value
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    # -- what is observed ----------------------------------------------------------------------
    @staticmethod
    def table() -> dict[str, dict[str, Any]]:
        """Every item of the sessions table (records and per-user counters), by key, as stored
        (read from moto's backend: a Scan's answer would take most of each example's time)."""
        table = dynamodb_backends[ACCOUNT][REGION].get_table(TABLE)
        items = [item.to_json()["Attributes"] for item in table.all_items()]
        return {item["pk"]["S"]: item for item in items}

    def role_of(self, session_id: str) -> str:
        return next(role for role, sid in self.session_ids.items() if sid == session_id)

    def _record_workflow_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.workflow_calls.append((model.name, params))

    def run(self, handler: str, event: Any) -> Observed:
        """``handler``'s answer to ``event`` and what it changed."""
        before = self.current
        self.workflow_calls = []
        client("stepfunctions").meta.events.register(
            "before-parameter-build.sfn",
            self._record_workflow_call,
            unique_id="props-workflow-calls",
        )
        try:
            answer = getattr(self.handlers, handler)(event, LambdaContext())
        finally:
            self.current = self.table()
            for operation, params in self.workflow_calls:
                if operation == "StartExecution":
                    key = params["name"].split("-external-")[0]
                    self.bumps[key] = self.bumps.get(key, 0) + 10
        return Observed(answer, before, self.current, list(self.workflow_calls))


@dataclass(frozen=True)
class Observed:
    answer: Any
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]
    workflow_calls: list[tuple[str, dict[str, Any]]]

    @property
    def changed(self) -> set[str]:
        """The keys of the items the call wrote (records and per-user counters)."""
        keys = set(self.before) | set(self.after)
        return {k for k in keys if self.before.get(k) != self.after.get(k)}

    @property
    def started(self) -> list[str]:
        """The names of the workflow executions the call started."""
        return [p["name"] for op, p in self.workflow_calls if op == "StartExecution"]

    @property
    def failed_tasks(self) -> list[str]:
        """The task tokens of the waiting workflows the call failed."""
        return [p["taskToken"] for op, p in self.workflow_calls if op == "SendTaskFailure"]

    def status(self, session_id: str, when: str = "after") -> Status:
        return Status(getattr(self, when)[session_id]["status"]["S"])


def _create_fleet(clients: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The fleet's workflows, job queue and job definition, its desktops' secrets and instances
    (in their real states) and the stray instances; the ids of each, by role."""
    ec2, batch, sfn = clients["ec2"], clients["batch"], clients["stepfunctions"]
    role = clients["iam"].create_role(RoleName="props", AssumeRolePolicyDocument="{}")["Role"]
    for machine in (IDLE_MACHINE, PROVISION_MACHINE):
        definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
        sfn.create_state_machine(
            name=machine.rsplit(":", 1)[1], definition=json.dumps(definition), roleArn=role["Arn"]
        )
    compute = batch.create_compute_environment(
        computeEnvironmentName="desktops",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Arn"],
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName=JOB_QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute}],
    )
    batch.register_job_definition(
        jobDefinitionName="desktop",
        type="container",
        containerProperties={"image": "dcvfleet-desktop:1", "vcpus": 4, "memory": 16384},
    )
    roles = [*EC2_DESKTOPS, *BATCH_DESKTOPS, "orphan", "b-orphan"]
    session_ids = {r: str(uuid.uuid4()) for r in roles}
    secret_arns = {
        r: clients["secretsmanager"].create_secret(
            Name=f"dcvfleet/sessions/{session_ids[r]}", SecretString="{}"
        )["ARN"]
        for r in [*EC2_DESKTOPS, *BATCH_DESKTOPS]
    }
    tagged = {r: session_ids[r] for r in EC2_DESKTOPS}
    tagged.update(orphan=session_ids["orphan"], imposter=session_ids["ready"])
    instance_ids: dict[str, str] = {}
    for name in [*EC2_DESKTOPS, *STRAY_INSTANCES]:
        tags = [{"Key": "dcvfleet:fleet", "Value": STACK}]
        if name in tagged:
            tags.append({"Key": SESSION_TAG, "Value": tagged[name]})
        launched = ec2.run_instances(
            ImageId=IMAGE,
            MinCount=1,
            MaxCount=1,
            InstanceType="g5.xlarge",
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        instance_ids[name] = launched["Instances"][0]["InstanceId"]
    for name, (_, state) in EC2_DESKTOPS.items():
        if state == "stopped":
            ec2.stop_instances(InstanceIds=[instance_ids[name]])
        elif state == "terminated":
            ec2.terminate_instances(InstanceIds=[instance_ids[name]])
    return {"session": session_ids, "instance": instance_ids, "secret": secret_arns}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    services = ("dynamodb", "ec2", "batch", "iam", "stepfunctions", "secretsmanager")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for key, value in ENV.items():
            patch.setenv(key, value)
        for owner, name, replacement in [
            *batch.batch_job_patches(SimulatorHooks()),
            *ec2_malformed_ids(),
        ]:
            patch.setattr(owner, name, replacement)
        for name, replacement in dynamodb_key_size_limit().items():
            patch.setattr(DynamoDBBackend, name, replacement)
        clients = {s: boto3.client(s, region_name=REGION) for s in services}
        create_table(clients["dynamodb"], "SessionsTable", TABLE)
        ids = _create_fleet(clients)
        sys.modules.pop("dcvfleet.handlers.lifecycle", None)
        world = World(
            handlers=importlib.import_module("dcvfleet.handlers.lifecycle"),
            ddb=clients["dynamodb"],
            batch=clients["batch"],
            session_ids=ids["session"],
            instance_ids=ids["instance"],
            secret_arns=ids["secret"],
        )
        world.create()
        yield world
    sys.modules.pop("dcvfleet.handlers.lifecycle", None)


# -- what every answer must satisfy ---------------------------------------------------------------
def reachable(start: Status, end: Status, steps: int = 2) -> bool:
    """Whether the lifecycle goes from ``start`` to ``end`` in one to ``steps`` transitions."""
    frontier = {start}
    for _ in range(steps):
        frontier = {n for s in frontier for n in TRANSITIONS[s]}
        if end in frontier:
            return True
    return False


def assert_answered(seen: Observed) -> str:
    """The answer is ``{"outcome": ...}``; a rejection says why and changed nothing."""
    answer = seen.answer
    assert isinstance(answer, dict), answer
    outcome = answer.get("outcome")
    assert isinstance(outcome, str), answer
    assert outcome.strip(), answer
    if outcome == "rejected":
        assert isinstance(answer.get("reason"), str), answer
        assert answer["reason"].strip(), answer
        assert seen.changed == set(), "a rejected event changed the sessions table"
        assert seen.workflow_calls == [], "a rejected event started or answered a workflow"
    return outcome


def assert_only_its_desktop_changed(seen: Observed, world: World, owner: str | None) -> None:
    """Only the record of ``owner`` (a session id, or None: no record is the event's) and its
    owner's counter changed, along the lifecycle; a workflow was started only for it, by the
    write that recorded it (the idle workflow for an outside stop or termination)."""
    allowed = set()
    if owner is not None:
        allowed = {owner, f"user#owner-{world.role_of(owner)}"}
    assert seen.changed <= allowed, f"changed {seen.changed - allowed} (the event's: {owner})"
    for name in seen.started:
        assert owner is not None, f"started {name} for an event that is no desktop's"
        assert name.startswith(f"{owner}-external-"), name
        assert seen.after[owner]["idleCheck"]["S"] == name
    if owner in seen.changed:
        before, after = seen.status(owner, "before"), seen.status(owner)
        assert before == after or reachable(before, after), f"{before} -> {after}"
        version = int(seen.after[owner]["version"]["N"])
        assert version > int(seen.before[owner]["version"]["N"])


# -- dcvfleet.events.validate_envelope -------------------------------------------------------------
#: The samples of the events the validator knows (the fleet's own and its agent's).
KNOWN_SAMPLES = sorted(
    path.name
    for path in SAMPLES.glob("*.json")
    if (sample(path.name).get("source"), sample(path.name).get("detail-type"))
    in events.DETAIL_SCHEMAS
)
#: What a reason starts with: the field it names.
REASON_FIELDS = ("event:", "source:", "detail-type:", "source/detail-type:", "detail:", "detail.")


def expected_valid(event: Any) -> bool:
    """The envelope's rules, written out: an object whose string source and detail-type name a
    known event, and whose detail is valid for that event's schema."""
    if not isinstance(event, dict) or not {"source", "detail-type", "detail"} <= set(event):
        return False
    key = (event["source"], event["detail-type"])
    if not all(isinstance(part, str) for part in key) or key not in events.DETAIL_SCHEMAS:
        return False
    return bool(
        jsonschema.Draft202012Validator(events.schema(events.DETAIL_SCHEMAS[key])).is_valid(
            event["detail"]
        )
    )


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for ``schema``, in the part of JSON Schema that events/schemas/ uses (type,
    enum, const, properties, required, items, pattern, lengths, bounds; a date-time format)."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": one}) for one in kind])
    if kind == "object":
        properties, required = schema.get("properties", {}), schema.get("required", [])
        return st.fixed_dictionaries(
            {name: from_schema(properties[name]) for name in required},
            optional={n: from_schema(p) for n, p in properties.items() if n not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=schema.get("maxItems", 3))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum")
        if kind == "integer":
            low = None if low is None else int(low) + ("exclusiveMinimum" in schema)
            return st.integers(min_value=low, max_value=high)
        return st.floats(
            min_value=low,
            max_value=high,
            exclude_min="exclusiveMinimum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    low, high = schema.get("minLength", 0), schema.get("maxLength", 60)
    if "pattern" in schema:
        text = st.from_regex(schema["pattern"])
    elif schema.get("format") == "date-time":
        text = st.datetimes(timezones=st.just(UTC)).map(lambda at: at.isoformat())
    else:
        text = st.text(min_size=low, max_size=high)
    return text.filter(lambda value: low <= len(value) <= high)


#: The fleet's and its agent's events: their samples, and envelopes around generated details
#: valid for their schemas.
known_events = st.one_of(
    st.sampled_from(KNOWN_SAMPLES).map(sample),
    st.sampled_from(sorted(events.DETAIL_SCHEMAS)).flatmap(
        lambda key: from_schema(events.schema(events.DETAIL_SCHEMAS[key])).map(
            lambda detail: {"source": key[0], "detail-type": key[1], "detail": detail}
        )
    ),
)


@examples(80)
@given(
    event=st.one_of(
        json_values(max_leaves=30), known_events, known_events.flatmap(garbled_envelope)
    )
)
def test_validate_envelope_answers_none_or_a_reason_naming_the_field_for_any_json_value(
    event: Any,
) -> None:
    # Given any JSON value: an object or not, a known event (its sample, or generated from its
    # schema), garbled or not
    # When the validator checks it
    reason = events.validate_envelope(event)
    # Then it answers (never raises): None exactly for a valid event, else a reason that starts
    # with the field it names
    assert reason is None or isinstance(reason, str)
    assert (reason is None) == expected_valid(event), reason
    if reason is not None:
        assert reason.startswith(REASON_FIELDS), reason


@examples(30)
@given(event=known_events)
def test_every_event_made_from_its_schema_is_valid(event: dict[str, Any]) -> None:
    # Given an event of the fleet or its agent, its detail generated from its schema
    # When the validator checks it
    # Then it is valid (the generator above makes what the schemas describe, so the garbled
    # events made from them are garbled only where they were garbled)
    assert events.validate_envelope(event) is None


# -- InstanceStateFunction: EC2 Instance State-change Notification --------------------------------
EC2_SAMPLE = "ec2-instance-state-change.json"
#: The instances of the world, and ones that do not exist.
instance_ids = st.one_of(
    st.sampled_from([*EC2_DESKTOPS, *STRAY_INSTANCES]).map(lambda role: known("instance", role)),
    st.from_regex(r"\Ai-[0-9a-f]{17}\Z"),
)
ec2_notifications = envelopes(
    EC2_SAMPLE,
    st.fixed_dictionaries({"instance-id": instance_ids, "state": st.sampled_from(EC2_STATES)}),
)
not_ec2_notifications = ec2_notifications.flatmap(
    lambda e: not_the_notification(e, EC2_SOURCE, EC2_DETAIL_TYPE, ("instance-id", "state"))
)


def instance_owner(world: World, event: Any) -> str | None:
    """The session whose record is on the event's instance (and which the instance's tag
    names), if any."""
    detail = event.get("detail") if isinstance(event, dict) else None
    target = detail.get("instance-id") if isinstance(detail, dict) else None
    for role in EC2_DESKTOPS:
        if world.instance_ids[role] == target:
            return world.session_ids[role]
    return None


def instance_state(world: World, event: Any) -> Observed:
    """InstanceStateFunction's answer to ``event`` (its placeholders resolved) and what it did;
    the invariants every answer keeps checked."""
    seen = world.run("instance_state", event)
    assert_answered(seen)
    owner = instance_owner(world, event)
    assert_only_its_desktop_changed(seen, world, owner)
    assert seen.failed_tasks == [], "a waiting workflow was failed on an EC2 event"
    detail = event.get("detail") if isinstance(event, dict) else None
    if owner in seen.changed:
        assert isinstance(detail, dict)
        # nothing here starts an instance, and a manual stop is never undone
        assert detail["state"] in EC2_DOWN, detail
        assert seen.status(owner) not in (Status.READY, Status.PROVISIONING)
        # a notification delivered late (the instance runs again) changes nothing
        assert EC2_DESKTOPS[world.role_of(owner)][1] not in ("pending", "running"), detail
    return seen


@examples(50)
@given(event=ec2_notifications)
def test_an_ec2_notification_is_never_rejected_and_changes_only_the_desktop_on_its_instance(
    world: World, event: dict[str, Any]
) -> None:
    # Given the fleet's desktops, in every status, on their instances, and stray instances
    world.seed()
    event = world.resolve(event)
    # When EC2 says an instance (the fleet's, a stray one, one that does not exist) changed state
    seen = instance_state(world, event)
    # Then it is answered, not rejected; only the desktop on that instance may change, and
    # only as the lifecycle allows
    assert seen.answer["outcome"] != "rejected", seen.answer
    # and a READY desktop whose instance really was stopped or terminated outside DCV Fleet,
    # when EC2 says so, is handed to the idle workflow (which records, publishes and notifies)
    owner, state = instance_owner(world, event), event["detail"]["state"]
    if owner is not None and seen.status(owner, "before") == Status.READY:
        real = EC2_DESKTOPS[world.role_of(owner)][1]
        if real == "stopped" and state in ("stopping", "stopped"):
            assert seen.status(owner) == Status.STOPPING
            assert len(seen.started) == 1, seen.started
        if real == "terminated" and state in ("shutting-down", "terminated"):
            assert seen.status(owner) == Status.TERMINATING
            assert len(seen.started) == 1, seen.started


@examples(40)
@given(event=not_ec2_notifications)
@example(event=None)  # regression: AttributeError ('NoneType' object has no attribute 'get')
@example(  # regression: any detail-type was taken for a state change
    event=sample(EC2_SAMPLE)
    | {
        "detail-type": "EC2 Instance Rebalance Recommendation",
        "detail": {"instance-id": known("instance", "ready"), "state": "stopped"},
    }
)
def test_an_event_that_is_not_an_ec2_notification_is_rejected_and_changes_nothing(
    world: World, event: Any
) -> None:
    # Given the fleet's desktops
    world.seed()
    # When InstanceStateFunction gets something that is not an instance's state change: no
    # object, another source or detail-type, no detail object, no string instance-id or state
    seen = instance_state(world, world.resolve(event))
    # Then it is rejected with a reason, and nothing is written or started
    assert seen.answer["outcome"] == "rejected", seen.answer
    assert seen.changed == set()
    assert seen.workflow_calls == []


@examples(60)
@given(
    event=st.one_of(
        ec2_notifications.flatmap(garbled_envelope),
        ec2_notifications.flatmap(lambda e: odd_ids(e, {"instance-id": str})),
    )
)
def test_a_garbled_ec2_notification_is_answered_and_changes_at_most_the_desktop_it_names(
    world: World, event: Any
) -> None:
    # Given the fleet's desktops
    world.seed()
    # When a notification arrives with a field missing, of the wrong type, huge or odd text,
    # extra fields, or not as an object
    # Then it is answered (rejected with a reason, or an outcome), never a crash, and at most
    # the desktop on the instance it names changes, along the lifecycle
    instance_state(world, world.resolve(event))


@examples(20)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([*EC2_DESKTOPS, *STRAY_INSTANCES]), st.sampled_from(EC2_STATES)),
        min_size=2,
        max_size=4,
    )
)
def test_ec2_notifications_in_any_order_only_move_desktops_along_their_lifecycle(
    world: World, steps: list[tuple[str, str]]
) -> None:
    # Given the fleet's desktops
    world.seed()
    template = sample(EC2_SAMPLE)
    for role, state in steps:
        # When notifications about their instances arrive in any order (late, repeated,
        # contradicting each other)
        event = world.resolve(
            {**template, "detail": {"instance-id": known("instance", role), "state": state}}
        )
        # Then each is answered and moves at most its own desktop one way along the lifecycle,
        # never back to READY or PROVISIONING
        instance_state(world, event)


# -- JobStateFunction: Batch Job State Change -----------------------------------------------------
BATCH_SAMPLE = "batch-job-state-change.json"
JOB_ROLES = (*BATCH_DESKTOPS, *STRAY_JOBS)
#: (jobId, jobName) of the world's jobs, as Batch names them, and of jobs that do not exist.
job_refs = st.one_of(
    st.sampled_from(JOB_ROLES).map(
        lambda role: (known("job", role), JOB_NAMES.get(role, known("jobName", role)))
    ),
    st.uuids().map(lambda u: (str(u), BatchJobs.name_for(str(uuid.uuid5(u, "session"))))),
)
#: Each role's job's real state in an example (independent of what the event says).
job_states = st.fixed_dictionaries(
    {role: st.sampled_from(SIMULATED_JOB_STATES) for role in JOB_ROLES}
)


def job_detail(ref: tuple[str, str], status: str) -> dict[str, Any]:
    """The sample's detail for job ``ref`` in ``status`` (which need not be the job's)."""
    job_id, name = ref
    detail: dict[str, Any] = sample(BATCH_SAMPLE)["detail"]
    detail.update(
        jobId=job_id,
        jobName=name,
        jobArn=f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}",
        jobQueue=f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{JOB_QUEUE}",
        status=status,
    )
    return detail


job_notifications = envelopes(
    BATCH_SAMPLE, st.builds(job_detail, job_refs, st.sampled_from(JOB_STATUSES))
)
not_job_notifications = job_notifications.flatmap(
    lambda e: not_the_notification(e, BATCH_SOURCE, BATCH_DETAIL_TYPE, ("jobId", "jobName"))
)
#: A jobId and jobName that do not go together (Batch never sends that).
mismatched_jobs = st.builds(
    lambda id_role, name_role, status: envelopes(
        BATCH_SAMPLE,
        st.just(job_detail((known("job", id_role), known("jobName", name_role)), status)),
    ),
    st.sampled_from(JOB_ROLES),
    st.sampled_from(list(BATCH_DESKTOPS)),
    st.sampled_from(JOB_STATUSES),
).flatmap(lambda strategy: strategy)


#: A job's id and name made from odd text (the name: a desktop's, or any).
ODD_JOB_IDS: dict[str, Callable[[str], str]] = {
    "jobId": str,
    "jobName": BatchJobs.name_for,
    "jobArn": str,
}


def job_owner(world: World, event: Any) -> str | None:
    """The session whose record runs the event's job (its id, under its name), if any."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return None
    for role, (_, has_job) in BATCH_DESKTOPS.items():
        session_id = world.session_ids[role]
        if (
            has_job
            and detail.get("jobId") == world.job_ids[role]
            and detail.get("jobName") == BatchJobs.name_for(session_id)
        ):
            return session_id
    return None


def job_state(world: World, event: Any, states: dict[str, str]) -> Observed:
    """JobStateFunction's answer to ``event`` and what it did, its jobs in ``states``; the
    invariants every answer keeps checked."""
    seen = world.run("job_state", event)
    assert_answered(seen)
    owner = job_owner(world, event)
    assert_only_its_desktop_changed(seen, world, owner)
    if owner in seen.changed or seen.started:
        # the event is a hint: only a job that really ended ends its desktop
        assert owner is not None
        assert states[world.role_of(owner)] in JOB_ENDED, states
    for token in seen.failed_tasks:
        # only a provisioning desktop's own job, really ended, fails its waiting workflow
        role = token.removeprefix("token-")
        detail = event["detail"]
        assert detail["jobName"] == BatchJobs.name_for(world.session_ids[role]), detail
        assert detail["jobId"] in (world.job_ids[role], *world.jobs[role].values()), detail
        assert states[role] in JOB_ENDED, states
    return seen


@examples(40)
@given(states=job_states, event=job_notifications)
def test_a_batch_job_state_change_is_never_rejected_and_changes_only_the_desktop_running_it(
    world: World, states: dict[str, str], event: dict[str, Any]
) -> None:
    # Given the fleet's batch desktops in every status, each job in a generated real state,
    # and stray jobs (of no session, an older job of a desktop, not a desktop's)
    world.seed(states)
    event = world.resolve(event)
    # When Batch says a job (the world's, or one that does not exist) changed status, which may
    # not be the job's status now (events come late and out of order)
    seen = job_state(world, event, states)
    # Then it is answered, not rejected; only the desktop running that job may change, only if
    # its job really ended, and only along the lifecycle
    assert seen.answer["outcome"] != "rejected", seen.answer
    # and a READY desktop whose job really ended is handed to the idle workflow
    owner = job_owner(world, event)
    if owner is not None and seen.status(owner, "before") == Status.READY:
        ended = states[world.role_of(owner)] in JOB_ENDED
        assert seen.status(owner) == (Status.TERMINATING if ended else Status.READY)
        assert len(seen.started) == int(ended), seen.started


@examples(40)
@given(event=not_job_notifications)
@example(event=["not", "an", "event"])  # regression: AttributeError ('list' object has no ...)
@example(  # regression: any detail-type was taken for a job's state change
    event=sample(BATCH_SAMPLE)
    | {
        "detail-type": "Batch Job Queue Blocked",
        "detail": job_detail((known("job", "b-ready"), known("jobName", "b-ready")), "FAILED"),
    }
)
def test_an_event_that_is_not_a_batch_job_state_change_is_rejected_and_changes_nothing(
    world: World, event: Any
) -> None:
    # Given the fleet's batch desktops
    states = dict.fromkeys(JOB_ROLES, "RUNNING")
    world.seed(states)
    # When JobStateFunction gets something that is not a job's state change: no object,
    # another source or detail-type, no detail object, no string jobId or jobName
    seen = job_state(world, world.resolve(event), states)
    # Then it is rejected with a reason, and nothing is written or asked of a workflow
    assert seen.answer["outcome"] == "rejected", seen.answer
    assert seen.changed == set()
    assert seen.workflow_calls == []


@examples(60)
@given(
    states=job_states,
    event=st.one_of(
        job_notifications.flatmap(garbled_envelope),
        job_notifications.flatmap(lambda e: odd_ids(e, ODD_JOB_IDS)),
        mismatched_jobs,
    ),
)
@example(  # regression: "dcvfleet-" (no session id) reached DynamoDB as an empty key
    states=dict.fromkeys(JOB_ROLES, "RUNNING"),
    event=sample(BATCH_SAMPLE)
    | {"detail": job_detail((known("job", "b-ready"), BatchJobs.name_for("")), "FAILED")},
)
@example(  # regression: a name over Batch's 128 characters reached DynamoDB as a key over its
    # 2048 bytes (ValidationException)
    states=dict.fromkeys(JOB_ROLES, "RUNNING"),
    event=sample(BATCH_SAMPLE)
    | {"detail": job_detail((known("job", "b-ready"), BatchJobs.name_for("x" * 3000)), "FAILED")},
)
def test_a_garbled_batch_job_state_change_is_answered_and_changes_at_most_the_desktop_running_it(
    world: World, states: dict[str, str], event: Any
) -> None:
    # Given the fleet's batch desktops, their jobs in generated states
    world.seed(states)
    # When a job state change arrives with a field missing, of the wrong type, huge or odd
    # text, extra fields, a jobId and jobName of different jobs, or not as an object
    # Then it is answered (rejected with a reason, or an outcome), never a crash, and at most
    # the desktop running the job it names changes
    job_state(world, world.resolve(event), states)


@examples(20)
@given(
    states=job_states,
    ref=job_refs,
    statuses=st.lists(st.sampled_from(JOB_STATUSES), min_size=2, max_size=2, unique=True),
)
def test_a_batch_events_status_is_a_hint_events_differing_only_in_it_have_the_same_effect(
    world: World, states: dict[str, str], ref: tuple[str, str], statuses: list[str]
) -> None:
    # Given the fleet's batch desktops, their jobs in generated states
    effects = []
    for status in statuses:
        world.seed(states)
        # When the same job is said to be in one status, then (from the same start) another
        event = world.resolve(sample(BATCH_SAMPLE) | {"detail": job_detail(ref, status)})
        seen = job_state(world, event, states)
        effects.append(
            (
                seen.answer,
                {k: seen.status(k) for k in seen.changed if not k.startswith("user#")},
                len(seen.started),
                len(seen.failed_tasks),
            )
        )
    # Then both have the same outcome and effect: the job is described again, and what it is
    # decides, not what the event says
    assert effects[0] == effects[1], statuses


def test_a_job_named_for_a_desktop_still_submitting_but_another_ending_fails_no_workflow(
    world: World,
) -> None:
    # Given a batch desktop still provisioning whose record has no job id yet, and another
    # desktop's job that failed
    states = dict.fromkeys(JOB_ROLES, "RUNNING") | {"b-provisioning": "FAILED"}
    world.seed(states)
    # When an event names the first desktop's job by name and the failed job by id
    detail = job_detail(
        (known("job", "b-provisioning"), known("jobName", "b-submitting")), "FAILED"
    )
    seen = job_state(world, world.resolve(sample(BATCH_SAMPLE) | {"detail": detail}), states)
    # Then the provisioning desktop's workflow is not failed for a job that is not its own
    assert seen.failed_tasks == [], seen.answer


def test_a_desktop_job_name_without_a_session_id_is_answered_not_a_crash(world: World) -> None:
    # Given the fleet's batch desktops
    states = dict.fromkeys(JOB_ROLES, "RUNNING")
    world.seed(states)
    # When a job state change names a job "dcvfleet-" (a name Batch allows)
    detail = job_detail((known("job", "b-ready"), BatchJobs.name_for("")), "FAILED")
    seen = job_state(world, world.resolve(sample(BATCH_SAMPLE) | {"detail": detail}), states)
    # Then it is answered as no desktop's job, and nothing changes
    assert seen.changed == set()
