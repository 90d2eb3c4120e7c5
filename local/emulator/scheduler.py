"""EventBridge Scheduler: the local stack fires its schedule rules (``Scheduler``).

The stack starts one ``Scheduler`` (``local.stack``); ``POST /schedules/run`` on ``control_url``
fires any schedule rule at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from typing import Any

from local.emulator.eventbridge import deliver_rule_event
from local.emulator.gap import Gap

log = logging.getLogger("local.emulator")


RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
UNIT_MINUTES = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}
log = logging.getLogger("local.emulator")


def rate_minutes(expression: str) -> int | None:
    """``rate(5 minutes)`` -> 5; None for anything the local scheduler does not run."""
    match = RATE.match(expression or "")
    if not match or int(match.group(1)) < 1:
        return None
    return int(match.group(1)) * UNIT_MINUTES[match.group(2)]


def schedule_rules() -> list[Any]:
    """Every rule with a ScheduleExpression, in every account and region the emulator holds."""
    from moto.events.models import events_backends

    rules: list[Any] = []
    for regions in list(events_backends.values()):
        for backend in list(regions.values()):
            for bus in list(backend.event_buses.values()):
                rules.extend(r for r in list(bus.rules.values()) if r.scheduled_expression)
    return rules


def scheduled_event(rule: Any) -> dict[str, Any]:
    """The envelope EventBridge sends a scheduled rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": int(time.time()),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }


class Scheduler:
    """EVENTS_SCHEDULES: fire every ENABLED rule with ``rate(N minute|minutes|hour|hours|day|days)``
    on its rate, as EventBridge does: first one rate after the scheduler first sees the rule
    (or sees it enabled, or its expression changed), then every rate. One schedule minute lasts
    ``minute_seconds`` real seconds (time compression for tests and benchmarks; nothing else in
    the stack is compressed). ``cron(...)`` rules are not run on their own: each is logged once,
    and ``run_now`` fires them like any other. Each firing sends a "Scheduled Event" envelope
    (source "aws.events", detail {}, resources [the rule's ARN]) to the rule's targets through
    ``deliver_rule_event``, the EVENTS_TARGETS delivery."""

    def __init__(self, endpoint_url: str | None, minute_seconds: float = 60.0) -> None:
        if minute_seconds <= 0:
            raise ValueError("minute_seconds must be > 0")
        self.endpoint_url = endpoint_url
        self.minute_seconds = minute_seconds
        self.tick = max(0.02, min(0.5, minute_seconds / 4))
        self._due: dict[str, tuple[str, float]] = {}  # rule ARN -> (expression, next firing)
        self._reported: set[tuple[str, str]] = set()
        self.fired: dict[str, int] = {}  # rule ARN -> how many times it fired
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="eventbridge-scheduler", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def period(self, expression: str) -> float | None:
        minutes = rate_minutes(expression)
        return None if minutes is None else minutes * self.minute_seconds

    def _fire(self, rule: Any) -> None:
        with self._lock:
            self.fired[rule.arn] = self.fired.get(rule.arn, 0) + 1
        try:
            deliver_rule_event(rule, scheduled_event(rule), self.endpoint_url)
        except Exception:  # a broken target must not stop the scheduler
            log.exception("scheduled rule %s: delivery failed", rule.name)

    def run_due(self, now: float | None = None) -> list[str]:
        """Fire the rules whose time has come; their names."""
        now = time.monotonic() if now is None else now
        fired, seen = [], set()
        for rule in schedule_rules():
            expression = rule.scheduled_expression
            if rule.state != "ENABLED":
                continue
            period = self.period(expression)
            if period is None:
                if (rule.arn, expression) not in self._reported:
                    self._reported.add((rule.arn, expression))
                    log.warning(
                        "schedule rule %s: %r is not run by the local scheduler (only rate(...)"
                        " is); fire it with POST /schedules/run",
                        rule.name,
                        expression,
                    )
                continue
            seen.add(rule.arn)
            known = self._due.get(rule.arn)
            if known is None or known[0] != expression:
                self._due[rule.arn] = (expression, now + period)
                continue
            if now >= known[1]:
                # one firing per tick; a scheduler that fell behind catches up from now
                self._due[rule.arn] = (expression, max(known[1] + period, now + period / 2))
                self._fire(rule)
                fired.append(rule.name)
        for arn in [a for a in self._due if a not in seen]:
            del self._due[arn]  # deleted, disabled or changed to cron: starts afresh
        return fired

    def run_now(self, name: str | None = None) -> list[str]:
        """Fire every ENABLED schedule rule (or the one named) at once; the names fired.

        Raises KeyError for a name no schedule rule has, ValueError for a DISABLED one."""
        rules = [r for r in schedule_rules() if name is None or r.name == name]
        if name is not None and not rules:
            raise KeyError(name)
        enabled = [r for r in rules if r.state == "ENABLED"]
        if name is not None and not enabled:
            raise ValueError(f"rule {name} is {rules[0].state}")
        for rule in enabled:
            self._fire(rule)
        return [r.name for r in enabled]

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "name": rule.name,
                "arn": rule.arn,
                "expression": rule.scheduled_expression,
                "state": rule.state,
                "runsLocally": self.period(rule.scheduled_expression) is not None,
                "fired": self.fired.get(rule.arn, 0),
                "nextInSeconds": (
                    round(max(0.0, self._due[rule.arn][1] - now), 3)
                    if rule.arn in self._due
                    else None
                ),
            }
            for rule in schedule_rules()
        ]

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due()
            except Exception:  # the emulator is shutting down, or a rule changed under us
                log.debug("scheduler tick failed", exc_info=True)


EVENTS_SCHEDULES = Gap(
    "EVENTS_SCHEDULES",
    moto_does="rules with a ScheduleExpression are stored but never fired",
    we_do="the stack's Scheduler fires every ENABLED rate(N minute|minutes|hour|hours|day|days)"
    " rule on its rate (the first time one rate after it first sees the rule), sending the"
    " Scheduled Event envelope EventBridge sends through the EVENTS_TARGETS delivery; one"
    " schedule minute lasts minute_seconds real seconds (python -m local --minute-seconds S);"
    " cron(...) rules only fire through POST /schedules/run",
)
