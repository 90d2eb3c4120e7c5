"""The two setup steps of the desktop container that entrypoint.sh hands to Python, because one
needs the agent's AWS client and the other a real command-line parser, in one process:

    python3 dcvfleet_container_setup.py --init-script PATH --app-dir DIR

First the application: APP_COMMAND is split like a shell would (shlex), its program must exist
and be executable by the desktop user, and the DCV session's init script is written, which
starts the program itself, its OpenGL carried to the GPU by DCV-GL (exit 64 when APP_COMMAND is
not a command line, 68 when
its program cannot be launched). Checked first, because it is the cheapest to find wrong.

Then the user: it reads the session secret (DCVFLEET_SECRET_ARN, a JSON SecretString {"username",
"password"}) from Secrets Manager with the agent's own client (dcvfleet_agent.aws: SigV4 over
the standard library, credentials from the task role's container endpoint), creates the OS user
when it is missing and sets its password, then prints the user name on stdout (exit 65 when the
secret cannot be read or is malformed, 66 when the user cannot be made). The control plane
grants this task read access to the secret just after the task starts, so AccessDenied and
transient errors are retried for DCVFLEET_SECRET_TIMEOUT_SECONDS (default 120).

The password never leaves this process except on chpasswd's standard input: not in an argv, not
in an environment variable, not on stdout, not in a log line or an error message (the agent's
users.py, which this reuses, keeps it so; every line printed here is scrubbed once more).

Every failure is one JSON line on stderr, as entrypoint.sh prints them:
{"time", "level": "ERROR", "logger", "message", "reason", "exitCode", "sessionId"}.
Standard library only, Python 3.9+ (the image's python3); dcvfleet_agent on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dcvfleet_agent.aws import AwsClient, AwsError, CredentialChain
from dcvfleet_agent.proc import Runner, run_command
from dcvfleet_agent.users import Credentials, UserSetupError, ensure_os_user, read_credentials

EXIT_CONFIG = 64
EXIT_SECRET = 65
EXIT_USER = 66
EXIT_APP = 68
LOGGER = "dcvfleet_container"
#: Accounts below this uid belong to the system (login.defs UID_MIN); never hand one out.
UID_MIN = 1000
DEFAULT_SECRET_TIMEOUT_SECONDS = 120.0
#: Secrets Manager answers AccessDenied until the control plane has granted this task the secret.
WAIT_FOR_GRANT = frozenset({"AccessDeniedException"})
#: The commands users.py runs, and the variable that names each one's program instead.
COMMAND_OVERRIDES = {
    "id": "DCVFLEET_ID_COMMAND",
    "useradd": "DCVFLEET_USERADD_COMMAND",
    "chpasswd": "DCVFLEET_CHPASSWD_COMMAND",
}


class SetupError(Exception):
    """A failed step: `code` is the container's exit code for it, `message` what failed."""

    def __init__(self, code: int, message: str, reason: str) -> None:
        super().__init__(f"{message}: {reason}")
        self.code = code
        self.message = message
        self.reason = reason


class Log:
    """JSON lines on stderr, the format of the agent's and the entrypoint's. `secret` is scrubbed
    from every line once it is known."""

    def __init__(self, environ: Mapping[str, str], stream: Any = None) -> None:
        self.session_id = environ.get("DCVFLEET_SESSION_ID") or None
        self.stream = stream
        self.secret: str | None = None

    def write(self, level: str, message: str, **fields: Any) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        payload: dict[str, Any] = {
            "time": f"{stamp}.{int(now * 1000) % 1000:03d}Z",
            "level": level,
            "logger": LOGGER,
            "message": message,
            "sessionId": self.session_id,
        }
        payload.update(fields)
        line = json.dumps(payload, default=str)
        if self.secret:
            line = line.replace(self.secret, "***")
            line = line.replace(json.dumps(self.secret)[1:-1], "***")  # as escaped inside JSON
        print(line, file=self.stream or sys.stderr, flush=True)

    def fail(self, error: SetupError) -> int:
        self.write("ERROR", error.message, reason=error.reason, exitCode=error.code)
        return error.code


# --- app ------------------------------------------------------------------------------------


def _resolve_program(program: str, app_dir: str, path: str) -> str | None:
    """An absolute path as is; a relative one with a '/' under the application's directory
    (the init script starts there); a bare name on PATH."""
    if os.path.isabs(program):
        return program
    if "/" in program:
        return os.path.normpath(os.path.join(app_dir, program))
    return shutil.which(program, path=path)


def parse_app_command(command_line: str) -> list[str]:
    try:
        argv = shlex.split(command_line)
    except ValueError as exc:
        raise SetupError(
            EXIT_CONFIG, "invalid configuration", f"APP_COMMAND is not a command line: {exc}"
        ) from None
    if not argv:
        raise SetupError(EXIT_CONFIG, "invalid configuration", "APP_COMMAND is empty")
    return argv


def check_program(argv: Sequence[str], app_dir: str, path: str) -> str:
    """The program's absolute path; SetupError(68) unless the desktop user can execute it (it
    runs as that user, who neither owns the image's files nor is in their group)."""
    what = "the application could not be launched"
    program = argv[0]
    resolved = _resolve_program(program, app_dir, path)
    if resolved is None:
        raise SetupError(EXIT_APP, what, f"APP_COMMAND's program {program} is not on PATH")
    try:
        mode = os.stat(resolved).st_mode
    except OSError as exc:
        reason = f"APP_COMMAND's program {resolved} does not exist ({exc.strerror})"
        raise SetupError(EXIT_APP, what, reason) from None
    if not stat.S_ISREG(mode):
        raise SetupError(EXIT_APP, what, f"APP_COMMAND's program {resolved} is not a file")
    if not mode & stat.S_IXOTH:
        reason = (
            f"APP_COMMAND's program {resolved} is not executable by the desktop user "
            f"(mode {stat.filemode(mode)})"
        )
        raise SetupError(EXIT_APP, what, reason)
    return resolved


#: Variables that send GLX past DCV-GL: PRIME render offload asks the session's own X server
#: (Xdcv, which has no NVIDIA GLX) for an NVIDIA offload provider, and a forced GLX vendor skips
#: the library DCV-GL answers through. The session's init script removes them.
GLX_BYPASS = (
    "__NV_PRIME_RENDER_OFFLOAD",
    "__NV_PRIME_RENDER_OFFLOAD_PROVIDER",
    "__GLX_VENDOR_LIBRARY_NAME",
)


def init_script(argv: Sequence[str], program: str, app_dir: str) -> str:
    """The DCV virtual session's init script: the application, from its directory, started as
    it is. The session is created with ``--gl on``: DCV-GL takes the application's OpenGL to the
    3D X server on the GPU and brings the frames back into the session
    (https://docs.aws.amazon.com/dcv/latest/adminguide/managing-sessions.html). Nothing may
    route GLX around it, so the variables that would are removed (GLX_BYPASS)."""
    command = " ".join(shlex.quote(part) for part in (program, *argv[1:]))
    return (
        "#!/bin/sh\n"
        "# The DCV virtual session's init script, written by the DCV Fleet container at start:\n"
        "# the application (APP_COMMAND); DCV-GL carries its OpenGL to the NVIDIA GPU.\n"
        f"unset {' '.join(GLX_BYPASS)}\n"
        f"cd {shlex.quote(app_dir)} 2>/dev/null || cd\n"
        f"exec {command}\n"
    )


def write_executable(path: str, text: str) -> None:
    """Atomically, mode 0755 (the session's user runs it; only root may change it)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".init.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755)  # noqa: S103 (a script the desktop user must execute)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def prepare_app(environ: Mapping[str, str], init_path: str, app_dir: str, log: Log) -> None:
    argv = parse_app_command(environ.get("APP_COMMAND", ""))
    program = check_program(argv, app_dir, environ.get("PATH", os.defpath))
    try:
        write_executable(init_path, init_script(argv, program, app_dir))
    except OSError as exc:
        reason = f"cannot write the session's init script {init_path}: {exc}"
        raise SetupError(EXIT_APP, "the application could not be launched", reason) from None
    log.write("INFO", "application checked", program=program, initScript=init_path)


# --- user -----------------------------------------------------------------------------------


class PatientSecrets:
    """GetSecretValue that waits for this task's read grant: AccessDenied and transient errors
    are retried with capped exponential back-off until `timeout` seconds have passed."""

    def __init__(
        self,
        client: Any,
        timeout: float,
        log: Log,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._log = log
        self._sleep = sleep
        self._clock = clock

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        deadline = self._clock() + self._timeout
        delay = 0.25
        waiting = False
        while True:
            try:
                response: dict[str, Any] = self._client.get_secret_value(**params)
                return response
            except AwsError as exc:
                remaining = deadline - self._clock()
                if not (exc.code in WAIT_FOR_GRANT or exc.retryable) or remaining <= 0:
                    raise
                if not waiting:
                    self._log.write(
                        "INFO",
                        "waiting for access to the session secret",
                        error=str(exc),
                        timeoutSeconds=self._timeout,
                    )
                    waiting = True
            self._sleep(min(delay * (0.5 + random.random() / 2), remaining))  # noqa: S311
            delay = min(delay * 2, 5.0)


def command_runner(environ: Mapping[str, str], run: Runner = run_command) -> Runner:
    """run_command, with each of COMMAND_OVERRIDES' programs replaced when its variable is set."""

    def runner(
        argv: Sequence[str], *, input_text: str | None = None, timeout: float | None = None
    ) -> Any:
        argv = list(argv)
        override = environ.get(COMMAND_OVERRIDES.get(argv[0], ""), "")
        if override:
            argv[0] = override
        return run(argv, input_text=input_text, timeout=timeout)

    return runner


def _existing_uid(run: Runner, username: str) -> int | None:
    try:
        result = run(["id", "-u", username], timeout=30.0)
    except OSError as exc:
        raise UserSetupError(f"cannot run id: {exc}") from None
    if result.returncode != 0:
        return None
    try:
        return int(result.stdout.strip())
    except ValueError:
        raise UserSetupError(f"id -u {username} printed {result.stdout.strip()!r}") from None


def prepare_user(creds: Credentials, run: Runner, log: Log) -> None:
    """Create the user if missing and set its password (users.ensure_os_user); a system
    account (uid below UID_MIN, root included) is never taken over."""
    uid = _existing_uid(run, creds.username)
    if uid is not None and uid < UID_MIN:
        raise UserSetupError(
            f"user {creds.username} is a system account (uid {uid}); a desktop user must not be"
        )
    created = ensure_os_user("linux", creds, run)
    log.write("INFO", "OS user ready", user=creds.username, created=created)


def _timeout(environ: Mapping[str, str]) -> float:
    text = environ.get("DCVFLEET_SECRET_TIMEOUT_SECONDS", "")
    if not text:
        return DEFAULT_SECRET_TIMEOUT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        reason = f"DCVFLEET_SECRET_TIMEOUT_SECONDS must be a number > 0, got {text!r}"
        raise SetupError(EXIT_CONFIG, "invalid configuration", reason)
    return value


def read_user(
    environ: Mapping[str, str], log: Log, secrets: Any = None, run: Runner | None = None
) -> str:
    """Read the secret, make the user; returns the user name. `secrets` and `run`: tests."""
    arn = environ.get("DCVFLEET_SECRET_ARN", "")
    region = environ.get("DCVFLEET_REGION", "")
    if not arn or not region:
        reason = "DCVFLEET_SECRET_ARN and DCVFLEET_REGION must be set"
        raise SetupError(EXIT_CONFIG, "invalid configuration", reason)
    if secrets is None:
        client = AwsClient(
            "secretsmanager",
            region,
            CredentialChain(environ),
            environ.get("DCVFLEET_ENDPOINT_URL") or None,
            timeout=10.0,
        )
        secrets = PatientSecrets(client, _timeout(environ), log)
    try:
        creds = read_credentials(secrets, arn)
    except UserSetupError as exc:
        raise SetupError(EXIT_SECRET, "the session secret could not be read", str(exc)) from None
    log.secret = creds.password
    try:
        prepare_user(creds, run or command_runner(environ), log)
    except UserSetupError as exc:
        message = "the OS user could not be created or its password set"
        raise SetupError(EXIT_USER, message, str(exc)) from None
    return creds.username


# --- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The application's check, then the user; prints the user's name. The exit code is the
    container's for the step that failed (64, 65, 66 or 68)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="DCV Fleet desktop container setup steps.")
    parser.add_argument("--init-script", required=True, help="the session's init script to write")
    parser.add_argument("--app-dir", required=True, help="the application's directory")
    args = parser.parse_args(argv)
    log = Log(env)
    step = (EXIT_APP, "the application could not be launched")
    try:
        prepare_app(env, args.init_script, args.app_dir, log)
        step = (EXIT_SECRET, "the session secret could not be read")
        username = read_user(env, log)
    except SetupError as exc:
        return log.fail(exc)
    except Exception as exc:  # reported in the contract's terms, never as a bare traceback
        code, message = step
        if log.secret is not None:  # the secret was read: the user step failed
            code, message = EXIT_USER, "the OS user could not be created or its password set"
        return log.fail(SetupError(code, message, f"unexpected {type(exc).__name__}: {exc}"))
    print(username, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
