"""Delivery of agent events to EventBridge: back-off, and a bounded buffer of undelivered ones."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .aws import AwsError

SOURCE = "dcvfleet.agent"
MAX_BUFFERED = 100
BATCH_SIZE = 10  # PutEvents accepts at most 10 entries per call
#: Dropped first when the buffer is full: each one is superseded by the next.
EXPENDABLE = frozenset({"Host Heartbeat"})

log = logging.getLogger(__name__)


def sign(key: str, detail_type: str, detail: Mapping[str, Any]) -> str:
    """HMAC-SHA256 of the event under the session's key (from the session's secret, which only
    this host may read): the control plane accepts an agent event only with this signature."""
    body = json.dumps(
        {k: v for k, v in detail.items() if k != "signature"}, separators=(",", ":"), sort_keys=True
    )
    message = f"{detail_type}\n{body}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _millis(stamp: str) -> int | None:
    """Epoch milliseconds of an agent's sentAt (2024-05-01T12:00:00.123Z); None if not one."""
    try:
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        return seconds * 1000 + int((fraction or "0")[:3].ljust(3, "0"))
    except ValueError:
        return None


def _stamp(millis: int) -> str:
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


class EventSender:
    def __init__(
        self,
        client: Any,
        event_bus_name: str,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_buffered: int = MAX_BUFFERED,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self.event_bus_name = event_bus_name
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_buffered = max_buffered
        self._sleep = sleep
        self._rand = rand
        self._pending: deque[dict[str, str]] = deque()
        #: The session's event key; events are signed with it once it is known.
        self.key = ""
        #: The sentAt of the last event queued (epoch ms): each next one is later.
        self._last_sent_ms: int | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def discard(self) -> int:
        """Drop every undelivered event (they speak of a time that is over); how many."""
        count = len(self._pending)
        self._pending.clear()
        return count

    def send(self, detail_type: str, detail: Mapping[str, Any]) -> bool:
        """Queue behind earlier undelivered events, deliver in order; True if this one went out."""
        entry = self.enqueue(detail_type, detail)
        self.flush()
        return entry is not None and all(item is not entry for item in self._pending)

    def enqueue(self, detail_type: str, detail: Mapping[str, Any]) -> dict[str, str] | None:
        """Buffer one event for the next flush. When the buffer is full, the oldest heartbeat
        (EXPENDABLE) makes room, else this event if it is a heartbeat (None is returned), else
        the oldest event.

        Each event's sentAt is made later than the one before (by a millisecond where two
        events were stamped in one): the control plane accepts an event only if it is newer
        than the last it accepted from this session, which is what refuses a replayed one. The
        signature covers sentAt."""
        detail = self._later_than_the_last(detail)
        if self.key:
            detail = {**detail, "signature": sign(self.key, detail_type, detail)}
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":"), sort_keys=True),
            "EventBusName": self.event_bus_name,
        }
        if len(self._pending) >= self.max_buffered:
            kinds = [e["DetailType"] for e in self._pending]
            index = next((i for i, kind in enumerate(kinds) if kind in EXPENDABLE), None)
            if index is None and detail_type in EXPENDABLE:
                self._dropped(detail_type)
                return None
            index = 0 if index is None else index
            del self._pending[index]
            self._dropped(kinds[index])
        self._pending.append(entry)
        return entry

    def _later_than_the_last(self, detail: Mapping[str, Any]) -> Mapping[str, Any]:
        sent = detail.get("sentAt")
        millis = _millis(sent) if isinstance(sent, str) else None
        if millis is None:
            return detail
        if self._last_sent_ms is not None and millis <= self._last_sent_ms:
            millis = self._last_sent_ms + 1
            detail = {**detail, "sentAt": _stamp(millis)}
        self._last_sent_ms = millis
        return detail

    @staticmethod
    def _dropped(detail_type: str) -> None:
        log.warning(
            "event buffer full; dropped an undelivered event",
            extra={"fields": {"detailType": detail_type}},
        )

    def flush(self, max_attempts: int | None = None) -> bool:
        """Deliver buffered events oldest first; stop at the first batch that keeps failing.
        `max_attempts` (default: the sender's) bounds the attempts per batch."""
        attempts = self.max_attempts if max_attempts is None else max_attempts
        while self._pending:
            batch = [self._pending[i] for i in range(min(BATCH_SIZE, len(self._pending)))]
            failed = self._deliver(batch, attempts)
            for _ in batch:
                self._pending.popleft()
            if failed:
                self._pending.extendleft(reversed(failed))
                return False
        return True

    def _backoff(self, retry: int) -> float:
        """Exponential back-off with full jitter."""
        return float(self._rand() * min(self.max_delay, self.base_delay * 2 ** min(retry, 32)))

    def _deliver(self, batch: list[dict[str, str]], attempts: int) -> list[dict[str, str]]:
        remaining = batch
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._sleep(self._backoff(attempt - 2))
            try:
                response = self._client.put_events(Entries=remaining)
            except AwsError as exc:
                log.warning(
                    "PutEvents call failed",
                    extra={"fields": {"attempt": attempt, "error": str(exc)}},
                )
                continue
            if not response.get("FailedEntryCount"):
                return []
            results = response.get("Entries", [])
            if len(results) == len(remaining):  # else it does not say which: retry them all
                failed = [remaining[i] for i, r in enumerate(results) if r.get("ErrorCode")]
                remaining = failed or remaining
            log.warning(
                "PutEvents rejected entries",
                extra={
                    "fields": {
                        "attempt": attempt,
                        "failed": len(remaining),
                        "errors": sorted(
                            {str(r["ErrorCode"]) for r in results if r.get("ErrorCode")}
                        ),
                    }
                },
            )
        log.error(
            "giving up on events for now; they stay buffered",
            extra={"fields": {"attempts": attempts, "buffered": len(self._pending)}},
        )
        return remaining
