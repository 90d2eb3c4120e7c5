"""REST API: create, list, get, start (resume), stop and delete desktop sessions; for admins,
the desktop releases and a return to an earlier one."""

from __future__ import annotations

import os
import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import lifecycle, releases, service
from dcvfleet.adapters import ReleaseRecords, Releases, Workflows
from dcvfleet.aws import client
from dcvfleet.config import ApiSettings, LifecycleSettings
from dcvfleet.errors import (
    InvalidRequestError,
    ReleaseConflictError,
    ReleaseNotFoundError,
    SessionConflictError,
    SessionLimitExceededError,
    SessionNotFoundError,
    StatusConflictError,
)
from dcvfleet.model import CreateSessionRequest
from dcvfleet.store import DynamoSessionStore

logger = Logger()
app = APIGatewayRestResolver()
SETTINGS = ApiSettings.from_env(os.environ)
LIFECYCLE = LifecycleSettings.from_env(os.environ)
ADMINS_GROUP = "admins"


def _store() -> DynamoSessionStore:
    return DynamoSessionStore(client("dynamodb"), SETTINGS.common.table_name)


def _claims() -> dict[str, Any]:
    return dict(app.current_event.request_context.authorizer.claims or {})


def _groups() -> set[str]:
    """The caller's Cognito groups: a list, or the string API Gateway makes of one
    ("admins", "admins,staff" or "[admins staff]")."""
    raw = _claims().get("cognito:groups") or ""
    if isinstance(raw, list):
        return {str(g) for g in raw}
    return {g for g in re.split(r"[\s,\[\]]+", str(raw)) if g}


def _require_admin() -> None:
    """Members of the admins group only."""
    _caller()
    if ADMINS_GROUP not in _groups():
        raise AdminOnlyError("only members of the admins group may do this")


class AdminOnlyError(Exception):
    pass


def _caller() -> service.Caller:
    claims: dict[str, Any] = app.current_event.request_context.authorizer.claims or {}
    sub = claims.get("sub")
    if not sub:
        raise PermissionError("no authenticated caller")
    username = claims.get("cognito:username") or claims.get("username") or sub
    return service.Caller(sub=sub, username=str(username), email=claims.get("email"))


def _error(status: HTTPStatus, message: str) -> Response[dict[str, str]]:
    return Response(
        status_code=status.value,
        content_type="application/json",
        body={"message": message},
    )


@app.exception_handler(AdminOnlyError)
def _forbidden(exc: AdminOnlyError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.FORBIDDEN, str(exc))


@app.exception_handler(ReleaseNotFoundError)
def _no_release(exc: ReleaseNotFoundError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.NOT_FOUND, exc.message)


@app.exception_handler(ReleaseConflictError)
def _release_conflict(exc: ReleaseConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message)


@app.exception_handler(InvalidRequestError)
def _bad_request(exc: InvalidRequestError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.BAD_REQUEST, exc.message)


@app.exception_handler(SessionNotFoundError)
def _not_found(exc: SessionNotFoundError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.NOT_FOUND, "session not found")


@app.exception_handler(SessionLimitExceededError)
def _limit(exc: SessionLimitExceededError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, f"active session limit reached: {exc.message}")


@app.exception_handler(StatusConflictError)
def _wrong_status(exc: StatusConflictError) -> Response[dict[str, str]]:
    return Response(
        status_code=HTTPStatus.CONFLICT.value,
        content_type="application/json",
        body={"message": exc.message, "status": exc.status},
    )


@app.exception_handler(SessionConflictError)
def _conflict(exc: SessionConflictError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.CONFLICT, exc.message)


@app.exception_handler(PermissionError)
def _unauthorised(exc: PermissionError) -> Response[dict[str, str]]:
    return _error(HTTPStatus.UNAUTHORIZED, "sign-in required")


@app.post("/sessions")
def create_session() -> Response[dict[str, str]]:
    request = CreateSessionRequest.parse(app.current_event.body)
    session = service.create_session(
        _store(), Workflows(client("stepfunctions")), SETTINGS, _caller(), request
    )
    logger.append_keys(session_id=session.session_id)
    logger.info("session requested", backend=session.backend, os=session.os)
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type="application/json",
        body={"sessionId": session.session_id, "status": session.status.value},
        headers={"Location": f"/sessions/{session.session_id}"},
    )


@app.get("/sessions")
def list_sessions() -> dict[str, Any]:
    sessions = _store().list_by_owner(_caller().sub)
    return {"sessions": [s.to_api() for s in sessions]}


@app.get("/sessions/<session_id>")
def get_session(session_id: str) -> dict[str, Any]:
    return service.get_session(_store(), _caller(), session_id).to_api()


def _accepted(session_id: str, status: str) -> Response[dict[str, str]]:
    logger.append_keys(session_id=session_id)
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type="application/json",
        body={"sessionId": session_id, "status": status},
    )


@app.post("/sessions/<session_id>/start")
def start_session(session_id: str) -> Response[dict[str, str]]:
    session = lifecycle.resume(
        _store(), Workflows(client("stepfunctions")), LIFECYCLE, _caller(), session_id
    )
    logger.info("resume requested")
    return _accepted(session.session_id, session.status.value)


def _request_stop(session_id: str, action: str) -> Response[dict[str, str]]:
    session = lifecycle.request_stop(
        _store(),
        Workflows(client("stepfunctions")),
        LIFECYCLE,
        _caller(),
        session_id,
        action=action,
    )
    logger.info("stop requested", action=action)
    return _accepted(session.session_id, session.status.value)


@app.post("/sessions/<session_id>/stop")
def stop_session(session_id: str) -> Response[dict[str, str]]:
    return _request_stop(session_id, "stop")


@app.delete("/sessions/<session_id>")
def delete_session(session_id: str) -> Response[dict[str, str]]:
    return _request_stop(session_id, "terminate")


def _releases() -> tuple[ReleaseRecords, Releases]:
    table = os.environ.get("RELEASES_TABLE", "")
    parameter = os.environ.get("RELEASE_PARAMETER", "")
    return ReleaseRecords(client("dynamodb"), table), Releases(client("ssm"), parameter)


@app.get("/admin/releases")
def list_releases() -> dict[str, Any]:
    _require_admin()
    records, _ = _releases()
    return {"releases": records.list()}


@app.post("/admin/releases/<release>/activate")
def activate_release(release: str) -> dict[str, str]:
    """Return to an earlier release: new batch desktops start on it; running ones are left."""
    _require_admin()
    records, current = _releases()
    out = releases.activate(records, current, release)
    logger.info("release activated", release=release)
    return out


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
