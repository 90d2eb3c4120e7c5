"""The REST API's bodies, query parameters and answers: one model each.

The API validates requests with these models and generates its OpenAPI document from them
(``handlers.api``), so the document and what the handlers accept cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dcvfleet.model import CreateSessionRequest, Status

Backend = Literal["ec2", "batch"]
OperatingSystem = Literal["linux", "windows"]
InstanceState = Literal["running", "stopped", "terminated"]
#: An EC2 instance type: family, generation and options, a dot, a size.
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _is_none(value: Any) -> bool:
    return value is None


def absent(description: str | None = None) -> Any:
    """An optional answer field: left out of the answer when it has no value (never null)."""
    return Field(None, exclude_if=_is_none, description=description)


class CreateSessionBody(_Strict):
    """POST /sessions."""

    backend: Backend = Field(description="ec2: a persistent GPU host; batch: a DCV container")
    os: OperatingSystem = Field(description="batch desktops run Linux")
    instanceType: Annotated[
        str | None,
        Field(
            pattern=INSTANCE_TYPE_PATTERN,
            max_length=32,
            description="one of GET /options' instanceTypes for the backend; the OS's default "
            "when absent",
        ),
    ] = None

    def to_request(self) -> CreateSessionRequest:
        return CreateSessionRequest(
            backend=self.backend, os=self.os, instance_type=self.instanceType
        )


class Message(BaseModel):
    """Every error: what was wrong, naming the field (``backend: ...``)."""

    message: str


class ActiveDesktop(BaseModel):
    """One of the caller's active desktops, holding a slot of their limit."""

    sessionId: str
    name: str
    status: Status


class StatusConflict(Message):
    """409: the desktop's status does not allow the call (``status`` says which it is), or
    the caller's active-session limit is reached (``limit``, and the ``active`` desktops)."""

    status: Status | None = absent()
    limit: int | None = absent("the most active desktops a user may have")
    active: list[ActiveDesktop] | None = absent("the caller's active desktops")


class Accepted(BaseModel):
    """The desktop's new status; the change goes on in a workflow."""

    sessionId: str
    status: Status


class NotificationNotice(BaseModel):
    """The caller's address was just subscribed to their notifications: confirm it once."""

    email: str
    message: str


class Created(Accepted):
    """A new desktop; ``notifications`` when the caller's e-mail address was just subscribed
    to their own notifications (the first desktop, or a changed address)."""

    notifications: NotificationNotice | None = absent()


class Progress(BaseModel):
    """When each provisioning step of the current provisioning finished."""

    credentials: str | None = absent()
    capacity: str | None = absent()
    booted: str | None = absent()
    ready: str | None = absent()


class SessionView(BaseModel):
    sessionId: str
    status: Status
    backend: Backend
    os: OperatingSystem
    instanceType: str
    instanceId: str | None = absent()
    jobId: str | None = absent()
    connectionUrl: str | None = absent()
    statusReason: str | None = absent()
    createdAt: str
    updatedAt: str
    progress: Progress


class SessionList(BaseModel):
    sessions: list[SessionView]


class AdminSessionView(SessionView):
    owner: str = Field(description="the owner's Cognito sub")
    ownerName: str | None = absent("the owner's user name, else e-mail address")
    ownerEmail: str | None = absent()
    statusDetail: str | None = absent("for operators: the error and what AWS said")


class AdminSessionPage(BaseModel):
    sessions: list[AdminSessionView]
    nextToken: str | None = Field(None, description="pass back for the next page")


class Credentials(BaseModel):
    username: str
    password: str


class Options(BaseModel):
    """What a user may ask for on this fleet."""

    backends: list[Backend]
    os: dict[str, list[OperatingSystem]]
    instanceTypes: dict[str, list[str]]
    defaultInstanceTypes: dict[str, str]
    maxActiveSessions: int


class AuditItem(BaseModel):
    """One administrator's action."""

    at: str = Field(description="when (ISO 8601, UTC)")
    actor: str = Field(description="the administrator's user name")
    action: Literal["stop", "terminate", "activate-release", "put-profile", "delete-profile"]
    target: str = Field(description="the session id, release or profile id")
    detail: str | None = absent()


class AuditPage(BaseModel):
    items: list[AuditItem]
    nextToken: str | None = absent("pass back for the next page")


class InstanceDesktop(BaseModel):
    """A desktop whose container runs on a Batch instance."""

    sessionId: str
    name: str
    owner: str
    ownerName: str | None = absent()
    status: Status


class InstanceView(BaseModel):
    instanceId: str
    instanceType: str
    state: str
    backend: Backend
    launchTime: str | None = absent()
    sessionId: str | None = absent()
    owner: str | None = absent()
    ownerName: str | None = absent("the owner's user name, else e-mail address")
    privateIpAddress: str | None = absent()
    availabilityZone: str | None = absent()
    desktops: list[InstanceDesktop] | None = absent(
        "a Batch instance's desktops: the containers running on it"
    )


class InstancePage(BaseModel):
    instances: list[InstanceView]
    nextToken: str | None = absent()


class Release(BaseModel):
    model_config = ConfigDict(extra="allow")
    release: str
    status: str


class ReleaseList(BaseModel):
    releases: list[Release]
