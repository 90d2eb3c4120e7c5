"""Ten minutes with a real account: one desktop of each kind, every step reported, then nothing
left behind.

After ``sam deploy`` and ``dcvfleet --stack-name STACK login`` (as a user of the fleet's pool):

    python tools/first_desktops.py --stack-name STACK [--kinds ec2/linux,ec2/windows,batch/linux]

For each kind, one after the other (a user may hold ``MaxActiveSessionsPerUser`` desktops):
1. ``POST /sessions``, then each provisioning step as it completes, with its time (as
   ``dcvfleet sessions start`` shows it), to READY or to the reason it failed;
2. the connection URL, and whether DCV's port answers a TLS handshake from this machine (it does
   only when ``AllowedCidr`` holds this machine's address);
3. on the host, through SSM Run Command with your own AWS credentials (``ssm:SendCommand`` on
   the fleet's instances): DCV's sessions, the GPUs, and on Linux DCV-GL's own diagnosis
   (``dcvgldiag``); on Windows ``dcv.exe list-sessions`` and ``nvidia-smi -L``; on a
   Batch instance the GPUs and the running containers;
4. ``DELETE /sessions/{id}``, TERMINATED, and then the instance terminated (EC2) or the job
   ended (Batch), and the session's secret gone.
It exits 0 only when every kind came up READY and left nothing behind. ``--keep`` leaves the
desktops running (step 4 skipped) to connect to them.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from dcvfleet_cli import watch
from dcvfleet_cli.commands import Context
from dcvfleet_cli.errors import CliError

KINDS = ("ec2/linux", "ec2/windows", "batch/linux")
#: What each kind's host is asked through SSM Run Command (AWS's own documents).
HOST_CHECKS: dict[str, tuple[str, list[str]]] = {
    "ec2/linux": (
        "AWS-RunShellScript",
        # dcvgldiag: DCV-GL's own check of the GPU's X server and OpenGL, run as root
        # (https://docs.aws.amazon.com/dcv/latest/adminguide/setting-up-installing-linux-server.html)
        ["dcv list-sessions", "nvidia-smi -L", "dcvgldiag 2>&1 | tail -n 20"],
    ),
    "ec2/windows": (
        "AWS-RunPowerShellScript",
        [
            "& (Get-CimInstance Win32_Service -Filter \"Name='dcvserver'\").PathName.Trim('\"')"
            ".Replace('dcvserver.exe', 'dcv.exe') list-sessions",
            "& 'C:\\Windows\\System32\\nvidia-smi.exe' -L",
        ],
    ),
    "batch/linux": (
        "AWS-RunShellScript",
        ["nvidia-smi -L", "docker ps --format '{{.Names}} {{.Image}} {{.Status}}'"],
    ),
}


@dataclass
class Report:
    kind: str
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def say(self, text: str, out: TextIO) -> None:
        self.lines.append(text)
        print(f"  {text}", file=out, flush=True)

    def fail(self, text: str, out: TextIO) -> None:
        self.ok = False
        self.say(f"FAIL {text}", out)


def dcv_port_answers(url: str, timeout: float = 5.0) -> str:
    """Whether a TLS handshake with the URL's host and port completes (DCV's certificate is
    self-signed by default, so it is not verified: this asks only whether DCV is there)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 8443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return f"answers ({tls.version()})"
    except OSError as exc:
        return f"does not answer from here ({exc}); AllowedCidr may not hold this machine"


def run_on_host(ssm: Any, instance_id: str, kind: str, timeout: float = 120.0) -> list[str]:
    document, commands = HOST_CHECKS[kind]
    command_id = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName=document,
        Parameters={"commands": commands},
        Comment="DCV Fleet first desktops",
    )["Command"]["CommandId"]
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(2)
        try:
            answer = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvocationDoesNotExist":
                raise
            answer = {"Status": "Pending"}
        if answer["Status"] not in ("Pending", "InProgress", "Delayed"):
            break
        if time.monotonic() > deadline:
            return [f"no answer within {timeout:.0f} s"]
    output = (answer.get("StandardOutputContent") or "") + (
        answer.get("StandardErrorContent") or ""
    )
    return [f"{answer['Status']}:", *output.strip().splitlines()]


def ended(aws: Callable[[str], Any], session: dict[str, Any]) -> list[str]:
    """What of the desktop is still there once it is TERMINATED: empty when nothing."""
    left = []
    if session.get("backend") == "ec2" and session.get("instanceId"):
        found = aws("ec2").describe_instances(InstanceIds=[session["instanceId"]])
        for reservation in found["Reservations"]:
            for instance in reservation["Instances"]:
                state = instance["State"]["Name"]
                if state not in ("shutting-down", "terminated"):
                    left.append(f"instance {instance['InstanceId']} is {state}")
    if session.get("jobId"):
        for job in aws("batch").describe_jobs(jobs=[session["jobId"]])["jobs"]:
            if job["status"] not in ("SUCCEEDED", "FAILED"):
                left.append(f"job {job['jobId']} is {job['status']}")
    secrets = aws("secretsmanager").list_secrets(
        Filters=[{"Key": "tag-value", "Values": [session["sessionId"]]}]
    )["SecretList"]
    left += [f"secret {s['Name']}" for s in secrets if not s.get("DeletedDate")]
    return left


def try_kind(
    ctx: Context,
    aws: Callable[[str], Any],
    kind: str,
    *,
    keep: bool,
    host_checks: bool,
    port_check: bool,
    timeout: float,
) -> Report:
    out = ctx.out
    report = Report(kind)
    backend, os_name = kind.split("/")
    print(f"{kind}:", file=out, flush=True)
    origin = time.time()
    accepted = ctx.api().call(
        "POST", "/sessions", {"backend": backend, "os": os_name}, idempotency_key=str(uuid.uuid4())
    )
    session_id = str(accepted["sessionId"])
    report.say(f"requested: {session_id}", out)
    session, progress = watch.wait_provisioned(ctx.api(), session_id, out, origin, timeout=timeout)
    if session.get("status") != "READY":
        report.fail(f"{session.get('status')}: {session.get('statusReason')}", out)
    else:
        report.say(f"READY in {progress.total(session) or 0:.0f} s", out)
        url = str(session.get("connectionUrl", ""))
        answer = dcv_port_answers(url) if port_check else "port not checked (--no-port-check)"
        report.say(f"connection URL {url}: DCV {answer}", out)
        if host_checks and session.get("instanceId"):
            try:
                for line in run_on_host(aws("ssm"), session["instanceId"], kind):
                    report.say(f"host: {line}", out)
            except (ClientError, BotoCoreError) as exc:
                report.say(f"host checks not run: {exc}", out)
    if keep:
        report.say("kept (--keep): delete it with dcvfleet sessions delete " + session_id, out)
        return report
    ctx.api().call("DELETE", f"/sessions/{session_id}")
    deadline = time.monotonic() + timeout
    while session.get("status") not in ("TERMINATED", "FAILED"):
        if time.monotonic() > deadline:
            report.fail(f"still {session.get('status')} after {timeout:.0f} s", out)
            return report
        time.sleep(3)
        session = ctx.api().get(f"/sessions/{session_id}")
    report.say(f"deleted: {session['status']}", out)
    time.sleep(5)  # the instance's or job's own end follows the record's
    left = ended(aws, session)
    if left:
        report.fail("left behind: " + "; ".join(left), out)
    else:
        report.say("nothing left behind", out)
    return report


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack-name", help="the deployed stack")
    where.add_argument("--stack-file", help="a stack.json (the local stack's)")
    parser.add_argument("--region", help="the stack's region (default: your AWS config)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"default {','.join(KINDS)}")
    parser.add_argument("--keep", action="store_true", help="leave the desktops running")
    parser.add_argument("--no-host-checks", action="store_true", help="skip SSM Run Command")
    parser.add_argument("--no-port-check", action="store_true", help="skip the TLS handshake")
    parser.add_argument("--endpoint-url", help="an AWS endpoint (the local stack's emulator)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per desktop, seconds")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    ctx = Context(args=argparse.Namespace(**vars(args)), out=out, err=out)
    region = args.region or ctx.stack().region

    def aws(service: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=args.endpoint_url)

    reports = []
    for kind in kinds:
        try:
            reports.append(
                try_kind(
                    ctx,
                    aws,
                    kind,
                    keep=args.keep,
                    host_checks=not args.no_host_checks,
                    port_check=not args.no_port_check,
                    timeout=args.timeout,
                )
            )
        except CliError as exc:
            report = Report(kind)
            report.fail(str(exc), out)
            reports.append(report)
    print("summary:", file=out)
    for report in reports:
        print(f"  {'OK  ' if report.ok else 'FAIL'} {report.kind}", file=out)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
