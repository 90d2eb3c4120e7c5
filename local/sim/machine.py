"""A simulated machine: what a host (``local.sim.hosts``) or a Batch job's container
(``local.sim.containers``) is made of, on disk, for the real agent and for Run Command.

Each host's workdir holds: ``dcv-state.json`` (``local/sim/dcv.py``'s state), ``proc-stat`` (a
``/proc/stat``: an aggregate ``cpu`` line and ``cpu0``..``cpu3`` lines of USER_HZ counters that
advance with wall time from the simulator's ticker, so that the busiest core, ``cpu0``, shows
the set CPU %), ``activity.json`` (what ``local/sim/nvidia_smi.py`` reports), ``bin/dcv`` and
``bin/nvidia-smi`` (shims: the commands Run Command's shell finds first on ``PATH``; a Windows
host also has ``bin/typeperf`` (``local/sim/typeperf.py``, its counter names in the host's
``perfLanguage``, chosen by ``POST /windows-counters`` for hosts booted after it) and
``bin/powershell.exe``, which runs the agent's account script against ``users.json``
(``local/sim/users.py``: New-LocalUser refuses a name over 20 characters)),
``agent.json``, ``agent.log``, and ``ssm/<command-id>/<step>/`` (each Run Command script and its
output).


What the job simulator needs of the host simulator (``ContainerHosts``) is declared here too, so
that ``local.sim.containers`` depends on this module and never on ``local.sim.hosts``
(docs/architecture.md, local stack).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from local.sim import dcv, docker, glxinfo, nvidia_smi, typeperf, users

#: The stand-ins, run by path (``python -S <script>``, stdlib only) from a host's ``bin/`` shims.
SIM_DCV = Path(dcv.__file__)
SIM_NVIDIA_SMI = Path(nvidia_smi.__file__)
SIM_TYPEPERF = Path(typeperf.__file__)
SIM_USERS = Path(users.__file__)
SIM_DOCKER = Path(docker.__file__)
SIM_GLXINFO = Path(glxinfo.__file__)
ECS_TASK_LABEL = "com.amazonaws.ecs.task-arn"
#: The tag AWS Batch puts on the instances of a managed compute environment: their containers
#: are the jobs' (``local.sim.containers``), not hosts of their own.
BATCH_INSTANCE_TAG = "aws:batch:compute-environment"
#: The simulated CPU: cores, and the kernel's clock ticks per second in /proc/stat.
CORES = 4
USER_HZ = 100
#: /proc/stat's per-core fields, in order.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest")


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
    job_id: str | None = None  # a Batch job's container (local.sim.containers), not a host
    agent_settings: dict[str, Any] = field(default_factory=dict)  # agent.json keys it sets
    gl_renderer: str = "nvidia"  # a container's session's OpenGL (local/sim/glxinfo.py)
    perf_language: str = "en"  # a Windows host's counter names (local/sim/typeperf.py)

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
        dcv.update_state(str(self.state_file), lambda s: dcv.set_connections(s, count))

    def start_console_session(self) -> None:
        """What DCV Server does on a Windows host at boot: a console session, owned by the
        Administrator (the agent finds it, it does not create one)."""
        args = dcv.parser().parse_args(["create-session", "--owner", "Administrator", "console"])

        def boot(state: dict[str, Any]) -> None:
            state["platform"] = "windows"
            dcv.change(args, state)

        dcv.update_state(str(self.state_file), boot)

    def power_cycle_dcv(self) -> None:
        """A halted (or freshly booted) machine: no DCV session, no client connected."""

        def clear(state: dict[str, Any]) -> None:
            state["sessions"] = []
            dcv.set_connections(state, 0)

        dcv.update_state(str(self.state_file), clear)

    def write_shims(self) -> None:
        """``dcv`` and ``nvidia-smi`` on this host's PATH, bound to its own state files."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        python = shlex.quote(sys.executable)
        shims = {
            "dcv": (dcv.STATE_ENV, self.state_file, SIM_DCV, ""),
            "nvidia-smi": ("SIM_GPU_STATE", self.activity_file, SIM_NVIDIA_SMI, ""),
        }
        # the agent makes the desktop user in a container and on a Windows host
        user_commands = {"windows": ("powershell.exe",)}.get(
            self.os_type, ("id", "useradd", "chpasswd")
        )
        if self.job_id is not None or self.os_type == "windows":
            for command in user_commands:
                shims[command] = (users.STATE_ENV, self.users_file, SIM_USERS, command)
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
        write_atomically(self.workdir / "docker.json", json.dumps([container]))

    def ecs_host_environ(self, base: dict[str, str]) -> dict[str, str]:
        """A Run Command script's environment on the ECS host of a container."""
        return {
            **base,
            "PATH": f"{self.workdir / 'ecs-host-bin'}{os.pathsep}{base.get('PATH', os.defpath)}",
            docker.STATE_ENV: str(self.workdir / "docker.json"),
        }

    def shell_environ(self, base: dict[str, str]) -> dict[str, str]:
        """The environment a Run Command script runs in on this host."""
        return {
            **base,
            "PATH": f"{self.bin_dir}{os.pathsep}{base.get('PATH', os.defpath)}",
            dcv.STATE_ENV: str(self.state_file),
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
        write_atomically(self.activity_file, json.dumps(activity))

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
        write_atomically(self.proc_stat, "\n".join(lines) + "\n")

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
        sessions = self.dcv_state()
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
            "connections": int(sessions.get("connections", 0)),
            "lastDisconnection": sessions.get("lastDisconnection") or None,
            "dcvSessions": [s.get("id") for s in sessions.get("sessions", [])],
            "notices": sessions.get("notices", []),
            "cpuPercent": self.cpu_percent,
            "gpuPercent": self.gpu_percent,
            "encoderPercent": self.encoder_percent,
            "workdir": str(self.workdir),
            "log": str(self.workdir / "agent.log"),
        }


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Container:
    """A Batch job's container, as the job simulator asks the host simulator to run it: its
    agent's settings (``sessionId``, ``secretArn``, ...), its ECS task and its session's OpenGL
    renderer (``local/sim/glxinfo.py``)."""

    job_id: str
    agent_settings: dict[str, Any]
    task_arn: str = ""
    gl_renderer: str = "nvidia"


class ContainerHosts(Protocol):
    """What the job simulator asks of the host simulator: its emulator and boot delay, and to
    run and end a job's container on an instance (``HostSimulator``)."""

    endpoint_url: str
    region: str
    boot_delay: float

    def run_container(self, instance_id: str, container: Container) -> Host: ...

    def end_container(self, instance_id: str) -> int | None: ...


def own_idle_timeout(value: str) -> dict[str, Any]:
    """The agent setting a desktop's own idle timeout makes (its profile's): what a real host's
    agent reads from its ``dcvfleet:idle-timeout-seconds`` tag through instance metadata, and a
    container's from DCVFLEET_IDLE_TIMEOUT_SECONDS; the simulated agents are given it in their
    config, as they are given their session. Nothing for a desktop made before profiles."""
    return {"idleTimeoutSeconds": int(value)} if value.isdigit() and int(value) > 0 else {}
