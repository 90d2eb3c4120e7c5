"""What a desktop keeps of its profile, in its session record: the keys of its ``extra``, the
tag and environment variable that carry its idle timeout to its host, and the policy read back
from them.

Kept apart from ``dcvfleet.profiles`` (pydantic models of the profiles themselves) so that the
handlers that only read a desktop's record do not import pydantic on a cold start;
``dcvfleet.profiles`` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcvfleet.config import IDLE_ACTIONS

#: Keys of a session's ``extra`` (string values) that hold its profile and its own policy.
PROFILE_KEY = "profile"
PROFILE_NAME_KEY = "profileName"
NAME_KEY = "name"
HIDDEN_KEY = "hidden"
IDLE_TIMEOUT_KEY = "idleTimeoutSeconds"
IDLE_ACTION_KEY = "idleAction"
MAX_HOURS_KEY = "maxSessionHours"
#: The tag that carries a desktop's own idle timeout to its host's agent (read through instance
#: metadata, as its session id is); a container's comes in its job's environment.
IDLE_TIMEOUT_TAG = "dcvfleet:idle-timeout-seconds"
IDLE_TIMEOUT_ENV = "DCVFLEET_IDLE_TIMEOUT_SECONDS"


#: A desktop made before profiles: the profile it would have had, and a plain name.
_LEGACY = {
    ("ec2", "linux"): ("linux-workstation", "Linux workstation", "Linux desktop"),
    ("ec2", "windows"): ("windows-workstation", "Windows workstation", "Windows desktop"),
    ("batch", "linux"): ("linux-session", "Linux session", "Linux session"),
}


def session_view(backend: str, os: str, extra: Mapping[str, str]) -> dict[str, Any]:
    """The profile fields of a session's API view: ``profile``, ``profileName``, ``name``, and
    ``hidden`` when it is hidden."""
    legacy = _LEGACY.get((backend, os), ("", "", f"{os.capitalize()} desktop"))
    view: dict[str, Any] = {
        "profile": extra.get(PROFILE_KEY) or legacy[0],
        "profileName": extra.get(PROFILE_NAME_KEY) or legacy[1],
        "name": extra.get(NAME_KEY) or legacy[2],
    }
    if extra.get(HIDDEN_KEY) == "true":
        view["hidden"] = True
    return view


def idle_timeout_seconds(extra: Mapping[str, str], default: int) -> int:
    """A desktop's own idle timeout; the fleet's (IdleTimeoutSeconds) for one made before
    profiles."""
    raw = extra.get(IDLE_TIMEOUT_KEY)
    return int(raw) if raw and raw.isdigit() else default


def idle_action(extra: Mapping[str, str], default: str) -> str:
    """A desktop's own idle action; the fleet's (IdleAction) for one made before profiles."""
    raw = extra.get(IDLE_ACTION_KEY)
    return raw if raw in IDLE_ACTIONS else default


def max_session_seconds(extra: Mapping[str, str], default: int) -> int:
    """A desktop's own maximum length in seconds (0: none); the fleet's (MaxSessionMinutes) for
    one made before profiles. A desktop of a profile without a limit has none."""
    if PROFILE_KEY not in extra:
        return default
    raw = extra.get(MAX_HOURS_KEY)
    try:
        return round(float(raw) * 3600) if raw else 0
    except ValueError:
        return default
