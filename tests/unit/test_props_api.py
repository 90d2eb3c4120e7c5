"""Property-based tests (hypothesis) of the REST API's handler, in-process, with generated and
garbled requests on every route: bodies that are not JSON, JSON that is no object, deeply
nested JSON, unknown fields, wrong types and valid bodies; Idempotency-Key, Content-Type and
other headers; path ids of the caller's desktops, of another user's, of none, and odd text;
query strings; signed-in users, an administrator and a caller without a sub.

What every answer must be (docs/architecture.md, "Contracts"):

* a status the OpenAPI document lists for the operation, and never a 5xx;
* a JSON body; a 4xx one has a ``message``, and a 400's starts with the field it names
  (``backend: ...``, ``Idempotency-Key: ...``, ``limit: ...``, ``body: ...``);
* a refused request (4xx) changes nothing: not the sessions table, not the releases, and it
  starts no workflow, publishes no event, writes no parameter;
* an accepted one changes only what its route is for, on the caller's own desktop (an
  administrator's: anyone's), and a user never reaches another user's desktop (404).

The handler runs against moto (DynamoDB with the tables of template.yaml, Step Functions,
Secrets Manager, EventBridge, SSM, EC2), with DynamoDB's key size limit on reads
(``dynamodb_key_size_limit``) and the local stack's EC2 page-token check.
"""

from __future__ import annotations

import base64
import importlib
import json
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from dcvfleet.adapters import OWNER_TAG, SESSION_TAG
from dcvfleet.aws import client
from dcvfleet.model import Status
from dcvfleet.store import DynamoSessionStore, counter_key
from local.emulator import ec2
from tests.support.properties import (
    ACCOUNT,
    IMAGE,
    REGION,
    LambdaContext,
    dynamodb_key_size_limit,
    examples,
    field_dropped_or_replaced,
    huge_text,
    json_non_objects,
    json_values,
    odd_text,
    put_session,
)
from tests.support.sessions import a_session
from tests.support.tables import create_table

#: Powertools' log_metrics warns on every invocation that records no metric (most of them).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
STACK = "dcvfleet"
SESSIONS, IDEMPOTENCY, RELEASES = f"{STACK}-sessions", f"{STACK}-idempotency", f"{STACK}-releases"
PROFILES = f"{STACK}-profiles"
POOL = f"{STACK}-pool"
PROVISION_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-provision-session"
IDLE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-idle-session"
RELEASE_PARAMETER = f"/{STACK}/release/current"
PORTAL = "https://portal.example.com"
#: The API function's environment (template.yaml: Globals and ApiFunction), with the stack's names.
ENV = {
    "SESSIONS_TABLE": SESSIONS,
    "EVENT_BUS_NAME": f"{STACK}-fleet",
    "FLEET_TAG_VALUE": STACK,
    "PROVISION_STATE_MACHINE_ARN": PROVISION_MACHINE,
    "IDLE_STATE_MACHINE_ARN": IDLE_MACHINE,
    "MAX_ACTIVE_SESSIONS_PER_USER": "3",
    "ALLOWED_INSTANCE_TYPES": "g5.xlarge,g5.2xlarge,g4dn.xlarge",
    "LINUX_INSTANCE_TYPE": "g5.xlarge",
    "WINDOWS_INSTANCE_TYPE": "g4dn.xlarge",
    "ENABLED_BACKENDS": "ec2,batch",
    "LIST_CONNECTIONS_DOCUMENT": "dcvfleet-ListConnections",
    "NOTIFY_DOCUMENT": "dcvfleet-NotifyUsers",
    "LIST_CONTAINER_CONNECTIONS_DOCUMENT": "dcvfleet-ListContainerConnections",
    "NOTIFY_CONTAINER_DOCUMENT": "dcvfleet-NotifyContainerUsers",
    "RELEASES_TABLE": RELEASES,
    "RELEASE_PARAMETER": RELEASE_PARAMETER,
    "IDEMPOTENCY_TABLE": IDEMPOTENCY,
    "PROFILES_TABLE": PROFILES,
    "POOL_TABLE": POOL,
    "PORTAL_ORIGIN": PORTAL,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
#: Every operation of the API (test_the_operations_are_the_documents_keeps it true). This world
#: has no host image parameter, so the host image routes answer 404 (or an empty list) here;
#: what they do with one is in test_host_image_admin.py.
OPERATIONS = (
    ("GET", "/openapi.json"),
    ("GET", "/options"),
    ("GET", "/sessions"),
    ("POST", "/sessions"),
    ("GET", "/sessions/{id}"),
    ("DELETE", "/sessions/{id}"),
    ("PATCH", "/sessions/{id}"),
    ("GET", "/sessions/{id}/credentials"),
    ("POST", "/sessions/{id}/start"),
    ("POST", "/sessions/{id}/stop"),
    ("GET", "/admin/sessions"),
    ("POST", "/admin/sessions/{id}/stop"),
    ("DELETE", "/admin/sessions/{id}"),
    ("GET", "/admin/instances"),
    ("GET", "/admin/releases"),
    ("POST", "/admin/releases/{release}/activate"),
    ("GET", "/profiles"),
    ("GET", "/admin/profiles"),
    ("PUT", "/admin/profiles/{profile}"),
    ("DELETE", "/admin/profiles/{profile}"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/pool"),
    ("GET", "/admin/host-images"),
    ("POST", "/admin/host-images/{os}/build"),
    ("POST", "/admin/host-images/{os}/rollback"),
)
#: The callers: Cognito ID token claims, as API Gateway's authorizer passes them.
CALLERS: dict[str, dict[str, Any]] = {
    "alice": {"sub": "sub-alice", "cognito:username": "alice", "email": "alice@example.com"},
    "carol": {"sub": "sub-carol", "cognito:username": "carol"},
    "bob": {"sub": "sub-bob", "cognito:username": "bob", "cognito:groups": "admins"},
    "bob-list": {"sub": "sub-bob", "cognito:username": "bob", "cognito:groups": "[admins staff]"},
    "dave": {"sub": "sub-dave", "cognito:username": "dave", "cognito:groups": "staff"},
    "nobody": {},
}
ADMINS = frozenset({"bob", "bob-list"})
#: The seeded desktops: role -> (owner, status, backend); ids are fixed, so shrinking and
#: replays see the same world.
DESKTOPS: dict[str, tuple[str, Status, str]] = {
    "alice-ready": ("alice", Status.READY, "ec2"),
    "alice-stopped": ("alice", Status.STOPPED, "ec2"),
    "alice-provisioning": ("alice", Status.PROVISIONING, "batch"),
    "alice-failed": ("alice", Status.FAILED, "ec2"),
    "bob-ready": ("bob", Status.READY, "batch"),
    "bob-stopped": ("bob", Status.STOPPED, "ec2"),
}
SESSION_IDS = {role: f"0000000{i}-5e55-4d1d-8000-00000000000{i}" for i, role in enumerate(DESKTOPS)}
#: The releases: version -> status.
RELEASE_RECORDS = {"1.0.0": "AVAILABLE", "1.1.0": "CURRENT", "0.9.0": "FAILED"}


class ApiLambdaContext(LambdaContext):
    def get_remaining_time_in_millis(self) -> int:  # read by the idempotency layer
        return 25_000


def owner_sub(role: str) -> str:
    return str(CALLERS[DESKTOPS[role][0]]["sub"])


def token_for(session_id: str) -> str:
    """A nextToken GET /admin/sessions gives to continue after ``session_id``."""
    return base64.urlsafe_b64encode(session_id.encode()).decode().rstrip("=")


# -- requests -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    route: str
    caller: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] | None = None
    body: str | None = None

    @property
    def path(self) -> str:
        path = self.route
        for name, value in self.params.items():
            path = path.replace("{" + name + "}", value)
        return path

    def event(self) -> dict[str, Any]:
        """API Gateway's REST (proxy) event for this request."""
        claims = CALLERS[self.caller]
        return {
            "resource": self.route,
            "path": self.path,
            "httpMethod": self.method,
            "headers": dict(self.headers),
            "multiValueHeaders": {k: [v] for k, v in self.headers.items()},
            "queryStringParameters": self.query,
            "multiValueQueryStringParameters": {k: [v] for k, v in self.query.items()}
            if self.query is not None
            else None,
            "pathParameters": dict(self.params) or None,
            "stageVariables": None,
            "body": self.body,
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": self.route,
                "httpMethod": self.method,
                "path": f"/v1{self.path}",
                "stage": "v1",
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                "identity": {"sourceIp": "203.0.113.10"},
                "authorizer": {"claims": dict(claims)},
            },
        }


#: Text API Gateway can pass as one path segment (no "/", no query or fragment).
def segment_text() -> st.SearchStrategy[str]:
    return st.one_of(odd_text(), st.text(min_size=1, max_size=40)).filter(
        lambda text: text and not set(text) & set("/?#")
    )


session_ids = st.one_of(
    st.sampled_from(sorted(SESSION_IDS.values())),
    st.uuids().map(str),  # no desktop
    st.sampled_from([counter_key("sub-alice"), "user#sub-bob"]),  # the per-user counters' keys
    segment_text(),
)
releases = st.one_of(st.sampled_from([*RELEASE_RECORDS, "2.0.0"]), segment_text())
idempotency_keys = st.one_of(
    st.from_regex(r"\A[\x21-\x7e]{1,128}\Z"),  # what the header may hold
    odd_text(),
    st.from_regex(r"\A[\x21-\x7e]{129,140}\Z"),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "",
    ]
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    out: dict[str, str] = {}
    if draw(st.booleans()):
        name = draw(st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE"]))
        out[name] = draw(st.one_of(content_types, st.text(max_size=30)))
    if draw(st.booleans()):
        name = draw(st.sampled_from(["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"]))
        out[name] = draw(idempotency_keys)
    if draw(st.booleans()):
        out["Origin"] = draw(st.sampled_from([PORTAL, "https://evil.example.com", "null"]))
    extra = draw(
        st.dictionaries(
            st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z"), st.text(max_size=30), max_size=2
        )
    )
    return {**extra, **out}


QUERY_VALUES = {
    "hidden": st.sampled_from(["true", "false", "yes", ""]),
    "status": st.one_of(st.sampled_from([s.value for s in Status]), st.text(max_size=12)),
    "state": st.one_of(
        st.sampled_from(["running", "stopped", "terminated", "pending"]), st.text(max_size=12)
    ),
    "user": st.one_of(
        st.sampled_from(["alice", "sub-bob", "alice@example.com", "nobody"]), odd_text()
    ),
    "limit": st.one_of(st.integers(-5, 1200).map(str), st.text(max_size=8)),
    "nextToken": st.one_of(
        st.sampled_from(sorted(SESSION_IDS.values())).map(token_for),
        st.sampled_from(["r-1234567", "AAAA", "not a token"]),
        odd_text(),
    ),
}
#: The query parameters each route takes.
ROUTE_QUERY = {
    "/sessions": ("hidden",),
    "/admin/sessions": ("status", "user", "limit", "nextToken"),
    "/admin/instances": ("state", "user", "limit", "nextToken"),
}


@st.composite
def queries(draw: st.DrawFn, route: str) -> dict[str, str] | None:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([None, {}]))
    known = ROUTE_QUERY.get(route, ())
    out: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(sorted(QUERY_VALUES)), max_size=3, unique=True)):
        if name in known or draw(st.integers(0, 3)) == 0:
            out[name] = draw(QUERY_VALUES[name])
    if draw(st.integers(0, 4)) == 0:  # a parameter no route takes
        out[
            draw(
                st.one_of(
                    st.sampled_from(["stauts", "limt", "x"]), st.text(min_size=1, max_size=80)
                )
            )
        ] = draw(st.text(max_size=10))
    return out


#: A body of the documented shape (which this fleet may still refuse: GET /options).
valid_create_bodies = st.fixed_dictionaries(
    {"backend": st.sampled_from(["ec2", "batch"]), "os": st.sampled_from(["linux", "windows"])},
    optional={"instanceType": st.sampled_from(["g5.xlarge", "g4dn.xlarge", "p3.2xlarge"])},
)
#: A body POST /sessions takes, its instance type of any shape.
create_bodies = st.fixed_dictionaries(
    {"backend": st.sampled_from(["ec2", "batch"]), "os": st.sampled_from(["linux", "windows"])},
    optional={
        "instanceType": st.sampled_from(
            ["g5.xlarge", "g5.2xlarge", "g4dn.xlarge", "p3.2xlarge", "GPU", "G5.XLARGE", "g5"]
        )
    },
)


def with_garbled_field(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``body`` with a field removed, of the wrong type, odd text, or an unknown field more."""
    return st.one_of(
        field_dropped_or_replaced(body, ["backend", "os", "instanceType"]),
        st.builds(
            lambda extra: {**body, **extra},
            st.dictionaries(st.text(max_size=20), json_values(), min_size=1, max_size=3),
        ),
    )


def deeply_nested() -> st.SearchStrategy[str]:
    """JSON nested deeper than any parser's stack: arrays, objects, or both."""
    return st.builds(
        lambda depth, kind: {
            "array": "[" * depth + "]" * depth,
            "object": '{"a":' * depth + "1" + "}" * depth,
            "body": '{"backend": ' + "[" * depth + "]" * depth + ', "os": "linux"}',
        }[kind],
        st.integers(100, 50_000),
        st.sampled_from(["array", "object", "body"]),
    )


bodies = st.one_of(
    st.none(),
    st.sampled_from(["", "   ", "\n", "null", "NaN", "[]", "{}", '"ec2"', "\ufeff{}", "{,}"]),
    st.text(max_size=60),  # mostly no JSON
    st.builds(json.dumps, json_non_objects()),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=12), json_values(), max_size=4)),
    st.builds(json.dumps, create_bodies),
    st.builds(json.dumps, create_bodies.flatmap(with_garbled_field)),
    create_bodies.map(lambda b: json.dumps(b)[:-1] + ', "backend": "lambda"}'),  # a key twice
    create_bodies.map(lambda b: json.dumps(b) + "trailing"),
    create_bodies.map(lambda b: "&".join(f"{k}={v}" for k, v in b.items())),  # a form
    huge_text().map(
        lambda text: json.dumps({"backend": "ec2", "os": "linux", "instanceType": text})
    ),
    deeply_nested(),
)


#: A body PATCH /sessions/{id} takes (a desktop that has not ended cannot be hidden: 409).
valid_patch_bodies = st.fixed_dictionaries(
    {}, optional={"name": st.sampled_from(["Render box", " x "]), "hidden": st.booleans()}
)
#: Profile ids: the template's (the defaults), and one an administrator may add.
PROFILE_IDS = ["linux-workstation", "linux-session", "windows-workstation", "cad"]
#: A profile PUT /admin/profiles/{profile} takes, or one this fleet cannot run.
valid_profile_bodies = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["CAD workstation", "Render"]),
        "backend": st.just("ec2"),
        "os": st.sampled_from(["linux", "windows"]),
        "instanceTypes": st.sampled_from([["g5.xlarge"], ["g4dn.xlarge", "g5.2xlarge"], ["p5"]]),
        "idle": st.fixed_dictionaries(
            {
                "timeoutSeconds": st.integers(1, 100_000),
                "action": st.sampled_from(["stop", "hibernate", "terminate"]),
            }
        ),
    },
    optional={
        "groups": st.sampled_from([[], ["staff"], ["admins"]]),
        "maxSessionHours": st.one_of(st.none(), st.integers(0, 10_000)),
    },
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Any request to any route; half of them well-formed (a seeded desktop's or release's id,
    a signed-in caller, no query, no body but a create body for POST /sessions), so that the
    routes' work is reached as often as their refusals."""
    method, route = draw(st.sampled_from(OPERATIONS))
    if draw(st.booleans()):
        params = {}
        if "{id}" in route:
            params["id"] = draw(st.sampled_from(sorted(SESSION_IDS.values())))
        if "{release}" in route:
            params["release"] = draw(st.sampled_from(sorted(RELEASE_RECORDS)))
        if "{profile}" in route:
            params["profile"] = draw(st.sampled_from(PROFILE_IDS))
        if "{os}" in route:
            params["os"] = draw(st.sampled_from(["linux", "windows"]))
        body = json.dumps(draw(valid_create_bodies)) if route == "/sessions" else None
        if route == "/admin/profiles/{profile}":
            body = json.dumps(draw(valid_profile_bodies))
        if method == "PATCH":
            body = json.dumps(draw(valid_patch_bodies))
        return Request(
            method=method,
            route=route,
            caller=draw(st.sampled_from(sorted(set(CALLERS) - {"nobody"}))),
            params=params,
            body=None if method == "GET" else body,
        )
    params = {}
    if "{id}" in route:
        params["id"] = draw(session_ids)
    if "{release}" in route:
        params["release"] = draw(releases)
    if "{profile}" in route:
        params["profile"] = draw(st.one_of(st.sampled_from(PROFILE_IDS), segment_text()))
    if "{os}" in route:
        params["os"] = draw(st.one_of(st.sampled_from(["linux", "windows"]), segment_text()))
    return Request(
        method=method,
        route=route,
        caller=draw(st.sampled_from(sorted(CALLERS))),
        params=params,
        headers=draw(headers()),
        query=draw(queries(route)),
        body=draw(bodies),
    )


# -- the world ------------------------------------------------------------------------------------
KEYS = {SESSIONS: "pk", IDEMPOTENCY: "id", RELEASES: "release", PROFILES: "id"}


def stored(table: str) -> dict[str, dict[str, Any]]:
    """Every item of ``table``, as stored, by key (read from moto's backend: a Scan's answer
    would take most of each example's time)."""
    items = dynamodb_backends[ACCOUNT][REGION].get_table(table).all_items()
    out = {}
    for item in items:
        attributes = item.to_json()["Attributes"]
        out[attributes[KEYS[table]]["S"]] = attributes
    return out


@dataclass(frozen=True)
class Seen:
    """An answer and what the request changed."""

    request: Request
    status: int
    body: Any
    headers: dict[str, list[str]]
    before: dict[str, dict[str, dict[str, Any]]]
    after: dict[str, dict[str, dict[str, Any]]]
    #: (service, operation, parameters) of every write the request asked of another service.
    calls: list[tuple[str, str, dict[str, Any]]]

    def changed(self, table: str) -> set[str]:
        before, after = self.before[table], self.after[table]
        return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}

    def started(self, machine: str) -> list[str]:
        return [
            p["name"]
            for service, op, p in self.calls
            if op == "StartExecution" and p["stateMachineArn"] == machine
        ]

    def status_of(self, session_id: str) -> Status:
        return Status(self.after[SESSIONS][session_id]["status"]["S"])


#: What a request may ask of another service (reads are not recorded).
WRITES = frozenset(
    {
        "StartExecution",
        "StopExecution",
        "SendTaskSuccess",
        "SendTaskFailure",
        "PutEvents",
        "PutParameter",
    }
)


@dataclass(repr=False)
class ApiWorld:
    """moto holding the fleet; each example starts from the same records (``seed``), only what
    the previous one changed written back."""

    api: ModuleType
    ddb: Any
    ssm: Any
    baseline: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    current: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    release_document: str = ""
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: Session id -> how far its version is moved on (see World.bumps in test_props_aws_events).
    bumps: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ApiWorld(sessions={SESSION_IDS})"

    def observe(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {table: stored(table) for table in (SESSIONS, RELEASES, PROFILES)}

    def seed(self) -> None:
        wanted = {table: dict(items) for table, items in self.baseline.items()}
        for key, bump in self.bumps.items():
            item = wanted[SESSIONS][key]
            wanted[SESSIONS][key] = {
                **item,
                "version": {"N": str(int(item["version"]["N"]) + bump)},
            }
        for table, items in wanted.items():
            now = self.current[table]
            for key in set(items) | set(now):
                if key not in items:
                    self.ddb.delete_item(TableName=table, Key={KEYS[table]: {"S": key}})
                elif now.get(key) != items[key]:
                    self.ddb.put_item(TableName=table, Item=items[key])
        for key in stored(IDEMPOTENCY):  # a key used in one example does not answer the next
            self.ddb.delete_item(TableName=IDEMPOTENCY, Key={"id": {"S": key}})
        if any(op == "PutParameter" for _, op, _ in self.calls):
            self.ssm.put_parameter(
                Name=RELEASE_PARAMETER, Value=self.release_document, Type="String", Overwrite=True
            )
        self.current = wanted
        self.calls = []

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in WRITES:
            self.calls.append(
                (model.service_model.service_id.hyphenize(), model.name, dict(params))
            )

    def run(self, request: Request) -> Seen:
        """The handler's answer to ``request`` and what it changed."""
        for service in ("stepfunctions", "events", "ssm", "secretsmanager"):
            client(service).meta.events.register(
                "before-parameter-build", self._record, unique_id="props-api-writes"
            )
        before = self.current
        self.calls = []
        try:
            answer = self.api.handler(request.event(), ApiLambdaContext())
        finally:
            self.current = self.observe()
            for _, op, params in self.calls:
                key = params.get("name", "")[:36]  # a session id (a uuid) starts every name
                if op == "StartExecution" and key in self.baseline[SESSIONS]:
                    self.bumps[key] = self.bumps.get(key, 0) + 10
        assert isinstance(answer, dict), answer
        raw = answer.get("body")
        try:
            body = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            body = raw
        return Seen(
            request,
            answer["statusCode"],
            body,
            answer.get("multiValueHeaders") or {},
            before,
            self.current,
            list(self.calls),
        )


def _seed_fleet(clients: dict[str, Any]) -> None:
    """The tables, workflows, bus, release parameter, secrets and instances; the desktops'
    records and the releases."""
    ddb, ec2 = clients["dynamodb"], clients["ec2"]
    for table, resource in (
        (SESSIONS, "SessionsTable"),
        (IDEMPOTENCY, "IdempotencyTable"),
        (RELEASES, "ReleasesTable"),
        (PROFILES, "ProfilesTable"),
        (POOL, "WarmPoolTable"),
    ):
        create_table(ddb, resource, table)
    role = clients["iam"].create_role(RoleName="props-api", AssumeRolePolicyDocument="{}")["Role"]
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    for machine in (PROVISION_MACHINE, IDLE_MACHINE):
        clients["stepfunctions"].create_state_machine(
            name=machine.rsplit(":", 1)[1], definition=definition, roleArn=role["Arn"]
        )
    clients["events"].create_event_bus(Name=ENV["EVENT_BUS_NAME"])
    for release, status in RELEASE_RECORDS.items():
        record = {
            "release": release,
            "status": status,
            "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/dcvfleet-desktop:{release}",
            "jobDefinition": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/dcvfleet-desktop:{release.replace('.', '')}",
            "createdAt": f"2026-11-0{len(release)}T00:00:00.000Z",
            "updatedAt": "2026-11-10T00:00:00.000Z",
        }
        ddb.put_item(TableName=RELEASES, Item={k: {"S": v} for k, v in record.items()})
    current = {
        "release": "1.1.0",
        "image": "dcvfleet-desktop:1.1.0",
        "jobDefinition": "dcvfleet-desktop:110",
    }
    clients["ssm"].put_parameter(Name=RELEASE_PARAMETER, Value=json.dumps(current), Type="String")
    store = DynamoSessionStore(ddb, SESSIONS)
    for role, (owner, status, backend) in DESKTOPS.items():
        session_id = SESSION_IDS[role]
        claims = CALLERS[owner]
        secret = clients["secretsmanager"].create_secret(
            Name=f"dcvfleet/sessions/{session_id}",
            SecretString=json.dumps({"username": f"dcv{owner}", "password": "Pa55-word-" + owner}),
        )["ARN"]
        instance_id = None
        if backend == "ec2" and status != Status.FAILED:
            tags = {"dcvfleet:fleet": STACK, SESSION_TAG: session_id, OWNER_TAG: claims["sub"]}
            instance_id = ec2.run_instances(
                ImageId=IMAGE,
                MinCount=1,
                MaxCount=1,
                InstanceType="g5.xlarge",
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                    }
                ],
            )["Instances"][0]["InstanceId"]
            if status == Status.STOPPED:
                ec2.stop_instances(InstanceIds=[instance_id])
        put_session(
            store,
            a_session(
                session_id,
                owner=claims["sub"],
                owner_email=claims.get("email"),
                backend=backend,
                instance_type="g5.xlarge" if backend == "ec2" else "GPU",
                status=status,
                updated_at="2026-11-22T03:05:00.000Z",
                version=7,
                instance_id=instance_id,
                secret_arn=secret,
                connection_url="https://dcv.example.com:8443/#console"
                if status == Status.READY
                else None,
                task_token="token-1" if status == Status.PROVISIONING else None,
                extra={"username": str(claims["cognito:username"])},
            ),
        )


@pytest.fixture(scope="module")
def world() -> Iterator[ApiWorld]:
    services = ("dynamodb", "ec2", "iam", "stepfunctions", "events", "ssm", "secretsmanager")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for key, value in ENV.items():
            patch.setenv(key, value)
        for owner, name, replacement in ec2.ec2_page_token_patches():
            patch.setattr(owner, name, replacement)
        for name, replacement in dynamodb_key_size_limit().items():
            patch.setattr(DynamoDBBackend, name, replacement)
        clients = {s: boto3.client(s, region_name=REGION) for s in services}
        _seed_fleet(clients)
        sys.modules.pop("dcvfleet.handlers.api", None)
        api = importlib.import_module("dcvfleet.handlers.api")
        world = ApiWorld(api=api, ddb=clients["dynamodb"], ssm=clients["ssm"])
        world.baseline = world.current = world.observe()
        world.release_document = clients["ssm"].get_parameter(Name=RELEASE_PARAMETER)["Parameter"][
            "Value"
        ]
        yield world
    sys.modules.pop("dcvfleet.handlers.api", None)


@pytest.fixture(scope="module")
def documented(world: ApiWorld) -> dict[tuple[str, str], frozenset[int]]:
    """(METHOD, route) -> the statuses the OpenAPI document lists for it."""
    document = world.api.openapi_document()
    return {
        (method.upper(), path): frozenset(int(code) for code in operation["responses"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


# -- what every answer must satisfy ---------------------------------------------------------------
CREATE_FIELDS = ("backend", "os", "instanceType")


def field_names(request: Request) -> set[str]:
    """The names a 400 may give: the body and its fields (those it has, those it must have),
    the Idempotency-Key header, the route's and the request's query parameters."""
    names = {"body", "Idempotency-Key", *CREATE_FIELDS, *request.params, "name", "hidden"}
    if request.route == "/admin/profiles/{profile}":  # a profile's fields (ProfileSpec)
        names |= {"name", "backend", "os", "instanceTypes", "idle", "maxSessionHours", "groups"}
    names |= set(ROUTE_QUERY.get(request.route, ()))
    names |= {name[:64] for name in request.query or {}}
    if request.body:
        try:
            parsed = json.loads(request.body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            names |= set(parsed)
        names |= set(urllib.parse.parse_qs(request.body, keep_blank_values=True))
    return names


def assert_answered(seen: Seen, documented: dict[tuple[str, str], frozenset[int]]) -> None:
    """A documented status, never a 5xx; a JSON answer; a 4xx says what was wrong (a 400 names
    the field) and changed nothing."""
    request = seen.request
    assert seen.status < 500, (seen.status, seen.body)
    assert seen.status in documented[(request.method, request.route)], (seen.status, seen.body)
    assert seen.headers.get("Content-Type") == ["application/json"], seen.headers
    if seen.status < 400:
        return
    assert isinstance(seen.body, dict), seen.body
    message = seen.body.get("message")
    assert isinstance(message, str), seen.body
    assert message.strip(), seen.body
    if seen.status == 400:
        named = [
            name
            for name in field_names(request)
            if message.startswith((f"{name}: ", f"{name}."))  # a nested field: idle.action
        ]
        assert named, f"a 400 that names no field of the request: {message!r}"
    assert seen.changed(SESSIONS) == set(), "a refused request changed the sessions table"
    assert seen.changed(RELEASES) == set(), "a refused request changed the releases"
    assert seen.changed(PROFILES) == set(), "a refused request changed the profiles"
    assert seen.calls == [], "a refused request started a workflow, or published or wrote"


def target(seen: Seen) -> str | None:
    """The seeded desktop the request's path names, if any."""
    wanted = seen.request.params.get("id")
    return wanted if wanted in SESSION_IDS.values() else None


def assert_only_what_it_is_for(seen: Seen) -> None:
    """An accepted request changes only what its route is for, and only the caller's own
    desktop (an administrator's route: anyone's)."""
    request = seen.request
    if seen.status >= 400:
        return
    route, caller = request.route, request.caller
    sessions, writes = seen.changed(SESSIONS), [(s, op) for s, op, _ in seen.calls]
    if route.startswith("/admin/"):
        assert caller in ADMINS, (caller, seen.status)
    # an administrator's action, and only that, adds one entry to the audit trail
    audited = {key for key in sessions if key.startswith("audit#")}
    sessions -= audited
    admin_action = route.startswith("/admin/") and request.method != "GET"
    assert len(audited) == (1 if admin_action else 0), (route, audited)
    if route == "/admin/profiles/{profile}":  # the profiles table, that profile only
        assert sessions == set(), sessions
        assert writes == [], writes
        assert seen.changed(PROFILES) == {request.params["profile"]}
        return
    assert seen.changed(PROFILES) == set()
    if request.method == "GET":
        assert sessions == set()
        assert seen.changed(RELEASES) == set()
        revealed = route == "/sessions/{id}/credentials"
        assert writes == ([("eventbridge", "PutEvents")] if revealed else []), writes
        if revealed:
            assert owner_sub(role_of(target(seen))) == CALLERS[caller]["sub"]
        return
    assert seen.changed(RELEASES) == set() or route.endswith("/activate")
    if request.method == "PATCH":  # its name or hidden flag: the record, nothing else
        assert owner_sub(role_of(target(seen))) == CALLERS[caller]["sub"]
        assert sessions <= {target(seen)}, sessions
        assert writes == [], writes
        assert seen.status_of(str(target(seen))) == Status(seen.body["status"])
        return
    if route == "/sessions":
        created = seen.body["sessionId"]
        owner = str(CALLERS[caller]["sub"])
        assert sessions == {created, counter_key(owner)}, sessions
        assert seen.after[SESSIONS][created]["owner"]["S"] == owner
        assert seen.status_of(created) == Status.PROVISIONING == Status(seen.body["status"])
        assert seen.started(PROVISION_MACHINE) == [created]
        assert writes == [("sfn", "StartExecution")]
    elif route.endswith("/activate"):
        assert sessions == set()
        assert [op for _, op in writes] == ["PutParameter"]
    else:  # start, stop, delete: one desktop, by its owner (or an administrator)
        session_id = target(seen)
        assert session_id is not None, request
        owner = owner_sub(role_of(session_id))
        if not route.startswith("/admin/"):
            assert owner == CALLERS[caller]["sub"], (owner, caller)
        assert sessions <= {session_id, counter_key(owner)}
        assert seen.body == {"sessionId": session_id, "status": seen.status_of(session_id)}
        machine = PROVISION_MACHINE if route.endswith("/start") else IDLE_MACHINE
        expected = Status.PROVISIONING if route.endswith("/start") else None
        assert expected in (None, seen.status_of(session_id))
        assert seen.status_of(session_id) in (
            Status.PROVISIONING,
            Status.STOPPING,
            Status.TERMINATING,
        )
        assert len(seen.started(machine)) == 1, seen.calls
        assert writes == [("sfn", "StartExecution")]


def run_answered(
    world: ApiWorld, documented: dict[tuple[str, str], frozenset[int]], request: Request
) -> Seen:
    """Sends the request: the answer is documented and it changed only what it may."""
    seen = world.run(request)
    assert_answered(seen, documented)
    assert_only_what_it_is_for(seen)
    return seen


def role_of(session_id: str | None) -> str:
    return next(role for role, sid in SESSION_IDS.items() if sid == session_id)


# -- the properties -------------------------------------------------------------------------------
def test_the_operations_are_the_documents(
    documented: dict[tuple[str, str], frozenset[int]],
) -> None:
    # Given the OpenAPI document the API publishes
    # Then the requests generated here cover every operation it has, and only those
    assert set(OPERATIONS) == set(documented)


@examples(250)
@given(request=requests())
@example(  # regression: GET /openapi.json answered an undocumented 400
    request=Request("GET", "/openapi.json", "alice", body="null", query={"x": ""})
)
@example(  # regression: RecursionError (no answer: API Gateway's 502)
    request=Request("POST", "/sessions", "alice", body="[" * 5000 + "]" * 5000)
)
@example(  # regression: a path id over 2048 bytes reached DynamoDB (ValidationException)
    request=Request("GET", "/sessions/{id}", "alice", params={"id": "x" * 2100})
)
@example(  # regression: the same for a release
    request=Request(
        "POST", "/admin/releases/{release}/activate", "bob", params={"release": "1" * 2100}
    )
)
def test_any_request_gets_a_documented_answer_naming_what_is_wrong_and_changes_only_what_it_may(
    world: ApiWorld, documented: dict[tuple[str, str], frozenset[int]], request: Request
) -> None:
    # Given the fleet: desktops of two users in several statuses, releases
    world.seed()
    # When any caller sends any request to any route: any body, headers, path id, query
    # Then the answer is a documented status, never a 5xx; a 4xx says what was wrong and
    # changed nothing; a 2xx changed only what its route is for
    run_answered(world, documented, request)


#: The routes a user calls on one of their own desktops.
USER_DESKTOP_ROUTES = [
    op for op in OPERATIONS if "{id}" in op[1] and not op[1].startswith("/admin/")
]


@examples(80)
@given(
    request=st.builds(
        lambda operation, caller, role, body, query: Request(
            method=operation[0],
            route=operation[1],
            caller=caller,
            params={"id": SESSION_IDS[role]},
            query=query,
            body=body,
        ),
        st.sampled_from(USER_DESKTOP_ROUTES),
        st.sampled_from(sorted(set(CALLERS) - {"nobody"})),
        st.sampled_from(sorted(DESKTOPS)),
        st.one_of(st.none(), bodies),
        st.one_of(st.none(), st.just({})),
    )
)
def test_a_user_never_reaches_another_users_desktop(
    world: ApiWorld, documented: dict[tuple[str, str], frozenset[int]], request: Request
) -> None:
    # Given desktops of alice and of bob (an administrator, but not on these routes)
    world.seed()
    # When a user calls a desktop's route with the id of someone else's desktop
    seen = run_answered(world, documented, request)
    # Then it is a 404 (or the request's own fault, a 400): never the desktop, never a 403
    # or a 409 that would tell it exists
    if owner_sub(role_of(request.params["id"])) != CALLERS[request.caller]["sub"]:
        assert seen.status in (400, 404), (seen.status, seen.body)
        if seen.status == 404:
            assert seen.body == {"message": "session not found"}


@examples(40)
@given(
    caller=st.sampled_from(["alice", "carol", "bob"]),
    body=create_bodies,
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": st.sampled_from(
                ["application/json", "application/json; charset=utf-8"]
            ),
            "Idempotency-Key": st.from_regex(r"\A[\x21-\x7e]{1,128}\Z"),
        },
    ),
)
def test_a_valid_create_body_makes_exactly_one_desktop_or_names_the_field_it_cannot_have(
    world: ApiWorld,
    documented: dict[tuple[str, str], frozenset[int]],
    caller: str,
    body: dict[str, str],
    headers: dict[str, str],
) -> None:
    # Given users with no, some, or (alice) nearly the most active desktops they may have
    world.seed()
    # When one asks for a desktop with a body of the documented shape
    request = Request("POST", "/sessions", caller, headers=headers, body=json.dumps(body))
    seen = run_answered(world, documented, request)
    # Then it is made (one record, one provisioning workflow), or refused naming the field
    # this fleet does not offer that value of
    assert seen.status in (202, 400), (seen.status, seen.body)
    if seen.status == 400:
        assert seen.body["message"].startswith(tuple(f"{name}: " for name in body)), seen.body


@examples(25)
@given(
    body=valid_create_bodies,
    other=valid_create_bodies,
    key=st.from_regex(r"\A[\x21-\x7e]{1,128}\Z"),
)
def test_a_create_retried_with_its_idempotency_key_makes_one_desktop(
    world: ApiWorld,
    documented: dict[tuple[str, str], frozenset[int]],
    body: dict[str, str],
    other: dict[str, str],
    key: str,
) -> None:
    # Given a user with no desktop
    world.seed()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    first = world.run(Request("POST", "/sessions", "carol", headers=headers, body=json.dumps(body)))
    assert_answered(first, documented)
    # When the same request is sent again with the same key, then another body with that key
    again = world.run(Request("POST", "/sessions", "carol", headers=headers, body=json.dumps(body)))
    different = world.run(
        Request("POST", "/sessions", "carol", headers=headers, body=json.dumps(other))
    )
    # Then the retry gets the same answer and makes nothing more; the other body is refused
    # (422) unless it is the same request, and makes nothing either
    assert_answered(again, documented)
    assert_answered(different, documented)
    assert (again.status, again.body) == (first.status, first.body)
    assert again.changed(SESSIONS) == set()
    assert again.calls == []
    if first.status == 202:  # a refused request is not kept: the key is free again
        if other != body:
            assert different.status == 422, (different.status, different.body)
        else:
            assert (different.status, different.body) == (first.status, first.body)
        assert different.changed(SESSIONS) == set()
