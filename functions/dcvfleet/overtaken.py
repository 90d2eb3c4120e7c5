"""A provisioning step that a cancel (or the fleet sweep) overtook undoes its own work.

StopExecution does not stop a Lambda task the execution already started: the step runs to its
end. If its result can no longer be recorded because the desktop has left PROVISIONING (it was
cancelled, or ended by the sweep) while the step was making something (a secret, an instance, a
job), whatever ended the desktop may already have looked for it and found nothing: so the step
undoes what it made itself, then fails as before. Pure of environment and client construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger

from dcvfleet.model import Status
from dcvfleet.store import SessionStore

logger = Logger(child=True)

#: A desktop in these statuses is over or ending: nothing a provisioning step made is wanted.
ENDED = frozenset({Status.TERMINATING, Status.TERMINATED, Status.FAILED})


@contextmanager
def undone_if_overtaken(
    store: SessionStore, session_id: str, what: str, undo: Callable[[], object]
) -> Iterator[None]:
    """Run the block that records what a step made (``what``); when it fails and the desktop is
    no longer starting, call ``undo`` before the error propagates."""
    try:
        yield
    except Exception:
        current = store.get(session_id)
        if current is None or current.status in ENDED:
            status = current.status.value if current else "gone"
            logger.warning(
                "step overtaken: undoing", session_id=session_id, made=what, status=status
            )
            undo()
        raise
