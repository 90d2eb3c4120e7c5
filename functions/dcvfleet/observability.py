"""Powertools Tracer and Metrics, one of each for the whole package, and the telemetry the
handlers hand to the domain: what it reports becomes CloudWatch metrics (embedded metric format,
namespace POWERTOOLS_METRICS_NAMESPACE, dimension ``service``) and log context.

Every handler is decorated in the order Powertools documents::

    @logger.inject_lambda_context(...)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event, context): ...

Tracer turns itself off outside Lambda (no LAMBDA_TASK_ROOT: unit tests, and the local stack,
which runs functions in-process) and with POWERTOOLS_TRACE_DISABLED=true. ``log_metrics`` flushes
even when the handler raises, and never raises itself when an invocation recorded nothing
(``raise_on_empty_metrics`` is False); the warning it would then print is silenced, as Powertools
suggests, since most invocations record nothing.

Metrics:

| name | unit | dimensions | when |
| --- | --- | --- | --- |
| ``TimeToReady`` | Seconds | service | a session became READY (from its request or resume) |
| ``ProvisioningFailed`` | Count | service, Reason | compensation marked a session FAILED |
| ``VcpuQuotaExceeded`` | Count | service, Quota | a launch failed on the account's vCPU quota |
| ``IdleStops`` | Count | service, Action | the idle workflow stopped/hibernated/terminated |
| ``IdleStopsCancelled`` | Count | service | a warned desktop was in use at re-verification |
| ``ActiveSessions`` | Count | service, Backend | each sweep: READY sessions per backend |
| ``AgentEventsRejected`` | Count | service | the agent-event consumer rejected an event |
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from dcvfleet.telemetry import Telemetry

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "DCVFleet"
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "dcvfleet"
#: The longest Reason a metric carries (an error's name: States.Timeout, JobFailedError, ...).
MAX_REASON = 64

metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)
logger = Logger()

warnings.filterwarnings("ignore", "No application metrics to publish*")


def _single(name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
    """One metric in its own EMF blob, so its dimensions do not reach the other metrics."""
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE, **metrics.default_dimensions},
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def reason_category(reason: str) -> str:
    """A short, stable Reason: the error's name, never a message."""
    return reason.strip()[:MAX_REASON] or "Unknown"


class PowertoolsTelemetry(Telemetry):
    """The domain's facts as metrics, and the sessions it finds as log context."""

    def session_found(self, session_id: str) -> None:
        logger.append_keys(session_id=session_id)

    def session_ready(self, seconds: float) -> None:
        metrics.add_metric(name="TimeToReady", unit=MetricUnit.Seconds, value=seconds)

    def provisioning_failed(self, reason: str) -> None:
        _single("ProvisioningFailed", MetricUnit.Count, 1, Reason=reason_category(reason))

    def vcpu_quota_exceeded(self, quota: str) -> None:
        _single("VcpuQuotaExceeded", MetricUnit.Count, 1, Quota=reason_category(quota))

    def idle_stopped(self, action: str) -> None:
        _single("IdleStops", MetricUnit.Count, 1, Action=action)

    def idle_stop_cancelled(self) -> None:
        metrics.add_metric(name="IdleStopsCancelled", unit=MetricUnit.Count, value=1)

    def active_sessions(self, backend: str, count: int) -> None:
        _single("ActiveSessions", MetricUnit.Count, count, Backend=backend)

    def agent_event_rejected(self) -> None:
        """The agent-event consumer rejected an event (a handler's fact, not the domain's)."""
        metrics.add_metric(name="AgentEventsRejected", unit=MetricUnit.Count, value=1)


TELEMETRY = PowertoolsTelemetry()
