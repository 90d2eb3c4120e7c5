"""Lambda: functions run in-process, bound to the real handlers in ``functions/``.

Each function runs with its own environment (a per-thread overlay of ``os.environ``) and its own
stdout, one invocation at a time (Lambda gives each concurrent invocation an execution
environment of its own; here they would share the module's state), and its log lines are saved
to CloudWatch Logs as ``/aws/lambda/<name>``. A fault injected for a function (``local.faults``)
is raised inside the invocation, so it fails as a function's own error does.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from local import faults
from local.emulator import ROOT
from local.emulator.gap import Context, Gap, Patch

log = logging.getLogger("local.emulator")


FUNCTIONS_DIR = ROOT / "functions"

# Per-thread environment and stdout, so in-process functions each see their own configuration.
_local = threading.local()


class LayeredEnviron(MutableMapping[str, str]):
    """``os.environ`` with a per-thread overlay: a function's variables win inside its thread."""

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self._base = base

    def _overlay(self) -> dict[str, str] | None:
        return getattr(_local, "environ", None)

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            return overlay[key]
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            overlay[key] = value
        else:
            self._base[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            del overlay[key]
        else:
            del self._base[key]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay() or {}
        yield from overlay
        yield from (k for k in self._base if k not in overlay)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


class ThreadStdout(io.TextIOBase):
    """stdout that a function invocation captures for its own thread (its log lines)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, text: str) -> int:
        buffer = getattr(_local, "stdout", None)
        if buffer is not None:
            return int(buffer.write(text))
        return int(self._real.write(text))

    def flush(self) -> None:
        self._real.flush()


def in_function() -> bool:
    """Whether the calling thread is running a function invocation."""
    return getattr(_local, "environ", None) is not None


@contextlib.contextmanager
def function_context(environ: dict[str, str]) -> Iterator[io.StringIO]:
    previous_env = getattr(_local, "environ", None)
    previous_out = getattr(_local, "stdout", None)
    _local.environ = dict(environ)
    _local.stdout = io.StringIO()
    try:
        yield _local.stdout
    finally:
        _local.environ = previous_env
        _local.stdout = previous_out


class FunctionContext:
    """The Lambda context object handlers receive."""

    def __init__(self, name: str, arn: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


INVOCATIONS: list[str] = []
_invocations_lock = threading.Lock()


def _resolve_handler(handler: str) -> Callable[..., Any]:
    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))
    module_name, _, attr = handler.rpartition(".")
    module = importlib.import_module(module_name)
    fn: Callable[..., Any] = getattr(module, attr)
    return fn


_import_lock = threading.Lock()
#: One execution environment per function: an invocation waits for the one in progress. (Re-entrant,
#: so that a function invoked again from its own thread cannot wait for itself.)
_environments: dict[str, threading.RLock] = {}


def _environment(function_arn: str) -> threading.RLock:
    with _invocations_lock:
        return _environments.setdefault(function_arn, threading.RLock())


def run_function(fn: Any, event: Any) -> tuple[str, bool, str]:
    """Run a moto ``LambdaFunction`` in-process: (payload, errored, log output)."""
    environ = {
        **dict(os.environ),
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
    }
    context = FunctionContext(fn.function_name, fn.function_arn, int(fn.memory_size), fn.timeout)
    if isinstance(event, str):
        event = json.loads(event or "{}")
    with _invocations_lock:
        INVOCATIONS.append(fn.function_name)
    with _environment(fn.function_arn), function_context(environ) as out:
        try:
            faults.raise_function_fault(fn.function_name)
            with _import_lock:
                handler = _resolve_handler(fn.handler)
            result = handler(event, context)
            payload, errored = json.dumps(result), False
        except Exception as exc:  # the function errored: Lambda reports it, it does not crash
            payload = json.dumps(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:],
                }
            )
            errored = True
            out.write(payload + "\n")
        logs = out.getvalue()
    _ship_logs(fn, logs)
    return payload, errored, logs


def _ship_logs(fn: Any, logs: str) -> None:
    """Lambda writes a function's log lines to ``/aws/lambda/<name>``, creating the group."""
    if not logs.strip():
        return
    with _invocations_lock:
        if fn.logs_group_name not in fn.logs_backend.groups:
            fn.logs_backend.create_log_group(fn.logs_group_name, {})
    fn.save_logs(logs)


def install(context: Context) -> list[Patch]:
    from moto.awslambda import models

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return run_function(self, event)

    patches = [Patch(models.LambdaFunction, "_invoke_lambda", _invoke_lambda)]
    if not isinstance(os.environ, LayeredEnviron):
        patches.append(Patch(os, "environ", LayeredEnviron(os.environ)))
    if not isinstance(sys.stdout, ThreadStdout):
        patches.append(Patch(sys, "stdout", ThreadStdout(sys.stdout)))
    return patches


LAMBDA_RUNTIME = Gap(
    "LAMBDA_RUNTIME",
    moto_does="runs Lambda code only in Docker",
    we_do="functions run in-process, bound to the real handler in functions/, with the"
    " function's own environment (per thread), one invocation at a time per function (one"
    " execution environment), their log lines saved to /aws/lambda/<name>",
    install=install,
)
