"""Who this host is: config values first, EC2 instance metadata (IMDSv2) for what is missing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .aws import AwsError, IdentityError, Imds
from .config import Config

SESSION_TAG = "dcvfleet:session-id"
#: A warm pool host's tag (its profile): launched ahead of any request, it has no session tag
#: until a request claims it and the control plane puts the session's tags on it.
POOL_TAG = "dcvfleet:pool"
#: How often a pool host looks for its session tag.
POOL_POLL_SECONDS = 1.0
#: The tag a pool host's agent puts on its own instance while it waits: the host is made (its
#: first boot installed DCV and the agent, and the agent runs), and a pool that waits stopped
#: may stop it now (functions/dcvfleet/pool.py).
POOL_READY_TAG = "dcvfleet:pool-ready"
#: After a failed attempt to put POOL_READY_TAG, the next comes this many polls later.
POOL_READY_RETRY_POLLS = 60
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


log = logging.getLogger(__name__)


def resolve_identity(
    config: Config,
    imds: Imds | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POOL_POLL_SECONDS,
    mark_made: Callable[[str], None] | None = None,
) -> Identity:
    """Config values win; IMDS is only contacted for values the config leaves out. A warm pool
    host (POOL_TAG, no session tag yet) waits, polling its tags, until a request claims it;
    meanwhile ``mark_made(instance_id)`` puts POOL_READY_TAG on its instance."""
    client = imds or Imds()
    instance_id = config.instance_id or client.get("instance-id")
    made = (lambda: mark_made(instance_id)) if mark_made else None
    session_id = config.session_id or _session_tag(client, sleep, poll_seconds, made)
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


def _session_tag(
    client: Imds,
    sleep: Callable[[float], None],
    poll_seconds: float,
    mark_made: Callable[[], None] | None = None,
) -> str:
    """The session tag; on a warm pool host, the one a claim puts on it, however long that
    takes (``sleep`` raises to stop the wait). While it waits, ``mark_made`` tags the instance
    made (POOL_READY_TAG), once it succeeds; a failure (the network, or a role without the
    permission) is logged and tried again POOL_READY_RETRY_POLLS polls later: the host stays a
    pool host that waits running meanwhile. Instance tags are read through instance metadata
    (InstanceMetadataTags is enabled in the launch templates), and a tag added to a running
    instance appears there without a restart
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#work-with-tags-in-IMDS)."""
    try:
        return client.tag(SESSION_TAG)
    except IdentityError:
        try:
            profile = client.tag(POOL_TAG)
        except IdentityError:
            profile = ""
        if not profile:
            raise
    log.info("warm pool host: waiting for a request", extra={"fields": {"pool": profile}})
    polls = 0
    while True:
        if mark_made is not None and polls % POOL_READY_RETRY_POLLS == 0:
            try:
                mark_made()
                mark_made = None
                log.info("warm pool host: tagged made", extra={"fields": {"tag": POOL_READY_TAG}})
            except AwsError as exc:
                log.warning(
                    "warm pool host: not tagged made", extra={"fields": {"error": str(exc)}}
                )
        polls += 1
        sleep(poll_seconds)
        try:
            return client.tag(SESSION_TAG)
        except IdentityError:
            continue
