"""The session record, its lifecycle and the request it is made from."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dcvfleet import estimates, wording
from dcvfleet.session_profile import session_view

if TYPE_CHECKING:  # only a type here: importing jsonschema is left to who validates
    import jsonschema


class Status(enum.StrEnum):
    PROVISIONING = "PROVISIONING"
    READY = "READY"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    FAILED = "FAILED"


#: The backends a desktop runs on: a persistent EC2 host, or a container run as an AWS Batch job.
BACKENDS = ("ec2", "batch")

#: Statuses that count against a user's active-session limit.
ACTIVE = frozenset({Status.PROVISIONING, Status.READY, Status.STOPPING, Status.TERMINATING})

#: The provisioning steps, in order, each recorded with the time it finished: credentials made,
#: a GPU instance or container obtained, the host's agent reported DCV running, READY.
PROGRESS_STEPS = ("credentials", "capacity", "booted", "ready")

#: Allowed transitions (docs/architecture.md, "The session lifecycle").
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # PROVISIONING -> STOPPED: a resume that failed leaves the desktop stopped, its disk kept;
    # -> TERMINATING: its owner (or an administrator) cancelled it while it was starting.
    Status.PROVISIONING: frozenset(
        {Status.READY, Status.FAILED, Status.STOPPED, Status.TERMINATING}
    ),
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
    #: The operator's detail behind ``status_reason`` (the error and what AWS said): admin
    #: views and the logs only, never the owner's view.
    status_detail: str | None = None
    execution_arn: str | None = None
    task_token: str | None = None
    #: When the session last became READY (its lifetime counts from here).
    ready_at: str | None = None
    #: When a stopped desktop was last asked to start again (time to READY counts from here; for
    #: a desktop never resumed, from ``created_at``).
    resumed_at: str | None = None
    #: The idle workflow execution now deciding about this session (one at a time).
    idle_check: str | None = None
    idle_check_at: str | None = None
    #: The signal values and times a stop or termination was decided on.
    evidence: dict[str, Any] | None = None
    #: Written by the agent's heartbeats only, outside the versioned writes (see store).
    last_heartbeat_at: str | None = None
    heartbeat: dict[str, Any] | None = None
    #: When each provisioning step of the current provisioning finished (PROGRESS_STEPS).
    progress: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def owner_name(self) -> str | None:
        """The owner's user name (Cognito), as it was when the session was made."""
        name = self.extra.get("username")
        return str(name) if name else None

    def to_api(self) -> dict[str, Any]:
        """The public view (docs/architecture.md, GET /sessions/{id}); no tokens or secret ARNs."""
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
            "statusReason": self.reason_for(admin=False),
        }
        view.update({k: v for k, v in optional.items() if v is not None})
        view.update(session_view(self.backend, self.os, self.extra))
        view["progress"] = {k: v for k, v in (self.progress or {}).items() if k in PROGRESS_STEPS}
        estimate = estimates.view(self.extra) if self.status == Status.PROVISIONING else None
        if estimate:
            view["estimate"] = estimate
        return view

    def reason_for(self, *, admin: bool) -> str | None:
        """``status_reason`` in the words of its reader: the owner, or an administrator."""
        return wording.status_reason(
            status=self.status.value,
            stored=self.status_reason,
            evidence=self.evidence,
            owner_name=self.owner_name or self.owner_email,
            admin=admin,
        )

    def to_admin_api(self) -> dict[str, Any]:
        """The view an administrator gets: the public view and whose desktop it is, the status
        reason in an administrator's words and the operator's detail behind it."""
        view = self.to_api()
        view["owner"] = self.owner
        reason = self.reason_for(admin=True)
        if reason is not None:
            view["statusReason"] = reason
        if self.status_detail:
            view["statusDetail"] = self.status_detail
        if self.owner_name or self.owner_email:
            view["ownerName"] = self.owner_name or self.owner_email
        if self.owner_email:
            view["ownerEmail"] = self.owner_email
        return view


@dataclass(frozen=True)
class CreateSessionRequest:
    """What a user asked for (validated by the API's ``CreateSessionBody``)."""

    backend: str
    os: str
    instance_type: str | None
    #: The profile the desktop is made from, and its own name: what it keeps of them
    #: (dcvfleet.profiles.snapshot), kept in the session's ``extra``.
    profile: dict[str, str] = field(default_factory=dict)


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
