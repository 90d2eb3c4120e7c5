"""REST API: a user's desktop sessions (create, list, get, credentials, start, stop, delete), what
they may ask for, and, for the ``admins`` group, the whole fleet and its releases.

Requests are validated by Powertools against the models of ``dcvfleet.api_models``, and the
OpenAPI document (``GET /openapi.json``) is generated from the same routes and models.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import os
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from dcvfleet import audit, limits, releases, service, session_names, sessions
from dcvfleet import profiles as desktop_profiles
from dcvfleet.adapters import (
    Ec2Hosts,
    FleetEvents,
    ReleaseRecords,
    Releases,
    SessionSecrets,
    UserNotifications,
    Workflows,
)
from dcvfleet.api_models import (
    Accepted,
    AdminSessionPage,
    AuditPage,
    Created,
    CreateSessionBody,
    Credentials,
    HostImageBuild,
    HostImageList,
    HostImageRollback,
    InstancePage,
    InstanceState,
    Message,
    Options,
    PoolList,
    Release,
    ReleaseList,
    SessionList,
    SessionView,
    StatusConflict,
    UpdateSessionBody,
)
from dcvfleet.aws import client
from dcvfleet.config import DEFAULT_POOL_PROFILE, ApiSettings, LifecycleSettings
from dcvfleet.errors import (
    HostImageConflictError,
    HostImageNotFoundError,
    InvalidRequestError,
    ProfileConflictError,
    ProfileNotFoundError,
    ReleaseConflictError,
    ReleaseNotFoundError,
    SessionConflictError,
    SessionLimitExceededError,
    SessionNotFoundError,
    StatusConflictError,
)
from dcvfleet.handlers import entry_point, session_store
from dcvfleet.host_images import HostImages
from dcvfleet.lifecycle import cancel, user_requests
from dcvfleet.model import CreateSessionRequest, Status
from dcvfleet.profiles import (
    PROFILE_ID_PATTERN,
    FleetChoices,
    Profile,
    ProfileDefinition,
    ProfileList,
    ProfileRecords,
    Profiles,
    ProfileSpec,
)
from dcvfleet.store import SessionStore, now_iso

logger = Logger()
SETTINGS = ApiSettings.from_env(os.environ)
LIFECYCLE = LifecycleSettings.from_env(os.environ)
ADMINS_GROUP = "admins"
#: The portal's origin: the only one CORS lets read the API's answers.
PORTAL_ORIGIN = os.environ.get("PORTAL_ORIGIN", "")
#: How long a POST /sessions answer is replayed for a request with the same Idempotency-Key.
IDEMPOTENCY_SECONDS = int(os.environ.get("IDEMPOTENCY_SECONDS", "3600"))
IDEMPOTENCY_KEY = "Idempotency-Key"
#: The users' topic; each caller's address is subscribed to their own notifications.
NOTIFICATION_TOPIC_ARN = os.environ.get("NOTIFICATION_TOPIC_ARN", "")
#: SNS's error when a topic has as many filter policies as its quota allows.
FILTER_POLICY_LIMIT = "FilterPolicyLimitExceeded"
API_VERSION = "1.0.0"

app = APIGatewayRestResolver(
    enable_validation=True,
    response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,  # our fault, not a 400
    cors=CORSConfig(allow_origin=PORTAL_ORIGIN, allow_headers=[IDEMPOTENCY_KEY], max_age=600)
    if PORTAL_ORIGIN
    else None,
)
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[owner, key]",  # one user's key never answers another user's request
    payload_validation_jmespath="body",
    expires_after_seconds=IDEMPOTENCY_SECONDS,
)

# -- errors ---------------------------------------------------------------------------------------
_ERRORS: dict[int, str] = {
    400: "The request is malformed; the message names the field",
    401: "Sign-in required: no, an expired or a forged ID token",
    403: "Only members of the admins group may do this",
    404: "No such desktop session for the caller",
    409: "The desktop's status does not allow this, or the active-session limit is reached",
    415: "The body is not JSON (Content-Type: application/json)",
    422: "The Idempotency-Key was used with another request body",
    429: "Too many requests: the API's throttling (API Gateway); retry in a moment",
}


def _responses(
    *codes: int, status: int = 200, description: str = "OK", model: Any = None
) -> dict[int, Any]:
    """OpenAPI responses: the errors (400, 401, 429 and ``codes``) and the success answer,
    ``status`` with ``model``; without a model, the route's return type (Powertools fills it in)."""
    out: dict[int, Any] = {
        code: {
            "description": _ERRORS[code],
            "content": {"application/json": {"model": StatusConflict if code == 409 else Message}},
        }
        for code in (400, 401, 429, *codes)
    }
    out[status] = {"description": description}
    if model is not None:
        out[status]["content"] = {"application/json": {"model": model}}
    return out


class AdminOnlyError(Exception):
    pass


def _error(code: HTTPStatus, message: str, **extra: str) -> Response[dict[str, str]]:
    return Response(
        status_code=code.value,
        content_type="application/json",
        body={"message": message, **extra},
    )


def validation_message(errors: list[dict[str, Any]]) -> str:
    """``field: what is wrong`` for the first of Powertools' (pydantic's) validation errors."""
    error = errors[0]
    where, *path = [str(p) for p in error.get("loc", ("body",))]
    if where == "header" and path:
        path = [IDEMPOTENCY_KEY if path[0].lower() == IDEMPOTENCY_KEY.lower() else path[0]]
    name = ".".join(path) or where
    kind = error.get("type", "")
    if kind == "json_invalid":
        return f"body: not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    if kind == "extra_forbidden":
        return f"{name}: unknown field"
    if kind == "missing":
        return f"{name}: is required"
    text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "value_error" and ": " in text:  # a model's own check: names its field already
        return text
    return f"{name}: {text}"


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.BAD_REQUEST, validation_message(list(exc.errors())))


@app.exception_handler(ResponseValidationError)
def _invalid_answer(exc: ResponseValidationError) -> Response[dict[str, Any]]:
    """An answer that does not match its model: logged (Powertools answers it silently), then
    the documented 500 (where and what, never the values)."""
    errors = [{"loc": e["loc"], "type": e["type"]} for e in exc.errors()]
    logger.error("answer does not match its model", errors=errors)
    return Response(
        status_code=HTTPStatus.INTERNAL_SERVER_ERROR.value,
        content_type="application/json",
        body={"statusCode": HTTPStatus.INTERNAL_SERVER_ERROR.value, "detail": errors},
    )


@app.exception_handler(InvalidRequestError)
def _bad_request(exc: InvalidRequestError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.BAD_REQUEST, exc.message)


@app.exception_handler(PermissionError)
def _unauthorised(exc: PermissionError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.UNAUTHORIZED, "sign-in required")


@app.exception_handler(AdminOnlyError)
def _forbidden(exc: AdminOnlyError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.FORBIDDEN, str(exc))


@app.exception_handler(SessionNotFoundError)
def _not_found(exc: SessionNotFoundError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.NOT_FOUND, "session not found")


@app.exception_handler(ReleaseNotFoundError)
def _no_release(exc: ReleaseNotFoundError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.NOT_FOUND, exc.message)


@app.exception_handler(SessionLimitExceededError)
def _limit(exc: SessionLimitExceededError) -> Response[dict[str, Any]]:
    """409 naming the caller's active desktops (a new desktop, or a stopped one started)."""
    owner = _caller().sub
    logger.info("active desktop limit reached", detail=exc.message)
    return Response(
        status_code=HTTPStatus.CONFLICT.value,
        content_type="application/json",
        body=limits.limit_answer(session_store(), owner, SETTINGS.max_active_sessions),
    )


@app.exception_handler(StatusConflictError)
def _wrong_status(exc: StatusConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message, status=exc.status)


@app.exception_handler(SessionConflictError)
def _conflict(exc: SessionConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message)


@app.exception_handler(ReleaseConflictError)
def _release_conflict(exc: ReleaseConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message)


@app.exception_handler(IdempotencyValidationError)
def _key_reused(exc: IdempotencyValidationError) -> Response[dict[str, str]]:
    return _error(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        f"{IDEMPOTENCY_KEY}: already used with a different request body",
    )


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _key_in_flight(exc: IdempotencyAlreadyInProgressError) -> Response[dict[str, str]]:
    return _error(
        HTTPStatus.CONFLICT,
        f"{IDEMPOTENCY_KEY}: a request with this key is still in progress; retry in a moment",
    )


_NOT_JSON = "body: must be JSON (Content-Type: application/json)"


@app.exception_handler(RequestUnsupportedContentType)
def _not_json(exc: RequestUnsupportedContentType) -> Response[dict[str, str]]:
    return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _NOT_JSON)


@app.exception_handler(ValueError)
def _no_multipart_boundary(exc: ValueError) -> Response[dict[str, str]]:
    """Powertools raises a bare ValueError for a multipart/form-data body without a boundary;
    any other ValueError is a fault, and the function errors as it would without this."""
    if not app.current_event.headers.get("content-type", "").startswith("multipart/form-data"):
        raise exc
    return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _NOT_JSON)


@app.exception_handler(RecursionError)
def _nested_too_deeply(exc: RecursionError) -> Response[dict[str, str]]:
    """A JSON body nested deeper than the parser's stack (json.loads raises RecursionError, which
    neither Powertools nor ``_object_bodies`` expects); any other RecursionError is a fault, and
    the function errors as it would without this."""
    try:
        json.loads(app.current_event.body or "null")
    except RecursionError:
        return _error(HTTPStatus.BAD_REQUEST, "body: JSON nested too deeply")
    except ValueError:
        pass
    raise exc


def _object_bodies(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """A body, where there is one, is a JSON object (Powertools would take ``[{...}]`` for the
    object it holds)."""
    raw = app.current_event.body
    if raw and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = {}  # the validation names the JSON error
        if not isinstance(parsed, dict):
            return _error(HTTPStatus.BAD_REQUEST, "body: must be a JSON object")
    return next_middleware(app)


def _known_query_parameters(
    app: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """A query parameter the route does not take is refused, as an unknown body field is: a
    misspelt filter (``?stauts=READY``) would otherwise list everything."""
    given = app.current_event.query_string_parameters or {}
    route = app.context.get("_route")
    if given and route is not None:
        known = {field.alias for field in route.dependant.query_params}
        unknown = sorted(name for name in given if name not in known)
        if unknown:
            return _error(HTTPStatus.BAD_REQUEST, f"{unknown[0][:64]}: unknown query parameter")
    return next_middleware(app)


#: The longest release version (releases.BUILD_KEY).
_MAX_RELEASE = 64


def _path_ids(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """A desktop's id is a UUID and a release's version is short: a path naming anything else
    names nothing (404, as an unknown one would), and never reaches DynamoDB, which refuses a key
    over 2048 bytes."""
    args = app.context.get("_route_args") or {}
    if "id" in args:
        try:
            uuid.UUID(str(args["id"]))
        except ValueError:
            return _error(HTTPStatus.NOT_FOUND, "session not found")
    if "release" in args and len(str(args["release"])) > _MAX_RELEASE:
        return _error(HTTPStatus.NOT_FOUND, "release does not exist")
    return next_middleware(app)


app.use(middlewares=[_object_bodies, _known_query_parameters, _path_ids])


# -- the caller -----------------------------------------------------------------------------------
def _claims() -> dict[str, Any]:
    return dict(app.current_event.request_context.authorizer.claims or {})


def _caller() -> sessions.Caller:
    claims = _claims()
    sub = claims.get("sub")
    if not sub:
        raise PermissionError("no authenticated caller")
    username = claims.get("cognito:username") or claims.get("username") or sub
    return sessions.Caller(sub=sub, username=str(username), email=claims.get("email"))


def _groups() -> set[str]:
    """The caller's Cognito groups: a list, or the string API Gateway makes of one
    ("admins", "admins,staff" or "[admins staff]")."""
    raw = _claims().get("cognito:groups") or ""
    if isinstance(raw, list):
        return {str(g) for g in raw}
    return {g for g in re.split(r"[\s,\[\]]+", str(raw)) if g}


def _admin() -> sessions.Caller:
    """Members of the admins group only."""
    caller = _caller()
    if ADMINS_GROUP not in _groups():
        raise AdminOnlyError("only members of the admins group may do this")
    return caller


def _accepted(session_id: str, status: Status) -> Response[Accepted]:
    logger.append_keys(session_id=session_id)
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type="application/json",
        body=Accepted(sessionId=session_id, status=status),
    )


# -- the document ---------------------------------------------------------------------------------
def openapi_document(stage: str = "v1") -> dict[str, Any]:
    """The OpenAPI document of every route, generated from the routes and their models.

    Request validation errors are answered 400 (not Powertools' default 422) by ``_invalid``,
    so the document says so.
    """
    schema = app.get_openapi_schema(
        title="DCV Fleet API",
        version=API_VERSION,
        summary="GPU remote desktops on demand",
        servers=[Server(url=f"/{stage}")],
        security_schemes={
            "cognito": APIKey(  # type: ignore[call-arg] # pydantic alias "in"
                name="Authorization",
                in_=APIKeyIn.header,
                description="The Cognito ID token of the signed-in user",
            )
        },
        security=[{"cognito": []}],
    )
    document: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            answers = operation["responses"]
            if answers.get("422", {}).get("description") == "Validation Error":
                del answers["422"]
            if path == "/openapi.json":  # public; a body or query it does not take is a 400
                operation["security"] = []
                answers.pop("401", None)
    # the 422's body; ValidationError stays: the documented 500 (ResponseValidationError) uses it
    document.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    return document


@app.get("/openapi.json", summary="This API's OpenAPI document", responses=_responses())
def get_openapi() -> dict[str, Any]:
    stage = app.current_event.request_context.stage or "v1"
    return openapi_document(stage)


# -- a user's own desktops ------------------------------------------------------------------------
def _create(request: dict[str, Any]) -> dict[str, Any]:
    body = CreateSessionBody.model_validate(request["body"])
    body.required()
    store, caller = session_store(), _caller()
    profile, instance_type = desktop_profiles.choose(
        _profiles().open_to(_groups()),
        profile_id=body.profile,
        backend=body.backend,
        os=body.os,
        instance_type=body.instanceType,
    )
    wanted = CreateSessionRequest(
        backend=profile.backend,
        os=profile.os,
        instance_type=instance_type,
        profile=desktop_profiles.snapshot(profile, profile.id, body.name),
    )
    session = service.create_session(
        store, Workflows(client("stepfunctions")), SETTINGS, caller, wanted
    )
    logger.append_keys(session_id=session.session_id)
    logger.info("session requested", backend=session.backend, os=session.os, profile=profile.id)
    answer: dict[str, Any] = {"sessionId": session.session_id, "status": session.status.value}
    subscribed = _subscribe(store, caller)
    if subscribed is not None:
        answer["notifications"] = {"email": subscribed.email, "message": subscribed.message}
    return answer


def _subscribe(
    store: SessionStore, caller: sessions.Caller
) -> service.NotificationSubscription | None:
    """The caller's address subscribed to their notifications; a failure costs the e-mails,
    never the desktop (the portal and the CLI show its status either way)."""
    if not NOTIFICATION_TOPIC_ARN:
        return None
    try:
        return service.subscribe_owner(
            store, UserNotifications(client("sns"), NOTIFICATION_TOPIC_ARN), caller
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "InvalidParameter" and "different attributes" in str(
            error.get("Message")
        ):
            # https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html: the address is
            # subscribed already, for another user (a shared address); it stays theirs alone
            logger.warning(
                "the caller's e-mail address is subscribed for another user; the caller gets "
                "no e-mail notifications until one of them changes address"
            )
        elif error.get("Code") == FILTER_POLICY_LIMIT:
            # https://docs.aws.amazon.com/sns/latest/dg/subscription-filter-policy-constraints.html
            logger.error(
                "the users' topic has as many subscription filter policies as SNS allows; "
                "raise its 'filter policies per topic' quota (Service Quotas): until then "
                "new users get no e-mail notifications",
                topic=NOTIFICATION_TOPIC_ARN,
            )
        else:
            logger.exception("could not subscribe the caller to their notifications")
    except BotoCoreError:
        logger.exception("could not subscribe the caller to their notifications")
    return None


@functools.cache
def _create_once() -> Callable[..., dict[str, Any]]:
    """``_create`` answered once per (user, Idempotency-Key), through the idempotency table."""
    layer = DynamoDBPersistenceLayer(
        table_name=os.environ.get("IDEMPOTENCY_TABLE", ""), boto3_client=client("dynamodb")
    )
    decorated: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="request", config=IDEMPOTENCY, persistence_store=layer
    )(_create)
    return decorated


@app.post(
    "/sessions",
    summary="Ask for a desktop",
    description="Starts the provisioning workflow. A retried request with the same "
    "Idempotency-Key gets the same answer and makes one desktop.",
    responses=_responses(409, 415, 422, status=202, description="Provisioning", model=Created),
)
def create_session(
    body: CreateSessionBody,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_KEY,
            min_length=1,
            max_length=128,
            pattern=r"^[\x21-\x7e]+$",
            description="Any printable ASCII string; the same key within an hour gets the "
            "same answer",
        ),
    ] = None,
) -> Response[Created]:
    request = {"owner": _caller().sub, "key": idempotency_key, "body": body.model_dump()}
    answer = _create_once()(request=request) if idempotency_key else _create(request)
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type="application/json",
        body=Created.model_validate(answer),
        headers={"Location": f"/sessions/{answer['sessionId']}"},
    )


@app.get(
    "/options", summary="What a desktop may be asked for on this fleet", responses=_responses()
)
def get_options() -> Options:
    _caller()
    return Options.model_validate(service.options(SETTINGS))


@app.get("/sessions", summary="The caller's desktops, newest first", responses=_responses())
def list_sessions(
    hidden: Annotated[
        bool, Query(description="true: the hidden desktops too (PATCH /sessions/{id})")
    ] = False,
) -> SessionList:
    sessions = session_store().list_by_owner(_caller().sub)
    shown = [s for s in sessions if hidden or not session_names.is_hidden(s)]
    return SessionList.model_validate({"sessions": [s.to_api() for s in shown]})


@app.get("/sessions/<id>", summary="One of the caller's desktops", responses=_responses(404))
def get_session(id: str) -> SessionView:
    logger.append_keys(session_id=id)
    return SessionView.model_validate(sessions.get_session(session_store(), _caller(), id).to_api())


@app.patch(
    "/sessions/<id>",
    summary="Rename a desktop, or hide an ended one from GET /sessions",
    responses=_responses(404, 409, 415),
)
def update_session(id: str, body: UpdateSessionBody) -> SessionView:
    logger.append_keys(session_id=id)
    session = session_names.rename_or_hide(
        session_store(), _caller(), id, name=body.name, hidden=body.hidden
    )
    logger.info("session renamed or hidden", hidden=body.hidden, renamed=body.name is not None)
    return SessionView.model_validate(session.to_api())


@app.get(
    "/sessions/<id>/credentials",
    summary="The desktop's DCV user name and password (each reveal is audited)",
    responses=_responses(404, 409),
)
def get_credentials(id: str) -> Credentials:
    logger.append_keys(session_id=id)
    context = app.current_event.request_context
    request = {"requestId": context.request_id or str(uuid.uuid4())}
    if context.identity.source_ip:
        request["sourceIp"] = context.identity.source_ip
    found = service.reveal_credentials(
        session_store(),
        SessionSecrets(client("secretsmanager")),
        FleetEvents(client("events"), SETTINGS.common.event_bus_name),
        _caller(),
        id,
        request,
    )
    return Credentials.model_validate(found)


@app.post(
    "/sessions/<id>/start",
    summary="Resume a stopped desktop on its own instance",
    responses=_responses(404, 409, status=202, description="Provisioning", model=Accepted),
)
def start_session(id: str) -> Response[Accepted]:
    session = user_requests.resume(
        session_store(), Workflows(client("stepfunctions")), LIFECYCLE, _caller(), id
    )
    logger.info("resume requested")
    return _accepted(session.session_id, session.status)


def _request_stop(session_id: str, action: str, *, as_admin: bool = False) -> Response[Accepted]:
    caller = _admin() if as_admin else _caller()
    session = user_requests.request_stop(
        session_store(),
        Workflows(client("stepfunctions")),
        LIFECYCLE,
        caller,
        session_id,
        action=action,
        as_admin=as_admin,
    )
    logger.info("stop requested", action=action, by=caller.username, admin=as_admin)
    if as_admin:
        owner = session.to_admin_api().get("ownerName") or session.owner
        cancelled = " (cancelled while it was starting)" if cancel.was_cancelled(session) else ""
        _audited(caller, action, session_id, f"desktop of {owner}{cancelled}")
    return _accepted(session.session_id, session.status)


_STOPPED = _responses(404, 409, status=202, description="Stopping", model=Accepted)


@app.post("/sessions/<id>/stop", summary="Stop a desktop (a batch one ends)", responses=_STOPPED)
def stop_session(id: str) -> Response[Accepted]:
    return _request_stop(id, "stop")


@app.delete("/sessions/<id>", summary="Delete a desktop and its disk", responses=_STOPPED)
def delete_session(id: str) -> Response[Accepted]:
    return _request_stop(id, "terminate")


# -- the fleet, for admins ------------------------------------------------------------------------
def _token(after: str | None) -> str | None:
    return base64.urlsafe_b64encode(after.encode()).decode().rstrip("=") if after else None


def _after(token: str | None) -> str | None:
    """The store's cursor a nextToken carries (the store checks it is one of its own)."""
    if not token:
        return None
    try:
        after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequestError("nextToken: not a token this API gave") from None
    return after


_ADMIN = _responses(403)


@app.get("/admin/sessions", summary="Every user's desktops", responses=_ADMIN)
def admin_sessions(
    status: Annotated[Status | None, Query(description="only desktops in this status")] = None,
    user: Annotated[
        str | None,
        Query(max_length=128, description="only this user's: user name, e-mail or sub"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    nextToken: Annotated[str | None, Query(max_length=512)] = None,
) -> AdminSessionPage:
    _admin()
    found, after = session_store().page(
        status=status, user=user, limit=limit, after=_after(nextToken)
    )
    page = {"sessions": [s.to_admin_api() for s in found], "nextToken": _token(after)}
    return AdminSessionPage.model_validate(page)


@app.get("/admin/instances", summary="The fleet's instances (its tag) by state", responses=_ADMIN)
def admin_instances(
    state: Annotated[InstanceState | None, Query(description="the instances' state")] = None,
    user: Annotated[
        str | None,
        Query(max_length=128, description="only this user's: user name, e-mail or sub"),
    ] = None,
    limit: Annotated[int, Query(ge=5, le=1000)] = 100,
    nextToken: Annotated[str | None, Query(max_length=2048)] = None,
) -> InstancePage:
    _admin()
    try:
        page = service.fleet_instances(
            Ec2Hosts(client("ec2")),
            SETTINGS.common,
            state=state,
            owner=service.owner_sub(session_store(), user) if user else None,
            limit=limit,
            token=nextToken,
            store=session_store(),
        )
    except ClientError as exc:
        if nextToken and exc.response["Error"]["Code"].startswith("InvalidParameterValue"):
            raise InvalidRequestError("nextToken: not a token this API gave") from exc
        raise
    return InstancePage.model_validate(page)


@app.post(
    "/admin/sessions/<id>/stop",
    summary="Stop anyone's desktop",
    responses=_responses(403, 404, 409, status=202, description="Stopping", model=Accepted),
)
def admin_stop(id: str) -> Response[Accepted]:
    return _request_stop(id, "stop", as_admin=True)


@app.delete(
    "/admin/sessions/<id>",
    summary="Terminate anyone's desktop",
    responses=_responses(403, 404, 409, status=202, description="Terminating", model=Accepted),
)
def admin_terminate(id: str) -> Response[Accepted]:
    return _request_stop(id, "terminate", as_admin=True)


@app.get("/admin/pool", summary="The warm pool's hosts", responses=_ADMIN)
def admin_pool() -> PoolList:
    _admin()
    from dcvfleet import pool, pool_cost, prices  # only this route reads the pool and prices

    dynamodb = client("dynamodb")
    store = pool.DynamoPoolStore(dynamodb, os.environ.get("POOL_TABLE", ""))
    found, targets = store.everything()  # every profile's pool
    hosts = [h for h in found if h.state in pool.IN_POOL]
    table, region = prices.pinned(), dynamodb.meta.region_name
    volume_gib = int(os.environ.get("ROOT_VOLUME_SIZE_GIB") or 0)
    # each host at its own type's and OS's prices (a record from before they were kept: the
    # default profile's LinuxInstanceType on Linux), with its RootVolumeSizeGiB volume
    rates = {
        (h.instance_type, h.os): pool_cost.Rates.of(
            table,
            h.instance_type or os.environ.get("LINUX_INSTANCE_TYPE", ""),
            region,
            volume_gib,
            "Windows" if h.os == "windows" else "Linux",
        )
        for h in hosts
    }
    if volume_gib <= 0:  # not configured: the volume's price is unknown
        rates = {k: dataclasses.replace(r, volume_hour=None) for k, r in rates.items()}
    now = now_iso()
    costs = [pool_cost.host_cost(h, now, rates[(h.instance_type, h.os)]) for h in hosts]
    items = [
        {
            **h.view(),
            "instanceType": rates[(h.instance_type, h.os)].instance_type,
            "onDemandPerHour": rates[(h.instance_type, h.os)].instance_hour,
            "runningSeconds": round(c.running_seconds, 3),
            "stoppedSeconds": round(c.stopped_seconds, 3),
            "costUsd": None if c.usd is None else round(c.usd, 6),
        }
        for h, c in zip(hosts, costs, strict=True)
    ]
    together = pool_cost.total(costs)
    cost = {
        "totalUsd": None if together is None else round(together, 6),
        "region": region,
        "volumeGiB": volume_gib,
        "volumePerHour": None if volume_gib <= 0 else table.volume_hour(region, volume_gib),
        "pricesTakenAt": table.taken_at,
    }
    return PoolList.model_validate(
        {
            "items": items,
            "target": targets.get(DEFAULT_POOL_PROFILE),
            "targets": targets,
            "cost": cost,
        }
    )


def _host_images() -> HostImages:
    env = os.environ
    return HostImages(
        client("ssm"),
        client("ec2"),
        client("imagebuilder"),
        parameters={
            "linux": env.get("LINUX_HOST_IMAGE_PARAMETER", ""),
            "windows": env.get("WINDOWS_HOST_IMAGE_PARAMETER", ""),
        },
        pipelines={
            "linux": env.get("LINUX_HOST_PIPELINE", ""),
            "windows": env.get("WINDOWS_HOST_PIPELINE", ""),
        },
    )


@app.get(
    "/admin/host-images",
    summary="The host images new EC2 desktops start from, and the earlier ones",
    responses=_ADMIN,
)
def admin_host_images() -> HostImageList:
    _admin()
    return HostImageList.model_validate(_host_images().view())


@app.post(
    "/admin/host-images/<os>/build",
    summary="Build the OS's host image now (its test phase must pass before desktops use it)",
    responses=_responses(
        403, 404, 409, status=202, description="Build started", model=HostImageBuild
    ),
)
def build_host_image(os: str) -> Response[HostImageBuild]:
    caller = _admin()
    request_id = app.current_event.request_context.request_id or str(uuid.uuid4())
    out = _host_images().build(os, request_id)
    logger.info("host image build started", os=os, build=out["imageBuildVersionArn"])
    _audited(caller, "build-host-image", os, out["imageBuildVersionArn"])
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type="application/json",
        body=HostImageBuild.model_validate(out),
    )


@app.post(
    "/admin/host-images/<os>/rollback",
    summary="New desktops of this OS start from the previous host image again",
    responses=_responses(403, 404, 409),
)
def roll_back_host_image(os: str) -> HostImageRollback:
    caller = _admin()
    out = _host_images().rollback(os, now_iso())
    logger.info(
        "host image rolled back", os=os, image_id=out["imageId"], withdrawn=out["withdrawn"]
    )
    _audited(caller, "roll-back-host-image", os, f"{out['withdrawn']} -> {out['imageId']}")
    return HostImageRollback.model_validate(out)


@app.exception_handler(HostImageNotFoundError)
def _no_host_image(exc: HostImageNotFoundError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.NOT_FOUND, exc.message)


@app.exception_handler(HostImageConflictError)
def _host_image_conflict(exc: HostImageConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message)


def _releases() -> tuple[ReleaseRecords, Releases]:
    table = os.environ.get("RELEASES_TABLE", "")
    parameter = os.environ.get("RELEASE_PARAMETER", "")
    return ReleaseRecords(client("dynamodb"), table), Releases(client("ssm"), parameter)


@app.get("/admin/releases", summary="The desktop image releases", responses=_ADMIN)
def list_releases() -> ReleaseList:
    _admin()
    records, _ = _releases()
    return ReleaseList.model_validate({"releases": records.list()})


@app.post(
    "/admin/releases/<release>/activate",
    summary="Make an earlier release current again (new batch desktops start on it)",
    responses=_responses(403, 404, 409),
)
def activate_release(release: str) -> Release:
    caller = _admin()
    records, current = _releases()
    out = releases.activate(records, current, release)
    logger.info("release activated", release=release)
    _audited(caller, "activate-release", release)
    return Release.model_validate(out)


# -- desktop profiles -----------------------------------------------------------------------------
#: The SSM parameter holding the template's DesktopProfiles (checked at deploy time).
DESKTOP_PROFILES_PARAMETER = os.environ.get("DESKTOP_PROFILES_PARAMETER", "")
PROFILES_TABLE = os.environ.get("PROFILES_TABLE", "")


@functools.cache
def _fleet_choices() -> FleetChoices:
    return FleetChoices.from_env(os.environ)


@functools.cache
def _template_profiles() -> tuple[ProfileDefinition, ...]:
    """The template's profiles, read once per cold start (a stack update replaces the function's
    configuration, and with it every warm instance)."""
    text = os.environ.get("DESKTOP_PROFILES", "")
    if DESKTOP_PROFILES_PARAMETER:
        found = client("ssm").get_parameter(Name=DESKTOP_PROFILES_PARAMETER)
        text = found["Parameter"]["Value"]
    return tuple(desktop_profiles.template_definitions(text, _fleet_choices()))


def _profiles() -> Profiles:
    return Profiles(_template_profiles(), ProfileRecords(client("dynamodb"), PROFILES_TABLE))


@app.exception_handler(ProfileNotFoundError)
def _no_profile(exc: ProfileNotFoundError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.NOT_FOUND, exc.message)


@app.exception_handler(ProfileConflictError)
def _profile_conflict(exc: ProfileConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message)


def _profile_responses(*codes: int, status: int = 200, **kwargs: Any) -> dict[int, Any]:
    out = _responses(*codes, status=status, **kwargs)
    if 404 in out:
        out[404]["description"] = "No such profile (or a path naming none)"
    if 409 in out:
        out[409]["description"] = "A profile defined in the template cannot be deleted"
    return out


ProfileId = Annotated[
    str, PathParam(pattern=PROFILE_ID_PATTERN, description="[a-z0-9][a-z0-9-]{0,39}")
]


@app.get(
    "/profiles",
    summary="The desktop profiles the caller may use",
    responses=_profile_responses(),
)
def list_profiles() -> ProfileList:
    _caller()
    return ProfileList(items=_profiles().open_to(_groups()))


@app.get("/admin/profiles", summary="Every desktop profile", responses=_profile_responses(403))
def admin_profiles() -> ProfileList:
    _admin()
    return ProfileList(items=_profiles().all())


@app.put(
    "/admin/profiles/<profile>",
    summary="Add a profile, or replace one (an admin's wins over the template's of its id)",
    responses=_profile_responses(403, 404, 409, 415),
)
def put_profile(profile: ProfileId, body: ProfileSpec) -> Profile:
    admin = _admin()
    put = _profiles().put(profile, body, _fleet_choices(), by=admin.username)
    logger.info("profile put", profile=profile, by=admin.username)
    _audited(admin, "put-profile", profile, put.name)
    return put


@app.delete(
    "/admin/profiles/<profile>",
    summary="Delete an admin's profile (a template one it replaced is used again)",
    responses=_profile_responses(403, 404, 409, status=204, description="Deleted"),
)
def delete_profile(profile: ProfileId) -> Response[None]:
    admin = _admin()
    _profiles().delete(profile)
    logger.info("profile deleted", profile=profile, by=admin.username)
    _audited(admin, "delete-profile", profile)
    return Response(
        status_code=HTTPStatus.NO_CONTENT.value, content_type="application/json", body=None
    )


# -- the audit trail ------------------------------------------------------------------------------
def _audit_log() -> audit.AuditLog:
    """The administrators' audit trail (in the sessions table)."""
    return audit.dynamo_log(client("dynamodb"), SETTINGS.common.table_name)


def _audited(caller: sessions.Caller, action: str, target: str, detail: str | None = None) -> None:
    """Record an administrator's action once it is done (``audit.record``). The action stands
    if the record cannot be written: the log then holds the whole entry, at ERROR."""
    try:
        audit.record(_audit_log(), caller.username, action, target, detail)
    except Exception:
        logger.exception(
            "audit record lost", actor=caller.username, action=action, target=target, detail=detail
        )


@app.get(
    "/admin/audit",
    summary="What administrators did, newest first",
    responses=_responses(403),
)
def admin_audit(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    nextToken: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditPage:
    _admin()
    found, after = _audit_log().page(limit=limit, after=_after(nextToken))
    page: dict[str, Any] = {"items": [e.to_api() for e in found]}
    if after:
        page["nextToken"] = _token(after)
    return AuditPage.model_validate(page)


# capture_response=False: an answer can hold a desktop's password (GET .../credentials).
@entry_point(correlation_paths.API_GATEWAY_REST, capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.remove_keys(["session_id"])  # the session of an earlier request is not this one's
    IDEMPOTENCY.register_lambda_context(context)
    return app.resolve(event, context)
