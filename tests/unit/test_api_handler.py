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

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.support.handlers import HANDLER_ENV

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
    assert body["required"] == ["backend", "os"]


def test_an_answer_that_does_not_match_its_model_is_a_logged_500(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Powertools answers such an answer 500 without a word in the log; here the log says where."""
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
