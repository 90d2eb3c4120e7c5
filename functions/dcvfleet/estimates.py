"""How long a desktop takes to be ready, told while it starts: from the profile's recent times
on the same path.

A desktop starts along one of a few paths, and each takes its own time: a host waiting in the
warm pool (seconds), a pool host waiting stopped (a start), a new instance (a boot, and on a bare
image the first-boot install), a stopped desktop started again, a container on AWS Batch. The
step that knows the path records it on the session (``extra[PATH_KEY]``), with an estimate from
the last desktops of the same profile that went the same way: the median and the 90th
percentile of their times from request (or resume) to READY. With fewer than ``MIN_SAMPLES``
such desktops the estimate is left out: no figure is better than an invented one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from dcvfleet.session_profile import PROFILE_KEY

logger = Logger(child=True)

StartPath = Literal["pool", "pool-stopped", "launch", "resume", "batch"]
PATHS: tuple[StartPath, ...] = ("pool", "pool-stopped", "launch", "resume", "batch")

#: Keys of a session's ``extra`` (string values): the path its current start took, and the
#: estimate made when it was taken.
PATH_KEY = "startPath"
SECONDS_KEY = "estimateSeconds"
UP_TO_KEY = "estimateUpToSeconds"
SAMPLES_KEY = "estimateSamples"
ESTIMATE_KEYS = (SECONDS_KEY, UP_TO_KEY, SAMPLES_KEY)

#: Fewer recent desktops than this on a path, and no estimate is given.
MIN_SAMPLES = 3
#: The estimate reads the last this many desktops of the profile on the path.
MAX_SAMPLES = 20


@dataclass(frozen=True)
class Estimate:
    path: StartPath
    seconds: int
    up_to_seconds: int
    samples: int

    def extra(self) -> dict[str, str]:
        """The estimate as a session's ``extra`` keys."""
        return {
            PATH_KEY: self.path,
            SECONDS_KEY: str(self.seconds),
            UP_TO_KEY: str(self.up_to_seconds),
            SAMPLES_KEY: str(self.samples),
        }


def from_durations(path: StartPath, durations: Iterable[float]) -> Estimate | None:
    """The median and the 90th percentile (nearest rank) of ``durations`` (seconds, the newest
    first; at most ``MAX_SAMPLES`` are read); None with fewer than ``MIN_SAMPLES``."""
    taken = sorted(d for d in list(durations)[:MAX_SAMPLES] if d >= 0)
    if len(taken) < MIN_SAMPLES:
        return None
    p90 = taken[max(0, math.ceil(0.9 * len(taken)) - 1)]
    return Estimate(
        path=path,
        seconds=round(statistics.median(taken)),
        up_to_seconds=round(p90),
        samples=len(taken),
    )


def start_duration(created_at: str, resumed_at: str | None, ready_at: str | None) -> float | None:
    """Seconds from a desktop's request (or its last resume) to its last READY; None when its
    current start has not reached READY (a resume after the last READY)."""
    if not ready_at:
        return None
    seconds = (_parse(ready_at) - _parse(resumed_at or created_at)).total_seconds()
    return seconds if seconds >= 0 else None


def view(extra: Mapping[str, str]) -> dict[str, object] | None:
    """The ``estimate`` of a starting desktop's API view: ``{"path", "seconds"?,
    "upToSeconds"?, "samples"?}`` (the figures only when there were enough recent desktops)."""
    path = extra.get(PATH_KEY)
    if path not in PATHS:
        return None
    shown: dict[str, object] = {"path": path}
    if all(key in extra for key in ESTIMATE_KEYS):
        shown.update(
            seconds=int(extra[SECONDS_KEY]),
            upToSeconds=int(extra[UP_TO_KEY]),
            samples=int(extra[SAMPLES_KEY]),
        )
    return shown


class RecentStarts(Protocol):
    """Where the recent desktops are read from (``store.SessionStore.recent_starts``)."""

    def recent_starts(self, profile: str, path: str, limit: int) -> Sequence[Any]: ...


def recorder(
    recent: RecentStarts, extra: Mapping[str, str], path: StartPath
) -> Callable[[dict[str, str]], dict[str, str]]:
    """What a step that knows the path does to a starting desktop's ``extra``: an earlier
    start's path and estimate go; this one's path goes in, and its estimate from the last
    desktops of the same profile on the same path when there were enough (one indexed read)."""
    profile = extra.get(PROFILE_KEY)
    try:
        started = recent.recent_starts(profile, path, MAX_SAMPLES) if profile else []
    except (BotoCoreError, ClientError) as exc:  # an estimate is never worth a failed desktop
        logger.warning("no start estimate", path=path, error=str(exc))
        started = []
    durations = (start_duration(s.created_at, s.resumed_at, s.ready_at) for s in started)
    estimate = from_durations(path, (d for d in durations if d is not None))
    written = estimate.extra() if estimate else {PATH_KEY: path}

    def record(extra: dict[str, str]) -> dict[str, str]:
        return {**without_estimate(extra), **written}

    return record


def without_estimate(extra: Mapping[str, str]) -> dict[str, str]:
    """``extra`` without a start's path and estimate: a new start (a resume) has none until the
    step that knows its path records them, rather than the last start's."""
    return {k: v for k, v in extra.items() if k != PATH_KEY and k not in ESTIMATE_KEYS}


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))
