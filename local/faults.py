"""Faults the local stack can inject, to show what the system does when AWS fails.

Not an emulator workaround: AWS fails this way for real (no capacity, a function that errors);
tests and ``control_url`` (``POST /faults``) switch the faults on and off.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
#: Instance types with no capacity in any subnet; ``"*"`` for every type.
NO_CAPACITY: set[str] = set()
#: Function name (physical) -> (error type, message) its next invocations raise.
FUNCTION_ERRORS: dict[str, tuple[str, str]] = {}


def clear() -> None:
    with _lock:
        NO_CAPACITY.clear()
        FUNCTION_ERRORS.clear()


def set_no_capacity(instance_types: list[str]) -> None:
    with _lock:
        NO_CAPACITY.clear()
        NO_CAPACITY.update(instance_types)


def set_function_error(function_name: str, error_type: str, message: str) -> None:
    if not error_type.isidentifier():
        raise ValueError(f"error type {error_type!r} is not a class name")
    with _lock:
        FUNCTION_ERRORS[function_name] = (error_type, message)


def raise_function_fault(function_name: str) -> None:
    with _lock:
        fault = FUNCTION_ERRORS.get(function_name)
    if fault is not None:
        error_type, message = fault
        raise type(error_type, (Exception,), {})(message)


def install() -> None:
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
