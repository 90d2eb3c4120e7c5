"""A desktop's name, and hiding an ended desktop from its owner's list (PATCH /sessions/{id}).

Both are kept in the session's ``extra`` (``dcvfleet.profiles``: NAME_KEY, HIDDEN_KEY) by a
versioned write, retried when another writer (a workflow step) moved the record meanwhile.
"""

from __future__ import annotations

from dcvfleet.errors import InvalidRequestError, SessionConflictError, StatusConflictError
from dcvfleet.model import Session, Status
from dcvfleet.session_profile import HIDDEN_KEY, NAME_KEY
from dcvfleet.sessions import Caller, get_session
from dcvfleet.store import CONFLICT_RETRIES, SessionStore

#: Only a desktop that has ended may be hidden: one that runs, or can run again, stays in view.
HIDEABLE = frozenset({Status.TERMINATED, Status.FAILED})


def is_hidden(session: Session) -> bool:
    return session.extra.get(HIDDEN_KEY) == "true"


def rename_or_hide(
    store: SessionStore,
    caller: Caller,
    session_id: str,
    *,
    name: str | None = None,
    hidden: bool | None = None,
) -> Session:
    """Rename the caller's desktop (``name``, trimmed) and/or hide or show it again
    (``hidden``); the session as written. InvalidRequestError for an empty change or a blank
    name; StatusConflictError for hiding a desktop that has not ended."""
    if name is None and hidden is None:
        raise InvalidRequestError("body: name or hidden is required")
    trimmed = name.strip() if name is not None else None
    if trimmed == "":
        raise InvalidRequestError("name: must not be blank")
    for _ in range(CONFLICT_RETRIES):
        session = get_session(store, caller, session_id)
        if hidden and session.status not in HIDEABLE:
            raise StatusConflictError(
                f"only a desktop that has ended can be hidden; this one is {session.status}",
                session.status.value,
            )
        extra = dict(session.extra)
        if trimmed is not None:
            extra[NAME_KEY] = trimmed
        if hidden is True:
            extra[HIDDEN_KEY] = "true"
        elif hidden is False:
            extra.pop(HIDDEN_KEY, None)
        if extra == session.extra:
            return session  # nothing to change: no write
        try:
            return store.update(session, extra=extra)
        except SessionConflictError:
            continue
    raise SessionConflictError(f"session {session_id}: too many concurrent writers")
