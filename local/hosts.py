"""Simulated hosts: each fleet instance the emulator runs gets the real agent against a simulated
``dcv``, after a boot delay; ``control_url`` drives them (ARCHITECTURE.md, local stack)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local import emulator, faults
from local.emulator import ROOT
from local.http import LocalServer, Reply, json_reply

SIM_DCV = ROOT / "local" / "sim_dcv.py"
AGENT_DIR = ROOT / "agent"

#: A host's agent process, started before its host boots with its imports already done (as on a
#: host whose image carries the agent): it waits for its settings on stdin, then runs the agent.
WARM_AGENT = """
import json, os, sys
import boto3
import dcvfleet_agent.agent as agent
boto3.session.Session().client("events", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
line = sys.stdin.readline()
if not line:
    sys.exit(0)
spec = json.loads(line)
fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(fd, 1)
os.dup2(fd, 2)
os.environ.update(spec["env"])
sys.exit(agent.main())
"""
SPARE_AGENTS = 2


@dataclass
class Host:
    instance_id: str
    session_id: str
    secret_arn: str
    os_type: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    timer: threading.Timer | None = None

    @property
    def state_file(self) -> Path:
        return self.workdir / "dcv-state.json"

    def connections(self) -> int:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return int(json.loads(self.state_file.read_text()).get("connections", 0))
        return 0

    def set_connections(self, count: int) -> None:
        state: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            state = json.loads(self.state_file.read_text())
        state["connections"] = count
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def agent_status(self) -> str:
        if self.process is None:
            return "booting"
        code = self.process.poll()
        return "running" if code is None else f"exited {code}"

    def view(self) -> dict[str, Any]:
        return {
            "instanceId": self.instance_id,
            "sessionId": self.session_id,
            "connections": self.connections(),
            "agent": self.agent_status(),
            "log": str(self.workdir / "agent.log"),
        }


class HostSimulator:
    """Watches the emulator's EC2 and boots a simulated host for each running fleet instance."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        event_bus_name: str,
        fleet_tag_key: str,
        fleet_tag_value: str,
        workdir: Path,
        boot_delay: float = 0.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.event_bus_name = event_bus_name
        self.tag_key, self.tag_value = fleet_tag_key, fleet_tag_value
        self.workdir = workdir
        self.boot_delay = boot_delay
        self.poll_interval = poll_interval
        self.agent_enabled = True
        self.hosts: dict[str, Host] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._ec2 = boto3.client("ec2", endpoint_url=endpoint_url, region_name=region)
        self._thread = threading.Thread(target=self._watch, name="host-simulator", daemon=True)
        self._spares: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with self._lock:
            self._fill_spares()
        emulator.INSTANCE_LISTENERS.append(self._changed.set)
        self._thread.start()

    def stop(self) -> None:
        if self._changed.set in emulator.INSTANCE_LISTENERS:
            emulator.INSTANCE_LISTENERS.remove(self._changed.set)
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=5)
        with self._lock:
            for host in self.hosts.values():
                self._halt(host)
            self.hosts.clear()
            for spare in self._spares:
                self._end(spare)
            self._spares.clear()

    def _fill_spares(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(AGENT_DIR)}
        while len(self._spares) < SPARE_AGENTS:
            self._spares.append(
                subprocess.Popen(
                    [sys.executable, "-c", WARM_AGENT],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    # -- the watch loop --------------------------------------------------------------------
    def _running_instances(self) -> dict[str, dict[str, str]]:
        resp = self._ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{self.tag_key}", "Values": [self.tag_value]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )
        return {
            i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            for r in resp["Reservations"]
            for i in r["Instances"]
        }

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._changed.clear()  # a change from here on wakes the next wait at once
            try:
                running = self._running_instances()
            except Exception:  # the emulator is shutting down
                running = None
            if running is not None:
                with self._lock:
                    for instance_id, tags in running.items():
                        if instance_id not in self.hosts:
                            self.hosts[instance_id] = self._boot(instance_id, tags)
                    for instance_id in [i for i in self.hosts if i not in running]:
                        self._halt(self.hosts.pop(instance_id))
            # woken at once by an instance change; the interval is only a safety net
            self._changed.wait(self.poll_interval)

    def _boot(self, instance_id: str, tags: dict[str, str]) -> Host:
        workdir = self.workdir / instance_id
        workdir.mkdir(parents=True, exist_ok=True)
        host = Host(
            instance_id=instance_id,
            session_id=tags.get("dcvfleet:session-id", ""),
            secret_arn=tags.get("dcvfleet:secret-arn", ""),
            os_type=tags.get("dcvfleet:os", "linux"),
            workdir=workdir,
        )
        host.set_connections(0)
        if self.agent_enabled:
            host.timer = threading.Timer(self.boot_delay, self._start_agent, args=(host,))
            host.timer.daemon = True
            host.timer.start()
        return host

    def _start_agent(self, host: Host) -> None:
        dcv = [sys.executable, "-S", str(SIM_DCV)]
        if host.os_type == "windows":
            # DCV Server on Windows starts a console session at boot; the agent only finds it
            console = ["create-session", "--type", "console", "--owner", "Administrator", "console"]
            subprocess.run(
                [*dcv, *console],
                env={**os.environ, "SIM_DCV_STATE": str(host.state_file)},
                check=True,
                capture_output=True,
            )
        config = {
            "eventBusName": self.event_bus_name,
            "region": self.region,
            "instanceId": host.instance_id,
            "sessionId": host.session_id,
            "secretArn": host.secret_arn,
            "platform": "windows" if host.os_type == "windows" else "linux",
            "dcvCommand": dcv,
            "manageUser": False,
            "endpointUrl": self.endpoint_url,
            "sendBaseDelaySeconds": 0.2,
            "readyTimeoutSeconds": 30,
        }
        (host.workdir / "agent.json").write_text(json.dumps(config, indent=2))
        spec = {
            "log": str(host.workdir / "agent.log"),
            "env": {
                "DCVFLEET_AGENT_CONFIG": str(host.workdir / "agent.json"),
                "SIM_DCV_STATE": str(host.state_file),
            },
        }
        with self._lock:
            if host.instance_id not in self.hosts or self._stop.is_set():
                return
            self._fill_spares()
            host.process = self._spares.pop(0)
            self._fill_spares()
        if host.process.stdin is None:
            raise RuntimeError("a spare agent process has no stdin")
        host.process.stdin.write(json.dumps(spec).encode() + b"\n")
        host.process.stdin.close()

    @classmethod
    def _halt(cls, host: Host) -> None:
        if host.timer:
            host.timer.cancel()
        if host.process:
            cls._end(host.process)

    @staticmethod
    def _end(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin and not process.stdin.closed:
            process.stdin.close()

    # -- control -------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [h.view() for h in self.hosts.values()]

    def set_connections(self, instance_id: str, count: int) -> dict[str, Any] | None:
        with self._lock:
            host = self.hosts.get(instance_id)
            if host is None:
                return None
            host.set_connections(count)
            return host.view()


class ControlServer(LocalServer):
    """``control_url``: ``GET /hosts``, ``POST /hosts/{id}/connections {"count": N}``,
    ``POST /agents {"enabled": bool}`` (whether hosts booted from now on run their agent),
    ``POST /faults {"noCapacity": ["g5.xlarge" | "*"], "functionErrors": {"LogicalId": "Error"}}``
    (instance types EC2 has no capacity for; functions that raise; each POST replaces all)."""

    def __init__(
        self,
        simulator: HostSimulator,
        resources: dict[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.simulator = simulator
        self.resources = resources
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
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return 400, {"message": "body: not valid JSON"}
        match = re.fullmatch(r"/hosts/(i-[0-9a-f]+)/connections", path)
        if method == "POST" and match:
            count = data.get("count") if isinstance(data, dict) else None
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                return 400, {"message": "count: a non-negative integer is required"}
            view = sim.set_connections(match.group(1), count)
            if view is None:
                return 404, {"message": f"no simulated host {match.group(1)}"}
            return 200, view
        if method == "POST" and path == "/faults":
            return self._set_faults(data)
        if method == "POST" and path == "/agents":
            enabled = data.get("enabled") if isinstance(data, dict) else None
            if not isinstance(enabled, bool):
                return 400, {"message": "enabled: true or false is required"}
            sim.agent_enabled = enabled
            return 200, {"enabled": enabled}
        return 404, {"message": f"no route {method} {path}"}

    def _set_faults(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict):
            return 400, {"message": "body: a JSON object is required"}
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
        faults.clear()
        faults.set_no_capacity(types)
        for logical_id, error_type in errors.items():
            faults.set_function_error(
                self.resources[logical_id], error_type, f"injected fault in {logical_id}"
            )
        return 200, {"noCapacity": sorted(types), "functionErrors": errors}
