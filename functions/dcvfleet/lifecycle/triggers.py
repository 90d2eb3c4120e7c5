"""What the lifecycle's parts share: what starts a stop, the clock their decisions read, and
what a desktop that is not running has none of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dcvfleet.config import LifecycleSettings
from dcvfleet.model import Session

#: What started a stop: the agent's claim, the sweep, the user, a fleet administrator, or a
#: change outside DCV Fleet.
AUTOMATIC_TRIGGERS = ("idle", "agent-silent", "max-lifetime")
REQUESTED_TRIGGERS = ("user", "admin", "external")
TRIGGERS = (*AUTOMATIC_TRIGGERS, *REQUESTED_TRIGGERS)
#: Cleared when a desktop stops or ends, and when it is resumed: its connection URL, its DCV
#: session, a workflow waiting for its host, and an idle check's slot.
NO_LIVE_SESSION: dict[str, None] = {
    "connection_url": None,
    "dcv_session_id": None,
    "task_token": None,
    "idle_check": None,
    "idle_check_at": None,
}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_now() -> datetime:
    return datetime.now(UTC)


def stale(session: Session, settings: LifecycleSettings) -> bool:
    """Whether the session's idle check is older than a check may take (or has no time)."""
    if not session.idle_check_at:
        return True
    age = utc_now() - parse_time(session.idle_check_at)
    return age > timedelta(seconds=settings.stale_check_seconds)
