"""JSON-lines logging to stderr; every line carries sessionId and instanceId."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any


def iso_utc(timestamp: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z, e.g. 2024-05-01T12:00:00.123Z."""
    ts = time.time() if timestamp is None else timestamp
    millis = int(ts * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{millis:03d}Z"


class LogContext:
    def __init__(self) -> None:
        self.session_id: str | None = None
        self.instance_id: str | None = None

    def update(self, session_id: str | None, instance_id: str | None) -> None:
        self.session_id = session_id
        self.instance_id = instance_id


class JsonFormatter(logging.Formatter):
    def __init__(self, context: LogContext) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "sessionId": self.context.session_id,
            "instanceId": self.context.instance_id,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _AgentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker type so repeated configuration replaces only our own handler."""


def configure_logging(stream: IO[str] | None = None) -> LogContext:
    context = LogContext()
    handler = _AgentHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(context))
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, _AgentHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    logging.getLogger("dcvfleet_agent").setLevel(logging.INFO)
    return context
