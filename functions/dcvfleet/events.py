"""JSON Schemas of every event the fleet emits or consumes (``events/schemas/``), and validation."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from importlib import resources
from typing import Any

from dcvfleet.model import describe_schema_error

AGENT_SOURCE = "dcvfleet.agent"
FLEET_SOURCE = "dcvfleet"

#: (source, detail-type) -> schema file in schemas/events/.
DETAIL_SCHEMAS: dict[tuple[str, str], str] = {
    (AGENT_SOURCE, "Host Ready"): "host-ready.schema.json",
    (AGENT_SOURCE, "Host Heartbeat"): "host-heartbeat.schema.json",
    (AGENT_SOURCE, "Session Idle"): "session-idle.schema.json",
    (FLEET_SOURCE, "Session Ready"): "session-ready.schema.json",
    (FLEET_SOURCE, "Session Failed"): "session-failed.schema.json",
    (FLEET_SOURCE, "Session Idle Warning"): "session-idle-warning.schema.json",
    (FLEET_SOURCE, "Session Stopped"): "session-stopped.schema.json",
    (FLEET_SOURCE, "Session Terminated"): "session-terminated.schema.json",
    (FLEET_SOURCE, "Session Credentials Revealed"): "session-credentials-revealed.schema.json",
}


@functools.cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("dcvfleet").joinpath("schemas", "events", name).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    import jsonschema  # on first use: most handlers never validate an event

    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate_detail(source: str, detail_type: str, detail: Any) -> str | None:
    """None when ``detail`` is valid for its event, else the reason naming the field."""
    name = DETAIL_SCHEMAS.get((source, detail_type))
    if name is None:
        return f"detail-type: {detail_type!r} from {source!r} is not a known event"
    import jsonschema  # on first use: most handlers never validate an event

    validator = jsonschema.Draft202012Validator(schema(name))
    errors = sorted(validator.iter_errors(detail), key=lambda e: list(e.path))
    if errors:
        return describe_schema_error(errors[0], root="detail")
    return None


def validate_envelope(event: Any) -> str | None:
    """Check an EventBridge envelope and its detail; None when valid, else a clear reason."""
    if not isinstance(event, dict):
        return "event: not a JSON object"
    for key in ("source", "detail-type", "detail"):
        if key not in event:
            return f"{key}: is required"
    source, detail_type = event["source"], event["detail-type"]
    if not isinstance(source, str) or not isinstance(detail_type, str):
        return "source/detail-type: must be strings"
    return validate_detail(source, detail_type, event["detail"])


def signature(key: str, detail_type: str, detail: dict[str, Any]) -> str:
    """HMAC-SHA256 of an agent event under its session's event key, over the detail-type and
    the canonical JSON of the detail without its signature: what the agent signs
    (dcvfleet_agent.events.sign)."""
    body = json.dumps(
        {k: v for k, v in detail.items() if k != "signature"}, separators=(",", ":"), sort_keys=True
    )
    return hmac.new(key.encode(), f"{detail_type}\n{body}".encode(), hashlib.sha256).hexdigest()


def signed_by(key: str, detail_type: str, detail: dict[str, Any]) -> bool:
    claimed = detail.get("signature")
    return isinstance(claimed, str) and hmac.compare_digest(
        claimed, signature(key, detail_type, detail)
    )
