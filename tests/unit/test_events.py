"""Event contracts: every sample validates against its schema (consumer side), and the validator
names what is wrong with a bad one. Producer-side tests live with the producers (the agent's
tests, and the workflow tests that capture what the workflow publishes)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from dcvfleet import events

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"
#: The fleet's own events (AWS's, such as EC2 state changes, have AWS's schemas).
ENVELOPES = sorted(
    p
    for p in SAMPLES.glob("*.json")
    if json.loads(p.read_text()).get("source", "").startswith("dcvfleet")
)


def test_every_schema_is_a_valid_json_schema_and_is_used() -> None:
    files = {p.name for p in (ROOT / "events" / "schemas").glob("*.schema.json")}
    assert files == set(events.DETAIL_SCHEMAS.values())
    for name in files:
        jsonschema.Draft202012Validator.check_schema(events.schema(name))


def test_every_event_has_a_sample() -> None:
    sampled = {
        (e["source"], e["detail-type"]) for e in (json.loads(p.read_text()) for p in ENVELOPES)
    }
    assert sampled == set(events.DETAIL_SCHEMAS)


@pytest.mark.parametrize("path", ENVELOPES, ids=lambda p: p.name)
def test_every_sample_is_accepted(path: Path) -> None:
    assert events.validate_envelope(json.loads(path.read_text())) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e["detail"].pop("instanceId"), "detail.instanceId: is required"),
        (lambda e: e["detail"].update(instanceId="i-XYZ"), "detail.instanceId:"),
        (lambda e: e["detail"].update(dcvSessionId="../../etc/passwd"), "detail.dcvSessionId:"),
        (lambda e: e["detail"].update(extra="x"), "detail.extra: unknown field"),
        (lambda e: e["detail"].update(schemaVersion="2"), "detail.schemaVersion:"),
        (lambda e: e.update({"detail-type": "Host Gone"}), "detail-type: 'Host Gone'"),
        (lambda e: e.update(source="evil.source"), "detail-type: 'Host Ready' from 'evil.source'"),
        (lambda e: e.pop("detail"), "detail: is required"),
        (
            lambda e: e.update(detail="not an object"),
            "detail: 'not an object' is not of type 'object'",
        ),
    ],
)
def test_a_garbled_agent_event_is_rejected_naming_the_field(mutate: object, reason: str) -> None:
    event = json.loads((SAMPLES / "agent-host-ready.json").read_text())
    mutate(event)  # type: ignore[operator]
    problem = events.validate_envelope(event)
    assert problem is not None
    assert problem.startswith(reason), problem


def test_a_non_object_event_is_rejected() -> None:
    assert events.validate_envelope(["not", "an", "event"]) == "event: not a JSON object"
