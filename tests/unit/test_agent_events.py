"""EventSender: entry format, back-off with full jitter, partial failures, bounded buffer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dcvfleet.events import signed_by
from dcvfleet_agent.aws import AwsError
from dcvfleet_agent.events import BATCH_SIZE, EventSender

THROTTLED = AwsError("ThrottlingException", "slow", 400)
OFFLINE = AwsError("ConnectionError", "POST https://events.us-east-1.amazonaws.com/: refused")


class FakeEvents:
    """put_events that follows a script: an exception to raise, a callable, or 'ok'."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[list[dict[str, str]]] = []

    def put_events(self, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append([dict(e) for e in Entries])
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(Entries)  # type: ignore[no-any-return]
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


def reject(*indexes: int) -> Any:
    def answer(entries: list[dict[str, str]]) -> dict[str, Any]:
        results: list[dict[str, str]] = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}
            if i in indexes
            else {"EventId": "e"}
            for i in range(len(entries))
        ]
        return {"FailedEntryCount": len(indexes), "Entries": results}

    return answer


def sender(client: FakeEvents, sleeps: list[float], **kwargs: Any) -> EventSender:
    options: dict[str, Any] = {"max_attempts": 4, "base_delay": 0.5, "max_delay": 1.5}
    options.update(kwargs)
    return EventSender(client, "fleet", sleep=sleeps.append, rand=lambda: 1.0, **options)


def details(call: list[dict[str, str]]) -> list[Any]:
    return [json.loads(entry["Detail"])["n"] for entry in call]


def test_entry_format() -> None:
    client = FakeEvents()
    assert sender(client, []).send("Host Ready", {"n": 1, "a": "b"})
    [[entry]] = client.calls
    assert entry == {
        "Source": "dcvfleet.agent",
        "DetailType": "Host Ready",
        "Detail": '{"a":"b","n":1}',
        "EventBusName": "fleet",
    }


def test_exceptions_are_retried_with_capped_exponential_backoff() -> None:
    client, sleeps = FakeEvents(THROTTLED, OFFLINE, THROTTLED), []
    events = sender(client, sleeps)
    assert events.send("Host Ready", {"n": 1})
    assert len(client.calls) == 4
    assert sleeps == [0.5, 1.0, 1.5]  # base * 2**n, capped at max_delay (rand() == 1.0)
    assert events.pending == 0


def test_full_jitter_scales_the_delay() -> None:
    sleeps: list[float] = []
    EventSender(
        FakeEvents(THROTTLED), "fleet", base_delay=2, max_delay=10, sleep=sleeps.append,
        rand=lambda: 0.25,
    ).send("Host Ready", {"n": 1})  # fmt: skip
    assert sleeps == [0.5]


def test_failed_entries_only_are_resent() -> None:
    client = FakeEvents(THROTTLED, THROTTLED, THROTTLED, THROTTLED)  # first send gives up
    events = sender(client, [])
    assert not events.send("Test", {"n": 1})
    client.script = [reject(0), "ok"]
    assert events.send("Test", {"n": 2})
    assert [details(call) for call in client.calls[4:]] == [[1, 2], [1]]


def test_failed_entry_count_without_error_codes_resends_all() -> None:
    client = FakeEvents(lambda entries: {"FailedEntryCount": 1, "Entries": []}, "ok")
    assert sender(client, []).send("Test", {"n": 1})
    assert [details(call) for call in client.calls] == [[1], [1]]


def test_undelivered_events_are_buffered_then_flushed_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeEvents(*[THROTTLED] * 8)
    events = sender(client, [])
    assert not events.send("Test", {"n": 1})
    assert not events.send("Test", {"n": 2})
    assert events.pending == 2
    assert "giving up" in caplog.text
    assert events.send("Test", {"n": 3})
    assert details(client.calls[-1]) == [1, 2, 3]
    assert events.pending == 0
    assert events.flush()


def test_buffer_is_bounded_and_drops_oldest(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeEvents(*[OFFLINE] * 1000)
    events = sender(client, [], max_attempts=1)
    for n in range(105):
        events.send("Test", {"n": n})
    assert events.pending == 100
    assert caplog.text.count("dropped an undelivered event") == 5
    client.script = []
    assert events.flush()
    delivered = [n for call in client.calls[-10:] for n in details(call)]
    assert delivered == list(range(5, 105))
    assert all(len(call) <= BATCH_SIZE for call in client.calls)


def test_send_reports_its_own_event_even_if_an_older_one_stays() -> None:
    client = FakeEvents(*[OFFLINE] * 3)
    events = sender(client, [], max_attempts=3)
    assert not events.send("Test", {"n": 1})
    client.script = [reject(0)] * 3
    assert events.send("Test", {"n": 2})
    assert [details(call) for call in client.calls[3:]] == [[1, 2], [1], [1]]
    assert events.pending == 1


def kinds(events: EventSender) -> list[tuple[str, Any]]:
    return [(e["DetailType"], json.loads(e["Detail"])["n"]) for e in events._pending]


def test_given_a_full_buffer_then_the_oldest_heartbeat_makes_room_first() -> None:
    client = FakeEvents(*[OFFLINE] * 100)
    events = sender(client, [], max_attempts=1, max_buffered=4)
    for n, kind in enumerate(["Host Ready", "Host Heartbeat", "Session Idle", "Host Heartbeat"]):
        events.enqueue(kind, {"n": n})
    events.enqueue("Session Idle", {"n": 4})
    events.enqueue("Host Heartbeat", {"n": 5})
    assert kinds(events) == [
        ("Host Ready", 0),
        ("Session Idle", 2),
        ("Session Idle", 4),
        ("Host Heartbeat", 5),
    ]


def test_given_a_buffer_full_of_other_events_then_a_new_heartbeat_is_the_one_dropped() -> None:
    events = sender(FakeEvents(), [], max_buffered=2)
    assert events.enqueue("Session Idle", {"n": 1}) is not None
    assert events.enqueue("Session Idle", {"n": 2}) is not None
    assert events.enqueue("Host Heartbeat", {"n": 3}) is None
    assert not events.send("Host Heartbeat", {"n": 4})  # dropped, so not sent
    assert kinds(events) == []  # the send flushed the two Session Idle events
    events.enqueue("Session Idle", {"n": 5})
    events.enqueue("Session Idle", {"n": 6})
    events.enqueue("Test", {"n": 7})  # not a heartbeat: the oldest goes
    assert kinds(events) == [("Session Idle", 6), ("Test", 7)]


def test_flush_with_one_attempt_does_not_back_off() -> None:
    client, sleeps = FakeEvents(OFFLINE, OFFLINE), list[float]()
    events = sender(client, sleeps)
    events.enqueue("Host Heartbeat", {"n": 1})
    assert not events.flush(max_attempts=1)
    assert (len(client.calls), sleeps, events.pending) == (1, [], 1)
    assert not events.flush(max_attempts=1)
    assert events.flush(max_attempts=1)
    assert (len(client.calls), sleeps, events.pending) == (3, [], 0)


def test_events_stamped_in_one_millisecond_leave_in_order_each_later_and_signed_as_sent() -> None:
    # Given a sender holding its session's key, and a heartbeat and a Session Idle stamped
    # with the same sentAt (one monitor tick), then one stamped earlier than both (a clock step)
    client = FakeEvents()
    events = sender(client, [])
    events.key = "k" * 64
    beat = {"sessionId": "s", "sentAt": "2026-12-07T00:00:59.999Z"}
    events.send("Host Heartbeat", beat)
    events.send("Session Idle", dict(beat))
    events.send("Host Heartbeat", {**beat, "sentAt": "2026-12-07T00:00:58.000Z"})
    events.send("Host Heartbeat", {**beat, "sentAt": "2026-12-07T00:01:30.000Z"})
    sent = [json.loads(entry["Detail"]) for call in client.calls for entry in call]
    # Then each one goes out later than the one before (the control plane refuses an event not
    # newer than the last it accepted), a later one as it was stamped
    assert [d["sentAt"] for d in sent] == [
        "2026-12-07T00:00:59.999Z",
        "2026-12-07T00:01:00.000Z",
        "2026-12-07T00:01:00.001Z",
        "2026-12-07T00:01:30.000Z",
    ]
    # And the signature covers the sentAt each carries: the consumer's own check accepts each
    kinds = ["Host Heartbeat", "Session Idle", "Host Heartbeat", "Host Heartbeat"]
    assert all(signed_by("k" * 64, kind, d) for kind, d in zip(kinds, sent, strict=True))
    assert not signed_by("k" * 64, "Host Heartbeat", {**sent[0], "sentAt": sent[3]["sentAt"]})
