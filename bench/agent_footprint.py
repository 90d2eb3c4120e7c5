"""The host agent's footprint while it watches idleness: memory (RSS) and CPU, at default intervals.

    python -m bench.agent_footprint                  # 60 s window after Host Ready
    python -m bench.agent_footprint --seconds 300 --settings

Runs the real agent (`python -m dcvfleet_agent`, Linux only: it reads /proc) offline: `dcv` is
local/sim/dcv.py, nvidia-smi is bench/fake_nvidia_smi.sh, and EventBridge (and SSM, for
--settings) is a small local HTTP server that accepts every PutEvents. Figures: peak RSS
(VmHWM), steady RSS (VmRSS sampled every second over the window), and CPU as a percentage of one
core from utime+stime in /proc/<pid>/stat, for the agent alone and with the subprocesses it
waits for (cutime+cstime: every `dcv` and nvidia-smi it runs). Targets: <= 30 MB RSS, <= 1 % of
one core for the agent. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from local.http import LocalServer, Reply

ROOT = Path(__file__).resolve().parent.parent
SIM_DCV = ROOT / "local" / "sim" / "dcv.py"
FAKE_NVIDIA_SMI = Path(__file__).resolve().parent / "fake_nvidia_smi.sh"
INSTANCE_ID = "i-0123456789abcdef0"
SESSION_ID = "7d0f6c1e-3b8a-4f2e-9c55-0a1b2c3d4e5f"
SETTINGS_PARAMETER = "/dcvfleet/agent-settings"
AMZ_JSON = {"Content-Type": "application/x-amz-json-1.1"}


class FakeAwsEndpoint(LocalServer):
    """EventBridge PutEvents (every entry accepted and kept) and SSM GetParameter, JSON 1.1."""

    def __init__(self, parameters: dict[str, str] | None = None) -> None:
        super().__init__()
        self.parameters = dict(parameters or {})
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self.arrived = threading.Condition(self.lock)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        target = headers.get("x-amz-target", "")
        request = json.loads(body or b"{}")
        if target == "AWSEvents.PutEvents":
            entries = request.get("Entries", [])
            with self.arrived:
                self.entries.extend(entries)
                self.arrived.notify_all()
            reply = {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in entries]}
            return 200, dict(AMZ_JSON), json.dumps(reply).encode()
        if target == "AmazonSSM.GetParameter" and request.get("Name") in self.parameters:
            name = request["Name"]
            parameter = {"Name": name, "Type": "String", "Value": self.parameters[name]}
            return 200, dict(AMZ_JSON), json.dumps({"Parameter": parameter}).encode()
        error = {"__type": "ParameterNotFound" if "SSM" in target else "UnknownOperationException"}
        return 400, dict(AMZ_JSON), json.dumps(error).encode()

    def details(self, detail_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(e["Detail"]) for e in self.entries if e["DetailType"] == detail_type]

    def wait_for(self, detail_type: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.details(detail_type)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self.arrived.wait(left):
                    return len(self.details(detail_type)) >= count
        return True


def agent_config(workdir: Path, endpoint_url: str, **overrides: Any) -> dict[str, Any]:
    """A host's agent.json for an offline run: simulated dcv and nvidia-smi, fake endpoints."""
    return {
        "eventBusName": "bench",
        "region": "us-east-1",
        "instanceId": INSTANCE_ID,
        "sessionId": SESSION_ID,
        "platform": "linux",
        "dcvCommand": [sys.executable, "-S", str(SIM_DCV)],
        "nvidiaSmiCommand": ["sh", str(FAKE_NVIDIA_SMI)],
        "manageUser": False,
        "endpointUrl": endpoint_url,
        "readyTimeoutSeconds": 30,
        **overrides,
    }


def start_agent(
    workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m dcvfleet_agent` with this agent.json; its JSON log goes to agent.log."""
    (workdir / "agent.json").write_text(json.dumps(config, indent=2))
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT / "agent"),
        "DCVFLEET_AGENT_CONFIG": str(workdir / "agent.json"),
        "SIM_DCV_STATE": str(workdir / "dcv-state.json"),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **(env or {}),
    }
    with open(workdir / "agent.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dcvfleet_agent"], env=environment, stdout=log, stderr=log
        )


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime+stime, cutime+cstime) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return utime + stime, cutime + cstime


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def measure(seconds: float, settings: bool) -> dict[str, Any]:
    parameters = {SETTINGS_PARAMETER: json.dumps({"busyProcesses": ["blender"]})}
    endpoint = FakeAwsEndpoint(parameters if settings else None)
    endpoint.start()
    with tempfile.TemporaryDirectory(prefix="agent-footprint-") as tmp:
        workdir = Path(tmp)
        overrides = {"settingsParameter": SETTINGS_PARAMETER} if settings else {}
        process = start_agent(workdir, agent_config(workdir, endpoint.address, **overrides))
        try:
            if not endpoint.wait_for("Host Ready", 1, 60):
                raise SystemExit(f"no Host Ready; see {workdir / 'agent.log'}")
            time.sleep(1)  # settle after the ready phase
            hz = os.sysconf("SC_CLK_TCK")
            start, (own0, children0) = time.monotonic(), cpu_ticks(process.pid)
            rss: list[int] = []
            while time.monotonic() - start < seconds:
                rss.append(memory_kb(process.pid)["VmRSS"])
                time.sleep(1)
            elapsed = time.monotonic() - start
            own1, children1 = cpu_ticks(process.pid)
            peak = memory_kb(process.pid)["VmHWM"]
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            endpoint.stop()
    return {
        "seconds": elapsed,
        "peak_mb": peak / 1024,
        "steady_mb": statistics.median(rss) / 1024,
        "steady_range_mb": (min(rss) / 1024, max(rss) / 1024),
        "cpu_agent": 100.0 * (own1 - own0) / hz / elapsed,
        "cpu_with_children": 100.0 * (own1 - own0 + children1 - children0) / hz / elapsed,
        "heartbeats": len(endpoint.details("Host Heartbeat")),
        "exit_code": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument(
        "--settings", action="store_true", help="also read an SSM settings parameter at start"
    )
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("this benchmark reads /proc: Linux only")
    figures = measure(args.seconds, args.settings)
    low, high = figures["steady_range_mb"]
    print(f"agent footprint over {figures['seconds']:.0f} s at default intervals", end="")
    print(" (sample every 10 s, heartbeat every 60 s)", end="")
    print(", with an SSM settings parameter" if args.settings else "")
    print(f"  RSS peak (VmHWM)              {figures['peak_mb']:6.1f} MB   (target <= 30 MB)")
    print(f"  RSS steady (VmRSS, median)    {figures['steady_mb']:6.1f} MB   ", end="")
    print(f"(range {low:.1f}-{high:.1f})")
    print(
        f"  CPU, agent alone              {figures['cpu_agent']:6.2f} % of one core (target <= 1 %)"
    )
    print(f"  CPU, with dcv/nvidia-smi      {figures['cpu_with_children']:6.2f} % of one core")
    print(f"  heartbeats received           {figures['heartbeats']:6d}")
    print(f"  exit code after SIGTERM       {figures['exit_code']:6d}")


if __name__ == "__main__":
    main()
