"""The REST API's bodies, query parameters and answers: one model each.

The API validates requests with these models and generates its OpenAPI document from them
(``handlers.api``), so the document and what the handlers accept cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from dcvfleet.audit import AuditAction
from dcvfleet.errors import InvalidRequestError
from dcvfleet.model import Status
from dcvfleet.profiles import PROFILE_ID_PATTERN

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
    """POST /sessions: a profile (GET /profiles), or a backend and OS that one of the caller's
    profiles offers."""

    profile: Annotated[
        str | None,
        Field(pattern=PROFILE_ID_PATTERN, description="the id of a profile open to the caller"),
    ] = None
    name: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=60,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="the desktop's name; the profile's name when absent",
        ),
    ] = None
    backend: Backend | None = Field(
        None, description="ec2: a persistent GPU host; batch: a DCV container (without profile)"
    )
    os: OperatingSystem | None = Field(None, description="batch desktops run Linux")
    instanceType: Annotated[
        str | None,
        Field(
            pattern=INSTANCE_TYPE_PATTERN,
            max_length=32,
            description="one of GET /options' instanceTypes for the backend; the OS's default "
            "when absent",
        ),
    ] = None

    def required(self) -> None:
        """A body without a profile names a backend and an OS (400 naming the one missing)."""
        if self.profile is None and self.backend is None:
            raise InvalidRequestError("backend: is required (or name a profile)")
        if self.profile is None and self.os is None:
            raise InvalidRequestError("os: is required (or name a profile)")
        if self.name is not None and not self.name.strip():
            raise InvalidRequestError("name: must not be blank")


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


class StartEstimate(BaseModel):
    """How long a starting desktop usually takes, from the profile's recent desktops that
    started the same way (the figures only when there were at least three)."""

    path: Literal["pool", "pool-stopped", "launch", "resume", "batch"] = Field(
        description="how it starts: a ready host from the warm pool, a stopped pool host, a new "
        "instance, its own stopped instance, or a container on AWS Batch"
    )
    seconds: int | None = absent("the median time from request (or resume) to READY")
    upToSeconds: int | None = absent("the 90th percentile of that time")
    samples: int | None = absent("how many recent desktops the figures come from")


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
    estimate: StartEstimate | None = absent("while it starts, once the way it starts is known")
    profile: str = Field(description="the id of the profile it was made from")
    profileName: str = Field(description="that profile's name")
    name: str = Field(description="the desktop's name (PATCH /sessions/{id} renames it)")
    hidden: bool | None = absent("true when hidden from GET /sessions (PATCH /sessions/{id})")


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
    action: AuditAction
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


class PoolHostView(BaseModel):
    """A host of a warm pool."""

    instanceId: str
    profile: str = Field(description="the id of the profile whose pool it is in")
    state: Literal["WARMING", "READY", "STOPPING", "STOPPED"] = Field(
        description="READY: a request can claim it now; STOPPED: stopped or hibernated, a claim"
        " starts (or resumes) it first; STOPPING: being stopped to wait (WarmPoolState stopped,"
        " or a pool that waits stopped or hibernated), claimable once stopped;"
        " WARMING: launched, its agent not yet ready"
    )
    since: str = Field(description="when it entered that state (ISO 8601, UTC)")
    instanceType: str = Field(description="what it was launched as (empty: not recorded)")
    onDemandPerHour: float | None = Field(
        description="its type's On-Demand list price for its OS; null: not in the price table"
    )
    runningSeconds: float = Field(
        description="seconds it has waited running so far (WARMING, READY or STOPPING)"
    )
    stoppedSeconds: float = Field(description="seconds it has waited stopped so far")
    costUsd: float | None = Field(
        description="what it has cost so far at list prices (its instance while running, its"
        " root volume always); null: a price it needs is not in the price table"
    )


class PoolCostView(BaseModel):
    """What the pools' hosts are costed at, and their cost so far together."""

    totalUsd: float | None = Field(
        description="the hosts' cost so far together; null when any host's is unknown"
    )
    region: str
    volumeGiB: int = Field(description="each host's root volume (RootVolumeSizeGiB)")
    volumePerHour: float | None = Field(description="null: not in the price table")
    pricesTakenAt: str = Field(description="when the price table was taken")


class PoolTargetView(BaseModel):
    """What the pool's last refill sized it to, and why."""

    size: int = Field(description="the hosts it keeps now")
    state: Literal["running", "stopped", "hibernated"] = Field(description="how they wait")
    reason: str = Field(description="in plain words: the window, forecast or cap that set it")


class PoolList(BaseModel):
    items: list[PoolHostView] = Field(description="every profile's pool hosts")
    target: PoolTargetView | None = absent(
        "the default Linux EC2 profile's pool: the last refill's target; none before the first"
    )
    targets: dict[str, PoolTargetView] = Field(
        default_factory=dict,
        description="each pool's last target, by profile id (a pool being drained: size 0)",
    )
    cost: PoolCostView


class HostImageVersion(BaseModel):
    imageId: str
    version: int = Field(description="the host image parameter's version")
    since: str
    baked: bool = Field(description="a host image the pipeline made (false: the base AMI)")
    withdrawn: bool = Field(description="rolled back from; never put back by a rollback")
    gone: bool = Field(description="the AMI no longer exists")


class HostImageItem(BaseModel):
    os: OperatingSystem
    current: HostImageVersion | None
    builds: bool = Field(description="whether this fleet has the OS's image pipeline")
    history: list[HostImageVersion] = Field(description="the earlier images, newest first")


class HostImageList(BaseModel):
    items: list[HostImageItem]


class HostImageBuild(BaseModel):
    os: OperatingSystem
    imageBuildVersionArn: str


class HostImageRollback(BaseModel):
    os: OperatingSystem
    imageId: str = Field(description="the image new desktops start from now")
    withdrawn: str = Field(description="the image it replaced")


class Release(BaseModel):
    model_config = ConfigDict(extra="allow")
    release: str
    status: str


class ReleaseList(BaseModel):
    releases: list[Release]


class UpdateSessionBody(_Strict):
    """PATCH /sessions/{id}: rename a desktop, or hide an ended one from GET /sessions."""

    name: Annotated[
        str | None, Field(min_length=1, max_length=60, pattern=r"^[^\x00-\x1f\x7f]+$")
    ] = None
    hidden: StrictBool | None = Field(None, description="true: only a TERMINATED or FAILED desktop")
