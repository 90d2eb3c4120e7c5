"""The property tests' common ground: names and environment of the stack under test, Hypothesis
settings, generators of valid and garbled values, event samples, sessions put in DynamoDB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from moto.dynamodb.exceptions import HashKeyTooLong
from moto.dynamodb.limits import HASH_KEY_MAX_LENGTH
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType

from dcvfleet.model import Session, Status
from dcvfleet.store import DynamoSessionStore

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"
ACCOUNT, REGION = "123456789012", "us-east-1"
STACK = "dcvfleet"
TABLE = f"{STACK}-sessions"
IDLE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-idle-session"
PROVISION_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-provision-session"
JOB_QUEUE = "desktops"
#: An AMI moto has (listing them all would take seconds).
IMAGE = "ami-12c6146b"
#: The lifecycle functions' environment (template.yaml's Globals, with the stack's names).
ENV = {
    "SESSIONS_TABLE": TABLE,
    "EVENT_BUS_NAME": f"{STACK}-fleet",
    "FLEET_TAG_VALUE": STACK,
    "PROVISION_STATE_MACHINE_ARN": PROVISION_MACHINE,
    "IDLE_STATE_MACHINE_ARN": IDLE_MACHINE,
    "LIST_CONNECTIONS_DOCUMENT": "dcvfleet-ListConnections",
    "NOTIFY_DOCUMENT": "dcvfleet-NotifyUsers",
    "LIST_CONTAINER_CONNECTIONS_DOCUMENT": "dcvfleet-ListContainerConnections",
    "NOTIFY_CONTAINER_DOCUMENT": "dcvfleet-NotifyContainerUsers",
    "JOB_QUEUE": JOB_QUEUE,
    "JOB_ROLE_ID": "AROAEXAMPLEJOBROLE",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
EC2_SOURCE, EC2_DETAIL_TYPE = "aws.ec2", "EC2 Instance State-change Notification"
BATCH_SOURCE, BATCH_DETAIL_TYPE = "aws.batch", "Batch Job State Change"
#: Every state EC2 reports, in the order an instance lives them.
EC2_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
#: The states of an instance going down (the only ones InstanceStateFunction's rule sends).
EC2_DOWN = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
#: Every status Batch reports, in the order a job lives them.
JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
JOB_ENDED = frozenset({"SUCCEEDED", "FAILED"})
#: The states the Batch simulation can put a new job in.
SIMULATED_JOB_STATES = ("RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
#: Derandomized, no example database: the same examples every run, in CI too.
PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def examples(count: int) -> settings:
    """The property settings, with ``count`` generated examples."""
    return settings(PROPERTY, max_examples=count)


class LambdaContext:
    """What Powertools' ``inject_lambda_context`` reads of Lambda's context."""

    function_name = "dcvfleet-props"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:dcvfleet-props"
    memory_limit_in_mb = 256
    aws_request_id = "props-request"


def dynamodb_key_size_limit() -> dict[str, Callable[..., Any]]:
    """DynamoDB refuses a partition key over 2048 bytes on reads too (ValidationException); moto
    only on writes. Replacements of moto's DynamoDBBackend methods that refuse it as DynamoDB
    does."""
    original = DynamoDBBackend.get_item

    def get_item(self: DynamoDBBackend, table_name: str, keys: dict[str, Any], *args: Any) -> Any:
        for value in keys.values():
            if DynamoType(value).size() > HASH_KEY_MAX_LENGTH:
                raise HashKeyTooLong
        return original(self, table_name, keys, *args)

    return {"get_item": get_item}


#: How a desktop gets to each status from PROVISIONING (the session lifecycle, docs/architecture.md).
WAY_TO: dict[Status, tuple[Status, ...]] = {
    Status.PROVISIONING: (),
    Status.READY: (Status.READY,),
    Status.FAILED: (Status.FAILED,),
    Status.STOPPED: (Status.STOPPED,),
    Status.STOPPING: (Status.READY, Status.STOPPING),
    Status.TERMINATING: (Status.READY, Status.TERMINATING),
    Status.TERMINATED: (Status.READY, Status.TERMINATING, Status.TERMINATED),
}


def put_session(store: DynamoSessionStore, session: Session) -> None:
    """``session`` stored as a request makes it (PROVISIONING), then moved along the lifecycle
    to its status, so its owner's active-session count is what it would be."""
    created = replace(session, status=Status.PROVISIONING)
    store.create(created, max_active=100)
    for status in WAY_TO[session.status]:
        created = store.update(created, status=status)


# -- generated values -----------------------------------------------------------------------------
def known(kind: str, role: str) -> str:
    """A placeholder for an id in the world seeded for an example, replaced wherever it appears
    in a string (``World.resolve``): the ``kind`` ("instance", "job", "jobName", "session") of
    the desktop, instance or job playing ``role``."""
    return f"@@{kind}:{role}@@"


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value: null, booleans, numbers, text (any Unicode), arrays, objects."""
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(max_size=12), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def json_non_objects() -> st.SearchStrategy[Any]:
    """Any JSON value but an object."""
    return st.one_of(json_scalars(), st.lists(json_values(), max_size=4))


def huge_text() -> st.SearchStrategy[str]:
    """Text far over any limit (DynamoDB's 2048-byte key, Batch's 128-character job name)."""
    return st.builds(
        lambda piece, n: (piece * n)[:n], st.text(min_size=1, max_size=3), st.integers(2100, 6000)
    )


def odd_text() -> st.SearchStrategy[str]:
    """Strings that are no id: empty, blank, Unicode, control characters, paths, huge."""
    return st.one_of(
        st.sampled_from(["", " ", "\t", "\x00", "null", "../../etc/passwd", "i-", "dcvfleet-"]),
        st.text(max_size=40),
        huge_text(),
    )


def not_a_string() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.text(max_size=5), max_size=2),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    )


def extra_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.text(max_size=20), json_values(), min_size=1, max_size=3)


def garbled_detail(detail: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``detail`` with one field removed, of the wrong type or odd text, or with extra fields."""
    keys = st.sampled_from(sorted(detail))
    return st.one_of(
        keys.map(lambda key: {k: v for k, v in detail.items() if k != key}),
        st.builds(lambda key, value: {**detail, key: value}, keys, not_a_string()),
        st.builds(lambda key, value: {**detail, key: value}, keys, odd_text()),
        st.builds(lambda key, value: {**detail, key: value}, keys, json_values()),
        extra_fields().map(lambda extra: {**detail, **extra}),
    )


def odd_ids(
    envelope: dict[str, Any], ids: dict[str, Callable[[str], str]]
) -> st.SearchStrategy[Any]:
    """``envelope`` with one of its detail's ``ids`` made from odd text (``ids``: field ->
    how an id is made from text, such as a job's name from a session id)."""
    return st.builds(
        lambda name, text: {**envelope, "detail": {**envelope["detail"], name: ids[name](text)}},
        st.sampled_from(sorted(ids)),
        odd_text(),
    )


def field_dropped_or_replaced(
    mapping: dict[str, Any], keys: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    """``mapping`` with one of ``keys`` removed, or its value replaced by one of the wrong type
    or odd text."""
    key = st.sampled_from(keys)
    return st.one_of(
        key.map(lambda dropped: {k: v for k, v in mapping.items() if k != dropped}),
        st.builds(
            lambda replaced, value: {**mapping, replaced: value},
            key,
            st.one_of(not_a_string(), odd_text(), json_values()),
        ),
    )


def garbled_envelope(envelope: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``envelope`` with a top-level field removed or replaced, extra fields, or its detail
    garbled; or no object at all."""
    detail = envelope.get("detail")
    return st.one_of(
        field_dropped_or_replaced(envelope, sorted(envelope)),
        extra_fields().map(lambda extra: {**envelope, **extra}),
        garbled_detail(detail).map(lambda d: {**envelope, "detail": d})
        if isinstance(detail, dict) and detail
        else st.nothing(),
        json_non_objects(),
    )


def not_the_notification(
    envelope: dict[str, Any], source: str, detail_type: str, required: tuple[str, ...]
) -> st.SearchStrategy[Any]:
    """``envelope`` made into something that is not the notification of ``source`` and
    ``detail_type`` with string ``required`` detail fields: no object, another source or
    detail-type (or none), a detail that is no object (or none), a required field missing or
    not a string."""
    others = st.one_of(
        st.sampled_from(["aws.ec2", "aws.batch", "dcvfleet", "dcvfleet.agent", "aws.ecs"]),
        st.sampled_from([EC2_DETAIL_TYPE, BATCH_DETAIL_TYPE, "Host Ready", "Session Idle"]),
        st.text(max_size=40),
        not_a_string(),
    )
    detail = envelope["detail"]
    return st.one_of(
        json_non_objects(),
        others.filter(lambda value: value != source).map(lambda v: {**envelope, "source": v}),
        others.filter(lambda value: value != detail_type).map(
            lambda v: {**envelope, "detail-type": v}
        ),
        st.sampled_from(["source", "detail-type", "detail"]).map(
            lambda key: {k: v for k, v in envelope.items() if k != key}
        ),
        json_non_objects().map(lambda value: {**envelope, "detail": value}),
        st.sampled_from(required).map(
            lambda key: {**envelope, "detail": {k: v for k, v in detail.items() if k != key}}
        ),
        st.builds(
            lambda key, value: {**envelope, "detail": {**detail, key: value}},
            st.sampled_from(required),
            not_a_string(),
        ),
    )


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded
