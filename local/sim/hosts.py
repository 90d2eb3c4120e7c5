"""Simulated hosts: each fleet instance the emulator runs gets the real agent against a simulated
``dcv``, ``nvidia-smi`` and ``/proc/stat``, after a boot delay; ``control_url`` drives them
(docs/architecture.md, local stack).

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
* A stop and a start that both came between two looks at EC2 (a resume soon after a stop, while
  listing many instances is slow) show as a newer ``LaunchTime`` on a running instance: the host
  halts and boots again, as the machine did (a hibernating one too: its agent says Host Ready).
* A warm pool host (tagged ``dcvfleet:pool``, no ``dcvfleet:session-id``) boots as any other, but
  its agent waits: it starts, bound to its session, when a claim puts the session's tags on the
  instance (CreateTags; the emulator tells the simulator at once), as a real pool host's agent
  polls its instance metadata tags. A running pool host is booted already: its agent starts
  without a second boot delay. Once booted, an unclaimed pool host is tagged
  ``dcvfleet:pool-ready``, as a real one's waiting agent tags its own instance (a pool that
  waits stopped stops only such hosts); its agent is off while it waits, so the simulator puts
  the tag for it.

An instance AWS Batch launched (tagged ``aws:batch:compute-environment``) is an ECS host, not a
desktop host: it runs no agent of its own. Its desktop is the container of the Batch job placed
on it, which ``local.sim.containers`` starts and ends with the job (``run_container``,
``end_container``): the same simulated ``dcv``, ``nvidia-smi`` and ``/proc/stat``, plus ``id``,
``useradd`` and ``chpasswd`` (``local/sim/users.py``, state in ``users.json``), with the real
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

What a host is made of (its workdir, ``bin/`` shims, ``/proc/stat``) is ``local.sim.machine``;
``control_url``'s routes are ``local.sim.control``.

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
lookup from the host's ``typeperf.NAMES`` table.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import boto3

from local.emulator.hooks import ManagedNode, SimulatorHooks
from local.emulator.imagebuilder import is_host_image
from local.sim import dcv, typeperf, users
from local.sim.machine import BATCH_INSTANCE_TAG, SIM_DCV, Container, Host, own_idle_timeout

#: The agent's package, which each host runs (the repository's ``agent/``).
AGENT_DIR = Path(__file__).resolve().parents[2] / "agent"
log = logging.getLogger("local.sim.hosts")

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
if names is not None:  # a Windows host's PdhLookupPerfNameByIndexW (typeperf.NAMES)
    import dcvfleet_agent.signals as signals
    signals.processor_counter.__defaults__ = (lambda index: names.get(str(index)),)
sys.exit(agent.main())
"""
SPARE_AGENTS = 2
#: AWS's figures for the two boots, in seconds: the defaults of ``--boot-delay`` and
#: ``--baked-boot-delay`` when a stack models AWS (``python -m local --aws-boot-delays``).
#: A host from a baked image is a streaming instance from a prebuilt image: AppStream 2.0's
#: On-Demand fleet instances take "one to two minutes" (FleetType, Amazon AppStream 2.0 API
#: Reference, https://docs.aws.amazon.com/appstream2/latest/APIReference/API_Fleet.html).
BAKED_BOOT_SECONDS = 90.0
#: A bare host also installs a desktop and DCV at first boot: Research and Engineering Studio,
#: which launches its DCV desktops that way, quotes 10 to 15 minutes for a new desktop.
BARE_BOOT_SECONDS = 600.0
#: How often the simulated /proc/stat advances.
TICK_SECONDS = 0.5
#: After listing the fleet's instances, the watch rests this many times as long as it took.
WATCH_REST = 2
#: The instance states the watch lists: every one but ``terminated``.
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
#: How many seconds more than a sample interval between two samples mean, to a simulated host's
#: agent, that its host slept (the agent's default, 120 s, is for real hosts).
RESUME_GAP_SECONDS = 8
#: A desktop's session (its agent's identity) and a warm pool host's pool, as instance tags.
SESSION_TAG = "dcvfleet:session-id"
POOL_TAG = "dcvfleet:pool"
#: What a waiting pool host's agent tags its own instance with once it runs (the host is made).
POOL_READY_TAG = "dcvfleet:pool-ready"


class Seen(NamedTuple):
    """A fleet instance as one DescribeInstances shows it."""

    state: str
    tags: dict[str, str]
    #: EC2's LaunchTime, "the time that the instance was last launched": a start sets it
    #: (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html; the
    #: emulator's EC2_LAUNCH_TIME)
    launched: str


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
        baked_boot_delay: float | None = None,
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
        # a host from a baked image (local.emulator.imagebuilder): by default the bare delay
        # scaled as AWS's figures scale (BAKED_BOOT_SECONDS / BARE_BOOT_SECONDS)
        self.baked_boot_delay = baked_boot_delay
        self.poll_interval = poll_interval
        self.settings_parameter = settings_parameter
        self.tick_seconds = tick_seconds
        self.spare_agents = spare_agents
        self.agent_enabled = True
        self.perf_language = "en"  # the counter names of Windows hosts booted from now on
        self.agent_keys = agent_config_keys()
        self._warned_keys: set[str] = set()
        self.hosts: dict[str, Host] = {}
        #: Warm pool hosts with no session yet: booted, their agent not started until a claim
        #: puts the session's tags on the instance (a real one polls its tags: identity.py)
        self._unbound: set[str] = set()
        #: Each running instance's LaunchTime when last seen (EC2 sets it at every start)
        self._launched: dict[str, str] = {}
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
    def fleet_instances(self) -> dict[str, Seen]:
        """Every fleet instance EC2 knows that is not terminated: its state, tags and LaunchTime
        (every page: EC2 answers 100 reservations a page, and a host past the first 100 would
        never boot: bench.load). A host whose instance is not listed is gone (``_follow``).
        Terminated instances, most of those a long-lived stack has made, are left out by EC2's
        own ``instance-state-name`` filter
        (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html):
        listing them cost seconds on a loaded machine, and the watch rests a multiple of that,
        so a started instance's host booted that much later."""
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": f"tag:{self.tag_key}", "Values": [self.tag_value]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )
        return {
            i["InstanceId"]: Seen(
                i["State"]["Name"],
                {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                str(i.get("LaunchTime", "")),
            )
            for page in pages
            for r in page["Reservations"]
            for i in r["Instances"]
        }

    def look(self) -> float:
        """One look at EC2, as the watch loop takes them: every host follows its instance.
        Returns the seconds the listing took."""
        started = time.monotonic()
        try:
            instances = self.fleet_instances()
        except Exception:  # the emulator is shutting down
            instances = None
        listed = time.monotonic() - started
        if instances is not None:
            with self._lock:
                if not self._stop.is_set():
                    self._follow(instances)
        return listed

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._changed.clear()  # a change from here on wakes the next wait at once
            listed = self.look()
            # listing hundreds of instances takes a while: rest a multiple of that, so that a
            # burst of changes does not keep the emulator listing them (bench.load)
            self._stop.wait(WATCH_REST * listed)
            # woken at once by an instance change; the interval is only a safety net
            self._changed.wait(self.poll_interval)

    def _follow(self, instances: dict[str, Seen]) -> None:
        """Make each host's power state its instance's EC2 state."""
        for instance_id, (state, tags, launched) in instances.items():
            if BATCH_INSTANCE_TAG in tags:
                continue  # an ECS container instance: its containers come with their jobs
            host = self.hosts.get(instance_id)
            if state == "running":
                restarted = self._launched.get(instance_id, launched) != launched
                self._launched[instance_id] = launched
                if restarted and host is not None and host.state == "running":
                    # stopped and started again between two looks (a resume soon after a stop,
                    # while listing is slow): the machine went down and came back, so its host
                    # does too, or its agent would never say Host Ready for the start
                    log.info("host %s was stopped and started since the last look", instance_id)
                    self._power_off(host)
            if state == "running" and host is not None and host.frozen:
                self._resume(host)
            elif state == "running" and (host is None or host.state != "running"):
                self.hosts[instance_id] = self._boot(instance_id, tags)
            elif (
                host is not None
                and state == "running"
                and instance_id in self._unbound
                and SESSION_TAG in tags
            ):
                self._bind(host, tags)
            elif state in ("stopping", "stopped") and host is not None and host.state == "running":
                if host.hibernation and host.process is not None and host.process.poll() is None:
                    self._hibernate(host)
                else:
                    self._power_off(host)
        for instance_id in [i for i, h in self.hosts.items() if h.job_id is None]:
            state = instances[instance_id].state if instance_id in instances else "terminated"
            if state in ("shutting-down", "terminated"):
                self._launched.pop(instance_id, None)
                self._unbound.discard(instance_id)
                self._power_off(self.hosts.pop(instance_id))

    def _bind(self, host: Host, tags: dict[str, str]) -> None:
        """A warm pool host claimed: its session's tags are on it now. Its agent starts at once
        (the host booted long ago), or when it has booted."""
        self._unbound.discard(host.instance_id)
        host.session_id = tags[SESSION_TAG]
        host.secret_arn = tags.get("dcvfleet:secret-arn", "")
        host.agent_settings = own_idle_timeout(tags.get("dcvfleet:idle-timeout-seconds", ""))
        if host.booted and host.agent_enabled and host.process is None:
            self._start_agent(host)

    def _boot(self, instance_id: str, tags: dict[str, str]) -> Host:
        if POOL_TAG in tags and SESSION_TAG not in tags:
            self._unbound.add(instance_id)
        else:
            self._unbound.discard(instance_id)
        workdir = self.workdir / instance_id
        workdir.mkdir(parents=True, exist_ok=True)
        host = Host(
            instance_id=instance_id,
            session_id=tags.get(SESSION_TAG, ""),
            secret_arn=tags.get("dcvfleet:secret-arn", ""),
            os_type=tags.get("dcvfleet:os", "linux"),
            workdir=workdir,
            agent_enabled=self.agent_enabled,
            perf_language=self.perf_language,
            agent_settings=own_idle_timeout(tags.get("dcvfleet:idle-timeout-seconds", "")),
        )
        host.power_cycle_dcv()
        host.write_shims()
        host.write_activity()
        host.write_proc_stat()
        host.timer = threading.Timer(self._boot_seconds(instance_id), self._booted, args=(host,))
        host.timer.daemon = True
        host.timer.start()
        return host

    def boot_seconds(self, baked: bool) -> float:
        """How long a host boots: from a bare image (first-boot install) or a baked one."""
        if not baked:
            return self.boot_delay
        if self.baked_boot_delay is not None:
            return self.baked_boot_delay
        return self.boot_delay * BAKED_BOOT_SECONDS / BARE_BOOT_SECONDS

    def _boot_seconds(self, instance_id: str) -> float:
        if self.boot_delay == 0 and not self.baked_boot_delay:
            return 0.0  # no need to ask EC2 which image it is
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            image = reservations[0]["Instances"][0]["ImageId"]
        except Exception:  # the instance is gone already: it never boots anyway
            return self.boot_delay
        return self.boot_seconds(is_host_image(self._ec2, image))

    def _booted(self, host: Host) -> None:
        if host.os_type == "windows":
            host.start_console_session()  # DCV Server starts it at boot
        with self._lock:
            if self.hosts.get(host.instance_id) is not host or host.state != "running":
                return
            host.booted = True
            unbound = host.instance_id in self._unbound
        if host.agent_enabled and not unbound:
            self._start_agent(host)
        elif host.agent_enabled:
            self._mark_made(host)

    def _mark_made(self, host: Host) -> None:
        """A waiting pool host is made: a real one's agent, which runs once the first boot has
        installed it, tags its own instance POOL_READY_TAG (agent/dcvfleet_agent/identity.py).
        This simulator starts no agent on a pool host until a claim, so it makes that same
        CreateTags call for it, once booted."""
        try:
            self._ec2.create_tags(
                Resources=[host.instance_id], Tags=[{"Key": POOL_READY_TAG, "Value": "true"}]
            )
        except Exception as exc:  # terminated meanwhile, or the emulator shutting down
            log.warning("pool host %s not tagged made: %s", host.instance_id, exc)

    def _agent_config(self, host: Host, dcv_command: list[str]) -> dict[str, Any]:
        config: dict[str, Any] = {
            "eventBusName": self.event_bus_name,
            "region": self.region,
            "instanceId": host.instance_id,
            "sessionId": host.session_id,
            "secretArn": host.secret_arn,
            "platform": host.platform,
            "dcvCommand": dcv_command,
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
        dcv_command = [sys.executable, "-S", str(SIM_DCV)]
        config = self._agent_config(host, dcv_command)
        (host.workdir / "agent.json").write_text(json.dumps(config, indent=2))
        env = {
            "DCVFLEET_AGENT_CONFIG": str(host.workdir / "agent.json"),
            dcv.STATE_ENV: str(host.state_file),
            "SIM_GPU_STATE": str(host.activity_file),
        }
        spec: dict[str, Any] = {"log": str(host.workdir / "agent.log"), "env": env}
        # its useradd, chpasswd and id (a container's) or powershell.exe and typeperf (a Windows
        # host's) come first on PATH
        if host.job_id is not None or host.os_type == "windows":
            path = self._base_environ.get("PATH", os.defpath)
            env.update(PATH=f"{host.bin_dir}{os.pathsep}{path}")
            env[users.STATE_ENV] = str(host.users_file)
        if host.os_type == "windows":
            env[typeperf.LANGUAGE_ENV] = host.perf_language
            names = typeperf.NAMES[host.perf_language]
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

            dcv.update_state(str(host.state_file), close)
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
            # docker (local/sim/docker.py), whose exec runs in the container
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

    # -- containers (local.sim.containers) -------------------------------------------------------
    def run_container(self, instance_id: str, container: Container) -> Host:
        """A Batch job's container starts on its instance: a fresh workdir
        (``<state-dir>/hosts/<instance-id>/``: one container per instance), no DCV session, an
        idle CPU and GPU, and (when agents are enabled) the real agent with ``platform``
        ``container`` and the container's ``agent_settings`` (``sessionId``, ``secretArn``, ...)
        at once."""
        agent_settings = container.agent_settings
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
            job_id=container.job_id,
            agent_settings=dict(agent_settings),
            gl_renderer=container.gl_renderer,
        )
        host.users_file.unlink(missing_ok=True)
        host.power_cycle_dcv()
        host.write_shims()
        host.write_docker_state(container.task_arn, self._base_environ)
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
