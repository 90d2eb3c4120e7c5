"""Bring the host to "ready" (OS user, DCV session, the Host Ready event), then watch it for
idleness until SIGTERM/SIGINT (monitor.py).

Exit codes of main(): 0 stopped by SIGTERM/SIGINT, 1 could not get ready or report it, 2 bad
config. A restarted agent goes through "ready" again and re-sends Host Ready: that is how a
resumed desktop becomes READY. So does an agent whose host slept (hibernated, then resumed:
monitor.py), without a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import __version__, winstop
from .aws import AwsClient, CredentialChain, Ec2Client, IdentityError
from .config import Config, ConfigError, load_config, read_settings
from .dcv import DcvCli, DcvError, DcvSession, same_windows_user
from .events import EventSender
from .identity import POOL_READY_TAG, Identity, resolve_identity
from .logs import LogContext, configure_logging, iso_utc
from .monitor import Monitor
from .proc import Runner, run_command
from .signals import build_signals
from .users import Credentials, UserSetupError, ensure_os_user, read_credentials

HOST_READY = "Host Ready"
SCHEMA_VERSION = "1"
POLL_INTERVAL_SECONDS = 2.0
#: One AWS call's bound (connect, then read); EventSender retries, so a monitor tick stays short.
CALL_TIMEOUT_SECONDS = 10.0

log = logging.getLogger(__name__)


class NotReadyError(Exception):
    pass


class Stopped(Exception):
    """SIGTERM or SIGINT arrived while the agent was waiting."""


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
        wall: Callable[[], float] = time.time,
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
        self._wall = wall
        self.poll_interval = poll_interval
        self.dcv_session_id: str | None = None
        self.owner: str | None = None
        self._lost_logged = False

    def read_secret(self) -> Credentials | None:
        """The session's secret, whose event key then signs every event; None without a
        secretArn (an offline run: the control plane rejects unsigned events). The control plane
        lets this host read it just after launching it, so an early "access denied" is retried
        until the ready timeout."""
        if not self.identity.secret_arn or self.secrets is None:
            log.warning("no secretArn: events go unsigned, and the control plane ignores them")
            return None
        deadline = self._clock() + self.config.ready_timeout_seconds
        while True:
            try:
                creds = read_credentials(self.secrets, self.identity.secret_arn)
                break
            except UserSetupError as exc:
                if self._clock() + self.poll_interval > deadline:
                    raise
                log.warning(
                    "session secret not readable yet", extra={"fields": {"error": str(exc)}}
                )
                self._sleep(self.poll_interval)
        if creds.event_key:
            self.sender.key = creds.event_key
        else:
            log.warning("the secret has no eventKey: events go unsigned, and are ignored")
        return creds

    def prepare_user(self) -> str:
        """Read the session's secret (its event key signs every event); create/update the OS
        user from it when managed. Returns the session owner."""
        creds = self.read_secret()
        if not self.config.manage_user:
            return self.config.user_name
        if creds is None:
            raise UserSetupError("manageUser is true but there is no secretArn to read")
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
        """Create the session if it is missing (not on Windows, where the console session is
        made `owner`'s when the agent manages the user), poll until DCV lists it."""
        name, timeout = self.config.dcv_session_name, self.config.ready_timeout_seconds
        deadline = self._clock() + timeout
        may_create = self.config.platform != "windows"
        last_error = "session not listed yet"
        # Windows: the console session DCV Server made at boot is Administrator's; when the agent
        # manages the user, it is made the user's (DcvCli.own_console), once.
        give_console = self.config.platform == "windows" and self.config.manage_user
        console: str | None = None
        given = False
        while True:
            try:
                found = self._pick(self.dcv.list_sessions())
                if give_console and (found is not None or console):
                    if found is not None and same_windows_user(found.owner, owner):
                        return found.id
                    if found is not None and given:
                        raise NotReadyError(
                            f"DCV session '{found.id}' was created for {owner!r} but DCV lists "
                            f"its owner as {found.owner!r}"
                        )
                    if not given:
                        console = found.id if found is not None else str(console)
                        self.dcv.own_console(console, owner, close_first=found is not None)
                        given = True
                        log.info(
                            "console session given to its user",
                            extra={"fields": {"dcvSessionId": console, "user": owner}},
                        )
                        continue
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

    def event_base(self, dcv_session_id: str) -> dict[str, str]:
        """The fields every agent event starts with."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "instanceId": self.identity.instance_id,
            "sessionId": self.identity.session_id,
            "dcvSessionId": dcv_session_id,
            "agentVersion": __version__,
        }

    def host_ready_detail(self, dcv_session_id: str) -> dict[str, str]:
        return {
            **self.event_base(dcv_session_id),
            "platform": self.config.platform,
            "sentAt": iso_utc(self._wall()),
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
        self.dcv_session_id, self.owner = dcv_session_id, owner
        return 0

    def monitor(self, wait: Callable[[float], bool]) -> Monitor:
        """The idle monitor for the session found by run_once_ready()."""
        if self.dcv_session_id is None:
            raise RuntimeError("monitor() needs a successful run_once_ready() first")
        config = self.config
        on_gone = None if config.platform == "container" else self.session_lost
        signals = build_signals(config, self.dcv, self.dcv_session_id, self._run, on_gone)
        log.info(
            "monitoring idleness",
            extra={
                "fields": {
                    "signals": [s.name for s in signals],
                    "sampleIntervalSeconds": config.sample_interval_seconds,
                    "heartbeatIntervalSeconds": config.heartbeat_interval_seconds,
                    "idleTimeoutSeconds": config.idle_timeout_seconds,
                    "cpuThresholdPercent": config.cpu_threshold_percent,
                    "gpuThresholdPercent": config.gpu_threshold_percent,
                    "busyProcesses": list(config.busy_processes),
                }
            },
        )
        return Monitor(
            signals,
            self.sender,
            self.event_base(self.dcv_session_id),
            sample_interval=config.sample_interval_seconds,
            heartbeat_interval=config.heartbeat_interval_seconds,
            idle_timeout=config.idle_timeout_seconds,
            wait=wait,
            clock=self._clock,
            wall=self._wall,
            # a container is its desktop: once the session is gone (the application quit and
            # took it along), the agent ends, and with it the container and its billing
            session_ended=self._session_gone if config.platform == "container" else None,
            resume_gap=config.resume_gap_seconds,
        )

    def session_lost(self) -> None:
        """DCV no longer lists the session: its user logged out or its desktop exited, and DCV
        closed the virtual session with it. The host counts as idle meanwhile (the dcv signal).
        On Linux the session is created again, with the same name for the same owner, so the
        user can connect again with the same link; on Windows DCV Server owns the console
        session (none is created here). Tried at every sample until DCV lists it again.

        A Linux virtual session runs its desktop as the session's init, and ends when that
        exits, as a logout does; `dcv close-session` ends it the same way, closing what runs in
        it. Virtual sessions and their init: Amazon DCV Administrator Guide, "Starting Amazon
        DCV sessions" (https://docs.aws.amazon.com/dcv/latest/adminguide/managing-sessions-start.html);
        closing: "Stopping Amazon DCV sessions"
        (https://docs.aws.amazon.com/dcv/latest/adminguide/managing-sessions-lifecycle-stop.html).
        Re-creating it here, rather than ending the agent for a restart, keeps one Host Ready
        per start (a second one, for a READY desktop, would only be refused) and the idle clock
        running: a logout is not activity."""
        fields = {"dcvSessionId": self.dcv_session_id, "owner": self.owner}
        if not self._lost_logged:
            log.warning(
                "the DCV session has been closed; the host counts as idle", extra={"fields": fields}
            )
        if self.config.platform == "windows" or not self.dcv_session_id or not self.owner:
            self._lost_logged = True
            return
        try:
            self.dcv.create_session(self.dcv_session_id, self.owner)
        except DcvError as exc:
            if not self._lost_logged:
                log.warning(
                    "could not create the DCV session again",
                    extra={"fields": {**fields, "error": str(exc)}},
                )
            self._lost_logged = True
            return
        self._lost_logged = False
        log.info("created the DCV session again for its user", extra={"fields": fields})

    def run(self, wait: Callable[[float], bool]) -> int:
        """Get ready, then monitor; after the host slept (hibernated, then resumed) get ready
        again, with a fresh monitor: the resume waits for that Host Ready, and the old idle
        state speaks of the time before the sleep. main()'s exit code."""
        code = self.run_once_ready()
        while code == 0:
            watch = self.monitor(wait)
            watch.run()
            if not watch.resumed:
                break
            code = self.run_once_ready()
        return code

    def _session_gone(self) -> bool:
        return all(s.id != self.dcv_session_id for s in self.dcv.list_sessions())


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` (main thread only); the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interruptible_sleep(stop: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped

    return sleep


def _apply_settings(config: Config, ssm: Any) -> Config:
    """Config with the SSM settings parameter layered in. Never fatal: a parameter that cannot be
    read or parsed is left out (file and defaults apply), and so is each invalid key in it."""
    name = config.settings_parameter or ""
    try:
        settings, ignored = read_settings(ssm, name)
    except ConfigError as exc:
        fields = {"error": str(exc), "key": exc.key, "settingsParameter": name}
        log.warning("settings parameter ignored: file and defaults apply", extra={"fields": fields})
        return config
    for problem in ignored:
        fields = {"error": str(problem), "key": problem.key, "settingsParameter": name}
        log.warning("setting ignored", extra={"fields": fields})
    log.info("settings parameter read", extra={"fields": {"settings": settings}})
    return load_config(settings=settings)


def main(stop: threading.Event | None = None) -> int:
    """`stop`: set it to end the monitor as SIGTERM would (tests)."""
    context = configure_logging()
    stop = threading.Event() if stop is None else stop
    flushed = threading.Event()  # Windows: the shutdown handler waits for it (winstop.py)
    handler = winstop.install(stop, flushed)
    try:
        with _stop_on_signals(stop):
            return _run(context, stop)
    finally:
        flushed.set()
        del handler


def _run(context: LogContext, stop: threading.Event) -> int:
    try:
        config = load_config()
    except ConfigError as exc:
        fields = {"error": str(exc), "key": exc.key}
        log.error("invalid configuration", extra={"fields": fields})
        return 2
    context.update(config.session_id, config.instance_id)
    sleep = _interruptible_sleep(stop)
    try:
        credentials = CredentialChain()

        def mark_made(instance_id: str) -> None:
            # a warm pool host, waiting for a claim: tell the pool it is made
            ec2 = Ec2Client(
                config.region, credentials, config.endpoint_url, timeout=CALL_TIMEOUT_SECONDS
            )
            ec2.create_tags(instance_id, {POOL_READY_TAG: "true"})

        identity = resolve_identity(config, sleep=sleep, mark_made=mark_made)
        context.update(identity.session_id, identity.instance_id)

        def client(service: str, attempts: int = 1) -> AwsClient:
            return AwsClient(
                service,
                config.region,
                credentials,
                config.endpoint_url,
                max_attempts=attempts,
                timeout=CALL_TIMEOUT_SECONDS,
                sleep=sleep,
            )

        if config.settings_parameter:
            config = _apply_settings(config, client("ssm", attempts=3))
        if identity.idle_timeout_seconds is not None:  # the desktop's own, from its profile
            config = dataclasses.replace(config, idle_timeout_seconds=identity.idle_timeout_seconds)
        sender = EventSender(
            client("events"),
            config.event_bus_name,
            max_attempts=config.send_max_attempts,
            base_delay=config.send_base_delay_seconds,
            max_delay=config.send_max_delay_seconds,
            sleep=sleep,
        )
        secrets = client("secretsmanager", attempts=3)
        dcv = DcvCli(config.dcv_command, config.command_timeout_seconds)
        agent = Agent(config, identity, dcv, sender, secrets=secrets, sleep=sleep)
        return agent.run(stop.wait)
    except Stopped:
        log.info("stopped before the host was ready")
        return 0
    except IdentityError as exc:
        log.error("cannot determine host identity", extra={"fields": {"error": str(exc)}})
        return 1
    except Exception:
        log.exception("unexpected failure")
        return 1
