"""What the domain says it did, for whoever observes it: the facts the fleet's metrics count, and
the session an event keyed by an instance or a job turned out to be about.

The domain stays free of Powertools Metrics (as it is of the environment and of boto3): an
operation that does something worth counting is handed a ``Telemetry`` and says what happened,
once, at the write that made it happen, so a retried step does not count it twice. The handlers
hand it ``dcvfleet.observability.TELEMETRY`` (CloudWatch metrics and log context); anyone else
(tests, tools) gets ``NO_TELEMETRY``, which records nothing.
"""

from __future__ import annotations


class Telemetry:
    """Records nothing; ``dcvfleet.observability.PowertoolsTelemetry`` records it all."""

    def session_found(self, session_id: str) -> None:
        """An event keyed by an instance or a job is about this session."""

    def session_ready(self, seconds: float) -> None:
        """A session became READY, ``seconds`` after it was asked for (created or resumed)."""

    def provisioning_failed(self, reason: str) -> None:
        """Compensation marked a session FAILED; ``reason`` is the error's name."""

    def vcpu_quota_exceeded(self, quota: str) -> None:
        """EC2 refused a launch for the account's vCPU quota ``quota`` (its code, or its name)."""

    def idle_stopped(self, action: str) -> None:
        """The idle workflow stopped, hibernated or terminated a desktop (``action``)."""

    def idle_stop_cancelled(self) -> None:
        """A warned desktop was in use again at its re-verification: it stays READY."""

    def active_sessions(self, backend: str, count: int) -> None:
        """``count`` sessions of ``backend`` are READY now."""


NO_TELEMETRY = Telemetry()
