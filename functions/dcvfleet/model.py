"""The session record, its lifecycle and the request it is made from."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema

from dcvfleet.errors import InvalidRequestError


class Status(enum.StrEnum):
    PROVISIONING = "PROVISIONING"
    READY = "READY"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    FAILED = "FAILED"


#: Statuses that count against a user's active-session limit.
ACTIVE = frozenset({Status.PROVISIONING, Status.READY, Status.STOPPING, Status.TERMINATING})

#: Allowed transitions (the lifecycle in ARCHITECTURE.md).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # PROVISIONING -> STOPPED: a resume that failed leaves the desktop stopped, its disk kept.
    Status.PROVISIONING: frozenset({Status.READY, Status.FAILED, Status.STOPPED}),
    Status.READY: frozenset({Status.STOPPING, Status.TERMINATING}),
    # STOPPING -> READY: the stop failed and the host still runs; -> TERMINATING: it was
    # terminated (outside DCV Fleet) while stopping.
    Status.STOPPING: frozenset({Status.STOPPED, Status.READY, Status.TERMINATING}),
    Status.STOPPED: frozenset({Status.PROVISIONING, Status.TERMINATING}),
    Status.TERMINATING: frozenset({Status.TERMINATED}),
    Status.TERMINATED: frozenset(),
    Status.FAILED: frozenset(),
}


def can_transition(current: Status, new: Status) -> bool:
    return new in TRANSITIONS[current]


@dataclass
class Session:
    session_id: str
    owner: str
    backend: str
    os: str
    instance_type: str
    status: Status
    created_at: str
    updated_at: str
    version: int = 1
    owner_email: str | None = None
    instance_id: str | None = None
    job_id: str | None = None
    secret_arn: str | None = None
    dcv_session_id: str | None = None
    connection_url: str | None = None
    status_reason: str | None = None
    execution_arn: str | None = None
    task_token: str | None = None
    #: When the session last became READY (its lifetime counts from here).
    ready_at: str | None = None
    #: The idle workflow execution now deciding about this session (one at a time).
    idle_check: str | None = None
    idle_check_at: str | None = None
    #: The signal values and times a stop or termination was decided on.
    evidence: dict[str, Any] | None = None
    #: Written by the agent's heartbeats only, outside the versioned writes (see store).
    last_heartbeat_at: str | None = None
    heartbeat: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        """The public view (ARCHITECTURE.md, GET /sessions/{id}); never tokens or secret ARNs."""
        view: dict[str, Any] = {
            "sessionId": self.session_id,
            "status": self.status.value,
            "backend": self.backend,
            "os": self.os,
            "instanceType": self.instance_type,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        optional = {
            "instanceId": self.instance_id,
            "jobId": self.job_id,
            "connectionUrl": self.connection_url,
            "statusReason": self.status_reason,
        }
        view.update({k: v for k, v in optional.items() if v is not None})
        return view


def _load_schema(name: str) -> dict[str, Any]:
    text = resources.files("dcvfleet").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


CREATE_SESSION_SCHEMA = _load_schema("create_session.json")
_CREATE_VALIDATOR = jsonschema.Draft202012Validator(CREATE_SESSION_SCHEMA)


@dataclass(frozen=True)
class CreateSessionRequest:
    backend: str
    os: str
    instance_type: str | None

    @classmethod
    def parse(cls, body: str | None) -> CreateSessionRequest:
        """Validate a POST /sessions body; the error names the offending field."""
        if body is None or not body.strip():
            raise InvalidRequestError("body: a JSON object is required")
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"body: not valid JSON ({exc.msg})") from exc
        errors = sorted(_CREATE_VALIDATOR.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            raise InvalidRequestError(describe_schema_error(errors[0]))
        return cls(backend=data["backend"], os=data["os"], instance_type=data.get("instanceType"))


def describe_schema_error(error: jsonschema.ValidationError, root: str = "") -> str:
    """A message that names the field: ``backend: 'x' is not one of ['ec2', 'batch']``.

    Fields are named from ``root`` (``detail.instanceId``); a problem with the whole document
    is named ``root``, or ``body`` when there is none.
    """
    parts = [root] if root else []
    parts += [str(p) for p in error.path]
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{', '.join('.'.join([*parts, e]) for e in extra)}: unknown field"
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in error.instance]
        return f"{'.'.join([*parts, missing[0]])}: is required"
    return f"{'.'.join(parts) or 'body'}: {error.message}"
