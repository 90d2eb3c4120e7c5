"""The measured half of ``make bench-warm`` (bench/warm.py runs it in a process of its own):
request -> READY on one local stack, boot delay 0, for the default Linux profile.

    python -m bench.warm_stack --pool 3 --requests 8

Each round waits until the pool is full and READY, then asks for a desktop of the pool's
instance type (LinuxInstanceType: a hit) and one of another instance type the profile offers
(MISS_INSTANCE_TYPE: the pool does not serve it, so it is launched as without a pool: the
control plane's baseline, on the same stack and under the same load). Prints the latencies
(seconds) as JSON ``{"hit": [...], "miss": [...]}`` on its last line, after MARKER.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from bench.provisioning import _user, provision
from local.client import Client
from local.stack import LocalStack

MARKER = "bench.warm_stack latencies: "
#: An instance type the default Linux profile offers (AllowedInstanceTypes) other than its
#: default (LinuxInstanceType, g5.xlarge), which is the only one its pool serves.
MISS_INSTANCE_TYPE = "g4dn.xlarge"
#: How long to wait for the pool to be READY again after a claim.
POOL_READY_TIMEOUT = 60.0


def measure(pool_size: int, requests: int, poll: float) -> dict[str, list[float]]:
    """Request -> READY seconds of ``requests`` hits and as many misses, interleaved, on a stack
    with WarmPoolSize ``pool_size`` (boot delay 0); one request of each before them warms the
    functions up (their imports), as bench.provisioning does."""
    quiet = {
        "SignalSampleSeconds": "600",
        "HeartbeatIntervalSeconds": "600",
        "WarmPoolSize": str(pool_size),
    }
    state_dir = Path(tempfile.mkdtemp(prefix="dcvfleet-bench-warm-"))
    stack = LocalStack(quiet, state_dir=state_dir)
    info = stack.start()
    try:
        admin = Client(info.as_json())
        admin.sign_in(info.admin_user["username"], info.admin_user["password"])
        _refill_now(stack)
        latencies: dict[str, list[float]] = {"hit": [], "miss": []}
        for n in range(requests + 1):
            ready = _pool_ready(admin, pool_size)
            hit = _user(stack, info.as_json(), f"warmhit{n}")
            hit_id, took, _ = provision(hit, poll)
            # a hit: its host is one the pool had READY
            instance = hit.call("GET", f"/sessions/{hit_id}").json().get("instanceId")
            if instance not in ready:
                raise RuntimeError(f"{hit_id} got {instance}, not a READY pool host {ready}")
            miss = _user(stack, info.as_json(), f"warmmiss{n}")
            session_id, missed, _ = provision(miss, poll, instance_type=MISS_INSTANCE_TYPE)
            instance = miss.call("GET", f"/sessions/{session_id}").json().get("instanceId")
            if instance in ready:
                raise RuntimeError(f"{session_id} took pool host {instance}: not a miss")
            if n:
                latencies["hit"].append(took)
                latencies["miss"].append(missed)
            # each ends before the next round: left running, the rounds' desktops would fill the
            # GPU vCPU quota the pool's target is capped by
            for user, ended in ((hit, hit_id), (miss, session_id)):
                answer = user.call("DELETE", f"/sessions/{ended}")
                if answer.status_code != 202:
                    raise RuntimeError(f"DELETE {ended}: {answer.status_code} {answer.text}")
        return latencies
    finally:
        stack.stop()


def _refill_now(stack: LocalStack) -> None:
    """Fire the pool's scheduled refill at once (its rule's first firing is 5 minutes away)."""
    assert stack.scheduler is not None
    events = boto3.client("events", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    names = [r["Name"] for r in events.list_rules()["Rules"] if "RefillPool" in r["Name"]]
    if len(names) != 1:
        raise RuntimeError(f"expected one RefillPool schedule rule, found {names}")
    stack.scheduler.run_now(names[0])


def _pool_ready(admin: Client, size: int) -> set[str]:
    """Wait until the pool has ``size`` READY hosts; their instance ids."""
    deadline = time.monotonic() + POOL_READY_TIMEOUT
    while True:
        resp = admin.call("GET", "/admin/pool")
        if resp.status_code != 200:
            raise RuntimeError(f"GET /admin/pool: {resp.status_code} {resp.text}")
        items: list[dict[str, Any]] = resp.json()["items"]
        ready = {i["instanceId"] for i in items if i["state"] == "READY"}
        if len(ready) >= size:
            return ready
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the pool was not READY again within {POOL_READY_TIMEOUT:g} s: {items}"
            )
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=int, default=3, help="WarmPoolSize")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status polls")
    args = parser.parse_args(argv)
    if args.pool < 1 or args.requests < 1:
        parser.error("--pool and --requests must be at least 1")
    latencies = measure(args.pool, args.requests, args.poll)
    print(MARKER + json.dumps(latencies), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
