"""The entry point of every Lambda-backed custom resource: CloudFormation always gets its answer.

CloudFormation waits for a custom resource's answer, a PUT to the request's pre-signed
``ResponseURL``, for up to an hour before it fails the stack operation:
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes.html
A function that fails before its own code can answer leaves the stack hanging that long. So
this module, which imports only the standard library, answers for the resource's handler
(named by ``CUSTOM_RESOURCE_HANDLER``, ``module.function``):
- whatever the handler raises, at import (init) or while it runs: FAILED, with the error;
- when the invocation is about to reach the function's timeout, after which Lambda stops the
  process and nothing could answer: FAILED, "timed out", ``DEADLINE_MARGIN_SECONDS`` before it;
- otherwise what the handler returned (``{"Reason": str, "Data": dict, "PhysicalResourceId":
  str}``, each optional): SUCCESS.
It answers exactly once.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import urllib.request
from typing import Any

#: How long before the function's timeout a handler still working is answered FAILED: enough
#: for the PUT itself (``ANSWER_TIMEOUT_SECONDS``) to go through.
DEADLINE_MARGIN_SECONDS = 10.0
ANSWER_TIMEOUT_SECONDS = 8.0
#: CloudFormation shows at most this much of a reason.
REASON_LIMIT = 1000


class _Answer:
    """The one answer to one request."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self._lock = threading.Lock()
        self.sent: str | None = None

    def send(self, status: str, reason: str, result: dict[str, Any] | None = None) -> None:
        with self._lock:
            if self.sent is not None:
                return
            self.sent = status
        event, result = self.event, result or {}
        body = json.dumps(
            {
                "Status": status,
                "Reason": reason[:REASON_LIMIT],
                # an update or delete keeps the id it was given; a create that failed made nothing
                "PhysicalResourceId": result.get("PhysicalResourceId")
                or event.get("PhysicalResourceId")
                or event.get("LogicalResourceId", "resource"),
                "StackId": event.get("StackId", ""),
                "RequestId": event.get("RequestId", ""),
                "LogicalResourceId": event.get("LogicalResourceId", ""),
                "Data": result.get("Data") or {},
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
            event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
        )
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_SECONDS) as answer:  # noqa: S310
            answer.read()


def _work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    module_name, _, function_name = os.environ["CUSTOM_RESOURCE_HANDLER"].rpartition(".")
    function = getattr(importlib.import_module(module_name), function_name)
    result: dict[str, Any] = function(event, context)
    return result


def handler(event: dict[str, Any], context: Any) -> None:
    answer = _Answer(event)
    remaining = context.get_remaining_time_in_millis() / 1000.0
    timer = threading.Timer(
        max(remaining - DEADLINE_MARGIN_SECONDS, 0.0),
        lambda: answer.send(
            "FAILED",
            f"timed out: still working {DEADLINE_MARGIN_SECONDS:.0f} s before the function's "
            "timeout (see its log)",
        ),
    )
    timer.daemon = True
    timer.start()
    try:
        result = _work(event, context)
    except Exception as exc:  # every error, at init or at work, is the answer
        answer.send("FAILED", f"{type(exc).__name__}: {exc}")
    else:
        answer.send("SUCCESS", str(result.get("Reason", "")), result)
    finally:
        timer.cancel()
