"""Warm Batch capacity, measured: a batch desktop's time from request to READY with a cold
compute environment, with one kept warm (a batch profile's ``pool``: the refill sets the
environment's ``minvCpus``), and with one kept warm whose instance has the release's image
already (BatchLaunchTemplate's user data pulls it at boot; the ECS agent starts the job from
the cache), side by side.

    python -m bench.batch_warm                 # make bench-warm runs it after bench.warm
    python -m bench.batch_warm --rounds 3 --scale 0.2

On the local stack (the real control plane, refill and agent; simulated Batch capacity,
local/sim/containers.py) the instance's boot and the image's pull are AWS's figures
(BATCH_INSTANCE_SECONDS, IMAGE_PULL_SECONDS: their sources are in local/sim/containers.py)
times ``--scale``, so that a round takes seconds. Each case's measured time less its scaled
delays is the control plane's (and the agent's) own part; the modelled AWS time is that part
plus the AWS figures the case still waits for:

    cold CE                 the instance boots, then the image is pulled
    warm CE                 the instance is up; the image is pulled when the job starts
    warm CE + cached image  neither: the container starts at once
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.provisioning import _user
from bench.warm_day import load_prices
from bench.warm_stack import _refill_now
from local.client import Client
from local.sim.containers import (
    BATCH_INSTANCE_SECONDS,
    DESKTOP_IMAGE_MIB,
    GP3_DEFAULT_MIB_PER_SECOND,
    IMAGE_PULL_SECONDS,
)
from local.stack import LocalStack

#: The fleet's default batch profile (profiles.default_definitions).
PROFILE = "linux-session"
BATCH = {"backend": "batch", "os": "linux"}
CASES = ("cold CE", "warm CE", "warm CE + cached image")
WAIT_SECONDS = 120.0
#: The instance type a warm instance is (the compute environment's first, BatchInstanceTypes).
WARM_TYPE = "g5.xlarge"
#: Derived fields of a profile as the API answers it, not part of what an admin puts.
DERIVED = ("id", "keepsFiles", "whenStopped", "source")


def _wait(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {WAIT_SECONDS:g} s: {what}")
        time.sleep(0.1)
    return value


def _keep_warm(stack: LocalStack, admin: Client, spec: dict[str, Any], size: int) -> None:
    """Put the batch profile with a pool of ``size`` warm instances (none: no pool) and run the
    refill now, which sets the compute environment's minvCpus."""
    body = {k: v for k, v in spec.items() if k not in DERIVED and k != "pool"}
    if size:
        body["pool"] = {"size": size}
    resp = admin.call("PUT", f"/admin/profiles/{PROFILE}", body)
    if resp.status_code != 200:
        raise RuntimeError(f"PUT /admin/profiles/{PROFILE}: {resp.status_code} {resp.text}")
    _refill_now(stack)


def _request(user: Client, poll: float) -> tuple[str, float]:
    """A batch desktop, request -> READY (its record's updatedAt)."""
    started = time.time()
    resp = user.call("POST", "/sessions", BATCH)
    if resp.status_code != 202:
        raise RuntimeError(f"request refused: {resp.status_code} {resp.text}")
    session_id: str = resp.json()["sessionId"]
    while True:
        session = user.call("GET", f"/sessions/{session_id}").json()
        if session["status"] in ("READY", "FAILED"):
            break
        time.sleep(poll)
    if session["status"] != "READY":
        raise RuntimeError(f"{session_id}: {session['status']} {session.get('statusReason')}")
    ready_at = datetime.fromisoformat(session["updatedAt"].replace("Z", "+00:00")).timestamp()
    return session_id, ready_at - started


def _ended(user: Client, session_id: str) -> bool:
    resp = user.call("GET", f"/sessions/{session_id}")
    return resp.status_code == 404 or resp.json()["status"] in ("TERMINATED", "FAILED")


def measure(
    rounds: int, scale: float, poll: float, *, warm_up: bool = True
) -> dict[str, list[float]]:
    """Request -> READY seconds of ``rounds`` batch desktops per case, on one local stack whose
    Batch instance boot and image pull are AWS's figures times ``scale`` (after a round that
    warms the functions up, their imports, unless ``warm_up`` is False)."""
    quiet = {"SignalSampleSeconds": "600", "HeartbeatIntervalSeconds": "600"}
    state_dir = Path(tempfile.mkdtemp(prefix="dcvfleet-bench-batch-warm-"))
    stack = LocalStack(
        quiet,
        state_dir=state_dir,
        batch_boot_delay=BATCH_INSTANCE_SECONDS * scale,
        pull_delay=IMAGE_PULL_SECONDS * scale,
    )
    info = stack.start()
    jobs = stack.jobs
    assert jobs is not None
    try:
        admin = Client(info.as_json())
        admin.sign_in(info.admin_user["username"], info.admin_user["password"])
        spec = next(p for p in admin.call("GET", "/profiles").json()["items"] if p["id"] == PROFILE)
        found: dict[str, list[float]] = {case: [] for case in CASES}
        first = 0 if warm_up else 1
        for n in range(first, rounds + 1):  # round 0 warms the functions up (their imports)
            for case in CASES:
                _keep_warm(stack, admin, spec, 0)
                _wait(lambda: not jobs.warm_view(), "the idle instances to go")
                if case != "cold CE":
                    cached = jobs.prepull = case == "warm CE + cached image"
                    _keep_warm(stack, admin, spec, 1)
                    _wait(
                        lambda cached=cached: any(
                            w["ready"] and bool(w["images"]) == cached for w in jobs.warm_view()
                        ),
                        f"a warm instance ({case})",
                    )
                user = _user(stack, info.as_json(), f"batchwarm{n}{CASES.index(case)}")
                session_id, took = _request(user, poll)
                if n:
                    found[case].append(took)
                answer = user.call("DELETE", f"/sessions/{session_id}")
                if answer.status_code != 202:
                    raise RuntimeError(f"DELETE {session_id}: {answer.status_code} {answer.text}")
                _wait(lambda u=user, s=session_id: _ended(u, s), f"{session_id} to end")
        _keep_warm(stack, admin, spec, 0)
        return found
    finally:
        stack.stop()


def report(found: dict[str, list[float]], scale: float) -> None:
    waits = {
        "cold CE": BATCH_INSTANCE_SECONDS + IMAGE_PULL_SECONDS,
        "warm CE": IMAGE_PULL_SECONDS,
        "warm CE + cached image": 0.0,
    }
    print(
        f"Batch desktop, request -> READY (median of {len(found[CASES[0]])}); local delays are "
        f"AWS's figures x {scale:g}"
    )
    print(
        f"{'case':<24} {'measured (local)':>16} {'control plane':>14} {'modelled on AWS':>16} "
        f"{'saved vs cold':>14}"
    )
    cold_aws = None
    for case in CASES:
        measured = statistics.median(found[case])
        own = max(0.0, measured - waits[case] * scale)
        aws = own + waits[case]
        cold_aws = aws if cold_aws is None else cold_aws
        print(f"{case:<24} {measured:>15.1f}s {own:>13.1f}s {aws:>15.1f}s {cold_aws - aws:>13.1f}s")
    prices = load_prices(WARM_TYPE)
    print(
        f"What it costs: each warm instance ({WARM_TYPE}, the first of BatchInstanceTypes) is "
        f"billed ${prices.instance_hour:.3f}/h while it waits (On-Demand list price "
        f"{prices.taken}, {prices.sources['onDemandPerHour']}); a weekday window of 10 h keeps "
        f"one for ${prices.instance_hour * 10:.2f}."
    )
    print(
        "Figures: a Batch instance boots in "
        f"{BATCH_INSTANCE_SECONDS:g} s (an instance from a prebuilt image: AppStream 2.0's "
        '"one to two minutes", https://docs.aws.amazon.com/appstream2/latest/APIReference/'
        "API_Fleet.html); the desktop image's pull takes "
        f"{IMAGE_PULL_SECONDS:.0f} s ({DESKTOP_IMAGE_MIB:g} MiB, an estimate of the image, at a "
        f"gp3 root volume's default {GP3_DEFAULT_MIB_PER_SECOND:g} MiB/s, "
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyVolume.html). "
        "Not modelled: Batch's own reaction to a RUNNABLE job before it scales, and DCV's "
        "session creation in the container."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="desktops per case")
    parser.add_argument(
        "--scale", type=float, default=0.1, help="local delays: AWS's figures times this"
    )
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status polls")
    parser.add_argument(
        "--warm-up",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a first, unmeasured round that warms the functions up (their imports)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 0 < args.scale <= 1:
        parser.error("--rounds must be at least 1 and --scale in (0, 1]")
    report(measure(args.rounds, args.scale, args.poll, warm_up=args.warm_up), args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
