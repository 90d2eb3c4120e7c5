"""What ``python -m local`` (``make local``) prints, and where the rest of its log goes.

The terminal shows what a person running the stack wants: the banner (``banner``), the stack's
own warnings and errors, and one short line for each Step Functions state that fails. moto's
interpreter logs every failing state as an ERROR holding the whole failure event (for a capacity
failure, over a thousand characters), once for each part of the state the failure passes
through, and whether or not the workflow then catches it: a failure a Catch handles is a normal
path of the workflow, not an error of the stack (a state's error goes to its Retry, then its
Catch, and fails the execution only when neither handles it:
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
Everything from INFO up, in full, goes to the debug log, ``<state-dir>/local.log``; so do moto's
notices, while the template is deployed, about the resource types its CloudFormation does not
create (the stack works around them: ``local.deploy``).
"""

from __future__ import annotations

import json
import logging
import re
import textwrap
import threading
from pathlib import Path
from typing import Any, TextIO

LOG_NAME = "local.log"
#: The logger of moto's ASL interpreter that reports each failing state.
STATE_FAILURES = "moto.stepfunctions.parser.asl.component.eval_component"
#: A state failure's line in the terminal is cut to this many characters of its cause.
CAUSE_CHARS = 120
#: moto's notices about resource types its CloudFormation does not create.
UNSUPPORTED_RESOURCE = (
    "No Moto CloudFormation support for",
    "not supported by moto's CloudFormation implementation",
)


def state_failure(message: str) -> str:
    """A failing state's record from moto's interpreter as one short line: the error, and the
    start of its cause (or, for an exception, the JSONPath it names)."""
    found = re.match(r"Exception=(\w+)(?:, Error=([^,]+))?, Details=(.*)", message, re.DOTALL)
    if found is None:
        return message[:CAUSE_CHARS]
    exception, error, details = found.groups()
    if exception == "FailureEventException":
        cause = ""
        with_cause = re.match(r"(\{.*\}) at '", details, re.DOTALL)
        if with_cause:
            try:
                event: dict[str, Any] = json.loads(with_cause.group(1))
            except json.JSONDecodeError:
                event = {}
            for detail in event.values():
                if isinstance(detail, dict) and detail.get("cause"):
                    cause = str(detail["cause"])
                    break
        if len(cause) > CAUSE_CHARS:
            cause = cause[: CAUSE_CHARS - 3] + "..."
        return f"{error or 'a state failed'}: {cause}" if cause else str(error)
    path = re.search(r"'json_path': '([^']*)'", details)
    return f"{exception} at {path.group(1)}" if path else exception


class ConsoleFilter(logging.Filter):
    """Lets through warnings and errors, but not moto's notices about resource types it does not
    create; lets a failing state through once, however many of its parts report it."""

    def __init__(self) -> None:
        super().__init__()
        self._last = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == STATE_FAILURES:
            if record.levelno < logging.ERROR:
                return False
            summary = state_failure(record.getMessage())
            if getattr(self._last, "summary", None) == summary:
                return False  # the same failure, reported again by the part around it
            self._last.summary = summary
            return True
        if record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        return not any(notice in message for notice in UNSUPPORTED_RESOURCE)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS <level> <logger>: <message>``; a failing state as ``state failed: <error>:
    <cause>``, without its level: the workflow decides whether it is an error."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if record.name == STATE_FAILURES:
            when = self.formatTime(record, self.datefmt)
            return f"{when} state failed: {state_failure(record.getMessage())}"
        return super().format(record)


def configure(state_dir: Path, stream: TextIO) -> Path:
    """Send the process's log to the terminal (``stream``) and to the debug log; its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOG_NAME
    debug = logging.FileHandler(path, mode="w", encoding="utf-8")
    debug.setLevel(logging.INFO)
    debug.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler(stream)
    console.addFilter(ConsoleFilter())
    console.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(debug)
    root.addHandler(console)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # moto's UserWarnings become records of "py.warnings"
    return path


def banner(info: Any, stack_file: Path, debug_log: Path, minute_seconds: float) -> list[str]:
    """What ``make local`` prints once the stack is up (``info``: ``local.stack.StackInfo``):
    where everything is, who can sign in (the demo user and the admin user) and how, how to stop
    it."""
    demo, admin = info.demo_user, info.admin_user
    width = max(len(demo["username"]), len(admin["username"]))
    lines = [
        f"  Portal          {info.portal_url}",
        f"  API             {info.api_url}",
        f"  Control server  {info.control_url}   (hosts, jobs, faults, schedules, mail)",
        f"  AWS endpoint    {info.aws_endpoint_url}   ({info.region}, any credentials)",
        "",
        "Users",
        f"  {demo['username']:<{width}}  password {demo['password']}   (a user)",
        f"  {admin['username']:<{width}}  password {admin['password']}   (an administrator:"
        " the admins group)",
        f"  sign in on the portal, or: .venv/bin/dcvfleet login --username {demo['username']}",
        "",
        f"Stack details  {stack_file}",
        f"Debug log      {debug_log}",
    ]
    if info.not_emulated:
        names = ", ".join(line.split(" ", 1)[0] for line in info.not_emulated)
        text = f"Not emulated   {names} (why: the debug log)"
        lines += textwrap.wrap(text, width=100, subsequent_indent=" " * 15)
    if minute_seconds != 60:
        lines.append(f"Schedules      one minute lasts {minute_seconds:g} s")
    lines += ["", "Ctrl-C stops it."]
    return lines
