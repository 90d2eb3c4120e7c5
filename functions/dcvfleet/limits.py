"""The answer to a request over the caller's active-desktop limit: which desktops hold the
slots, in words that tell the user what to do. Pure of environment and client construction."""

from __future__ import annotations

from typing import Any

from dcvfleet.model import ACTIVE, Session
from dcvfleet.session_profile import session_view
from dcvfleet.store import SessionStore


def desktop_name(session: Session) -> str:
    """What the user calls the desktop: its name, else its profile's, else a short plain
    description (desktops made before names)."""
    return str(session_view(session.backend, session.os, session.extra)["name"])


def limit_answer(store: SessionStore, owner: str, limit: int) -> dict[str, Any]:
    """The 409 body: ``message`` naming the active desktops, ``limit`` and ``active``."""
    active = [s for s in store.list_by_owner(owner) if s.status in ACTIVE]
    listed = [
        {"sessionId": s.session_id, "name": desktop_name(s), "status": s.status.value}
        for s in active
    ]
    return {"message": limit_message(listed, limit), "limit": limit, "active": listed}


def limit_message(active: list[dict[str, str]], limit: int) -> str:
    """``You already have 1 active desktop, the most allowed: "Linux workstation". Open it, or
    stop or delete it first.``"""
    if not active:  # one just ended between the refusal and this look
        most = f"{limit} active desktop{'s' if limit != 1 else ''}"
        return f"You already have the most allowed ({most}). Try again in a moment."
    names = ", ".join(f'"{d["name"]}"' for d in active)
    count = len(active)
    what = f"{count} active desktop{'s' if count != 1 else ''}"
    it = "it" if count == 1 else "one of them"
    last = "it" if count == 1 else "one"
    return (
        f"You already have {what}, the most allowed: {names}. "
        f"Open {it}, or stop or delete {last} first."
    )
