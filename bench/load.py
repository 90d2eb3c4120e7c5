"""Load test on the local stack: N users ask for a desktop at the same moment, each twice, and
every desktop must end READY or FAILED with a reason, with no duplicate, no orphan and the
per-user limit held.

    make bench-load                                  # 200 users, at most 600 s
    python -m bench.load --users 20 --timeout 120 --report load.json

Each user is created in the (emulated) Cognito user pool and signed in. Then 2N threads are
released together by a barrier: each user's POST /sessions (ec2, linux, an Idempotency-Key)
and, with it, a second one of the same user's (another key; no key for every other user).
MaxActiveSessionsPerUser is 1, so exactly one of the two must be accepted (202) and the other
refused at the limit (409 with the limit and the active desktops). Every fourth user also
retries its accepted request with the same key as soon as it is answered, which must answer the
same session. Each accepted desktop is then polled until it is READY or FAILED; one that has not
settled --timeout seconds after the burst fails the run.

Then, from the users' own view (GET /sessions) and the emulator's EC2 and Secrets Manager:
every desktop READY (on a running instance) or FAILED with a reason, zero duplicates (one
session per user, one instance per session, no instance shared), zero orphans (every instance
not terminated belongs to a READY session, every session secret to a live one), the limit held;
and the figures: requests and answers, READY/FAILED, wall time, throughput (READY desktops and
API requests per second), request -> READY p50/p95/max (to the record's updatedAt, so how often
it is polled does not change it), request -> answer and 202 -> READY p50/p95/max, and memory
(peak RSS of this process, which runs the stack, and of the simulated hosts' agents, sampled).
Exit 1 if an invariant fails; --report FILE writes the invariants and figures as JSON.

The stack runs in this process, as in bench.provisioning (the user threads mostly wait on
sockets; the CPU they use is printed). The agents' idle sampling is turned off (the figures are
provisioning's), HostReadyTimeoutSeconds is 600 (200 simulated hosts boot on this machine's
cores, not each on its own) and API Gateway's throttling is raised out of the way; a 429 is
retried (it never reached the function) and counted. --params goes on top, for example
"ApiThrottlingRateLimit=50 ApiThrottlingBurstLimit=100" for the template's throttling.
Users poll every --poll seconds: by default the portal's 2 s, slowed so that all of them
together poll at most 20 times a second, which the one-process emulator serves next to the
provisioning itself (the portal's 2 s for 200 users is 100 requests a second).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import requests

from bench.provisioning import _user, percentile, provision
from local.client import Client
from local.deploy import parse_overrides
from local.stack import LocalStack

#: Provisioning only: the agents' idle sampling and heartbeats would add steady-state work.
QUIET = {"SignalSampleSeconds": "600", "HeartbeatIntervalSeconds": "600"}
#: Every simulated host boots on this machine: a burst of them takes longer than one.
SLOW_BOOTS = {"HostReadyTimeoutSeconds": "600"}
#: API Gateway's throttling out of the way (its 429s are still retried and counted).
UNTHROTTLED = {"ApiThrottlingRateLimit": "100000", "ApiThrottlingBurstLimit": "100000"}
SESSION_TAG = "dcvfleet:session-id"  # functions/dcvfleet/adapters.py
SECRET_PREFIX = "dcvfleet/sessions/"  # noqa: S105 - the name prefix, not a secret
SETTLED = ("READY", "FAILED")
#: A session in these statuses may still hold a secret.
LIVE = ("PROVISIONING", "READY", "STOPPING", "STOPPED", "TERMINATING")
GONE = ("shutting-down", "terminated")
RETRY_EVERY = 4
#: The portal's poll while a desktop changes (portal/js/views/desktop.js, CHANGING_MS).
PORTAL_POLL_SECONDS = 2.0
#: The users' polls together, at most, unless --poll says otherwise.
MAX_POLLS_PER_SECOND = 20
#: How often the run says how far it got (on stderr).
PROGRESS_SECONDS = 15
#: Examples of each invariant's problems kept in the report.
EXAMPLES = 10


@dataclass
class Answer:
    user: int
    kind: str  # "first", "second" or "retry"
    key: str | None
    sent: float = 0.0  # time.time() when sent
    took: float = 0.0
    status: int = 0  # 0: no answer (a timeout or a refused connection)
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def session_id(self) -> str:
        return str(self.body.get("sessionId", "")) if self.status == 202 else ""


@dataclass
class Desktop:
    user: int
    session_id: str
    requested: float  # time.time() when the request was sent
    accepted: float  # ... and when its 202 came back
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.session.get("status", ""))

    def latency(self) -> float:
        """Request -> the record's last update (READY or FAILED)."""
        updated = datetime.fromisoformat(self.session["updatedAt"].replace("Z", "+00:00"))
        return updated.timestamp() - self.requested


class Api:
    """The API as the users call it: counts every request, retries API Gateway's 429s."""

    def __init__(self) -> None:
        self.deadline = float("inf")  # set when the burst starts
        self.lock = threading.Lock()
        self.requests = 0
        self.throttled = 0

    def call(
        self,
        client: Client,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        attempt = 0
        while True:
            with self.lock:
                self.requests += 1
            timeout = min(900.0, max(1.0, self.deadline - time.monotonic()))
            resp = requests.request(
                method,
                client.info["api_url"] + path,
                headers={"Authorization": client.token, **(headers or {})},
                json=body,
                timeout=timeout,
            )
            if resp.status_code != 429 or time.monotonic() > self.deadline:
                return resp
            with self.lock:
                self.throttled += 1
            attempt += 1
            time.sleep(random.uniform(0.5, 1.0) * min(8, 2**attempt) / 2)


class RssSampler:
    """Peak RSS of this process's children (the simulated hosts' agents and what they run),
    summed, sampled from /proc every second; 0 where there is no /proc."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        if Path("/proc").is_dir():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        me = str(os.getpid())
        command = Path("/proc/self/cmdline").read_bytes()
        while not self._stop.wait(1.0):
            total = count = 0
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    status = (entry / "status").read_text()
                    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                    if fields.get("PPid", "").strip() != me:
                        continue
                    if (entry / "cmdline").read_bytes() == command:
                        continue  # forked, not yet running its program: this process's pages
                except OSError:  # it ended meanwhile
                    continue
                count += 1
                total += int(fields.get("VmRSS", "0 kB").split()[0])
            if total > self.peak_kb:
                self.peak_kb, self.peak_processes = total, count


class Load:
    """One run: the burst, the polling, and what each thread saw."""

    def __init__(self, clients: list[Client], api: Api, poll: float, timeout: float) -> None:
        self.clients = clients
        self.api = api
        self.poll = poll
        self.timeout = timeout
        self.barrier = threading.Barrier(2 * len(clients), action=self._burst)
        self.lock = threading.Lock()
        self.answers: list[Answer] = []
        self.desktops: list[Desktop] = []
        self.client_cpu = 0.0  # CPU seconds the user threads used
        self.burst_at = 0.0

    def _burst(self) -> None:
        """Every thread is at the barrier: the burst, and the time bound, start now."""
        self.burst_at = time.time()
        self.api.deadline = time.monotonic() + self.timeout

    def run(self) -> None:
        threads = []
        for user in range(len(self.clients)):
            first_key = f"load-{user}-{uuid.uuid4().hex}"
            second_key = f"load-{user}-{uuid.uuid4().hex}" if user % 2 == 0 else None
            for kind, key in (("first", first_key), ("second", second_key)):
                threads.append(
                    threading.Thread(
                        target=self._user_thread,
                        args=(Answer(user, kind, key),),
                        name=f"user{user}-{kind}",
                        daemon=True,
                    )
                )
        for thread in threads:
            thread.start()
        next_progress = time.monotonic() + PROGRESS_SECONDS
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(timeout=max(0.0, next_progress - time.monotonic()))
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_SECONDS
                if self.burst_at:
                    print(self.progress(), file=sys.stderr, flush=True)

    def progress(self) -> str:
        with self.lock:
            answered = len(self.answers)
            statuses = [d.status for d in self.desktops]
        return (
            f"  {time.time() - self.burst_at:6.1f} s  {answered} answered, "
            f"{statuses.count('READY')} READY, {statuses.count('FAILED')} FAILED, "
            f"{self.api.requests} API requests"
        )

    def _post(self, answer: Answer) -> Answer:
        client = self.clients[answer.user]
        headers = {"Idempotency-Key": answer.key} if answer.key else {}
        answer.sent = time.time()
        try:
            resp = self.api.call(
                client, "POST", "/sessions", {"backend": "ec2", "os": "linux"}, headers
            )
            answer.status = resp.status_code
            answer.body = resp.json() if resp.content else {}
        except (requests.RequestException, ValueError) as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
        answer.took = time.time() - answer.sent
        with self.lock:
            self.answers.append(answer)
        return answer

    def _user_thread(self, answer: Answer) -> None:
        cpu = time.thread_time()
        try:
            self.barrier.wait(timeout=300)
            self._post(answer)
            if not answer.session_id:
                return
            if answer.user % RETRY_EVERY == 0 and answer.key:  # a client that lost the answer
                self._post(Answer(answer.user, "retry", answer.key))
            desktop = Desktop(
                answer.user, answer.session_id, answer.sent, answer.sent + answer.took
            )
            with self.lock:
                self.desktops.append(desktop)
            self._follow(desktop)
        finally:
            with self.lock:
                self.client_cpu += time.thread_time() - cpu

    def _follow(self, desktop: Desktop) -> None:
        """Poll as the portal does until READY or FAILED, or the time bound."""
        client = self.clients[desktop.user]
        time.sleep(random.uniform(0, self.poll))  # users do not poll in step
        while time.monotonic() < self.api.deadline:
            try:
                resp = self.api.call(client, "GET", f"/sessions/{desktop.session_id}")
                if resp.status_code == 200:
                    desktop.session = resp.json()
                    if desktop.status in SETTLED:
                        return
            except (requests.RequestException, ValueError):
                pass  # the time bound decides
            time.sleep(self.poll)


@dataclass
class Check:
    name: str
    detail: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    load: Load, stack: LocalStack, api: Api, warmup: tuple[Client, str]
) -> tuple[list[Check], dict[str, Any]]:
    """The invariants, from the users' answers and views and from EC2 and Secrets Manager."""
    users = len(load.clients)
    by_user: dict[int, list[Answer]] = {u: [] for u in range(users)}
    for a in load.answers:
        by_user[a.user].append(a)
    checks = []

    # every request answered as documented
    bad = [
        f"user {a.user} {a.kind}: {a.status or a.error} {a.body.get('message', '')}".strip()
        for a in load.answers
        if a.status not in (202, 409)
    ]
    counts: dict[str, Any] = {
        name: sum(1 for a in load.answers if a.status == code)
        for name, code in (("accepted", 202), ("refused", 409))
    }
    checks.append(Check("answered", f"{len(load.answers)} POST /sessions answered 202 or 409", bad))

    # the per-user limit: exactly one of the two concurrent requests accepted
    problems = []
    limit_409 = 0
    for user, answers in by_user.items():
        pair = [a for a in answers if a.kind != "retry"]
        accepted = [a for a in pair if a.status == 202]
        # the 409 at the limit carries the limit and the active desktops (dcvfleet.limits)
        refused = [a for a in pair if a.status == 409 and isinstance(a.body.get("limit"), int)]
        limit_409 += len(refused)
        if len(accepted) != 1 or len(refused) != 1:
            answered = ", ".join(f"{a.status} {a.body.get('message', '')}".strip() for a in pair)
            problems.append(f"user {user}: {answered or 'no answer'}")
    checks.append(
        Check("limit held", f"{users} users: 1 accepted + 1 refused at the limit (409)", problems)
    )

    # a retry with the same Idempotency-Key answers the same session
    retries = [a for a in load.answers if a.kind == "retry"]
    problems = []
    for retry in retries:
        first = next(a for a in by_user[retry.user] if a.key == retry.key and a.kind != "retry")
        if retry.status != 202 or retry.session_id != first.session_id:
            problems.append(
                f"user {retry.user}: retry answered {retry.status} {retry.body} "
                f"for {first.session_id}"
            )
    checks.append(
        Check("idempotent", f"{len(retries)} same-key retries answered the same session", problems)
    )

    # the users' own view, after the timed part (requests not counted in the throughput)
    views: dict[int, list[dict[str, Any]]] = {}
    for user, client in enumerate(load.clients):
        resp = api.call(client, "GET", "/sessions")
        views[user] = resp.json().get("sessions", []) if resp.status_code == 200 else []
    warm_client, warm_id = warmup
    warm_view = api.call(warm_client, "GET", f"/sessions/{warm_id}").json()
    sessions = {s["sessionId"]: s for view in views.values() for s in view}
    sessions[warm_id] = warm_view

    # every accepted desktop READY on a running instance, or FAILED with a reason
    instances = _instances(stack)
    problems = []
    for d in load.desktops:
        final = sessions.get(d.session_id, d.session)
        status = final.get("status") or "no answer"
        if status == "READY":
            state = instances.get(final.get("instanceId", ""), {}).get("state")
            if state not in ("pending", "running"):
                problems.append(f"{d.session_id}: READY, its instance {state or 'missing'}")
        elif status == "FAILED":
            if not final.get("statusReason"):
                problems.append(f"{d.session_id}: FAILED without a statusReason")
        else:
            problems.append(f"{d.session_id}: still {status} at the time bound")
    ready = sum(1 for d in load.desktops if sessions.get(d.session_id, {}).get("status") == "READY")
    failed = sum(
        1 for d in load.desktops if sessions.get(d.session_id, {}).get("status") == "FAILED"
    )
    checks.append(
        Check(
            "settled",
            f"{len(load.desktops)} desktops: {ready} READY, {failed} FAILED with a reason",
            problems,
        )
    )

    # zero duplicates: one session per user, one live instance per session, none shared
    problems = []
    winners = {a.user: a.session_id for a in load.answers if a.session_id and a.kind != "retry"}
    for user, view in views.items():
        ids = [s["sessionId"] for s in view]
        if ids != [winners.get(user)]:
            problems.append(f"user {user}: sessions {ids}, accepted {winners.get(user)}")
    live_by_session: dict[str, list[str]] = {}
    for instance_id, instance in instances.items():
        if instance["state"] not in GONE and instance["session"]:
            live_by_session.setdefault(instance["session"], []).append(instance_id)
    for session_id, ids in live_by_session.items():
        if len(ids) > 1:
            problems.append(f"{session_id}: {len(ids)} live instances {sorted(ids)}")
    holders: dict[str, list[str]] = {}
    for session_id, s in sessions.items():
        if s.get("instanceId"):
            holders.setdefault(s["instanceId"], []).append(session_id)
    problems += [f"{i}: shared by {ids}" for i, ids in holders.items() if len(ids) > 1]
    checks.append(
        Check(
            "no duplicates",
            f"{users} users with one session each, {len(holders)} distinct instances",
            problems,
        )
    )

    # zero orphans: every instance not terminated is a READY session's, every secret a live one's
    problems = []
    live = [(i, x) for i, x in instances.items() if x["state"] not in GONE]
    for instance_id, x in live:
        owner = sessions.get(x["session"], {})
        if owner.get("status") != "READY" or owner.get("instanceId") != instance_id:
            problems.append(
                f"{instance_id} ({x['state']}): session {x['session'] or 'none'} "
                f"{owner.get('status', 'unknown')}"
            )
    secrets = _session_secrets(stack)
    for name, session_id in secrets.items():
        status = sessions.get(session_id, {}).get("status", "unknown")
        if status not in LIVE:
            problems.append(f"secret {name}: session {status}")
    checks.append(
        Check(
            "no orphans",
            f"{len(live)} live instances, each a READY session's; {len(secrets)} session "
            "secrets, each a live session's",
            problems,
        )
    )
    counts.update(
        {
            "limit409": limit_409,
            "retries": len(retries),
            "ready": ready,
            "failed": failed,
            "unsettled": len(load.desktops) - ready - failed,
            "liveInstances": len(live),
            "secrets": len(secrets),
        }
    )
    return checks, counts


def _instances(stack: LocalStack) -> dict[str, dict[str, str]]:
    """Every EC2 instance the emulator knows (any tag: an untagged leak is an orphan too)."""
    ec2 = boto3.client("ec2", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    found = {}
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            for i in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                found[i["InstanceId"]] = {
                    "state": i["State"]["Name"],
                    "session": tags.get(SESSION_TAG, ""),
                }
    return found


def _session_secrets(stack: LocalStack) -> dict[str, str]:
    """Every desktop session's secret: its name and session id."""
    sm = boto3.client("secretsmanager", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    found = {}
    for page in sm.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            tags = {t["Key"]: t["Value"] for t in secret.get("Tags", [])}
            name = secret["Name"]
            if SESSION_TAG in tags or name.startswith(SECRET_PREFIX):
                found[name] = tags.get(SESSION_TAG) or name.removeprefix(SECRET_PREFIX)
    return found


def figures(load: Load, api: Api, polled_at: float, rss: RssSampler) -> dict[str, Any]:
    """Figures of the timed part (burst to the last desktop settled); call after the stack
    stopped, so that its agents' CPU and memory are counted."""
    posts = [a for a in load.answers if a.status]
    ready = [d for d in load.desktops if d.status == "READY"]
    latencies = [d.latency() for d in ready]
    provisioning = [d.requested + d.latency() - d.accepted for d in ready]
    settled_at = polled_at
    if all(d.status in SETTLED for d in load.desktops):
        settled_at = max((d.requested + d.latency() for d in load.desktops), default=polled_at)
    wall = max(settled_at - load.burst_at, 1e-9)
    polled = max(polled_at - load.burst_at, 1e-9)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)

    def spread(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        return {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "max": max(values),
        }

    return {
        "wallSeconds": wall,
        "readyPerSecond": len(ready) / wall,
        "apiRequests": api.requests,
        "apiRequestsPerSecond": api.requests / polled,
        "throttled": api.throttled,
        "postAnswerSeconds": spread([a.took for a in posts]),
        "postsAnsweredInSeconds": max((a.sent + a.took for a in posts), default=load.burst_at)
        - load.burst_at,
        "readySeconds": spread(latencies),
        "acceptedToReadySeconds": spread(provisioning),
        "peakRssMiB": usage.ru_maxrss / 1024,
        "hostsPeakRssMiB": rss.peak_kb / 1024,
        "hostProcessesAtPeak": rss.peak_processes,
        "cpuSeconds": usage.ru_utime + usage.ru_stime,
        "childrenCpuSeconds": children.ru_utime + children.ru_stime,
        "userThreadsCpuSeconds": load.client_cpu,
    }


def report(
    args: argparse.Namespace, checks: list[Check], counts: dict[str, Any], f: dict[str, Any]
) -> None:
    def spread(name: str) -> str:
        s = f[name]
        if not s:
            return "none"
        return f"p50 {s['p50']:.3f} s   p95 {s['p95']:.3f} s   max {s['max']:.3f} s"

    posts = 2 * args.users + counts["retries"]
    print(
        f"DCV Fleet load test: {args.users} users at once, 2 requests each "
        f"(+{counts['retries']} same-key retries), ec2, MaxActiveSessionsPerUser 1, boot delay 0, "
        f"polls every {args.poll:g} s"
    )
    print(
        f"  requests           {posts} POST /sessions: {counts['accepted']} answered 202 (the "
        f"retries included), {counts['refused']} 409 ({counts['limit409']} at the limit), all "
        f"within {f['postsAnsweredInSeconds']:.1f} s"
    )
    print(
        f"  desktops           {counts['ready']} READY, {counts['failed']} FAILED, "
        f"{counts['unsettled']} unsettled at the {args.timeout:g} s bound"
    )
    print(f"  wall time          {f['wallSeconds']:.1f} s (burst to the last desktop settled)")
    print(
        f"  throughput         {f['readyPerSecond']:.2f} desktops READY/s, "
        f"{f['apiRequestsPerSecond']:.1f} API requests/s ({f['apiRequests']} requests, "
        f"{f['throttled']} throttled 429 and retried)"
    )
    print(f"  request -> READY   {spread('readySeconds')}")
    print(f"  request -> answer  {spread('postAnswerSeconds')} (POST /sessions)")
    print(f"  202 -> READY       {spread('acceptedToReadySeconds')}")
    print(
        f"  memory             peak RSS {f['peakRssMiB']:.0f} MiB (this process: the stack "
        f"and the users), simulated hosts {f['hostsPeakRssMiB']:.0f} MiB at peak "
        f"({f['hostProcessesAtPeak']} processes: agents and what they run)"
    )
    print(
        f"  CPU                {f['cpuSeconds']:.0f} s this process (user threads "
        f"{f['userThreadsCpuSeconds']:.1f} s), {f['childrenCpuSeconds']:.0f} s agents"
    )
    print("  invariants")
    for check in checks:
        print(f"    {check.name:14} {'ok  ' if check.ok else 'FAIL'} {check.detail}")
        for problem in check.problems[:EXAMPLES]:
            print(f"        {problem}")
        if len(check.problems) > EXAMPLES:
            print(f"        ... and {len(check.problems) - EXAMPLES} more")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds after the burst to stop waiting"
    )
    parser.add_argument(
        "--poll",
        type=float,
        help="seconds between a user's status polls (default: 2, or users / 20 when longer)",
    )
    parser.add_argument("--params", default="", help='more template overrides: "Key=Value ..."')
    parser.add_argument("--report", type=Path, help="write the invariants and figures as JSON")
    args = parser.parse_args(argv)
    if args.poll is None:
        args.poll = max(PORTAL_POLL_SECONDS, args.users / MAX_POLLS_PER_SECOND)

    overrides = {
        **QUIET,
        **SLOW_BOOTS,
        **UNTHROTTLED,
        **parse_overrides(args.params),
        "MaxActiveSessionsPerUser": "1",
    }
    # a kill stops the stack too (its hosts' agents run in sessions of their own)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    state_dir = Path(tempfile.mkdtemp(prefix="dcvfleet-load-"))
    stack = LocalStack(overrides, state_dir=state_dir)
    rss = RssSampler()
    try:
        info = stack.start()
        rss.start()
        clients = [_user(stack, info.as_json(), f"load{n}") for n in range(args.users)]
        # one warm-up desktop, so the functions' imports are not counted as latency
        warm = _user(stack, info.as_json(), "loadwarmup")
        warm_id = provision(warm, 0.25)[0]
        api = Api()
        load = Load(clients, api, args.poll, args.timeout)
        load.run()
        polled_at = time.time()
        timed_requests = api.requests
        api.deadline = time.monotonic() + 120  # the verification's own requests
        checks, counts = verify(load, stack, api, (warm, warm_id))
        api.requests = timed_requests
    finally:
        rss.stop()
        stack.stop()
    f = figures(load, api, polled_at, rss)
    report(args, checks, counts, f)
    if args.report:
        data = {
            "users": args.users,
            "ok": all(c.ok for c in checks),
            "invariants": {
                c.name: {"ok": c.ok, "detail": c.detail, "problems": c.problems} for c in checks
            },
            "counts": counts,
            "figures": f,
        }
        args.report.write_text(json.dumps(data, indent=2))
    if not all(c.ok for c in checks):
        print(f"  the simulated hosts' workdirs and agent logs: {state_dir / 'hosts'}")
        return 1
    shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
