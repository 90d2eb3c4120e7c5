"""The measured half of ``make bench-warm`` (bench/warm.py runs it, one process per stack):
request -> READY on the local stack, boot delay 0, for the default Linux profile.

    python -m bench.warm_stack --pool 3 --requests 8     # pool hits, each once the pool is READY
    python -m bench.warm_stack --pool 0 --requests 8     # misses: the control plane's baseline

Prints the latencies (seconds) as JSON on its last line, after MARKER.
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
#: How long to wait for the pool to be READY again after a claim.
POOL_READY_TIMEOUT = 60.0


def measure(pool_size: int, requests: int, poll: float) -> list[float]:
    """Request -> READY seconds of ``requests`` desktops on a stack with WarmPoolSize
    ``pool_size`` (boot delay 0), each requested once the pool is full and READY again; one
    request before them warms the functions up (their imports), as bench.provisioning does."""
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
        if pool_size:
            _refill_now(stack)
        users = [_user(stack, info.as_json(), f"warm{n}") for n in range(requests + 1)]
        latencies: list[float] = []
        for n, user in enumerate(users):
            ready = _pool_ready(admin, pool_size) if pool_size else set()
            session_id, took, _ = provision(user, poll)
            if pool_size:  # a hit: its host is one the pool had READY
                instance = user.call("GET", f"/sessions/{session_id}").json().get("instanceId")
                if instance not in ready:
                    raise RuntimeError(
                        f"{session_id} got {instance}, not a READY pool host {ready}"
                    )
            if n:
                latencies.append(took)
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
    parser.add_argument("--pool", type=int, required=True, help="WarmPoolSize (0: no pool)")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status polls")
    args = parser.parse_args(argv)
    if args.pool < 0 or args.requests < 1:
        parser.error("--pool must be at least 0 and --requests at least 1")
    latencies = measure(args.pool, args.requests, args.poll)
    print(MARKER + json.dumps(latencies), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
