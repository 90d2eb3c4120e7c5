"""``control_url``: the local stack's own controls over its simulated hosts, Batch jobs, faults,
schedules and mail (``ControlServer``; docs/architecture.md, control routes). It only reads and
validates requests: the simulators (``local.sim.hosts``, ``local.sim.containers``), the faults
(``local.faults``) and the emulator's scheduler and mailbox do the work.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3

from local import faults
from local.emulator import imagebuilder
from local.emulator.scheduler import Scheduler
from local.emulator.sns import mailbox
from local.http import LocalServer, Reply, json_reply
from local.sim import typeperf
from local.sim.containers import JobSimulator, JobStateError
from local.sim.hosts import HostSimulator, HostStateError

ACTIVITY_FIELDS = ("cpuPercent", "gpuPercent", "encoderPercent")


class ControlServer(LocalServer):
    """``control_url``, the local stack's own controls (JSON in, JSON out; a bad body is a 400
    whose message starts with the field it names):

    * ``GET /hosts``: every simulated host, running or stopped (``HostSimulator``).
    * ``POST /hosts/{id}/connections {"count": N}``: how many DCV clients the host reports
      (dropping to 0 records the last disconnection). 404 unknown host, 409 stopped host.
    * ``POST /hosts/{id}/activity {"cpuPercent"?, "gpuPercent"?, "encoderPercent"?}``: each
      0-100, at least one: the busiest core's and the GPU's utilisation from now on, as the
      host's ``/proc/stat`` and ``nvidia-smi`` show them. 404 unknown host, 409 stopped host.
    * ``POST /hosts/{id}/agent {"running"?: bool, "ssmAgent"?: bool}``, at least one: end the
      host's agent (as if it crashed: no more heartbeats) or start a fresh one (it reports Host
      Ready again); take the host's SSM Agent off line (Run Command stays Pending, then times
      out: "the host does not answer") or back. 404 unknown host, 409 stopped host.
    * ``POST /hosts/{id}/session {"closed": true}``: the host's user logs out: its DCV clients
      leave and DCV closes its sessions (the agent sees that at its next sample). 404 unknown
      host, 409 stopped host.
    * ``POST /hosts/{id}/hibernation {"enabled": bool}``: whether a stop of this host hibernates
      it (its agent frozen, then thawed by the next start) instead of halting it. 404 unknown
      host, 409 stopped host.
    * ``POST /agents {"enabled": bool}``: whether hosts (and containers) booted from now on run
      their agent.
    * ``POST /boot-delay {"seconds": S, "bakedSeconds"?: B}`` (0-600): how long hosts and
      containers launched from now on take to boot (``--boot-delay`` at start-up), and hosts
      from a baked host image (``--baked-boot-delay``; without it, S scaled as AWS's figures).
    * ``POST /host-images/{linux|windows}/build {}``: one simulated run of that host image
      pipeline (``local.emulator.imagebuilder``): a new AMI, published in the host image
      parameter the launch template resolves; ``{"imageId", "parameter", "baseImageId"}``.
      404 no such pipeline in this stack (Windows without ``WindowsAmiId``).
    * ``POST /windows-counters {"language": "en" | "de"}``: the language of the performance
      counter names (``local/sim/typeperf.py``) of Windows hosts booted from now on.
    * ``GET /batch/capacity``, ``POST /batch/capacity {"instances": N | null}``: how many more
      GPU instances the Batch compute environments can launch (each launch takes one; null, the
      default, for no limit). At 0 a submitted job stays RUNNABLE (``local.sim.containers``).
    * ``GET /jobs``: every Batch job with a container placed (``local.sim.containers``).
    * ``POST /jobs/{jobId}/exit {"code": N}`` (0-255): the job's container exits with N: the job
      ends SUCCEEDED (0) or FAILED, its instance is terminated; the job as DescribeJobs shows
      it. 404 no container for that job, 409 its container has not started yet.
    * ``POST /faults {"noCapacity": ["g5.xlarge" | "*"], "functionErrors": {"LogicalId":
      "Error"}, "functionTimeouts": ["LogicalId"] | {"LogicalId": N}, "apiErrors":
      {"ec2:RunInstances": {"code": "RequestLimitExceeded", "times"?: N, "resource"?:
      "LogicalId", "matching"?: "text"}}}``: instance types EC2 has no capacity for; functions
      that raise; functions whose invocations (all, or the next N) time out (Lambda's
      ``Sandbox.Timedout``); AWS operations (botocore's ``<service>:<Operation>``) that answer
      that AWS error the next N calls (every call without ``times``; only calls naming the
      resource, or holding the text) (``local.faults``). Each POST replaces all; its answer is
      the faults now on and, under ``replaced``, the ones it replaced, each API error with the
      calls it ``answered``, each timeout with the invocations it ended (``timedOut``).
    * ``GET /mail``: every e-mail SNS would have sent (``emulator.sns.SNS_EMAIL``), oldest first:
      ``{"messages": [{"to", "subject", "message", "attributes", "topicArn", "messageId"}]}``.
    * ``GET /schedules``: every EventBridge rule with a schedule, whether the local scheduler
      runs it, how often it fired and when it fires next; ``minuteSeconds``.
    * ``POST /schedules/run {}`` or ``{"rule": "<name>"}``: fire every ENABLED schedule rule (or
      the one named) now, ``cron(...)`` ones too; ``{"fired": [names]}``. 404 no schedule rule
      of that name, 409 it is DISABLED.
    """

    def __init__(
        self,
        simulator: HostSimulator,
        resources: dict[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        scheduler: Scheduler | None = None,
        jobs: JobSimulator | None = None,
    ) -> None:
        self.simulator = simulator
        self.resources = resources
        self.scheduler = scheduler
        self.jobs = jobs
        super().__init__(host, port)

    @property
    def url(self) -> str:
        return self.address

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        status, payload = self.route(method, path, body)
        return json_reply(status, payload)

    def route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        sim = self.simulator
        if method == "GET" and path == "/hosts":
            return 200, {"hosts": sim.list()}
        if method == "GET" and path == "/schedules":
            return self._schedules()
        if method == "GET" and path == "/mail":
            return 200, {"messages": mailbox()}
        if method == "GET" and path in ("/batch/capacity", "/jobs", "/batch/warm"):
            return self._batch_view(path)
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return 400, {"message": "body: not valid JSON"}
        match = re.fullmatch(
            r"/hosts/(i-[0-9a-f]+)/(connections|activity|agent|session|hibernation)", path
        )
        if method == "POST" and match:
            return self._host_change(match.group(1), match.group(2), data)
        if method == "POST" and path == "/faults":
            return self._set_faults(data)
        if method == "POST" and path == "/agents":
            enabled = data.get("enabled") if isinstance(data, dict) else None
            if not isinstance(enabled, bool):
                return 400, {"message": "enabled: true or false is required"}
            sim.agent_enabled = enabled
            return 200, {"enabled": enabled}
        if method == "POST" and path == "/boot-delay":
            return self._set_boot_delay(data)
        match = re.fullmatch(r"/host-images/([a-z]+)/build", path)
        if method == "POST" and match:
            return self._build_host_image(match.group(1))
        if method == "POST" and path == "/windows-counters":
            language = data.get("language") if isinstance(data, dict) else None
            if language not in typeperf.NAMES:
                return 400, {"message": f"language: one of {sorted(typeperf.NAMES)}"}
            sim.perf_language = language
            return 200, {"language": language}
        if method == "POST" and path == "/schedules/run":
            return self._run_schedules(data)
        if method == "POST" and path == "/batch/capacity":
            return self._set_capacity(data)
        match = re.fullmatch(r"/jobs/([A-Za-z0-9:-]+)/exit", path)
        if method == "POST" and match:
            return self._exit_job(match.group(1), data)
        return 404, {"message": f"no route {method} {path}"}

    def _set_boot_delay(self, data: Any) -> tuple[int, Any]:
        seconds = _delay(data.get("seconds") if isinstance(data, dict) else None)
        if seconds is None:
            return 400, {"message": "seconds: a number from 0 to 600 is required"}
        given = data.get("bakedSeconds")
        baked = _delay(given)
        if given is not None and baked is None:
            return 400, {"message": "bakedSeconds: a number from 0 to 600, if given"}
        pull_given, prepull = data.get("pullSeconds"), data.get("prepull")
        pull = _delay(pull_given)
        if pull_given is not None and pull is None:
            return 400, {"message": "pullSeconds: a number from 0 to 600, if given"}
        if prepull is not None and not isinstance(prepull, bool):
            return 400, {"message": "prepull: true or false, if given"}
        self.simulator.boot_delay = float(seconds)
        if baked is not None:
            self.simulator.baked_boot_delay = float(baked)
        answer = {"seconds": float(seconds), "bakedSeconds": self.simulator.boot_seconds(True)}
        if self.jobs is not None:
            self.jobs.boot_delay = float(seconds)
            if pull is not None:
                self.jobs.pull_delay = float(pull)
            if prepull is not None:
                self.jobs.prepull = prepull
            answer |= {"pullSeconds": self.jobs.pull_delay, "prepull": self.jobs.prepull}
        return 200, answer

    def _build_host_image(self, os_type: str) -> tuple[int, Any]:
        if os_type not in imagebuilder.PARAMETERS:
            return 404, {"message": f"no host image pipeline for {os_type!r}: linux or windows"}
        name = self.resources.get(imagebuilder.PARAMETERS[os_type])
        if name is None:
            return 404, {"message": f"this stack has no {os_type} host images (WindowsAmiId)"}
        sim = self.simulator
        ec2, ssm = (
            boto3.client(service, endpoint_url=sim.endpoint_url, region_name=sim.region)
            for service in ("ec2", "ssm")
        )
        result = imagebuilder.run_pipeline(
            ec2, ssm, name=name, os_type=os_type, fleet_tag=(sim.tag_key, sim.tag_value)
        )
        return 200, result

    def _batch_view(self, path: str) -> tuple[int, Any]:
        if self.jobs is None:
            return 404, {"message": "no Batch job simulator in this stack"}
        if path == "/jobs":
            return 200, {"jobs": self.jobs.list()}
        if path == "/batch/warm":
            return 200, {"instances": self.jobs.warm_view()}
        return 200, {"instances": self.jobs.capacity}

    def _set_capacity(self, data: Any) -> tuple[int, Any]:
        if self.jobs is None:
            return 404, {"message": "no Batch job simulator in this stack"}
        problem = fields_problem(data, "instances")
        if problem:
            return 400, {"message": problem}
        instances = data.get("instances", "missing")
        valid = instances is None or (
            isinstance(instances, int) and not isinstance(instances, bool) and instances >= 0
        )
        if not valid:
            return 400, {"message": "instances: a non-negative integer, or null for no limit"}
        self.jobs.set_capacity(instances)
        return 200, {"instances": instances}

    def _exit_job(self, job_id: str, data: Any) -> tuple[int, Any]:
        if self.jobs is None:
            return 404, {"message": "no Batch job simulator in this stack"}
        code = data.get("code") if isinstance(data, dict) else None
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            return 400, {"message": "code: an exit code from 0 to 255 is required"}
        try:
            job = self.jobs.exit(job_id, code)
        except JobStateError as exc:
            return 409, {"message": str(exc)}
        if job is None:
            return 404, {"message": f"no simulated container for job {job_id}"}
        return 200, job

    def _host_change(self, instance_id: str, what: str, data: Any) -> tuple[int, Any]:
        sim = self.simulator
        try:
            if what == "connections":
                count = data.get("count") if isinstance(data, dict) else None
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    return 400, {"message": "count: a non-negative integer is required"}
                view = sim.set_connections(instance_id, count)
            elif what in ("session", "hibernation"):
                key = "closed" if what == "session" else "enabled"
                flag = data.get(key) if isinstance(data, dict) else None
                if not isinstance(flag, bool) or (what == "session" and not flag):
                    kind = "true" if what == "session" else "true or false"
                    return 400, {"message": f"{key}: {kind} is required"}
                if what == "session":
                    view = sim.close_session(instance_id)
                else:
                    view = sim.set_hibernation(instance_id, flag)
            elif what == "agent":
                problem = agent_problem(data)
                if problem:
                    return 400, {"message": problem}
                view = sim.set_agent(instance_id, data.get("running"), data.get("ssmAgent"))
            else:
                problem = activity_problem(data)
                if problem:
                    return 400, {"message": problem}
                view = sim.set_activity(instance_id, data)
        except HostStateError as exc:
            return 409, {"message": str(exc)}
        if view is None:
            return 404, {"message": f"no simulated host {instance_id}"}
        return 200, view

    def _schedules(self) -> tuple[int, Any]:
        if self.scheduler is None:
            return 404, {"message": "no scheduler in this stack"}
        return 200, {
            "minuteSeconds": self.scheduler.minute_seconds,
            "schedules": self.scheduler.status(),
        }

    def _run_schedules(self, data: Any) -> tuple[int, Any]:
        if self.scheduler is None:
            return 404, {"message": "no scheduler in this stack"}
        problem = fields_problem(data, "rule")
        if problem:
            return 400, {"message": problem}
        rule = data.get("rule")
        if rule is not None and (not isinstance(rule, str) or not rule):
            return 400, {"message": "rule: a rule name is required"}
        try:
            fired = self.scheduler.run_now(rule)
        except KeyError:
            return 404, {"message": f"rule: no schedule rule {rule}"}
        except ValueError as exc:
            return 409, {"message": f"rule: {exc}"}
        return 200, {"fired": fired}

    def _set_faults(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict):
            return 400, {"message": "body: a JSON object is required"}
        known = ("noCapacity", "functionErrors", "functionTimeouts", "apiErrors")
        unknown = sorted(set(data) - set(known))
        if unknown:
            return 400, {"message": f"{unknown[0]}: unknown field ({', '.join(known)})"}
        types = data.get("noCapacity", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            return 400, {"message": "noCapacity: a list of instance types ('*' for all)"}
        errors = data.get("functionErrors", {})
        if not isinstance(errors, dict):
            return 400, {"message": "functionErrors: an object of function -> error type"}
        for logical_id, error_type in errors.items():
            if logical_id not in self.resources:
                return 400, {"message": f"functionErrors: no function {logical_id}"}
            if not isinstance(error_type, str) or not error_type.isidentifier():
                return 400, {"message": f"functionErrors.{logical_id}: a class name is required"}
        timeouts = data.get("functionTimeouts", {})
        if isinstance(timeouts, list) and all(isinstance(t, str) for t in timeouts):
            timeouts = dict.fromkeys(timeouts)  # every invocation of each
        if not isinstance(timeouts, dict):
            return 400, {"message": "functionTimeouts: functions, or function -> times"}
        for logical_id, times in timeouts.items():
            if logical_id not in self.resources:
                return 400, {"message": f"functionTimeouts: no function {logical_id}"}
            if times is not None and (
                not isinstance(times, int) or isinstance(times, bool) or times < 1
            ):
                return 400, {"message": f"functionTimeouts.{logical_id}: a positive integer"}
        api_errors = data.get("apiErrors", {})
        if not isinstance(api_errors, dict):
            return 400, {"message": "apiErrors: an object of <service>:<Operation> -> error"}
        for operation, spec in api_errors.items():
            problem = faults.api_error_problem(operation, spec, self.resources)
            if problem:
                return 400, {"message": f"apiErrors.{operation}: {problem}"}
        replaced = faults.report()
        logical = {physical: logical_id for logical_id, physical in self.resources.items()}
        for kind in ("functionErrors", "functionTimeouts"):  # named as the request names them
            replaced[kind] = {logical.get(k, k): v for k, v in replaced[kind].items()}
        faults.clear()
        faults.set_no_capacity(types)
        for logical_id, error_type in errors.items():
            faults.set_function_error(
                self.resources[logical_id], error_type, f"injected fault in {logical_id}"
            )
        for logical_id, times in timeouts.items():
            faults.set_function_timeout(self.resources[logical_id], times)
        for operation, spec in api_errors.items():
            resource = spec.get("resource")
            faults.set_api_error(
                operation,
                spec["code"],
                times=spec.get("times"),
                matching=self.resources[resource] if resource is not None else spec.get("matching"),
            )
        return 200, {
            "noCapacity": sorted(types),
            "functionErrors": errors,
            "functionTimeouts": timeouts,
            "apiErrors": api_errors,
            "replaced": replaced,
        }


def fields_problem(data: Any, field: str) -> str:
    """Why a body is not a JSON object with no field but ``field`` ("" when it is)."""
    if not isinstance(data, dict):
        return "body: a JSON object is required"
    unknown = sorted(set(data) - {field})
    return f"{unknown[0]}: unknown field (only {field!r})" if unknown else ""


def activity_problem(data: Any) -> str:
    """Why an activity body is bad ("" when it is good): the message names the field."""
    if not isinstance(data, dict):
        return "body: a JSON object is required"
    for key in data:
        if key not in ACTIVITY_FIELDS:
            return f"{key}: unknown field (cpuPercent, gpuPercent, encoderPercent)"
    if not data:
        return "body: at least one of cpuPercent, gpuPercent, encoderPercent is required"
    for key, value in data.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not 0 <= value <= 100:  # NaN is not within 0..100 either
            return f"{key}: a number from 0 to 100 is required"
    return ""


def agent_problem(data: Any) -> str:
    """Why an agent body is bad ("" when it is good): the message names the field."""
    if not isinstance(data, dict):
        return "body: a JSON object is required"
    for key in data:
        if key not in ("running", "ssmAgent"):
            return f"{key}: unknown field (running, ssmAgent)"
    if not data:
        return "body: at least one of running, ssmAgent is required"
    for key, value in data.items():
        if not isinstance(value, bool):
            return f"{key}: true or false is required"
    return ""


def _delay(seconds: Any) -> float | None:
    """``seconds`` as a boot delay (0-600), or None when it is none."""
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds <= 600:
        return float(seconds)
    return None
