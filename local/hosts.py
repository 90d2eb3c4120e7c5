"""Simulated hosts: each fleet instance the emulator runs gets the real agent against a simulated
``dcv``, ``nvidia-smi`` and ``/proc/stat``, after a boot delay; ``control_url`` drives them
(ARCHITECTURE.md, local stack).

A host follows its instance's EC2 state, as a machine follows its power switch:

* ``running``: the host boots (the instance's workdir ``<state-dir>/hosts/<instance-id>/`` is
  reused when the same instance is started again). It starts with no DCV session, no client,
  an idle CPU and GPU; after the boot delay its SSM Agent is online (Run Command reaches it)
  and, when agents are enabled, the real agent starts with ``agent.json`` (below) and, as on a
  real host, creates its DCV session and sends Host Ready.
* ``stopping``/``stopped`` (with or without ``Hibernate``; the emulator does not keep that
  flag): the host halts. Its agent process ends, its DCV sessions are gone (virtual sessions do
  not survive a stop), its connection count drops to 0 (recording the last disconnection), its
  CPU and GPU stop. Its notices and last disconnection stay in its state file. Started again,
  it boots again with the same instance id and runs the agent again, which sends Host Ready
  again. A real hibernated host would resume its processes instead: this simulator reboots it,
  unless the host was told to hibernate (``POST /hosts/{id}/hibernation``; the emulator does
  not keep StopInstances' ``Hibernate`` flag): then a stop freezes its agent's processes
  (SIGSTOP), keeps its DCV sessions, drops its clients, and the next start thaws them
  (SIGCONT) after the boot delay, as a resumed machine carries on. The agent sees the real
  seconds it was frozen between two samples (``resumeGapSeconds``, below).
* ``shutting-down``/``terminated``: the host is gone (its workdir stays, for its logs).

An instance AWS Batch launched (tagged ``aws:batch:compute-environment``) is an ECS host, not a
desktop host: it runs no agent of its own. Its desktop is the container of the Batch job placed
on it, which ``local.containers`` starts and ends with the job (``run_container``,
``end_container``): the same simulated ``dcv``, ``nvidia-smi`` and ``/proc/stat``, plus ``id``,
``useradd`` and ``chpasswd`` (``local/sim_users.py``, state in ``users.json``), with the real
agent's ``platform`` ``container`` and ``manageUser`` true (it reads the session secret and
makes the user itself). Its agent ending does not end the container. Run Command on such an
instance runs on the ECS host, where there is no ``dcv``.

``GET /hosts`` lists every host the simulator knows with its ``state`` (``running`` or
``stopped``; terminated hosts are not listed), its ``agent`` (``booting``, ``disabled``,
``running``, ``stopped`` (ended through control), ``exited <code>``, ``halted`` or ``frozen``
(a hibernated host's)), whether
its SSM Agent answers (``ssmAgent``), DCV connections, last disconnection, DCV session
ids, notices (``dcv notify-users``), and simulated CPU/GPU activity; and ``platform``
(``linux``, ``windows`` or ``container``), and for a container its ``jobId`` and ``osUsers``.

Each host's workdir holds: ``dcv-state.json`` (``local/sim_dcv.py``'s state), ``proc-stat`` (a
``/proc/stat``: an aggregate ``cpu`` line and ``cpu0``..``cpu3`` lines of USER_HZ counters that
advance with wall time from the simulator's ticker, so that the busiest core, ``cpu0``, shows
the set CPU %), ``activity.json`` (what ``local/sim_nvidia_smi.py`` reports), ``bin/dcv`` and
``bin/nvidia-smi`` (shims: the commands Run Command's shell finds first on ``PATH``; a Windows
host also has ``bin/typeperf`` (``local/sim_typeperf.py``, its counter names in the host's
``perfLanguage``, chosen by ``POST /windows-counters`` for hosts booted after it) and
``bin/powershell.exe``, which runs the agent's account script against ``users.json``
(``local/sim_users.py``: New-LocalUser refuses a name over 20 characters)),
``agent.json``, ``agent.log``, and ``ssm/<command-id>/<step>/`` (each Run Command script and its
output).

``agent.json`` holds ``eventBusName``, ``region``, ``instanceId``, ``sessionId``, ``secretArn``,
``platform``, ``dcvCommand``, ``manageUser`` (false; true in a container and on a Windows host,
whose agent makes the account and gives it the console session), ``endpointUrl``,
``sendBaseDelaySeconds``, ``readyTimeoutSeconds``, ``resumeGapSeconds`` (RESUME_GAP_SECONDS, so
that a host frozen for a few seconds counts as resumed), and, for the idle signals, ``cpuStatPath``
(the host's ``proc-stat``), ``nvidiaSmiCommand`` (``[<workdir>/bin/nvidia-smi]``) and
``settingsParameter`` (the stack output ``AgentSettingsParameter``, when the deployment has it;
a container's job environment names its bus, region and settings parameter). A key the agent's own
configuration does not know (``dcvfleet_agent.config.KEYS``) is left out, with one warning, so
an agent older than these keys still starts. The heartbeat and sample intervals, idle timeout
and thresholds come from the SSM parameter the template fills from its parameters, as on a
real host. A Windows host's agent looks its localized counter names up by index
(PdhLookupPerfNameByIndexW, which the agent calls only on Windows): the simulator answers that
lookup from the host's ``sim_typeperf.NAMES`` table.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from local import faults, sim_dcv, sim_docker, sim_typeperf, sim_users
from local.emulator import ROOT
from local.emulator.hooks import ManagedNode, SimulatorHooks
from local.emulator.scheduler import Scheduler
from local.emulator.sns import mailbox
from local.http import LocalServer, Reply, json_reply

if TYPE_CHECKING:
    from local.containers import JobSimulator

SIM_DCV = ROOT / "local" / "sim_dcv.py"
SIM_NVIDIA_SMI = ROOT / "local" / "sim_nvidia_smi.py"
SIM_TYPEPERF = ROOT / "local" / "sim_typeperf.py"
SIM_USERS = ROOT / "local" / "sim_users.py"
SIM_DOCKER = ROOT / "local" / "sim_docker.py"
SIM_GLXINFO = ROOT / "local" / "sim_glxinfo.py"
ECS_TASK_LABEL = "com.amazonaws.ecs.task-arn"
#: The tag AWS Batch puts on the instances of a managed compute environment: their containers
#: are the jobs' (``local.containers``), not hosts of their own.
BATCH_INSTANCE_TAG = "aws:batch:compute-environment"
AGENT_DIR = ROOT / "agent"
log = logging.getLogger("local.hosts")

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
names = spec.get("perfNames")
if names is not None:  # a Windows host's PdhLookupPerfNameByIndexW (sim_typeperf.NAMES)
    import dcvfleet_agent.signals as signals
    signals.processor_counter.__defaults__ = (lambda index: names.get(str(index)),)
sys.exit(agent.main())
"""
SPARE_AGENTS = 2
#: The simulated CPU: cores, and the kernel's clock ticks per second in /proc/stat.
CORES = 4
USER_HZ = 100
#: How often the simulated /proc/stat advances.
TICK_SECONDS = 0.5
#: After listing the fleet's instances, the watch rests this many times as long as it took.
WATCH_REST = 2
#: /proc/stat's per-core fields, in order.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest")
ACTIVITY_FIELDS = ("cpuPercent", "gpuPercent", "encoderPercent")
#: How many seconds more than a sample interval between two samples mean, to a simulated host's
#: agent, that its host slept (the agent's default, 120 s, is for real hosts).
RESUME_GAP_SECONDS = 8


class HostStateError(Exception):
    """The host is not in a state that allows the request (it is stopped)."""


def agent_config_keys() -> frozenset[str] | None:
    """The keys the agent's configuration accepts, or None when it cannot be read."""
    if str(AGENT_DIR) not in sys.path:
        sys.path.append(str(AGENT_DIR))
    try:
        keys = importlib.import_module("dcvfleet_agent.config").KEYS
    except Exception:  # an agent being edited: write every key, let the agent say what it wants
        return None
    return frozenset(keys)


@dataclass
class Host:
    instance_id: str
    session_id: str
    secret_arn: str
    os_type: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    timer: threading.Timer | None = None
    state: str = "running"
    booted: bool = False
    agent_enabled: bool = True
    agent_stopped: bool = False  # ended through control (POST /hosts/{id}/agent)
    hibernation: bool = False  # a stop hibernates it (POST /hosts/{id}/hibernation)
    frozen: bool = False  # hibernated: its agent's processes are stopped (SIGSTOP)
    ssm_agent: bool = True  # whether Run Command reaches the host once it is up
    cpu_percent: float = 0.0
    gpu_percent: float = 0.0
    encoder_percent: float = 0.0
    boot_time: float = field(default_factory=time.time)
    counters: list[list[float]] = field(
        default_factory=lambda: [[0.0] * len(CPU_FIELDS) for _ in range(CORES)]
    )
    last_advance: float = field(default_factory=time.monotonic)
    job_id: str | None = None  # a Batch job's container (local.containers), not a host
    agent_settings: dict[str, Any] = field(default_factory=dict)  # agent.json keys it sets
    gl_renderer: str = "nvidia"  # a container's session's OpenGL (local/sim_glxinfo.py)
    perf_language: str = "en"  # a Windows host's counter names (local/sim_typeperf.py)

    @property
    def platform(self) -> str:
        """The agent's ``platform``: ``container`` for a Batch job's container."""
        if self.job_id is not None:
            return "container"
        return "windows" if self.os_type == "windows" else "linux"

    # -- files -----------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.workdir / "dcv-state.json"

    @property
    def proc_stat(self) -> Path:
        return self.workdir / "proc-stat"

    @property
    def activity_file(self) -> Path:
        return self.workdir / "activity.json"

    @property
    def bin_dir(self) -> Path:
        return self.workdir / "bin"

    @property
    def users_file(self) -> Path:
        return self.workdir / "users.json"

    def dcv_state(self) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            state: dict[str, Any] = json.loads(self.state_file.read_text())
            return state
        return {}

    def connections(self) -> int:
        return int(self.dcv_state().get("connections", 0))

    def set_connections(self, count: int) -> None:
        sim_dcv.update_state(str(self.state_file), lambda s: sim_dcv.set_connections(s, count))

    def start_console_session(self) -> None:
        """What DCV Server does on a Windows host at boot: a console session, owned by the
        Administrator (the agent finds it, it does not create one)."""
        args = sim_dcv.parser().parse_args(
            ["create-session", "--owner", "Administrator", "console"]
        )

        def boot(state: dict[str, Any]) -> None:
            state["platform"] = "windows"
            sim_dcv.change(args, state)

        sim_dcv.update_state(str(self.state_file), boot)

    def power_cycle_dcv(self) -> None:
        """A halted (or freshly booted) machine: no DCV session, no client connected."""

        def clear(state: dict[str, Any]) -> None:
            state["sessions"] = []
            sim_dcv.set_connections(state, 0)

        sim_dcv.update_state(str(self.state_file), clear)

    def write_shims(self) -> None:
        """``dcv`` and ``nvidia-smi`` on this host's PATH, bound to its own state files."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        python = shlex.quote(sys.executable)
        shims = {
            "dcv": (sim_dcv.STATE_ENV, self.state_file, SIM_DCV, ""),
            "nvidia-smi": ("SIM_GPU_STATE", self.activity_file, SIM_NVIDIA_SMI, ""),
        }
        # the agent makes the desktop user in a container and on a Windows host
        users = {"windows": ("powershell.exe",)}.get(self.os_type, ("id", "useradd", "chpasswd"))
        if self.job_id is not None or self.os_type == "windows":
            for command in users:
                shims[command] = (sim_users.STATE_ENV, self.users_file, SIM_USERS, command)
        if self.os_type == "windows":
            shims["typeperf"] = ("SIM_GPU_STATE", self.activity_file, SIM_TYPEPERF, "")
        if self.job_id is not None:
            # glxinfo -B in the DCV session (container/session-glxinfo), for the release's check
            shims["dcvfleet-session-glxinfo"] = (
                "SIM_GL_RENDERER",
                Path(self.gl_renderer),
                SIM_GLXINFO,
                "",
            )
        for name, (variable, state, script, command) in shims.items():
            path = self.bin_dir / name
            argv = " ".join(filter(None, [python, "-S", shlex.quote(str(script)), command]))
            path.write_text(
                "#!/bin/sh\n"
                f'{variable}="${{{variable}:-{shlex.quote(str(state))}}}" exec {argv} "$@"\n'
            )
            path.chmod(0o755)

    def write_docker_state(self, task_arn: str, base: dict[str, str]) -> None:
        """The ECS host's view of its one container, for ``docker ps`` and ``docker exec``."""
        ecs_bin = self.workdir / "ecs-host-bin"
        ecs_bin.mkdir(parents=True, exist_ok=True)
        shim = ecs_bin / "docker"
        shim.write_text(
            "#!/bin/sh\n"
            f'exec {shlex.quote(sys.executable)} -S {shlex.quote(str(SIM_DOCKER))} "$@"\n'
        )
        shim.chmod(0o755)
        container = {
            "id": (self.job_id or "0").replace("-", "")[:12],
            "labels": {ECS_TASK_LABEL: task_arn},
            "environ": self.shell_environ({"PATH": base.get("PATH", os.defpath)}),
        }
        _write_atomically(self.workdir / "docker.json", json.dumps([container]))

    def ecs_host_environ(self, base: dict[str, str]) -> dict[str, str]:
        """A Run Command script's environment on the ECS host of a container."""
        return {
            **base,
            "PATH": f"{self.workdir / 'ecs-host-bin'}{os.pathsep}{base.get('PATH', os.defpath)}",
            sim_docker.STATE_ENV: str(self.workdir / "docker.json"),
        }

    def shell_environ(self, base: dict[str, str]) -> dict[str, str]:
        """The environment a Run Command script runs in on this host."""
        return {
            **base,
            "PATH": f"{self.bin_dir}{os.pathsep}{base.get('PATH', os.defpath)}",
            sim_dcv.STATE_ENV: str(self.state_file),
            "SIM_GPU_STATE": str(self.activity_file),
        }

    # -- simulated CPU and GPU ---------------------------------------------------------------
    def write_activity(self) -> None:
        activity = {
            "cpuPercent": self.cpu_percent,
            "gpuPercent": self.gpu_percent,
            "encoderPercent": self.encoder_percent,
            "decoderPercent": 0,
        }
        _write_atomically(self.activity_file, json.dumps(activity))

    def advance(self, now: float | None = None) -> None:
        """Let the CPU run at its set utilisation since the last advance: ``cpu0`` busy at the
        set %, the other cores at a quarter of it; then write ``proc-stat``."""
        now = time.monotonic() if now is None else now
        ticks = max(0.0, now - self.last_advance) * USER_HZ
        self.last_advance = now
        busy = self.cpu_percent / 100
        for index, core in enumerate(self.counters):
            share = busy if index == 0 else busy / 4
            core[CPU_FIELDS.index("user")] += ticks * share
            core[CPU_FIELDS.index("idle")] += ticks * (1 - share)
        self.write_proc_stat()

    def write_proc_stat(self) -> None:
        per_core = [[math.floor(v + 1e-6) for v in core] for core in self.counters]
        total = [sum(column) for column in zip(*per_core, strict=True)]
        lines = ["cpu  " + " ".join(map(str, [*total, 0]))]
        lines += [f"cpu{i} " + " ".join(map(str, [*c, 0])) for i, c in enumerate(per_core)]
        lines += [
            "intr 0",
            f"ctxt {sum(total)}",
            f"btime {int(self.boot_time)}",
            "processes 1",
            "procs_running 1",
            "procs_blocked 0",
        ]
        _write_atomically(self.proc_stat, "\n".join(lines) + "\n")

    # -- state ----------------------------------------------------------------------------------
    def agent_status(self) -> str:
        if self.frozen:
            return "frozen"
        if self.state != "running":
            return "halted"
        if self.agent_stopped:
            return "stopped"
        if self.process is None:
            return "disabled" if self.booted and not self.agent_enabled else "booting"
        code = self.process.poll()
        return "running" if code is None else f"exited {code}"

    def os_users(self) -> list[str]:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return sorted(json.loads(self.users_file.read_text()).get("users", {}))
        return []

    def view(self) -> dict[str, Any]:
        dcv = self.dcv_state()
        container: dict[str, Any] = {"jobId": self.job_id} if self.job_id else {}
        if self.job_id or self.os_type == "windows":
            container["osUsers"] = self.os_users()
        if self.os_type == "windows":
            container["perfLanguage"] = self.perf_language
        return {
            "instanceId": self.instance_id,
            **container,
            "sessionId": self.session_id,
            "os": self.os_type,
            "platform": self.platform,
            "state": self.state,
            "agent": self.agent_status(),
            "ssmAgent": self.ssm_agent,
            "connections": int(dcv.get("connections", 0)),
            "lastDisconnection": dcv.get("lastDisconnection") or None,
            "dcvSessions": [s.get("id") for s in dcv.get("sessions", [])],
            "notices": dcv.get("notices", []),
            "cpuPercent": self.cpu_percent,
            "gpuPercent": self.gpu_percent,
            "encoderPercent": self.encoder_percent,
            "workdir": str(self.workdir),
            "log": str(self.workdir / "agent.log"),
        }


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class HostSimulator:
    """Watches the emulator's EC2 and runs a simulated host for each fleet instance."""

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
        settings_parameter: str | None = None,
        tick_seconds: float = TICK_SECONDS,
        spare_agents: int = SPARE_AGENTS,
        hooks: SimulatorHooks,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.hooks = hooks  # the emulator's: instance changes, and Run Command's managed nodes
        self.region = region
        self.event_bus_name = event_bus_name
        self.tag_key, self.tag_value = fleet_tag_key, fleet_tag_value
        self.workdir = workdir
        self.boot_delay = boot_delay
        self.poll_interval = poll_interval
        self.settings_parameter = settings_parameter
        self.tick_seconds = tick_seconds
        self.spare_agents = spare_agents
        self.agent_enabled = True
        self.perf_language = "en"  # the counter names of Windows hosts booted from now on
        self.agent_keys = agent_config_keys()
        self._warned_keys: set[str] = set()
        self.hosts: dict[str, Host] = {}
        self._base_environ = dict(os.environ)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._ec2 = boto3.client("ec2", endpoint_url=endpoint_url, region_name=region)
        self._thread = threading.Thread(target=self._watch, name="host-simulator", daemon=True)
        self._ticker = threading.Thread(target=self._tick, name="host-cpu-ticker", daemon=True)
        self._spares: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with self._lock:
            self._fill_spares()
        self.hooks.on_instances(self._changed.set)
        self.hooks.on_managed_node(self.managed_node)
        self._thread.start()
        self._ticker.start()

    def stop(self) -> None:
        self.hooks.forget(self._changed.set)
        self.hooks.forget(self.managed_node)
        self._stop.set()
        self._changed.set()
        for thread in (self._thread, self._ticker):
            if thread.is_alive():
                thread.join(timeout=5)
        with self._lock:
            processes = [h.process for h in self.hosts.values() if h.process is not None]
            for host in self.hosts.values():
                if host.timer:
                    host.timer.cancel()
            processes += self._spares
            for process in processes:  # all at once: each agent takes a moment to wind down
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                self._end(process)
            self.hosts.clear()
            self._spares.clear()

    def _fill_spares(self) -> None:
        while len(self._spares) < self.spare_agents:
            self._spares.append(self._spawn_agent())

    def _spawn_agent(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", WARM_AGENT],
            env={**self._base_environ, "PYTHONPATH": str(AGENT_DIR)},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    # -- the watch loop --------------------------------------------------------------------
    def _fleet_instances(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Every fleet instance EC2 knows: its state and tags (every page: EC2 answers 100
        reservations a page, and a host past the first 100 would never boot: bench.load)."""
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": f"tag:{self.tag_key}", "Values": [self.tag_value]}]
        )
        return {
            i["InstanceId"]: (i["State"]["Name"], {t["Key"]: t["Value"] for t in i.get("Tags", [])})
            for page in pages
            for r in page["Reservations"]
            for i in r["Instances"]
        }

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._changed.clear()  # a change from here on wakes the next wait at once
            started = time.monotonic()
            try:
                instances = self._fleet_instances()
            except Exception:  # the emulator is shutting down
                instances = None
            listed = time.monotonic() - started
            if instances is not None:
                with self._lock:
                    if not self._stop.is_set():
                        self._follow(instances)
            # listing hundreds of instances takes a while: rest a multiple of that, so that a
            # burst of changes does not keep the emulator listing them (bench.load)
            self._stop.wait(WATCH_REST * listed)
            # woken at once by an instance change; the interval is only a safety net
            self._changed.wait(self.poll_interval)

    def _follow(self, instances: dict[str, tuple[str, dict[str, str]]]) -> None:
        """Make each host's power state its instance's EC2 state."""
        for instance_id, (state, tags) in instances.items():
            if BATCH_INSTANCE_TAG in tags:
                continue  # an ECS container instance: its containers come with their jobs
            host = self.hosts.get(instance_id)
            if state == "running" and host is not None and host.frozen:
                self._resume(host)
            elif state == "running" and (host is None or host.state != "running"):
                self.hosts[instance_id] = self._boot(instance_id, tags)
            elif state in ("stopping", "stopped") and host is not None and host.state == "running":
                if host.hibernation and host.process is not None and host.process.poll() is None:
                    self._hibernate(host)
                else:
                    self._power_off(host)
        for instance_id in [i for i, h in self.hosts.items() if h.job_id is None]:
            state = instances.get(instance_id, ("terminated", {}))[0]
            if state in ("shutting-down", "terminated"):
                self._power_off(self.hosts.pop(instance_id))

    def _boot(self, instance_id: str, tags: dict[str, str]) -> Host:
        workdir = self.workdir / instance_id
        workdir.mkdir(parents=True, exist_ok=True)
        host = Host(
            instance_id=instance_id,
            session_id=tags.get("dcvfleet:session-id", ""),
            secret_arn=tags.get("dcvfleet:secret-arn", ""),
            os_type=tags.get("dcvfleet:os", "linux"),
            workdir=workdir,
            agent_enabled=self.agent_enabled,
            perf_language=self.perf_language,
        )
        host.power_cycle_dcv()
        host.write_shims()
        host.write_activity()
        host.write_proc_stat()
        host.timer = threading.Timer(self.boot_delay, self._booted, args=(host,))
        host.timer.daemon = True
        host.timer.start()
        return host

    def _booted(self, host: Host) -> None:
        if host.os_type == "windows":
            host.start_console_session()  # DCV Server starts it at boot
        with self._lock:
            if self.hosts.get(host.instance_id) is not host or host.state != "running":
                return
            host.booted = True
        if host.agent_enabled:
            self._start_agent(host)

    def _agent_config(self, host: Host, dcv: list[str]) -> dict[str, Any]:
        config: dict[str, Any] = {
            "eventBusName": self.event_bus_name,
            "region": self.region,
            "instanceId": host.instance_id,
            "sessionId": host.session_id,
            "secretArn": host.secret_arn,
            "platform": host.platform,
            "dcvCommand": dcv,
            "manageUser": host.platform in ("container", "windows"),
            "endpointUrl": self.endpoint_url,
            "sendBaseDelaySeconds": 0.2,
            "readyTimeoutSeconds": 30,
            "resumeGapSeconds": RESUME_GAP_SECONDS,
            "cpuStatPath": str(host.proc_stat),
            "nvidiaSmiCommand": [str(host.bin_dir / "nvidia-smi")],
        }
        if self.settings_parameter:
            config["settingsParameter"] = self.settings_parameter
        config.update(host.agent_settings)
        if self.agent_keys is None:
            return config
        unknown = sorted(set(config) - self.agent_keys - self._warned_keys)
        if unknown:
            self._warned_keys.update(unknown)
            log.warning("the agent does not know config key(s) %s: not written", unknown)
        return {k: v for k, v in config.items() if k in self.agent_keys}

    def _start_agent(self, host: Host) -> None:
        dcv = [sys.executable, "-S", str(SIM_DCV)]
        config = self._agent_config(host, dcv)
        (host.workdir / "agent.json").write_text(json.dumps(config, indent=2))
        env = {
            "DCVFLEET_AGENT_CONFIG": str(host.workdir / "agent.json"),
            sim_dcv.STATE_ENV: str(host.state_file),
            "SIM_GPU_STATE": str(host.activity_file),
        }
        spec: dict[str, Any] = {"log": str(host.workdir / "agent.log"), "env": env}
        # its useradd, chpasswd and id (a container's) or powershell.exe and typeperf (a Windows
        # host's) come first on PATH
        if host.job_id is not None or host.os_type == "windows":
            path = self._base_environ.get("PATH", os.defpath)
            env.update(PATH=f"{host.bin_dir}{os.pathsep}{path}")
            env[sim_users.STATE_ENV] = str(host.users_file)
        if host.os_type == "windows":
            env[sim_typeperf.LANGUAGE_ENV] = host.perf_language
            names = sim_typeperf.NAMES[host.perf_language]
            spec["perfNames"] = {str(index): name for index, name in names.items()}
        with self._lock:
            if self.hosts.get(host.instance_id) is not host or host.state != "running":
                return
            if self._stop.is_set():
                return
            self._fill_spares()
            host.process = self._spares.pop(0) if self._spares else self._spawn_agent()
            self._fill_spares()
            if host.process.stdin is None:
                raise RuntimeError("a spare agent process has no stdin")
            host.process.stdin.write(json.dumps(spec).encode() + b"\n")
            host.process.stdin.close()

    def _hibernate(self, host: Host) -> None:
        """Freeze the agent's process group; keep the DCV sessions, drop the clients."""
        if host.timer:
            host.timer.cancel()
        if host.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(host.process.pid, signal.SIGSTOP)
        host.advance()
        host.state, host.booted, host.frozen = "stopped", False, True
        host.set_connections(0)
        host.cpu_percent = host.gpu_percent = host.encoder_percent = 0.0
        host.write_activity()

    def _resume(self, host: Host) -> None:
        """Running again: after the boot delay its agent's processes carry on (SIGCONT)."""
        host.state, host.frozen = "running", False
        host.write_proc_stat()

        def thaw() -> None:
            with self._lock:
                if self.hosts.get(host.instance_id) is not host or host.state != "running":
                    return
                host.booted = True
                if host.process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(host.process.pid, signal.SIGCONT)

        host.timer = threading.Timer(self.boot_delay, thaw)
        host.timer.daemon = True
        host.timer.start()

    def set_hibernation(self, instance_id: str, enabled: bool) -> dict[str, Any] | None:
        """Whether a stop of this host hibernates it (see the module's docstring)."""
        with self._lock:
            host = self._running(instance_id)
            if host is None:
                return None
            host.hibernation = enabled
            return host.view()

    def close_session(self, instance_id: str) -> dict[str, Any] | None:
        """The user logs out: the clients leave, and DCV closes the host's sessions."""
        with self._lock:
            host = self._running(instance_id)
            if host is None:
                return None
            host.set_connections(0)

            def close(state: dict[str, Any]) -> None:
                state["sessions"] = []

            sim_dcv.update_state(str(host.state_file), close)
            return host.view()

    def _power_off(self, host: Host) -> None:
        self._halt(host)
        host.advance()
        host.state, host.booted = "stopped", False
        host.cpu_percent = host.gpu_percent = host.encoder_percent = 0.0
        host.power_cycle_dcv()
        host.write_activity()

    @classmethod
    def _halt(cls, host: Host) -> None:
        if host.timer:
            host.timer.cancel()
        if host.process:
            cls._end(host.process)

    @staticmethod
    def _end(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # a hibernated host's agent is frozen
                os.killpg(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin and not process.stdin.closed:
            process.stdin.close()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            with self._lock:
                running = [h for h in self.hosts.values() if h.state == "running"]
                for host in running:
                    with contextlib.suppress(OSError):  # a workdir removed under us
                        host.advance()

    # -- Run Command (emulator.ssm.SSM_RUN_COMMAND) ----------------------------------------------
    def managed_node(self, instance_id: str) -> ManagedNode | None:
        """A simulated host as SSM sees it; its SSM Agent is online once it has booted."""
        with self._lock:
            host = self.hosts.get(instance_id)
            if host is None:
                return None
            # Run Command on a container's instance runs on the ECS host, which has no dcv but
            # docker (local/sim_docker.py), whose exec runs in the container
            environ = (
                host.ecs_host_environ(self._base_environ)
                if host.job_id is not None
                else host.shell_environ(self._base_environ)
            )
            return ManagedNode(
                platform="Windows" if host.os_type == "windows" else "Linux",
                online=host.state == "running" and host.booted and host.ssm_agent,
                environ=environ,
                cwd=str(host.workdir),
            )

    # -- containers (local.containers) -----------------------------------------------------------
    def run_container(
        self,
        instance_id: str,
        job_id: str,
        agent_settings: dict[str, Any],
        task_arn: str = "",
        gl_renderer: str = "nvidia",
    ) -> Host:
        """A Batch job's container starts on its instance: a fresh workdir
        (``<state-dir>/hosts/<instance-id>/``: one container per instance), no DCV session, an
        idle CPU and GPU, and (when agents are enabled) the real agent with ``platform``
        ``container`` and the ``agent_settings`` (``sessionId``, ``secretArn``, ...) at once."""
        workdir = self.workdir / instance_id
        workdir.mkdir(parents=True, exist_ok=True)
        host = Host(
            instance_id=instance_id,
            session_id=str(agent_settings.get("sessionId", "")),
            secret_arn=str(agent_settings.get("secretArn", "")),
            os_type="linux",
            workdir=workdir,
            agent_enabled=self.agent_enabled,
            booted=True,
            job_id=job_id,
            agent_settings=dict(agent_settings),
            gl_renderer=gl_renderer,
        )
        host.users_file.unlink(missing_ok=True)
        host.power_cycle_dcv()
        host.write_shims()
        host.write_docker_state(task_arn, self._base_environ)
        host.write_activity()
        host.write_proc_stat()
        with self._lock:
            self.hosts[instance_id] = host
        if host.agent_enabled:
            self._start_agent(host)
        return host

    def end_container(self, instance_id: str) -> int | None:
        """The container stops (SIGTERM to its processes) and is gone; its agent's exit code, or
        None when its agent was not running."""
        with self._lock:
            host = self.hosts.get(instance_id)
            if host is None or host.job_id is None:
                return None
            del self.hosts[instance_id]
            running = host.process is not None and host.process.poll() is None
        self._power_off(host)
        if not running or host.process is None:
            return None
        return host.process.returncode

    # -- control -------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [h.view() for h in self.hosts.values()]

    def _running(self, instance_id: str) -> Host | None:
        host = self.hosts.get(instance_id)
        if host is not None and host.state != "running":
            raise HostStateError(f"host {instance_id} is {host.state}")
        return host

    def set_connections(self, instance_id: str, count: int) -> dict[str, Any] | None:
        """None when there is no such host; HostStateError when it is not running."""
        with self._lock:
            host = self._running(instance_id)
            if host is None:
                return None
            host.set_connections(count)
            return host.view()

    def set_agent(
        self, instance_id: str, running: bool | None = None, ssm_agent: bool | None = None
    ) -> dict[str, Any] | None:
        """End the host's agent (as if it crashed) or start a fresh one (which reports Host Ready,
        as at boot); take the host's SSM Agent off line (Run Command waits, then times out) or
        back on line. The host itself keeps running."""
        start = False
        with self._lock:
            host = self._running(instance_id)
            if host is None:
                return None
            if ssm_agent is not None:
                host.ssm_agent = ssm_agent
            if running is False:
                host.agent_enabled, host.agent_stopped = False, True
                if host.process is not None:
                    self._end(host.process)
            elif running is True:
                host.agent_enabled, host.agent_stopped = True, False
                alive = host.process is not None and host.process.poll() is None
                start = host.booted and not alive
        if start:
            self._start_agent(host)
        with self._lock:
            return host.view()

    def set_activity(self, instance_id: str, activity: dict[str, float]) -> dict[str, Any] | None:
        """Set the busiest core's and the GPU's utilisation (%), from now on."""
        with self._lock:
            host = self._running(instance_id)
            if host is None:
                return None
            host.advance()  # what ran until now ran at the old utilisation
            host.cpu_percent = float(activity.get("cpuPercent", host.cpu_percent))
            host.gpu_percent = float(activity.get("gpuPercent", host.gpu_percent))
            host.encoder_percent = float(activity.get("encoderPercent", host.encoder_percent))
            host.write_activity()
            return host.view()


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
    * ``POST /boot-delay {"seconds": S}`` (0-600): how long hosts and containers launched from
      now on take to boot (``--boot-delay`` at start-up).
    * ``POST /windows-counters {"language": "en" | "de"}``: the language of the performance
      counter names (``local/sim_typeperf.py``) of Windows hosts booted from now on.
    * ``GET /batch/capacity``, ``POST /batch/capacity {"instances": N | null}``: how many more
      GPU instances the Batch compute environments can launch (each launch takes one; null, the
      default, for no limit). At 0 a submitted job stays RUNNABLE (``local.containers``).
    * ``GET /jobs``: every Batch job with a container placed (``local.containers``).
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
        if method == "GET" and path in ("/batch/capacity", "/jobs"):
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
        if method == "POST" and path == "/windows-counters":
            language = data.get("language") if isinstance(data, dict) else None
            if language not in sim_typeperf.NAMES:
                return 400, {"message": f"language: one of {sorted(sim_typeperf.NAMES)}"}
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
        seconds = data.get("seconds") if isinstance(data, dict) else None
        if (
            not isinstance(seconds, (int, float))
            or isinstance(seconds, bool)
            or not 0 <= seconds <= 600
        ):
            return 400, {"message": "seconds: a number from 0 to 600 is required"}
        self.simulator.boot_delay = float(seconds)
        if self.jobs is not None:
            self.jobs.boot_delay = float(seconds)
        return 200, {"seconds": float(seconds)}

    def _batch_view(self, path: str) -> tuple[int, Any]:
        if self.jobs is None:
            return 404, {"message": "no Batch job simulator in this stack"}
        if path == "/jobs":
            return 200, {"jobs": self.jobs.list()}
        return 200, {"instances": self.jobs.capacity}

    def _set_capacity(self, data: Any) -> tuple[int, Any]:
        if self.jobs is None:
            return 404, {"message": "no Batch job simulator in this stack"}
        if not isinstance(data, dict):
            return 400, {"message": "body: a JSON object is required"}
        unknown = sorted(set(data) - {"instances"})
        if unknown:
            return 400, {"message": f"{unknown[0]}: unknown field (only 'instances')"}
        instances = data.get("instances", "missing")
        valid = instances is None or (
            isinstance(instances, int) and not isinstance(instances, bool) and instances >= 0
        )
        if not valid:
            return 400, {"message": "instances: a non-negative integer, or null for no limit"}
        self.jobs.set_capacity(instances)
        return 200, {"instances": instances}

    def _exit_job(self, job_id: str, data: Any) -> tuple[int, Any]:
        from local.containers import JobStateError

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
        if not isinstance(data, dict):
            return 400, {"message": "body: a JSON object is required"}
        unknown = sorted(set(data) - {"rule"})
        if unknown:
            return 400, {"message": f"{unknown[0]}: unknown field (only 'rule')"}
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
