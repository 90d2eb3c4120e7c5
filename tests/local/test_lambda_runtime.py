"""The emulator's in-process Lambda runtime (``LAMBDA_RUNTIME`` in ``local/emulator/lambda_runtime.py``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from local.emulator import lambda_runtime


class InFlight:
    """A handler that counts the invocations running at once, per function."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.most_overall = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, str]:
        name = context.function_name
        with self.lock:
            self.running[name] = self.running.get(name, 0) + 1
            self.most[name] = max(self.most.get(name, 0), self.running[name])
            self.most_overall = max(self.most_overall, sum(self.running.values()))
        time.sleep(0.02)
        with self.lock:
            self.running[name] -= 1
        return {"function": name, "event": event["n"]}


def _function(name: str) -> Any:
    return SimpleNamespace(
        function_name=name,
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        environment_vars={},
        memory_size=128,
        timeout=3,
        handler="any.handler",
    )


def test_a_function_runs_one_invocation_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda gives concurrent invocations environments of their own; in one process they would
    share the handler module's state (the API's resolver answered one request in a few hundred
    with another's route). Two functions still run side by side."""
    handler = InFlight()
    monkeypatch.setattr(lambda_runtime, "_resolve_handler", lambda _: handler)
    api, worker = _function("api"), _function("worker")
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda n: lambda_runtime.run_function(api if n % 2 else worker, {"n": n}), range(16)
            )
        )
    assert [errored for _, errored, _ in results] == [False] * 16
    assert handler.most["api"] == 1
    assert handler.most["worker"] == 1
    assert handler.most_overall == 2


def test_a_function_invoked_from_its_own_invocation_does_not_wait_for_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    function = _function("nested")

    def handler(event: dict[str, Any], context: Any) -> Any:
        if event["depth"]:
            return {
                "inner": lambda_runtime.run_function(function, {"depth": event["depth"] - 1})[0]
            }
        return "done"

    monkeypatch.setattr(lambda_runtime, "_resolve_handler", lambda _: handler)
    payload, errored, _ = lambda_runtime.run_function(function, {"depth": 1})
    assert not errored
    assert payload == '{"inner": "\\"done\\""}'
