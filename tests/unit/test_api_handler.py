"""The API handler in-process: request validation (every 400 names the field) and its OpenAPI
document, which must describe exactly the routes API Gateway sends to the function."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from samtranslator.yaml_helper import yaml_parse

from dcvfleet.model import Status
from dcvfleet.store import DynamoSessionStore
from tests.support.handlers import HANDLER_ENV
from tests.support.tables import create_table

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **HANDLER_ENV,
    "ALLOWED_INSTANCE_TYPES": "g5.xlarge,g4dn.xlarge",
    "PORTAL_ORIGIN": "https://portal.example.com",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def api() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        sys.modules.pop("dcvfleet.handlers.api", None)
        yield importlib.import_module("dcvfleet.handlers.api")
    sys.modules.pop("dcvfleet.handlers.api", None)


def call(api: ModuleType, method: str, path: str, body: str | None = None, **headers: str) -> Any:
    """The handler's answer to one API Gateway (REST, proxy) event from a signed-in user."""
    resource = path.replace("/s-1", "/{id}")
    event = {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"id": "s-1"} if "/s-1" in path else None,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "stage": "v1",
            "requestId": "r-1",
            "resourcePath": resource,
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": {"claims": {"sub": "u-1", "cognito:username": "alice"}},
        },
    }
    return api.app.resolve(event, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"os": "linux"}', "backend: is required"),
        ('{"backend": "ec2"}', "os: is required"),
        ('{"backend": "ec2", "os": "linux", "colour": "red"}', "colour: unknown field"),
        ('{"backend": "ec2", "os": "mac"}', "os: Input should be 'linux' or 'windows'"),
        ('{"backend": "lambda", "os": "linux"}', "backend: Input should be 'ec2' or 'batch'"),
        ('{"backend": "ec2", "os": "linux", "instanceType": "G5.XLARGE"}', "instanceType: "),
        ('{"backend": "ec2", "os": "linux", "instanceType": "g5"}', "instanceType: "),
        ('{"backend": "ec2", "os": "linux", "instanceType": 5}', "instanceType: "),
        ('{"backend": "ec2", "os": "linux"', "body: not valid JSON"),
        (None, "body: is required"),
        ('[{"backend": "ec2", "os": "linux"}]', "body: "),
        ('"ec2"', "body: "),
    ],
    ids=[
        "missing-backend",
        "missing-os",
        "unknown-field",
        "os-mac",
        "backend-not-offered",
        "instance-type-upper-case",
        "instance-type-without-size",
        "instance-type-not-a-string",
        "not-json",
        "absent",
        "json-list",
        "json-string",
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(
    api: ModuleType, body: str | None, message: str
) -> None:
    answer = call(api, "POST", "/sessions", body)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["message"].startswith(message)


def test_a_bad_idempotency_key_is_a_400_naming_the_header(api: ModuleType) -> None:
    body = '{"backend": "ec2", "os": "linux"}'
    answer = call(api, "POST", "/sessions", body, **{"Idempotency-Key": "has space"})
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["message"].startswith("Idempotency-Key: ")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "0"}, "limit: "),
        ({"stauts": "READY"}, "stauts: unknown query parameter"),
        ({"status": "READY", "\x1d": ""}, "\x1d: unknown query parameter"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(
    api: ModuleType, query: dict[str, str], message: str
) -> None:
    event_path = "/admin/sessions"
    answer = api.app.resolve(
        {
            "resource": event_path,
            "path": event_path,
            "httpMethod": "GET",
            "headers": {},
            "multiValueHeaders": {},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
            "body": None,
            "requestContext": {"stage": "v1", "requestId": "r", "authorizer": {"claims": {}}},
        },
        None,
    )
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["message"].startswith(message)


def test_cors_answers_the_portal_origin_only(api: ModuleType) -> None:
    portal = call(api, "POST", "/sessions", "{}", Origin="https://portal.example.com")
    other = call(api, "POST", "/sessions", "{}", Origin="https://evil.example.com")
    assert portal["multiValueHeaders"]["Access-Control-Allow-Origin"] == [
        "https://portal.example.com"
    ]
    assert "Access-Control-Allow-Origin" not in other["multiValueHeaders"]


def _template_routes() -> dict[tuple[str, str], bool]:
    """(path, METHOD) -> whether it needs a token, for every API event of the ApiFunction."""
    template = yaml_parse((ROOT / "template.yaml").read_text())
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    return {
        (e["Properties"]["Path"], e["Properties"]["Method"].upper()): e["Properties"]
        .get("Auth", {})
        .get("Authorizer")
        != "NONE"
        for e in events.values()
        if e["Type"] == "Api"
    }


def test_the_openapi_document_describes_exactly_the_routes_api_gateway_sends(
    api: ModuleType,
) -> None:
    document = api.openapi_document()
    documented = {
        (path, method.upper()): operation.get("security") != []
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert documented == _template_routes()


def test_the_openapi_document_is_what_get_openapi_json_answers(api: ModuleType) -> None:
    answer = call(api, "GET", "/openapi.json")
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == api.openapi_document("v1")


def test_every_operation_documents_its_errors_and_no_validation_422(api: ModuleType) -> None:
    document = api.openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert answers.get("422", {}).get("description") != "Validation Error"
            if path != "/openapi.json":
                assert {"400", "401"} <= set(answers), (method, path)
            if path.startswith("/admin/"):
                assert "403" in answers, (method, path)
    create = document["paths"]["/sessions"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateSessionBody"
    }
    body = document["components"]["schemas"]["CreateSessionBody"]
    assert body["additionalProperties"] is False
    assert "required" not in body  # a profile, or a backend and an OS (checked by the handler)
    assert {"profile", "name", "backend", "os", "instanceType"} == set(body["properties"])


def test_an_answer_that_does_not_match_its_model_is_a_logged_500(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Powertools answers such an answer 500 without a word in the log; here the log says where."""
    # the service's logger keeps the level of its first import (another module may have set
    # POWERTOOLS_LOG_LEVEL=CRITICAL): this test reads its errors whatever ran before
    caplog.set_level("ERROR", logger=api.logger.name)
    monkeypatch.setattr(api.Options, "model_validate", lambda _: {"backends": "not a list"})
    answer = call(api, "GET", "/options")
    assert answer["statusCode"] == 500
    body = json.loads(answer["body"])
    assert body["statusCode"] == 500
    assert {"loc": ["response", "backends"], "type": "list_type"} in body["detail"]
    errors = [r for r in caplog.records if r.getMessage() == "answer does not match its model"]
    assert [r.levelname for r in errors] == ["ERROR"], caplog.text


def test_a_request_whose_idempotency_key_is_in_flight_is_told_to_retry(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
    )

    def in_flight(**_: Any) -> Any:
        raise IdempotencyAlreadyInProgressError("in progress")

    monkeypatch.setattr(api, "_create_once", lambda: in_flight)
    answer = call(
        api, "POST", "/sessions", '{"backend": "ec2", "os": "linux"}', **{"Idempotency-Key": "k-1"}
    )
    assert answer["statusCode"] == 409
    assert json.loads(answer["body"])["message"] == (
        "Idempotency-Key: a request with this key is still in progress; retry in a moment"
    )


# -- desktop profiles, against moto ----------------------------------------------------------------
CAD = {
    "name": "CAD workstation",
    "description": "For CAD.",
    "backend": "ec2",
    "os": "linux",
    "instanceTypes": ["g4dn.xlarge", "g5.xlarge"],
    "idle": {"timeoutSeconds": 900, "action": "hibernate"},
    "maxSessionHours": 8,
    "groups": ["cad"],
}


@pytest.fixture
def fleet(api: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's DynamoDB (the sessions and profiles tables of template.yaml) and Step Functions;
    the template's profiles are the defaults."""
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_table(db, "SessionsTable", "sessions")
        create_table(db, "ProfilesTable", "profiles")
        monkeypatch.setattr(api, "PROFILES_TABLE", "profiles")
        monkeypatch.setattr(api, "NOTIFICATION_TOPIC_ARN", "")
        started: list[dict[str, Any]] = []
        monkeypatch.setattr(api, "Workflows", lambda _: RecordedWorkflows(started))
        api._template_profiles.cache_clear()
        api._fleet_choices.cache_clear()
        yield DynamoSessionStore(db, "sessions")


class RecordedWorkflows:
    def __init__(self, started: list[dict[str, Any]]) -> None:
        self.started = started

    def start(self, arn: str, name: str, payload: dict[str, Any]) -> None:
        self.started.append(payload)


def as_user(api: ModuleType, method: str, path: str, body: Any = None, groups: str = "") -> Any:
    """The handler's answer (status, parsed body) to a request of user u-1 in ``groups``."""
    path, _, query_string = path.partition("?")
    query = dict(p.split("=", 1) for p in query_string.split("&")) if query_string else None
    resource = path
    params: dict[str, str] | None = None
    if path.startswith("/admin/profiles/"):
        resource, params = "/admin/profiles/{profile}", {"profile": path.rsplit("/", 1)[1]}
    elif path.startswith("/sessions/"):
        resource, params = "/sessions/{id}", {"id": path.rsplit("/", 1)[1]}
    claims = {"sub": "u-1", "cognito:username": "alice", "cognito:groups": groups}
    event = {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": params,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {
            "stage": "v1",
            "requestId": "r-1",
            "resourcePath": resource,
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": {"claims": claims},
        },
    }
    answer = api.app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"]) if answer["body"] else None


def test_a_user_lists_the_profiles_open_to_them(api: ModuleType, fleet: Any) -> None:
    status, body = as_user(api, "GET", "/profiles")
    assert status == 200
    linux = body["items"][0]
    assert linux == {
        "id": "linux-workstation",
        "name": "Linux workstation",
        "description": "A GPU desktop of your own for 3D work. Stopping it keeps your files.",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": ["g5.xlarge", "g4dn.xlarge"],
        "idle": {"timeoutSeconds": 1800, "action": "stop"},
        "maxSessionHours": None,
        "groups": [],
        "keepsFiles": True,
        "whenStopped": "Your files are kept: start it again and carry on where you left off.",
        "source": "template",
    }
    # ENABLED_BACKENDS is ec2 alone here: no batch profile
    assert [p["id"] for p in body["items"]] == ["linux-workstation", "windows-workstation"]


def test_an_admin_puts_a_profile_for_a_group_and_deletes_it(api: ModuleType, fleet: Any) -> None:
    assert as_user(api, "PUT", "/admin/profiles/cad", CAD)[0] == 403
    status, put = as_user(api, "PUT", "/admin/profiles/cad", CAD, groups="admins")
    assert status == 200
    assert (put["id"], put["source"], put["keepsFiles"]) == ("cad", "admin", True)
    assert "cad" not in [p["id"] for p in as_user(api, "GET", "/profiles")[1]["items"]]
    assert "cad" in [p["id"] for p in as_user(api, "GET", "/profiles", groups="cad")[1]["items"]]
    status, every = as_user(api, "GET", "/admin/profiles", groups="admins")
    assert [p["id"] for p in every["items"]][-1] == "cad"
    assert as_user(api, "DELETE", "/admin/profiles/cad", groups="admins") == (204, None)
    assert as_user(api, "DELETE", "/admin/profiles/cad", groups="admins")[0] == 404
    status, body = as_user(api, "DELETE", "/admin/profiles/linux-workstation", groups="admins")
    assert status == 409
    assert "DesktopProfiles" in body["message"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/admin/profiles/cad", {**CAD, "idle": {"timeoutSeconds": 900}}, "idle.action: "),
        ("/admin/profiles/cad", {**CAD, "id": "cad"}, "id: unknown field"),
        ("/admin/profiles/Bad_Id", CAD, "profile: String should match pattern"),
        ("/admin/profiles/cad", {**CAD, "instanceTypes": ["p5.48xlarge"]}, "instanceTypes: "),
        ("/admin/profiles/cad", {**CAD, "pool": {"size": 1, "state": "frozen"}}, "pool.state: "),
        (
            "/admin/profiles/linux-workstation",
            {**CAD, "pool": {"size": 1, "timeZone": "Paris"}},
            "pool.timeZone: 'Paris' is not a known IANA time zone",
        ),
    ],
)
def test_a_bad_profile_is_a_400_naming_the_field_and_keeps_nothing(
    api: ModuleType, fleet: Any, path: str, body: dict[str, Any], message: str
) -> None:
    status, answer = as_user(api, "PUT", path, body, groups="admins")
    assert (status, answer["message"][: len(message)]) == (400, message)
    assert len(as_user(api, "GET", "/admin/profiles", groups="admins")[1]["items"]) == 2


def test_a_desktop_from_a_profile_keeps_its_profile_and_name(api: ModuleType, fleet: Any) -> None:
    as_user(api, "PUT", "/admin/profiles/cad", CAD, groups="admins")
    request = {"profile": "cad", "name": "  Bracket v2 "}
    status, created = as_user(api, "POST", "/sessions", request, groups="cad")
    assert status == 202
    status, view = as_user(api, "GET", f"/sessions/{created['sessionId']}")
    assert (view["profile"], view["profileName"], view["name"]) == (
        "cad",
        "CAD workstation",
        "Bracket v2",
    )
    assert view["instanceType"] == "g4dn.xlarge"
    record = fleet.get(created["sessionId"])
    assert record.extra["idleTimeoutSeconds"] == "900"
    assert record.extra["idleAction"] == "hibernate"
    assert record.extra["maxSessionHours"] == "8"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"profile": "cad"}, "profile: no profile 'cad' is open to you"),
        (
            {"backend": "ec2", "os": "linux", "instanceType": "p5.48xlarge"},
            "instanceType: 'p5.48xlarge' is not allowed by profile 'linux-workstation' "
            "(g5.xlarge, g4dn.xlarge)",
        ),
        ({"profile": "linux-workstation", "os": "windows"}, "os: profile 'linux-workstation'"),
    ],
)
def test_a_desktop_the_callers_profiles_do_not_offer_is_a_400(
    api: ModuleType, fleet: Any, body: dict[str, Any], message: str
) -> None:
    as_user(api, "PUT", "/admin/profiles/cad", CAD, groups="admins")
    status, answer = as_user(api, "POST", "/sessions", body)
    assert (status, answer["message"][: len(message)]) == (400, message)
    assert fleet.list_by_owner("u-1") == []


def test_a_raw_request_gets_the_profile_it_matches(api: ModuleType, fleet: Any) -> None:
    body = {"backend": "ec2", "os": "linux", "instanceType": "g4dn.xlarge"}
    status, created = as_user(api, "POST", "/sessions", body)
    assert status == 202
    view = as_user(api, "GET", f"/sessions/{created['sessionId']}")[1]
    assert (view["profile"], view["name"]) == ("linux-workstation", "Linux workstation")


# -- a desktop's name, and hiding an ended one -------------------------------------------------------
def test_a_user_renames_a_desktop_and_hides_it_once_it_has_ended(
    api: ModuleType, fleet: Any
) -> None:
    created = as_user(api, "POST", "/sessions", {"profile": "linux-workstation"})[1]
    path = f"/sessions/{created['sessionId']}"
    status, view = as_user(api, "PATCH", path, {"name": "  Render box  "})
    assert (status, view["name"]) == (200, "Render box")
    status, refused = as_user(api, "PATCH", path, {"hidden": True})
    assert status == 409
    assert refused["message"] == (
        "only a desktop that has ended can be hidden; this one is PROVISIONING"
    )
    assert "hidden" not in as_user(api, "GET", path)[1]
    record = fleet.require(created["sessionId"])
    fleet.update(record, status=Status.FAILED)
    status, view = as_user(api, "PATCH", path, {"hidden": True})
    assert (status, view["hidden"]) == (200, True)
    assert as_user(api, "GET", "/sessions")[1] == {"sessions": []}
    listed = as_user(api, "GET", "/sessions?hidden=true")[1]["sessions"]
    assert [(s["sessionId"], s["hidden"]) for s in listed] == [(created["sessionId"], True)]
    status, view = as_user(api, "PATCH", path, {"hidden": False})
    assert "hidden" not in view
    assert len(as_user(api, "GET", "/sessions")[1]["sessions"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "body: name or hidden is required"),
        ({"name": "   "}, 400, "name: must not be blank"),
        ({"name": "x" * 61}, 400, "name: String should have at most 60 characters"),
        ({"hidden": "yes"}, 400, "hidden: Input should be a valid boolean"),
        ({"hidden": 1}, 400, "hidden: Input should be a valid boolean"),
        ({"colour": "red"}, 400, "colour: unknown field"),
    ],
)
def test_a_bad_change_of_a_desktop_is_refused_naming_the_field(
    api: ModuleType, fleet: Any, body: dict[str, Any], status: int, message: str
) -> None:
    created = as_user(api, "POST", "/sessions", {"profile": "linux-workstation"})[1]
    before = fleet.require(created["sessionId"])
    answer = as_user(api, "PATCH", f"/sessions/{created['sessionId']}", body)
    assert (answer[0], answer[1]["message"]) == (status, message)
    assert fleet.require(created["sessionId"]) == before
