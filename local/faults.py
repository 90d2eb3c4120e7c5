"""Faults the local stack can inject, to show what the system does when AWS fails.

Not an emulator workaround: AWS fails this way for real (no capacity, a function that errors, an
API that throttles, a function that runs past its timeout); tests and ``control_url``
(``POST /faults``) switch the faults on and off.

* ``NO_CAPACITY``: EC2's RunInstances answers ``InsufficientInstanceCapacity`` for those types.
* ``FUNCTION_ERRORS``: a function raises before its handler runs.
* ``API_ERRORS``: an AWS operation (``<service>:<Operation>`` as botocore names them:
  ``ec2:RunInstances``, ``dynamodb:TransactWriteItems``, ``stepfunctions:StartExecution``,
  ``lambda:Invoke``) answers an AWS error (``RequestLimitExceeded``, ``ThrottlingException``,
  ``TooManyRequestsException``, ...) the next ``times`` calls, optionally only calls whose URL or
  body holds a text (a resource's name, a session id). The answer is made where moto answers
  every request (``BaseResponse._dispatch``) and serialized by moto for the service's protocol,
  so the caller's SDK parses a real error response and its retry mode handles it as it would
  AWS's: botocore's standard mode retries a throttling code with back-off and jitter; Step
  Functions (whose own Lambda client does not retry) reports a throttled ``lambda:Invoke`` as
  ``Lambda.TooManyRequestsException`` to the ASL's Retry. The HTTP status is the one the service
  model gives the error, else 400. Each fault counts the calls it answered (``report``).
* ``FUNCTION_TIMEOUTS``: a function's next ``times`` invocations (every one when None) end as
  Lambda ends one that ran past its ``Timeout``: the handler runs (what it did stands, as with
  a function stopped at its timeout) but its result is lost, and the invocation answers
  ``FunctionError: Unhandled`` with ``{"errorType": "Sandbox.Timedout", "errorMessage":
  "RequestId: ... Error: Task timed out after N.00 seconds"}``, which Step Functions reports
  under that error name. The answer comes as soon as the handler returns, not after
  ``Timeout`` seconds (the emulator does not enforce a function's timeout; only the failure,
  not the wait, is simulated).
"""

from __future__ import annotations

import json
import threading
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

_lock = threading.Lock()
#: Instance types with no capacity in any subnet; ``"*"`` for every type.
NO_CAPACITY: set[str] = set()
#: Function name (physical) -> (error type, message) its next invocations raise.
FUNCTION_ERRORS: dict[str, tuple[str, str]] = {}
#: Function name (physical) -> [how many of its next invocations time out (None: all), how many
#: did].
FUNCTION_TIMEOUTS: dict[str, list[int | None]] = {}
#: Error codes whose default message here is AWS's own.
API_ERROR_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "ThrottlingException": "Rate exceeded",
    "TooManyRequestsException": "Rate Exceeded.",
    "ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded."
    ),
    # a new account's vCPU quota for GPU instances is 0
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the "
        "instance bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."
    ),
}


@dataclass(frozen=True)
class ApiError:
    """An AWS error one operation answers: the next ``times`` calls (every call when None), only
    calls whose URL or body holds ``matching`` when it is set. ``answered`` counts them."""

    code: str
    message: str
    times: int | None = None
    matching: str | None = None
    answered: int = 0

    def as_json(self) -> dict[str, Any]:
        view: dict[str, Any] = {"code": self.code, "answered": self.answered}
        if self.times is not None:
            view["times"] = self.times
        if self.matching is not None:
            view["matching"] = self.matching
        return view


#: ``<service>:<Operation>`` (botocore's names) -> the error it answers.
API_ERRORS: dict[str, ApiError] = {}


def clear() -> None:
    with _lock:
        NO_CAPACITY.clear()
        FUNCTION_ERRORS.clear()
        FUNCTION_TIMEOUTS.clear()
        API_ERRORS.clear()


def report() -> dict[str, Any]:
    """The faults switched on, each API error with how many calls it answered and each function
    timeout with how many invocations it ended."""
    with _lock:
        return {
            "noCapacity": sorted(NO_CAPACITY),
            "functionErrors": {name: error for name, (error, _) in FUNCTION_ERRORS.items()},
            "functionTimeouts": {
                name: {"times": times, "timedOut": done}
                for name, (times, done) in FUNCTION_TIMEOUTS.items()
            },
            "apiErrors": {operation: e.as_json() for operation, e in API_ERRORS.items()},
        }


def set_no_capacity(instance_types: list[str]) -> None:
    with _lock:
        NO_CAPACITY.clear()
        NO_CAPACITY.update(instance_types)


def set_function_error(function_name: str, error_type: str, message: str) -> None:
    if not error_type.isidentifier():
        raise ValueError(f"error type {error_type!r} is not a class name")
    with _lock:
        FUNCTION_ERRORS[function_name] = (error_type, message)


def set_function_timeout(function_name: str, times: int | None = None) -> None:
    if times is not None and times < 1:
        raise ValueError("times must be at least 1")
    with _lock:
        FUNCTION_TIMEOUTS[function_name] = [times, 0]


def operation_problem(operation: str) -> str:
    """Why ``operation`` is not ``<service>:<Operation>`` ("" when it is)."""
    service, _, name = operation.partition(":")
    if not service or not name or not name.isidentifier() or not name[0].isupper():
        return f"{operation!r} is not <service>:<Operation> (for example ec2:RunInstances)"
    return ""


def api_error_problem(operation: str, spec: Any, resources: Mapping[str, str]) -> str:
    """Why an ``apiErrors`` entry of ``POST /faults`` is bad ("" when it is good): ``{"code",
    "times"?, "resource"? | "matching"?}``; ``resources`` are the stack's logical ids (``resource``
    names one; ``matching`` is any text)."""
    problem = operation_problem(operation)
    if problem:
        return problem
    if not isinstance(spec, dict):
        return 'an object {"code", "times"?, "resource"? | "matching"?} is required'
    unknown = sorted(set(spec) - {"code", "times", "resource", "matching"})
    if unknown:
        return f"{unknown[0]}: unknown field (code, times, resource, matching)"
    code = spec.get("code")
    if not isinstance(code, str) or not code.isidentifier():
        return "code: an AWS error code is required (for example RequestLimitExceeded)"
    times = spec.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        return "times: a positive integer, or absent for every call"
    resource = spec.get("resource")
    if resource is not None and resource not in resources:
        return f"resource: no resource {resource}"
    matching = spec.get("matching")
    if matching is not None and (not isinstance(matching, str) or not matching):
        return "matching: a text the request must hold"
    if resource is not None and matching is not None:
        return "resource: give resource or matching, not both"
    return ""


def set_api_error(
    operation: str,
    code: str,
    *,
    times: int | None = None,
    matching: str | None = None,
    message: str | None = None,
) -> None:
    problem = operation_problem(operation)
    if problem:
        raise ValueError(problem)
    if not code.isidentifier():
        raise ValueError(f"error code {code!r} is not an AWS error code")
    if times is not None and times < 1:
        raise ValueError("times must be at least 1")
    text = message or API_ERROR_MESSAGES.get(code, f"injected {code}")
    with _lock:
        API_ERRORS[operation] = ApiError(code, text, times, matching)


def take_api_error(operation: str, request_text: str) -> ApiError | None:
    """The error this call answers, counted, if a fault for ``operation`` applies to it."""
    with _lock:
        fault = API_ERRORS.get(operation)
        if fault is None or (fault.times is not None and fault.answered >= fault.times):
            return None
        if fault.matching is not None and fault.matching not in request_text:
            return None
        API_ERRORS[operation] = replace(fault, answered=fault.answered + 1)
        return fault


def raise_function_fault(function_name: str) -> None:
    with _lock:
        fault = FUNCTION_ERRORS.get(function_name)
    if fault is not None:
        error_type, message = fault
        raise type(error_type, (Exception,), {})(message)


def timed_out(function_name: str) -> bool:
    """Whether this invocation of the function times out (counted when it does)."""
    with _lock:
        fault = FUNCTION_TIMEOUTS.get(function_name)
        if fault is None:
            return False
        times, done = fault
        if times is not None and (done or 0) >= times:
            return False
        fault[1] = (done or 0) + 1
        return True


def timeout_payload(timeout_seconds: float) -> str:
    """What Lambda answers for an invocation that ran past the function's timeout."""
    return json.dumps(
        {
            "errorType": "Sandbox.Timedout",
            "errorMessage": (
                f"RequestId: {uuid.uuid4()} Error: Task timed out after "
                f"{float(timeout_seconds):.2f} seconds"
            ),
        }
    )


def install() -> None:
    """Hook the faults into the emulator: RunInstances (no capacity), every API request (API
    errors) and Lambda's Invoke (timeouts)."""
    _install_no_capacity()
    _install_api_errors()
    _install_function_timeouts()


def _install_no_capacity() -> None:
    """Make the emulator's RunInstances answer InsufficientInstanceCapacity for listed types."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances
    if getattr(original, "_dcvfleet", False):
        return

    def run_instances(self: Any, image_id: str, count: int, *args: Any, **kwargs: Any) -> Any:
        instance_type = kwargs.get("instance_type", "m1.small")
        with _lock:
            exhausted = "*" in NO_CAPACITY or instance_type in NO_CAPACITY
        if exhausted:
            zone = kwargs.get("placement") or "the Availability Zone you requested"
            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                f"We currently do not have sufficient {instance_type} capacity in {zone}. "
                "Our system will be working on provisioning additional capacity.",
            )
        return original(self, image_id, count, *args, **kwargs)

    run_instances._dcvfleet = True  # type: ignore[attr-defined]
    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]


def _request_text(response: Any) -> str:
    """The request's URL path and body, decoded, for a fault's ``matching``."""
    body = response.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    return f"{unquote_plus(response.parsed_url.path)} {unquote_plus(str(body or ''))}"


def _install_api_errors() -> None:
    """Answer an injected AWS error where moto answers every request, serialized by moto."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, BaseResponse

    original = BaseResponse._dispatch
    if getattr(original, "_dcvfleet", False):
        return

    class InjectedError(ServiceException):
        """Serialized against the service's own model (a class of moto's would name its own)."""

    # moto warns when a code is not in the service's model; AWS's common errors
    # (ThrottlingException) are in few models, and the answer is right without one
    warnings.filterwarnings("ignore", message=r"Exception\(InjectedError\)", category=UserWarning)

    def dispatch(self: Any, request: Any, full_url: Any = None, headers: Any = None) -> Any:
        if not API_ERRORS:
            return original(self, request, full_url, headers)
        self.setup_class(request, full_url, headers)
        operation = f"{self.boto3_service_name}:{self._get_action()}"
        fault = take_api_error(operation, _request_text(self))
        if fault is None:
            return self.call_action()
        status, reply_headers, body = self.serialized(
            ActionResult(InjectedError(fault.code, fault.message))
        )
        # every AWS answer carries its request id (Step Functions quotes it in the cause)
        reply_headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        return status, reply_headers, body

    dispatch._dcvfleet = True  # type: ignore[attr-defined]
    BaseResponse._dispatch = dispatch  # type: ignore[method-assign]


def _install_function_timeouts() -> None:
    """Make a timed-out function's invocation answer as Lambda's does."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.invoke
    if getattr(original, "_dcvfleet", False):
        return

    def invoke(self: Any, body: str, request_headers: Any, response_headers: Any) -> Any:
        result = original(self, body, request_headers, response_headers)
        if not timed_out(self.function_name):
            return result
        response_headers["x-amz-function-error"] = "Unhandled"
        payload = timeout_payload(self.timeout)
        return payload.encode("utf-8") if isinstance(result, bytes) else payload

    invoke._dcvfleet = True  # type: ignore[attr-defined]
    LambdaFunction.invoke = invoke  # type: ignore[method-assign]
