"""Who this host is: config values first, EC2 instance metadata (IMDSv2) for what is missing."""

from __future__ import annotations

from dataclasses import dataclass

from .aws import IdentityError, Imds
from .config import Config

SESSION_TAG = "dcvfleet:session-id"
SECRET_TAG = "dcvfleet:secret-arn"  # noqa: S105 (a tag key, not a secret)


@dataclass(frozen=True)
class Identity:
    instance_id: str
    session_id: str
    secret_arn: str | None


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
    return Identity(instance_id=instance_id, session_id=session_id, secret_arn=secret_arn)
