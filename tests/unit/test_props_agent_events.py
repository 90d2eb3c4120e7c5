"""Property-based tests (hypothesis) of the agent-event consumer (``AgentEventsFunction``,
``handlers.agent_events.handler``): generated and garbled agent events, forged or not, always get
``{"outcome", "reason"}``, never a crash; one that is not exactly what the session's own host
signed is rejected with a reason and changes no record and starts no workflow.

Every event is stamped fresh (``sentAt`` is signed, and the consumer accepts only events sent
within two heartbeat intervals of its clock and newer than the last one it accepted from the
session); a replayed one, an old one and one older than the last accepted are rejected and change
nothing.

The consumer runs in-process against moto: the sessions table of template.yaml, one READY desktop
on a running instance, its secret holding its event key, and another desktop's secret (a host
that knows only its own key).
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from dcvfleet import events
from dcvfleet.aws import reset_clients
from dcvfleet.store import DynamoSessionStore
from tests.support.properties import (
    ENV,
    IMAGE,
    REGION,
    TABLE,
    LambdaContext,
    examples,
    garbled_envelope,
    json_values,
    sample,
)
from tests.support.sessions import a_session
from tests.support.tables import create_table

KINDS = {
    "Host Ready": "agent-host-ready.json",
    "Host Heartbeat": "agent-host-heartbeat.json",
    "Session Idle": "agent-session-idle.json",
}
OWN_KEY, OTHER_KEY = "a1" * 32, "b2" * 32
#: The consumer's window (ENV sets no HEARTBEAT_INTERVAL_SECONDS: two intervals of 60 s).
WINDOW_MS = 120_000


def stamp(millis: int) -> str:
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def now_ms() -> int:
    return int(time.time() * 1000)


class Fleet:
    """moto with one READY desktop (its own key in its secret) and another desktop's key."""

    def __init__(self) -> None:
        self.workflows: Any = None  # the Step Functions the consumer sees (a mock)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(self.ddb, "SessionsTable", TABLE)
        ec2 = boto3.client("ec2", region_name=REGION)
        reservation = ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1)
        self.instance_id = reservation["Instances"][0]["InstanceId"]
        sm = boto3.client("secretsmanager", region_name=REGION)
        arn = sm.create_secret(
            Name="dcvfleet/sessions/own",
            SecretString=json.dumps({"username": "u", "password": "p", "eventKey": OWN_KEY}),
        )["ARN"]
        ready = sample("agent-host-heartbeat.json")["detail"]
        self.session_id = ready["sessionId"]
        ec2.create_tags(
            Resources=[self.instance_id],
            Tags=[{"Key": "dcvfleet:session-id", "Value": self.session_id}],
        )
        session = a_session(
            self.session_id,
            updated_at="2026-11-22T03:05:00.000Z",
            version=7,
            secret_arn=arn,
            instance_id=self.instance_id,
            dcv_session_id="desktop",
            connection_url="https://host:8443/#desktop",
            ready_at="2026-11-22T03:04:00.000Z",
        )
        DynamoSessionStore(self.ddb, TABLE).create(session, 100)
        #: The sentAt every event is stamped with unless told otherwise: fresh for the tests of
        #: this module (a few seconds), and the same each time, so that a signed event drawn
        #: twice is the same event.
        self.sent_at = stamp(now_ms())

    def table(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.ddb.scan(TableName=TABLE)["Items"]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))

    def detail(self, detail_type: str, sent_at: str | None = None) -> dict[str, Any]:
        detail: dict[str, Any] = sample(KINDS[detail_type])["detail"]
        detail.update(sessionId=self.session_id, instanceId=self.instance_id)
        detail.update(sentAt=sent_at or self.sent_at)
        return detail

    def envelope(
        self, detail_type: str, key: str | None, sent_at: str | None = None
    ) -> dict[str, Any]:
        envelope = sample(KINDS[detail_type])
        detail = self.detail(detail_type, sent_at)
        if key is not None:
            detail["signature"] = events.signature(key, detail_type, detail)
        return {**envelope, "detail": detail}


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Fleet, ModuleType]]:
    with mock.patch.dict(os.environ, ENV), mock_aws():
        reset_clients()
        fleet = Fleet()
        import dcvfleet.handlers.agent_events as handler

        handler = importlib.reload(handler)
        with mock.patch.object(handler, "Workflows") as workflows:
            workflows.return_value.succeed.return_value = False
            fleet.workflows = workflows.return_value
            yield fleet, handler
    reset_clients()


def _consume(handler: ModuleType, event: Any) -> dict[str, str]:
    answer: dict[str, str] = handler.handler(event, LambdaContext())
    assert set(answer) == {"outcome", "reason"}, answer
    assert answer["outcome"] in ("accepted", "rejected"), answer
    assert isinstance(answer["reason"], str), answer
    assert answer["reason"], answer
    return answer


def forged(fleet: Fleet) -> st.SearchStrategy[Any]:
    """The session's own events, each changed after signing, signed with another session's key,
    unsigned, or garbled anywhere; and any JSON at all."""
    kinds = st.sampled_from(sorted(KINDS))
    return st.one_of(
        kinds.flatmap(lambda kind: garbled_envelope(fleet.envelope(kind, OWN_KEY))),
        kinds.map(lambda kind: fleet.envelope(kind, OTHER_KEY)),
        kinds.map(lambda kind: fleet.envelope(kind, None)),
        st.builds(
            lambda kind, value: {
                **fleet.envelope(kind, OWN_KEY),
                "detail": {**fleet.envelope(kind, OWN_KEY)["detail"], "signature": value},
            },
            kinds,
            json_values(),
        ),
        json_values(),
    )


def test_forged_or_garbled_agent_events_are_rejected_and_change_nothing(
    world: tuple[Fleet, ModuleType],
) -> None:
    fleet, handler = world

    @given(data=st.data())
    @examples(200)
    def check(data: st.DataObject) -> None:
        event = data.draw(forged(fleet))
        # A garbling may leave the event as signed (an extra envelope field): it may be accepted
        signed = [fleet.envelope(kind, OWN_KEY)["detail"] for kind in KINDS]
        untouched = isinstance(event, dict) and event.get("detail") in signed
        before, calls = fleet.table(), len(fleet.workflows.mock_calls)
        answer = _consume(handler, event)
        if not untouched or answer["outcome"] == "rejected":
            assert answer["outcome"] == "rejected", (event, answer)
            assert fleet.table() == before
            assert len(fleet.workflows.mock_calls) == calls, "a workflow was started or woken"

    check()


def test_the_sessions_own_signed_heartbeat_is_accepted(world: tuple[Fleet, ModuleType]) -> None:
    # Given the READY desktop, When its own host's signed heartbeat arrives, sent just now
    fleet, handler = world
    answer = _consume(handler, fleet.envelope("Host Heartbeat", OWN_KEY, stamp(now_ms())))
    # Then it is accepted and recorded (the positive control of the property above)
    assert answer == {"outcome": "accepted", "reason": "recorded"}
    stored = DynamoSessionStore(fleet.ddb, TABLE).require(fleet.session_id)
    assert stored.heartbeat is not None


def test_a_signed_event_sent_again_is_rejected_and_changes_nothing(
    world: tuple[Fleet, ModuleType],
) -> None:
    fleet, handler = world

    @given(kind=st.sampled_from(sorted(KINDS)), extra=st.dictionaries(st.text(), json_values()))
    @examples(30)
    def check(kind: str, extra: dict[str, Any]) -> None:
        # Given a signed event of the session's host, fresh, delivered once (accepted or, for a
        # claim the record refutes, rejected for that claim: either way it was seen)
        sent = fleet.envelope(kind, OWN_KEY, stamp(now_ms() + 1))
        time.sleep(0.002)
        _consume(handler, sent)
        before, calls = fleet.table(), len(fleet.workflows.mock_calls)
        # When the same signed detail is sent again, in any envelope
        answer = _consume(handler, {**sent, **{k: v for k, v in extra.items() if k != "detail"}})
        # Then it is rejected, and nothing changed or started
        assert answer["outcome"] == "rejected", answer
        assert fleet.table() == before
        assert len(fleet.workflows.mock_calls) == calls

    check()


def test_a_heartbeat_is_accepted_only_if_fresh_and_newer_than_the_last_one_accepted(
    world: tuple[Fleet, ModuleType],
) -> None:
    fleet, handler = world
    # the newest heartbeat accepted so far (the module's other tests accepted some)
    last = {"ms": now_ms()}
    time.sleep(0.01)
    margin = 5_000  # the consumer's clock runs on while an example is checked

    offsets = st.one_of(
        st.integers(-WINDOW_MS + margin, WINDOW_MS - margin),
        st.integers(WINDOW_MS + margin, 10 * WINDOW_MS),
        st.integers(-10 * WINDOW_MS, -WINDOW_MS - margin),
    )

    @given(offsets=st.lists(offsets, min_size=1, max_size=6))
    @examples(25)
    def check(offsets: list[int]) -> None:
        # Given heartbeats of the session's own host, signed, sent at times around now
        for offset in offsets:
            sent_ms = now_ms() + offset
            before = fleet.table()
            answer = _consume(handler, fleet.envelope("Host Heartbeat", OWN_KEY, stamp(sent_ms)))
            fresh = abs(offset) <= WINDOW_MS - margin
            # Then each is accepted exactly when it is within the window and newer than every
            # one accepted before; a rejected one says why, by its sentAt, and changes nothing
            if fresh and sent_ms > last["ms"]:
                assert answer == {"outcome": "accepted", "reason": "recorded"}, (offset, answer)
                last["ms"] = sent_ms
            else:
                assert answer["outcome"] == "rejected", (offset, answer)
                assert answer["reason"].startswith("sentAt: "), answer
                assert fleet.table() == before

    check()
