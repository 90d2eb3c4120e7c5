"""``make demo``: start the local stack, sign in as the demo user, request a Linux desktop on EC2
and follow it to READY, printing each provisioning step with its timing. Exit 0 only on READY.

The demo stops its stack as it ends, so it prints no address of it (the portal, the API, the
desktop's connection URL would all be dead by then): the stack's own banner goes to the debug
demo's state directory (``.local/demo/stack-output.log``), not the terminal, and the demo ends by
saying how to get a stack that stays up (``make local``). The demo's stack keeps its state in
``.local/demo/``, apart from ``make local``'s: a demo run while ``make local`` runs neither
overwrites that stack's ``stack.json`` and simulated hosts nor moves its ports."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import boto3

from local.client import Client
from local.emulator import ROOT
from local.stack import use_emulator_credentials

#: The demo stack's state directory (``make local``'s is ``.local``).
STATE_DIR = ROOT / ".local" / "demo"
STACK_FILE = STATE_DIR / "stack.json"
#: Where the demo's stack writes what it prints (its banner names addresses that die with it).
STACK_OUTPUT = STATE_DIR / "stack-output.log"
#: The demo's last words: how to get a stack that stays up, and who signs in to it.
AFTERWARDS = (
    "The demo's local stack has stopped, and its desktop with it.",
    "For a stack that stays up: make local. It prints the portal's address (portal_url);",
    "open it and sign in as demo, or as admin to see the whole fleet. Their passwords are in",
    "its banner and in .local/stack.json, and stay the same from one make local to the next.",
)


def wait_for_stack(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited with {process.returncode}")
        if STACK_FILE.exists():
            data: dict[str, Any] = json.loads(STACK_FILE.read_text())
            return data
        time.sleep(0.2)
    raise TimeoutError(f"the local stack did not come up in {timeout:.0f}s")


def follow(
    client: Client,
    session_id: str,
    timeout: float,
    out: Any = sys.stdout,
    started: float | None = None,
) -> dict[str, Any]:
    """Print each provisioning step as it happens, timed from the request, and each status the
    user sees; return the session once it settled and its workflow has finished."""
    info = client.info
    sfn = boto3.client(
        "stepfunctions", endpoint_url=info["aws_endpoint_url"], region_name=info["region"]
    )
    machine = info["resources"]["ProvisionStateMachine"]
    execution_arn = machine.replace(":stateMachine:", ":execution:") + f":{session_id}"
    started = started or time.time()
    seen_events = 0
    last_status = ""
    session: dict[str, Any] = {}
    while time.time() - started < timeout:
        try:
            execution = sfn.describe_execution(executionArn=execution_arn)
            events = sfn.get_execution_history(executionArn=execution_arn)["events"]
        except sfn.exceptions.ExecutionDoesNotExist:
            execution, events = {"status": "RUNNING"}, []
        for event in events[seen_events:]:
            if event["type"].endswith("StateEntered"):
                at = event["timestamp"].timestamp() - started
                name = event["stateEnteredEventDetails"]["name"]
                print(f"  {at:6.2f}s  step   {name}", file=out, flush=True)
        seen_events = len(events)
        session = client.call("GET", f"/sessions/{session_id}").json()
        if session.get("status") != last_status:
            last_status = session.get("status", "")
            at = time.time() - started
            print(f"  {at:6.2f}s  status {last_status}", file=out, flush=True)
        if last_status in ("READY", "FAILED") and execution["status"] != "RUNNING":
            return session
        time.sleep(0.1)
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__)
    parser.add_argument("--params", default="", help="template parameter overrides")
    parser.add_argument("--boot-delay", type=float, default=0.0, help="seconds a host boots for")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    use_emulator_credentials()
    STACK_FILE.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "local",
        "--params",
        args.params,
        "--boot-delay",
        str(args.boot_delay),
        "--state-dir",
        str(STATE_DIR),
    ]
    print("Starting the local stack ...", flush=True)
    STACK_OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with STACK_OUTPUT.open("wb") as output:
        # its warnings (stderr) still reach the terminal; its banner does not
        process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=output)
    try:
        code = run(process, args.timeout)
    finally:
        print("Stopping the demo's local stack ...", flush=True)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    for line in AFTERWARDS:
        print(line, flush=True)
    return code


def run(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Once the stack is up: sign in, request a desktop and follow it; 0 when it became READY."""
    info = wait_for_stack(process, timeout=180)
    client = Client(info)
    user = info["demo_user"]
    client.sign_in(user["username"], user["password"])
    print(f"Signed in as {user['username']}. Requesting a Linux desktop on EC2 ...", flush=True)
    t0 = time.time()
    resp = client.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    if resp.status_code != 202:
        print(f"request refused: {resp.status_code} {resp.text}", flush=True)
        return 1
    session_id = resp.json()["sessionId"]
    print(f"Session {session_id} accepted ({resp.status_code}).", flush=True)
    session = follow(client, session_id, timeout, started=t0)
    settled = session.get("updatedAt")
    settled_at = datetime.fromisoformat(settled).timestamp() if settled else time.time()
    elapsed = settled_at - t0
    if session.get("status") == "READY":
        print(f"READY in {elapsed:.2f}s.", flush=True)
        return 0
    reason = session.get("statusReason", "no reason recorded")
    print(f"Not ready after {elapsed:.2f}s: {session.get('status')} - {reason}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
