"""DynamoDB: conditional writes and transactions serialised, as DynamoDB serialises them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from local.emulator.gap import Context, Gap, Patch

log = logging.getLogger("local.emulator")


_dynamodb_lock = threading.RLock()
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def atomic_dynamodb_writes() -> dict[str, Callable[..., Any]]:
    """DDB_ATOMIC_WRITES: the emulator's write methods, each serialised by one lock."""
    from moto.dynamodb.models import DynamoDBBackend

    replacements: dict[str, Callable[..., Any]] = {}
    for name in DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(*args, **kwargs)

        replacements[name] = locked
    return replacements


def install(context: Context) -> list[Patch]:
    from moto.dynamodb.models import DynamoDBBackend

    return [Patch(DynamoDBBackend, name, fn) for name, fn in atomic_dynamodb_writes().items()]


DDB_ATOMIC_WRITES = Gap(
    "DDB_ATOMIC_WRITES",
    moto_does="conditional writes and transactions check their conditions, write, and (for a"
    " failed transaction) restore a copy of the table without a lock, so two threads can both"
    " pass a condition, or a rollback can undo another thread's write",
    we_do="one lock serialises every write, as DynamoDB serialises them",
    install=install,
)
