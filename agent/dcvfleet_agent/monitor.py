"""After Host Ready: sample the idle signals, send Host Heartbeat and Session Idle events.

Every sampleIntervalSeconds the monitor samples every enabled signal. The host is idle when every
enabled signal says idle (a signal that could not be read does not). `idleSince` is the time of
the first idle sample of the current idle period, moved back to the moment DCV says activity
ended (its last-disconnection-time, or the latest last-interaction-time when every connection
has one) when DCV gives one earlier than that sample; clamped so that it is never before the
agent started, nor before the first sample of the other signals' current idle run (we know
nothing of them earlier). Any non-idle sample resets it.

- Host Heartbeat: at the first sample, then every heartbeatIntervalSeconds (rounded to samples).
- Session Idle: at the first sample where the host has been idle for idleTimeoutSeconds, then as
  a reminder every idleTimeoutSeconds while it stays idle; a non-idle sample re-arms it.
- Resume: when more time has passed between two samples than the sample interval plus
  `resume_gap` (by the wall clock or by the monotonic one: Linux's CLOCK_MONOTONIC does not
  count a suspended or hibernated machine's sleep, the wall clock does; a frozen process sees
  both move), the host has slept, e.g. EC2 hibernated it and resumed it. What the monitor knew
  is then stale: it sends nothing more (not even what is buffered), sets `resumed` and ends, and
  the agent gets ready again (Host Ready, which a resume waits for) with a fresh monitor. The
  sleep may also fall in the middle of a sample (the machine stops wherever it is): that is
  checked once the signals are read, before the idle state meets the clock read after the sleep.
  An event already made before the sleep may still go after it (the machine can stop inside
  the PutEvents call itself); its sentAt is from before the sleep, and the control plane refuses
  an idle period that began before the desktop's last start (lifecycle/idle.py).
  Hibernation keeps the RAM, so a resumed instance carries on with the same processes
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-resuming.html; StopInstances'
  Hibernate: "hibernating an instance does preserve data stored in RAM"); CLOCK_MONOTONIC, which
  Python's time.monotonic() reads on Linux, "stops while the machine is suspended" (PEP 418,
  https://peps.python.org/pep-0418/). The 120 s default (resumeGapSeconds) is well above what a
  slow sample takes (each command is bounded by commandTimeoutSeconds, each PutEvents call by
  agent.CALL_TIMEOUT_SECONDS), so a slow sample is not taken for a sleep.
- Delivery: events go through EventSender's bounded buffer with ONE attempt per sample and no
  back-off sleep, so an unreachable network costs a sample at most one PutEvents call's timeout
  (agent.CALL_TIMEOUT_SECONDS); what fails stays buffered (when full, the oldest
  heartbeat is dropped first, never a Session Idle while a heartbeat can go instead) and is
  retried at the next sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .events import EventSender
from .logs import iso_utc
from .signals import Reading, Signal

HOST_HEARTBEAT = "Host Heartbeat"
SESSION_IDLE = "Session Idle"

log = logging.getLogger(__name__)


class Monitor:
    def __init__(
        self,
        signals: Sequence[Signal],
        sender: EventSender,
        base: Mapping[str, str],
        *,
        sample_interval: float,
        heartbeat_interval: float,
        idle_timeout: float,
        wait: Callable[[float], bool],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        session_ended: Callable[[], bool] | None = None,
        resume_gap: float | None = None,
    ) -> None:
        """`base`: the fields every agent event carries (schemaVersion, instanceId, ...).
        `wait(seconds)` sleeps and returns True once the agent is asked to stop.
        `session_ended()`, asked when the dcv signal cannot be read, says whether the DCV
        session is gone for good; the monitor then ends (in a container, so does the desktop)."""
        self.signals = list(signals)
        self.sender = sender
        self.base = dict(base)
        self.sample_interval = sample_interval
        self.heartbeat_interval = heartbeat_interval
        self.idle_timeout = idle_timeout
        self._wait = wait
        self._session_ended = session_ended
        self.session_gone = False
        self.resume_gap = resume_gap
        self.resumed = False
        self._clock = clock
        self._wall = wall
        self.started_at = wall()
        self.readings: dict[str, Reading] = {}
        self.idle_since: float | None = None
        self._others_idle_since: float | None = self.started_at  # signals other than dcv
        self._idle_sent_at: float | None = None
        self._next_heartbeat: float | None = None

    def run(self) -> None:
        """Sample until wait() says stop, then one last bounded attempt at the buffer."""
        due = self._clock() + self.sample_interval
        last = (self._clock(), self._wall())
        while not self._wait(max(0.0, due - self._clock())):
            if self._resumed_since(*last, during="the wait between samples"):
                return
            last = (self._clock(), self._wall())
            if not self.tick(since=last):
                return
            if self._gone():
                log.info("the DCV session has ended; the agent stops")
                self.session_gone = True
                break
            due += self.sample_interval
            now = self._clock()
            if due <= now:  # a slow sample (hung commands): skip the missed ones
                due = now + self.sample_interval
        if self.sender.pending:
            self.sender.flush(max_attempts=1)
        log.info("monitor stopped", extra={"fields": {"undelivered": self.sender.pending}})

    def _slept(self, mono: float, wall: float) -> float | None:
        """How long the host slept since the last sample (see Resume above), or None."""
        if self.resume_gap is None:
            return None
        elapsed = max(self._clock() - mono, self._wall() - wall)
        gap = elapsed - self.sample_interval
        return elapsed if gap > self.resume_gap else None

    def _resumed_since(self, mono: float, wall: float, *, during: str) -> bool:
        """Whether the host slept since (mono, wall); if so, drop what is buffered (it speaks of
        the time before the sleep) and set `resumed`."""
        slept = self._slept(mono, wall)
        if slept is None:
            return False
        dropped = self.sender.discard()
        fields = {"sleptSeconds": round(slept, 3), "droppedEvents": dropped, "during": during}
        log.info("the host has slept (resumed): ready again", extra={"fields": fields})
        self.resumed = True
        return True

    def tick(self, since: tuple[float, float] | None = None) -> bool:
        """Sample, update the idle state, send what is due. `since`: the (monotonic, wall) time
        the sample began. The host may sleep in the middle of a sample (hibernation stops the
        machine wherever it is): if it did, the sample ends there, before `now` (read after the
        sleep) can meet an idle period that began before it (a stale Session Idle, whose
        idleSeconds would count the sleep), and False says so (`resumed` is set)."""
        readings = {}
        for signal in self.signals:
            reading = self._sample(signal)
            if reading is not None:
                readings[signal.name] = reading
        if since is not None and self._resumed_since(*since, during="a sample"):
            return False
        now = self._wall()
        self._update_idle(readings, now)
        if self._heartbeat_due():
            self.sender.enqueue(HOST_HEARTBEAT, self.heartbeat_detail(now))
        if self._session_idle_due(now):
            self.sender.enqueue(SESSION_IDLE, self.session_idle_detail(now))
            fields = {"idleSince": self._iso(self.idle_since), "reminder": bool(self._idle_sent_at)}
            self._idle_sent_at = now
            log.info("Session Idle queued", extra={"fields": fields})
        self.sender.flush(max_attempts=1)
        return True

    def _gone(self) -> bool:
        dcv = self.readings.get("dcv")
        if self._session_ended is None or dcv is None or not dcv.values.get("error"):
            return False
        try:
            return self._session_ended()
        except Exception:  # asking failed as well: not proof that the session is gone
            log.exception("could not tell whether the DCV session still exists")
            return False

    @staticmethod
    def _sample(signal: Signal) -> Reading | None:
        try:
            return signal.sample()
        except Exception as exc:  # a bug in one signal must not stop the others
            log.exception("signal failed", extra={"fields": {"signal": signal.name}})
            return signal.failed(f"unexpected {type(exc).__name__}: {exc}")

    @property
    def idle(self) -> bool:
        return bool(self.readings) and all(r.idle for r in self.readings.values())

    def _update_idle(self, readings: dict[str, Reading], now: float) -> None:
        was_idle = self.idle_since is not None
        self.readings = readings
        if all(r.idle for name, r in readings.items() if name != "dcv"):
            if self._others_idle_since is None:
                self._others_idle_since = now
        else:
            self._others_idle_since = None
        if not self.idle:
            self.idle_since = self._idle_sent_at = None
        elif self.idle_since is None:
            self.idle_since = now
            dcv = readings.get("dcv")
            quiet = None if dcv is None else dcv.quiet_since
            if quiet is not None and quiet < now and self._others_idle_since is not None:
                self.idle_since = max(quiet, self._others_idle_since, self.started_at)
        if was_idle != (self.idle_since is not None):
            fields = {"idle": self.idle, "idleSince": self._iso(self.idle_since)}
            log.info("host idle" if self.idle else "host active", extra={"fields": fields})

    def _heartbeat_due(self) -> bool:
        now = self._clock()
        # half a sample of slack, so that jitter does not push a heartbeat one sample later
        slack = self.sample_interval / 2
        if self._next_heartbeat is not None and now < self._next_heartbeat - slack:
            return False
        self._next_heartbeat = now + self.heartbeat_interval
        return True

    def _session_idle_due(self, now: float) -> bool:
        if self.idle_since is None or now - self.idle_since < self.idle_timeout:
            return False
        return self._idle_sent_at is None or now - self._idle_sent_at >= self.idle_timeout

    @staticmethod
    def _iso(stamp: float | None) -> str | None:
        return None if stamp is None else iso_utc(stamp)

    def _signals(self) -> dict[str, Any]:
        return {name: reading.values for name, reading in self.readings.items()}

    def heartbeat_detail(self, now: float) -> dict[str, Any]:
        return {
            **self.base,
            "sentAt": iso_utc(now),
            "idle": self.idle,
            "idleSince": self._iso(self.idle_since),
            "signals": self._signals(),
        }

    def session_idle_detail(self, now: float) -> dict[str, Any]:
        since = now if self.idle_since is None else self.idle_since
        return {
            **self.base,
            "sentAt": iso_utc(now),
            "idleSince": iso_utc(since),
            "idleSeconds": round(now - since, 3),
            "idleTimeoutSeconds": self.idle_timeout,
            "signals": self._signals(),
        }
