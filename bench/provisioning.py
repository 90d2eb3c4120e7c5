"""Provisioning figures on the local stack: request -> READY latency, state transitions and
Lambda invocations per session, and the control plane's cost per 1,000 sessions at list prices.

    make bench                      # 20 sessions, boot delay 0
    python -m bench.provisioning --sessions 50 --concurrency 5

The local stack runs in this process so every AWS call can be counted where it is made. Latency
is the emulator's (in-process functions, no cold starts, no real boot): it measures the control
plane's own overhead, not a GPU host's boot time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.client

from local.client import Client
from local.emulator import lambda_runtime
from local.stack import LocalStack, create_user

#: us-east-1 list prices (USD), November 2026.
PRICES = {
    "sfn_transition": 0.025 / 1000,  # Standard workflows, per state transition
    "lambda_request": 0.20 / 1_000_000,
    "lambda_gb_second_arm": 0.0000133334,
    "apigw_rest_request": 3.50 / 1_000_000,
    "ddb_write_unit": 0.625 / 1_000_000,  # on-demand
    "ddb_read_unit": 0.125 / 1_000_000,
    "events_put": 1.00 / 1_000_000,  # custom events
    "sns_publish": 0.50 / 1_000_000,
    "secrets_api": 0.05 / 10_000,
    "secrets_month": 0.40,
}
DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
DDB_READS = {"GetItem", "Query", "Scan"}


class CallCounter:
    """Counts AWS API calls made by functions (inside an invocation) and by workflows."""

    def __init__(self) -> None:
        self.function_calls: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self._original = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009

    def install(self) -> None:
        counter = self

        def _make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if lambda_runtime.in_function():
                service = client.meta.service_model.service_name
                units = len(params.get("TransactItems", [])) or 1
                with counter.lock:
                    counter.function_calls[(service, operation)] += units
            return counter._original(client, operation, params)

        setattr(botocore.client.BaseClient, "_make_api_call", _make_api_call)  # noqa: B010

    def uninstall(self) -> None:
        setattr(botocore.client.BaseClient, "_make_api_call", self._original)  # noqa: B010


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def provision(
    client: Client, poll: float, instance_type: str | None = None
) -> tuple[str, float, int]:
    """Request a desktop (of ``instance_type``, else the fleet's default) and wait for it; the
    latency ends when the record turned READY (its updatedAt), so how often this client polls
    does not change the figure."""
    started = time.time()
    body = {"backend": "ec2", "os": "linux"}
    if instance_type:
        body["instanceType"] = instance_type
    resp = client.call("POST", "/sessions", body)
    if resp.status_code != 202:
        raise RuntimeError(f"request refused: {resp.status_code} {resp.text}")
    session_id = resp.json()["sessionId"]
    gets = 0
    while True:
        gets += 1
        session = client.call("GET", f"/sessions/{session_id}").json()
        if session["status"] in ("READY", "FAILED"):
            break
        time.sleep(poll)
    if session["status"] != "READY":
        raise RuntimeError(f"{session_id}: {session['status']} {session.get('statusReason')}")
    ready_at = datetime.fromisoformat(session["updatedAt"].replace("Z", "+00:00")).timestamp()
    return session_id, ready_at - started, gets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between status polls")
    args = parser.parse_args(argv)

    # provisioning only: the agents' idle sampling (and its heartbeats) would add the steady
    # state's Lambda invocations to whichever desktops finished first
    quiet = {"SignalSampleSeconds": "600", "HeartbeatIntervalSeconds": "600"}
    stack = LocalStack(quiet, state_dir=Path(tempfile.mkdtemp(prefix="dcvfleet-bench-")))
    info = stack.start()
    counter = CallCounter()
    try:
        users = []
        for n in range(args.sessions):
            users.append(_user(stack, info.as_json(), n))
        # one warm-up session, so imports are not counted as latency
        provision(_user(stack, info.as_json(), "warmup"), args.poll)
        lambda_runtime.INVOCATIONS.clear()
        counter.install()
        wall = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(lambda u: provision(u, args.poll), users))
        wall = time.monotonic() - wall
        counter.uninstall()
        report(stack, results, counter, wall, args)
    finally:
        stack.stop()
    return 0


def _user(stack: LocalStack, info: dict[str, Any], n: object) -> Client:
    import boto3

    idp = boto3.client("cognito-idp", endpoint_url=stack.endpoint_url, region_name=info["region"])
    name, password = f"bench{n}", f"Bench-{n}-Passw0rd"
    create_user(idp, info["user_pool_id"], name, password)
    client = Client(info)
    client.sign_in(name, password)
    return client


def report(
    stack: LocalStack,
    results: list[tuple[str, float, int]],
    counter: CallCounter,
    wall: float,
    args: argparse.Namespace,
) -> None:
    import boto3

    n = len(results)
    latencies = [r[1] for r in results]
    sfn = boto3.client("stepfunctions", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    machine = stack.deployment.physical["ProvisionStateMachine"]  # type: ignore[union-attr]
    transitions = []
    for session_id, _, _ in results:
        arn = machine.replace(":stateMachine:", ":execution:") + f":{session_id}"
        # READY is written by MarkReady; the announcement steps after it may still be running
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        transitions.append(sum(1 for e in history if e["type"].endswith("StateEntered")))
    api_fn = stack.deployment.physical["ApiFunction"]  # type: ignore[union-attr]
    invocations = Counter(lambda_runtime.INVOCATIONS)
    workflow_invocations = sum(v for k, v in invocations.items() if k != api_fn)
    calls = counter.function_calls
    ddb_w = sum(v for (s, op), v in calls.items() if s == "dynamodb" and op in DDB_WRITES)
    ddb_w += sum(v for (s, op), v in calls.items() if op == "TransactWriteItems") * 2
    ddb_r = sum(v for (s, op), v in calls.items() if s == "dynamodb" and op in DDB_READS)
    secrets_calls = sum(v for (s, _), v in calls.items() if s == "secretsmanager")
    per = {
        "transitions": statistics.mean(transitions),
        "workflow_lambda": workflow_invocations / n,
        "api_requests": 2,  # POST /sessions and one GET once READY is notified
        "ddb_writes": ddb_w / n,
        "ddb_reads": ddb_r / n,
        "events": 2,  # Host Ready (agent) + Session Ready
        "sns": 1,
        "secrets_api": secrets_calls / n + 1,  # + the host's GetSecretValue
    }
    lambda_invocations = per["workflow_lambda"] + per["api_requests"]
    cost = {
        "Step Functions transitions": per["transitions"] * PRICES["sfn_transition"],
        "Lambda requests": lambda_invocations * PRICES["lambda_request"],
        "Lambda duration (256 MB, 100 ms each)": lambda_invocations
        * 0.25
        * 0.1
        * PRICES["lambda_gb_second_arm"],
        "API Gateway requests": per["api_requests"] * PRICES["apigw_rest_request"],
        "DynamoDB on-demand": per["ddb_writes"] * PRICES["ddb_write_unit"]
        + per["ddb_reads"] * PRICES["ddb_read_unit"],
        "EventBridge events": per["events"] * PRICES["events_put"],
        "SNS publishes": per["sns"] * PRICES["sns_publish"],
        "Secrets Manager API": per["secrets_api"] * PRICES["secrets_api"],
    }
    secret_storage_hour = PRICES["secrets_month"] / 730
    print(
        f"DCV Fleet provisioning benchmark: {n} sessions, concurrency {args.concurrency}, boot delay 0"
    )
    print(
        f"  request -> READY   p50 {percentile(latencies, 50):.3f} s   p95 {percentile(latencies, 95):.3f} s   max {max(latencies):.3f} s"
    )
    print(f"  throughput         {n / wall:.2f} sessions/s ({wall:.1f} s wall)")
    print(
        f"  state transitions  {per['transitions']:.1f} per provisioning (min {min(transitions)}, max {max(transitions)})"
    )
    print(
        f"  Lambda invocations {per['workflow_lambda']:.1f} per provisioning (workflow and event consumers) + {per['api_requests']} API"
    )
    print(
        f"  DynamoDB           {per['ddb_writes']:.1f} write units, {per['ddb_reads']:.1f} read units per provisioning (functions)"
    )
    print("  control-plane cost per 1,000 sessions (us-east-1 list prices):")
    for name, value in cost.items():
        print(f"    {name:40} ${value * 1000:.4f}")
    print(f"    {'total':40} ${sum(cost.values()) * 1000:.4f}")
    print(
        f"  plus secret storage: ${secret_storage_hour * 1000:.4f} per 1,000 sessions per hour a desktop lives"
    )


if __name__ == "__main__":
    sys.exit(main())
