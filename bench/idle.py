"""Idle-stop figures: a scripted day of connects and disconnects replayed on the local stack, time
compressed, against the common baseline design computed on the same script.

    make bench-idle                       # the default day: 4 desktops, 150 min, 4 s per minute
    python -m bench.idle --desktops 2 --minutes 90 --scale 2

Each desktop follows a script of connected intervals (in simulated minutes) with short breaks,
which must never stop it, and long ones, which should, soon. When the script connects to a
desktop that was stopped, the desktop is resumed through the API first (as a user would).

Printed, for DCV Fleet (IdleTimeout 30 min, grace 5 min, heartbeat 1 min, signals sampled every
10 s or the nearest whole second after compression, compressed so that one simulated minute lasts
--scale seconds) and for the baseline (a scheduled poll every 15 minutes
that stops a host after 30 minutes without connections):
  last disconnect -> STOPPED p50 / p99, the bound (timeout + grace + 2 heartbeats),
  false stops (a stop while connected or before the idle timeout: must be 0),
  idle GPU-host minutes paid for after the last disconnect,
  and how far past timeout + grace each stop came, in real seconds: the agent's sampling and the
  workflow's own steps (Lambda, SSM Run Command, EC2), which compression does not shrink. At
  --scale 1 those few seconds read as minutes; the default scale keeps them under a minute.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.provisioning import _user, percentile
from local.client import Client
from local.stack import LocalStack

IDLE_MINUTES = 30
GRACE_MINUTES = 5
HEARTBEAT_MINUTES = 1
SAMPLE_MINUTES = 10 / 60  # SignalSampleSeconds' default
BASELINE_POLL_MINUTES = 15
BASELINE_IDLE_MINUTES = 30


@dataclass
class Desktop:
    name: str
    #: Connected intervals in simulated minutes, (start, end), ordered, non-overlapping.
    script: list[tuple[float, float]]
    client: Client | None = None
    session_id: str = ""
    instance_id: str = ""
    stops: list[float] = field(default_factory=list)  # minutes from last disconnect to STOPPED
    paid: float = 0.0  # minutes the host ran with nobody connected
    false_stops: int = 0
    resumes: list[float] = field(default_factory=list)  # seconds from start to READY


def day_script(desktops: int, minutes: float, seed: int) -> list[list[tuple[float, float]]]:
    """Work blocks of 20-70 min separated by breaks: short ones (2-20 min, below the idle
    timeout) and long ones (45-90 min, a meeting or lunch)."""
    rng = random.Random(seed)
    scripts = []
    for _ in range(desktops):
        t, intervals = rng.uniform(0, 5), []
        while t < minutes - 20:
            end = min(minutes, t + rng.uniform(20, 70))
            intervals.append((t, end))
            long_break = rng.random() < 0.4
            t = end + (rng.uniform(45, 90) if long_break else rng.uniform(2, 20))
        scripts.append(intervals)
    return scripts


def baseline(script: list[tuple[float, float]]) -> tuple[list[float], float]:
    """A poll every 15 min stops a host with no connection for 30 min. Returns the minutes from
    the last disconnect to the stop for every break it stops in, and the minutes the host ran
    with nobody connected. It has no false stops by construction (it never stops a connected
    host, and 30 min of silence is its definition of idle)."""
    stops, paid = [], 0.0
    for index, (_, disconnect) in enumerate(script):
        reconnect = script[index + 1][0] if index + 1 < len(script) else math.inf
        first_poll = math.ceil((disconnect + BASELINE_IDLE_MINUTES) / BASELINE_POLL_MINUTES)
        stop_at = first_poll * BASELINE_POLL_MINUTES
        if stop_at < reconnect:
            stops.append(stop_at - disconnect)
            paid += stop_at - disconnect
        else:
            paid += reconnect - disconnect
    return stops, paid


class Replay:
    def __init__(self, info: dict[str, Any], scale: float, poll: float) -> None:
        self.info = info
        self.scale = scale
        self.poll = poll
        self.t0 = 0.0

    def minutes(self) -> float:
        return (time.monotonic() - self.t0) / self.scale

    def at(self, minute: float) -> None:
        delay = self.t0 + minute * self.scale - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def connections(self, desktop: Desktop, count: int) -> None:
        resp = requests.post(
            f"{self.info['control_url']}/hosts/{desktop.instance_id}/connections",
            json={"count": count},
            timeout=10,
        )
        resp.raise_for_status()

    def status(self, desktop: Desktop) -> dict[str, Any]:
        assert desktop.client is not None
        session: dict[str, Any] = desktop.client.call(
            "GET", f"/sessions/{desktop.session_id}"
        ).json()
        return session

    def wait(self, desktop: Desktop, statuses: tuple[str, ...], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            session = self.status(desktop)
            if session["status"] in statuses or time.monotonic() > deadline:
                return session
            time.sleep(self.poll)

    def run(self, desktop: Desktop, day_end: float) -> None:
        assert desktop.client is not None
        for index, (start, end) in enumerate(desktop.script):
            self.at(start)
            session = self.status(desktop)
            if session["status"] in ("STOPPING", "STOPPED"):
                session = self.wait(desktop, ("STOPPED",), 60)
                begun = time.monotonic()
                desktop.client.call("POST", f"/sessions/{desktop.session_id}/start")
                session = self.wait(desktop, ("READY", "FAILED", "STOPPED"), 120)
                desktop.resumes.append(time.monotonic() - begun)
            if session["status"] != "READY":
                raise RuntimeError(
                    f"{desktop.name}: {session['status']} {session.get('statusReason')}"
                )
            self.connections(desktop, 1)
            # while connected, the desktop must stay READY
            while self.minutes() < end:
                if self.status(desktop)["status"] != "READY":
                    desktop.false_stops += 1
                    break
                time.sleep(self.poll)
            self.at(end)
            self.connections(desktop, 0)
            disconnected = self.minutes()
            reconnect = desktop.script[index + 1][0] if index + 1 < len(desktop.script) else day_end
            # watch the break: a stop before the idle timeout is a false stop
            stopped_after = None
            while self.minutes() < reconnect:
                status = self.status(desktop)["status"]
                if status in ("STOPPING", "STOPPED"):
                    stopped = self.wait(desktop, ("STOPPED",), 60)
                    after = self.minutes() - disconnected
                    if stopped["status"] == "STOPPED":
                        desktop.stops.append(after)
                        stopped_after = after
                    if after < IDLE_MINUTES:
                        desktop.false_stops += 1
                    break
                time.sleep(self.poll)
            desktop.paid += stopped_after if stopped_after is not None else reconnect - disconnected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--desktops", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=150, help="length of the simulated day")
    parser.add_argument(
        "--scale", type=float, default=4.0, help="real seconds per simulated minute"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--poll", type=float, default=0.25)
    args = parser.parse_args(argv)

    def seconds(minutes: float) -> int:
        return max(1, round(minutes * float(args.scale)))

    params = {
        "IdleTimeoutSeconds": str(seconds(IDLE_MINUTES)),
        "IdleGraceSeconds": str(seconds(GRACE_MINUTES)),
        "HeartbeatIntervalSeconds": str(seconds(HEARTBEAT_MINUTES)),
        "SignalSampleSeconds": str(seconds(SAMPLE_MINUTES)),
        "HeartbeatTimeoutSeconds": str(seconds(5 * HEARTBEAT_MINUTES)),
        "MaxActiveSessionsPerUser": "1",
        "HostReadyTimeoutSeconds": "60",
    }
    scripts = day_script(args.desktops, args.minutes, args.seed)
    day_end = args.minutes + IDLE_MINUTES + GRACE_MINUTES + 10  # let the last break finish
    stack = LocalStack(params, state_dir=Path(tempfile.mkdtemp(prefix="dcvfleet-bench-idle-")))
    info = stack.start().as_json()
    try:
        desktops = [Desktop(f"desktop{n}", script) for n, script in enumerate(scripts)]
        replay = Replay(info, args.scale, args.poll)
        for desktop in desktops:
            desktop.client = _user(stack, info, f"idle-{desktop.name}")
            resp = desktop.client.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
            desktop.session_id = resp.json()["sessionId"]
            session = replay.wait(desktop, ("READY", "FAILED"), 60)
            desktop.instance_id = session["instanceId"]
            replay.connections(desktop, 1)
        replay.t0 = time.monotonic()
        threads = [
            threading.Thread(target=replay.run, args=(d, day_end), name=d.name) for d in desktops
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report(desktops, args)
    finally:
        stack.stop()
    return 0


def report(desktops: list[Desktop], args: argparse.Namespace) -> None:
    ours = [s for d in desktops for s in d.stops]
    theirs, their_paid = [], 0.0
    for desktop in desktops:
        stops, paid = baseline(desktop.script)
        theirs += stops
        their_paid += paid
    breaks = sum(len(d.script) for d in desktops)
    bound = IDLE_MINUTES + GRACE_MINUTES + 2 * HEARTBEAT_MINUTES
    resumes = [r for d in desktops for r in d.resumes]
    print(
        f"scripted day: {len(desktops)} desktops, {args.minutes:g} simulated min, {breaks} disconnects, "
        f"1 simulated min = {args.scale:g} s"
    )
    print(f"{'':34}{'DCV Fleet':>14}{'baseline':>14}")
    for label, pct in (
        ("last disconnect -> STOPPED p50", 50),
        ("last disconnect -> STOPPED p99", 99),
    ):
        a = f"{percentile(ours, pct):.1f} min" if ours else "-"
        b = f"{percentile(theirs, pct):.1f} min" if theirs else "-"
        print(f"  {label:32}{a:>14}{b:>14}")
    print(f"  {'stops':32}{len(ours):>14}{len(theirs):>14}")
    print(f"  {'false stops':32}{sum(d.false_stops for d in desktops):>14}{0:>14}")
    ours_paid = sum(d.paid for d in desktops)
    print(f"  {'idle host-minutes paid':32}{ours_paid:>14.0f}{their_paid:>14.0f}")
    print(f"  bound (timeout {IDLE_MINUTES} + grace {GRACE_MINUTES} + 2 heartbeats): {bound} min")
    if ours:
        past = [(s - IDLE_MINUTES - GRACE_MINUTES) * args.scale for s in ours]
        print(
            f"  past timeout + grace, real time: p50 {percentile(past, 50):.1f} s, "
            f"p99 {percentile(past, 99):.1f} s (sampling + workflow steps; not compressed)"
        )
    if resumes:
        print(
            f"  resume -> READY p50 {percentile(resumes, 50):.1f} s (local stack, {len(resumes)} resumes)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
