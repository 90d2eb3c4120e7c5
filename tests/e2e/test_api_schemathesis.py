"""Property-based testing of the REST API from its own OpenAPI document (schemathesis), through
the local stack: requests generated from the document, valid and invalid, as a user and as a
member of the ``admins`` group, never get a 5xx and always get an answer the document describes.

Each operation is a small, derandomized Hypothesis test of ``operation.as_strategy`` (positive
and negative data). ``schemathesis.pytest.from_fixture`` would load the document in a fixture
too, but on pytest 9 it fails reading ``Function._nodeid``, which pytest no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, checks
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.schemas import OpenApiSchema
from urllib3.util.retry import Retry

from local.client import Client
from tests.support.stack import Stack

#: Every operation of the document; a new route must be added here (a test says so).
OPERATIONS = (
    "GET /openapi.json",
    "GET /options",
    "GET /sessions",
    "POST /sessions",
    "GET /sessions/{id}",
    "DELETE /sessions/{id}",
    "GET /sessions/{id}/credentials",
    "POST /sessions/{id}/start",
    "POST /sessions/{id}/stop",
    "GET /admin/sessions",
    "POST /admin/sessions/{id}/stop",
    "DELETE /admin/sessions/{id}",
    "GET /admin/instances",
    "GET /admin/releases",
    "POST /admin/releases/{release}/activate",
    "PATCH /sessions/{id}",
    "GET /profiles",
    "GET /admin/profiles",
    "PUT /admin/profiles/{profile}",
    "DELETE /admin/profiles/{profile}",
    "GET /admin/audit",
    "GET /admin/pool",
    "GET /admin/host-images",
    "POST /admin/host-images/{os}/build",
    "POST /admin/host-images/{os}/rollback",
)
SETTLED, GONE = ("READY", "STOPPED"), ("TERMINATED", "FAILED")
ADMIN_OPERATIONS = tuple(o for o in OPERATIONS if o.split()[1].startswith("/admin/"))
#: Small and derandomized: the same requests every run, the file in well under two minutes on a
#: loaded 2-core machine; no shrinking, so a failure reports the first request that failed.
SETTINGS = settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=False,
)
#: What every answer must satisfy. Left out, and why:
#: - positive_data_acceptance: a schema-valid request may rightly be refused 400, as documented:
#:   an instanceType this fleet does not offer (GET /options lists them), a Windows batch
#:   desktop, a nextToken the API never gave;
#: - unsupported_method (wants 405): API Gateway answers a method a resource does not have 403
#:   (test_a_method_a_resource_does_not_have_is_refused_as_api_gateway_does); fuzzing sends none;
#: - use_after_free, ensure_resource_availability, object_level_authorization: stateful checks
#:   that follow the document's links between operations, and it has none (test_api.py shows
#:   another user's desktop is a 404 to a user).
CHECKS: list[CheckFunction] = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.missing_required_header,
    checks.ignored_auth,
]


@pytest.fixture(scope="module")
def api(stack: Stack) -> OpenApiSchema:
    """The OpenAPI document as the deployed API publishes it (no token needed)."""
    url = stack.info["api_url"]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=30)
    schema.config.update(base_url=url)  # the document's server is the stage's path, /v1
    return schema


@pytest.fixture(scope="module")
def user(stack: Stack) -> Iterator[Client]:
    """A user. A generated POST /sessions makes a real desktop (one: the stack allows one active
    desktop per user, the others are 409), deleted at the end."""
    client = stack.new_user()
    yield client
    for session in client.call("GET", "/sessions").json()["sessions"]:
        session_id = session["sessionId"]
        # a desktop can be deleted once it is READY or STOPPED
        settled = stack.wait_for(client, session_id, (*SETTLED, *GONE), timeout=60)
        if settled["status"] in SETTLED:
            deleted = client.call("DELETE", f"/sessions/{session_id}")
            assert deleted.status_code == 202, deleted.text
            stack.wait_for(client, session_id, GONE, timeout=60)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Client:
    return stack.new_user(groups=("admins",))


def _session() -> requests.Session:
    """Requests as a well-behaved client sends them: a 429 (the stage's throttling, which the
    generated requests outrun on a fast machine) is retried after a backoff, as API Gateway asks
    of its callers (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html).
    A throttled request never reached the API, so any method may be sent again. The checks'
    own extra requests (a request without the token, for one) go through the same session."""
    session = requests.Session()
    retry = Retry(
        total=8,
        status_forcelist=(429,),
        allowed_methods=None,
        backoff_factor=0.2,
        raise_on_status=False,
    )
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
    return session


def _fuzz(api: OpenApiSchema, label: str, token: str) -> None:
    """``label``'s generated requests with ``token``."""
    session = _session()
    method, path = label.split()
    operation = api[path][method]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @SETTINGS
    @given(case=strategy)
    def generated(case: Case) -> None:
        case.call_and_validate(
            session=session, headers={"Authorization": token}, checks=CHECKS, timeout=30
        )

    generated()


@pytest.mark.parametrize("label", OPERATIONS)
def test_as_a_user(api: OpenApiSchema, user: Client, label: str) -> None:
    """Every operation; the admin ones answer a user 403, as documented."""
    _fuzz(api, label, user.token)


@pytest.mark.parametrize("label", ADMIN_OPERATIONS)
def test_as_an_admin(api: OpenApiSchema, admin: Client, label: str) -> None:
    """Filters, limits and page tokens of the fleet's views; generated ids stop and terminate
    no one's desktop (they match none)."""
    _fuzz(api, label, admin.token)


def test_an_instances_page_token_the_api_never_gave_is_refused_400(admin: Client) -> None:
    answer = admin.call("GET", "/admin/instances?nextToken=not-a-token")
    assert answer.status_code == 400, answer.text


def test_every_operation_of_the_published_document_is_tested(
    api: OpenApiSchema, stack: Stack
) -> None:
    published: dict[str, Any] = requests.get(
        stack.info["api_url"] + "/openapi.json", timeout=10
    ).json()
    assert api.raw_schema == published
    documented = {
        f"{method.upper()} {path}"
        for path, operations in published["paths"].items()
        for method in operations
    }
    assert documented == set(OPERATIONS)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_the_document_describes_each_answer_and_every_reference_resolves(
    api: OpenApiSchema,
) -> None:
    document = api.raw_schema
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "429" in operation["responses"], (method, path)  # API Gateway throttles
            successes = [code for code in operation["responses"] if code.startswith("2")]
            assert successes, f"{method.upper()} {path} documents no success answer"
            for code in successes:
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"], (method, path, code)
    schemas = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    unresolved = {r for r in _refs(document) if r.removeprefix(prefix) not in schemas}
    assert not unresolved


def test_a_method_a_resource_does_not_have_is_refused_as_api_gateway_does(stack: Stack) -> None:
    """403 "Missing Authentication Token", whatever the method: never a 5xx (``http.server``
    answered a method it has no handler for, TRACE, 501)."""
    url = stack.info["api_url"]
    for method in ("TRACE", "PATCH", "PUT"):
        answer = requests.request(method, f"{url}/sessions", timeout=10)
        assert answer.status_code == 403, (method, answer.status_code, answer.text)
        assert answer.json() == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize("content_type", ["multipart/form-data", "text/plain"])
def test_a_body_that_is_not_json_is_refused_415(user: Client, content_type: str) -> None:
    """Powertools parses a body by its Content-Type: one it does not read was answered its own
    undocumented 415, a multipart/form-data one without a boundary 502 (a bare ValueError)."""
    answer = requests.post(
        user.info["api_url"] + "/sessions",
        data='{"backend": "ec2", "os": "linux"}',
        headers={"Authorization": user.token, "Content-Type": content_type},
        timeout=30,
    )
    assert answer.status_code == 415, answer.text
    assert answer.json() == {"message": "body: must be JSON (Content-Type: application/json)"}


def test_concurrent_requests_each_get_their_own_answer(stack: Stack, admin: Client) -> None:
    """Through the stack: a user's and an admin's concurrent requests, each answered as its
    caller (the admin's 200, the user's 403) and by its own route."""
    user = stack.new_user()

    def wrong(i: int) -> str | None:
        """What was wrong with the ``i``-th answer, if anything."""
        client, status = (admin, 200) if i % 2 else (user, 403)
        if i % 4 < 2:
            answer = client.call("GET", "/admin/releases")
            right = answer.status_code == status
        else:
            answer = client.call("GET", "/options")
            right = answer.status_code == 200 and "maxActiveSessions" in answer.json()
        return None if right else f"{answer.request.path_url}: {answer.status_code} {answer.text}"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(wrong, range(64)))  # within the API's burst
    assert [a for a in answers if a] == []
