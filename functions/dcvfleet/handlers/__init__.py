"""Lambda entry points: parse, validate, call one domain function, serialise.

Every entry point is decorated with ``entry_point``, reads a workflow task's input with
``task_text`` and ``caught_error``, and reaches the sessions table through ``session_store`` and a
batch desktop's jobs through ``batch_jobs``: one place for each, which the tests swap for fakes
per handler module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet.adapters import BatchJobs
from dcvfleet.aws import client
from dcvfleet.config import CommonSettings
from dcvfleet.errors import InvalidRequestError
from dcvfleet.observability import logger, metrics, tracer
from dcvfleet.store import DynamoSessionStore

Result = TypeVar("Result")
Handler = Callable[[dict[str, Any], LambdaContext], Result]


def entry_point(
    correlation_id_path: str | None = None, *, capture_response: bool = True
) -> Callable[[Handler[Result]], Handler[Result]]:
    """Powertools' decorators, in the order Powertools documents: the invocation's context (and
    its correlation id, found at ``correlation_id_path`` in the event) in every log line, a trace
    subsegment of its own (its answer recorded unless ``capture_response`` is False), and its
    metrics flushed even when it raises (``dcvfleet.observability`` says why each)."""

    def decorate(function: Handler[Result]) -> Handler[Result]:
        traced = tracer.capture_lambda_handler(capture_response=capture_response)(
            metrics.log_metrics(function)
        )
        wrapped: Handler[Result] = logger.inject_lambda_context(
            correlation_id_path=correlation_id_path
        )(traced)
        return wrapped

    return decorate


def task_text(event: dict[str, Any], name: str, allowed: tuple[str, ...] | None = None) -> str:
    """A workflow task input's string field ``name``: required, and one of ``allowed`` if given."""
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name}: required in the task input")
    if allowed is not None and value not in allowed:
        raise InvalidRequestError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def caught_error(event: dict[str, Any]) -> dict[str, Any] | None:
    """The workflow's caught error ({"Error", "Cause"}), when the task input carries one."""
    error = event.get("error")
    return error if isinstance(error, dict) else None


def session_store() -> DynamoSessionStore:
    """The sessions table (SESSIONS_TABLE)."""
    return DynamoSessionStore(client("dynamodb"), CommonSettings.from_env(os.environ).table_name)


def batch_jobs() -> BatchJobs:
    """The batch backend's jobs (JOB_QUEUE is only needed to submit or find one by name)."""
    return BatchJobs(client("batch"), client("ecs"), os.environ.get("JOB_QUEUE", ""))
