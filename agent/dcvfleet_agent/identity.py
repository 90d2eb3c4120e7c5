"""Who this host is: config values first, EC2 instance metadata (IMDSv2) for what is missing."""

from __future__ import annotations

from dataclasses import dataclass

from .aws import IdentityError, Imds
from .config import Config

SESSION_TAG = "dcvfleet:session-id"
SECRET_TAG = "dcvfleet:secret-arn"  # noqa: S105 (a tag key, not a secret)
#: The desktop's own idle timeout (its profile's), set by the control plane at launch; it wins
#: over the fleet's (the config file's idleTimeoutSeconds, from IdleTimeoutSeconds).
IDLE_TIMEOUT_TAG = "dcvfleet:idle-timeout-seconds"


@dataclass(frozen=True)
class Identity:
    instance_id: str
    session_id: str
    secret_arn: str | None
    #: The desktop's own idle timeout (IDLE_TIMEOUT_TAG), when its host carries one.
    idle_timeout_seconds: float | None = None


def resolve_identity(config: Config, imds: Imds | None = None) -> Identity:
    """Config values win; IMDS is only contacted for values the config leaves out."""
    client = imds or Imds()
    instance_id = config.instance_id or client.get("instance-id")
    session_id = config.session_id or client.tag(SESSION_TAG)
    secret_arn = config.secret_arn
    if secret_arn is None and config.manage_user:
        secret_arn = client.tag(SECRET_TAG)
    for name, value in (("instance id", instance_id), ("session id", session_id)):
        if not value:
            raise IdentityError(f"instance metadata returned an empty {name}")
    idle_timeout = None
    if config.session_id is None and config.platform != "container":
        # a host that learns its session from its tags learns its own idle timeout there too
        # (a container's come in its job's environment: DCVFLEET_IDLE_TIMEOUT_SECONDS)
        idle_timeout = _own_idle_timeout(client)
    return Identity(
        instance_id=instance_id,
        session_id=session_id,
        secret_arn=secret_arn,
        idle_timeout_seconds=idle_timeout,
    )


def _own_idle_timeout(client: Imds) -> float | None:
    """IDLE_TIMEOUT_TAG's value, a whole number of seconds; None when the host has no such tag
    (a desktop made before profiles) or it is not a positive number."""
    try:
        raw = client.tag(IDLE_TIMEOUT_TAG)
    except IdentityError:
        return None
    return float(raw) if raw.strip().isdigit() and int(raw) > 0 else None
