"""A desktop's status reason in its reader's words, from the neutral record of who did what
(the session's ``evidence``: its trigger, who for an administrator, whether it was a cancel, the
action asked for), not from a stored sentence: the owner reads "Deleted by you.", an
administrator "Deleted by demo"; the owner "Stopped by an administrator.", an administrator
"Stopped by an administrator (boss)". Reasons no one decided (a failure, a change outside DCV
Fleet) are the stored sentence, the same for both. Pure: no imports of the domain."""

from __future__ import annotations

from typing import Any

#: The statuses a stop or a termination leads to: only then does the decision explain it.
_DECIDED = frozenset({"STOPPING", "STOPPED", "TERMINATING", "TERMINATED"})
_AUTOMATIC = frozenset({"idle", "agent-silent", "max-lifetime"})


def _verb(status: str, evidence: dict[str, Any]) -> str:
    if evidence.get("cancelled"):
        return "Cancelled"
    action = evidence.get("action")
    if action == "terminate" or (action is None and status in ("TERMINATING", "TERMINATED")):
        return "Deleted"
    return "Stopped"


def status_reason(
    *,
    status: str,
    stored: str | None,
    evidence: dict[str, Any] | None,
    owner_name: str | None,
    admin: bool,
) -> str | None:
    """The reason ``status`` is as it is, for the owner (``admin`` False) or an administrator."""
    found = evidence or {}
    trigger = found.get("trigger")
    if status not in _DECIDED:
        return stored
    if trigger == "user":
        verb = _verb(status, found)
        return f"{verb} by {owner_name or 'its owner'}" if admin else f"{verb} by you."
    if trigger == "admin":
        verb = _verb(status, found)
        by = found.get("by")
        if admin:
            return f"{verb} by an administrator ({by})" if by else f"{verb} by an administrator"
        return f"{verb} by an administrator."
    if trigger in _AUTOMATIC and admin:
        verb = "Stopped" if status in ("STOPPING", "STOPPED") else "Ended"
        return f"{verb}: {_automatic_why(trigger, found)}"
    return stored


def _automatic_why(trigger: str, evidence: dict[str, Any]) -> str:
    if trigger == "agent-silent":
        return "its host stopped reporting and nobody was connected"
    if trigger == "max-lifetime":
        return "it reached the maximum session length"
    seconds = (evidence.get("claim") or {}).get("idleSeconds")
    if isinstance(seconds, int | float) and seconds > 0:
        minutes = max(1, round(seconds / 60))
        return f"nobody used it for {minutes} minute{'s' if minutes != 1 else ''}"
    return "nobody used it"
