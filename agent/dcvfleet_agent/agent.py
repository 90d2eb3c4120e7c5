"""Bring the host to "ready": OS user, DCV session, then the Host Ready event.

Exit codes of main(): 0 ready and reported, 1 could not get ready or report it, 2 bad config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import boto3

from . import __version__
from .config import Config, ConfigError, load_config
from .dcv import DcvCli, DcvError, DcvSession
from .events import EventSender, client_config
from .identity import Identity, IdentityError, resolve_identity
from .logs import configure_logging, iso_utc
from .proc import Runner, run_command
from .users import UserSetupError, ensure_os_user, read_credentials

HOST_READY = "Host Ready"
SCHEMA_VERSION = "1"
POLL_INTERVAL_SECONDS = 2.0

log = logging.getLogger(__name__)


class NotReadyError(Exception):
    pass


class Agent:
    def __init__(
        self,
        config: Config,
        identity: Identity,
        dcv: DcvCli,
        sender: EventSender,
        *,
        secrets: Any = None,
        run: Runner = run_command,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self.config = config
        self.identity = identity
        self.dcv = dcv
        self.sender = sender
        self.secrets = secrets
        self._run = run
        self._sleep = sleep
        self._clock = clock
        self.poll_interval = poll_interval

    def prepare_user(self) -> str:
        """Create/update the OS user from the secret when managed; returns the session owner."""
        if not self.config.manage_user:
            return self.config.user_name
        if not self.identity.secret_arn or self.secrets is None:
            raise UserSetupError("manageUser is true but there is no secretArn to read")
        creds = read_credentials(self.secrets, self.identity.secret_arn)
        created = ensure_os_user(self.config.platform, creds, self._run)
        log.info("OS user ready", extra={"fields": {"user": creds.username, "created": created}})
        return creds.username

    def _pick(self, sessions: list[DcvSession]) -> DcvSession | None:
        for session in sessions:
            if session.id == self.config.dcv_session_name:
                return session
        if self.config.platform == "windows" and sessions:
            return sessions[0]  # the console session DCV Server creates on Windows
        return None

    def wait_for_session(self, owner: str) -> str:
        """Create the session if it is missing (not on Windows), poll until DCV lists it."""
        name, timeout = self.config.dcv_session_name, self.config.ready_timeout_seconds
        deadline = self._clock() + timeout
        may_create = self.config.platform != "windows"
        last_error = "session not listed yet"
        while True:
            try:
                found = self._pick(self.dcv.list_sessions())
                if found is not None:
                    return found.id
                if may_create:
                    self.dcv.create_session(name, owner)
                    may_create = False
                    log.info("created DCV session", extra={"fields": {"dcvSessionId": name}})
                    continue
            except DcvError as exc:
                if str(exc) != last_error:
                    log.warning("DCV not ready yet", extra={"fields": {"error": str(exc)}})
                last_error = str(exc)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise NotReadyError(
                    f"DCV session '{name}' was not listed within {timeout:g}s "
                    f"(last error: {last_error})"
                )
            self._sleep(min(self.poll_interval, remaining))

    def host_ready_detail(self, dcv_session_id: str) -> dict[str, str]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "instanceId": self.identity.instance_id,
            "sessionId": self.identity.session_id,
            "dcvSessionId": dcv_session_id,
            "platform": self.config.platform,
            "agentVersion": __version__,
            "sentAt": iso_utc(),
        }

    def run_once_ready(self) -> int:
        try:
            owner = self.prepare_user()
            dcv_session_id = self.wait_for_session(owner)
        except (UserSetupError, NotReadyError) as exc:
            log.error("host did not become ready", extra={"fields": {"error": str(exc)}})
            return 1
        fields = {"dcvSessionId": dcv_session_id}
        if not self.sender.send(HOST_READY, self.host_ready_detail(dcv_session_id)):
            log.error("Host Ready event could not be delivered", extra={"fields": fields})
            return 1
        log.info("Host Ready sent", extra={"fields": fields})
        return 0


def main() -> int:
    context = configure_logging()
    try:
        config = load_config()
    except ConfigError as exc:
        fields = {"error": str(exc), "key": exc.key}
        log.error("invalid configuration", extra={"fields": fields})
        return 2
    context.update(config.session_id, config.instance_id)
    try:
        identity = resolve_identity(config)
        context.update(identity.session_id, identity.instance_id)
        session = boto3.session.Session(region_name=config.region)
        options: dict[str, Any] = {"config": client_config(), "endpoint_url": config.endpoint_url}
        sender = EventSender(
            session.client("events", **options),
            config.event_bus_name,
            max_attempts=config.send_max_attempts,
            base_delay=config.send_base_delay_seconds,
            max_delay=config.send_max_delay_seconds,
        )
        secrets = session.client("secretsmanager", **options) if config.manage_user else None
        dcv = DcvCli(config.dcv_command, config.command_timeout_seconds)
        return Agent(config, identity, dcv, sender, secrets=secrets).run_once_ready()
    except IdentityError as exc:
        log.error("cannot determine host identity", extra={"fields": {"error": str(exc)}})
        return 1
    except Exception:
        log.exception("unexpected failure")
        return 1
