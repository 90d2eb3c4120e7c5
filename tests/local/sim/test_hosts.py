"""The host simulator on its own: EC2 power states, simulated CPU/GPU, Run Command on its hosts
(SSM_RUN_COMMAND) and the control routes for them and for schedules, against the tests' in-process
moto server, emptied for each test (tests/conftest.py). The process-wide workarounds used here are monkeypatched and undone after each test, so
the gap tests running in the same process still see plain moto."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.ec2.models import ec2_backends

from local.emulator import ssm
from local.emulator.ec2 import launch_template_ssm_image_patches, launch_time_patches
from local.emulator.hooks import ManagedNode, SimulatorHooks
from local.emulator.scheduler import Scheduler
from local.sim.control import ControlServer, activity_problem, agent_problem
from local.sim.hosts import BAKED_BOOT_SECONDS, BARE_BOOT_SECONDS, HostSimulator, HostStateError
from local.sim.machine import Host
from tests.support.ssm import run_command_document

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
AN_HOUR_AGO = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
HOST_CHANGES = ("connections", "activity", "agent", "session", "hibernation")
FLEET_TAG = ("dcvfleet:fleet", "local")
NO_RETRIES = Config(retries={"total_max_attempts": 1})
#: A document as the template writes them: a Linux step and a Windows step.
DOCUMENT = run_command_document(
    "probe",
    linux=[
        "dcv list-connections -j '{{ dcvSessionId }}'",
        "echo from $(pwd) >&2",
        "exit {{exitCode}}",
    ],
    windows=["& dcv.exe list-connections -j '{{ dcvSessionId }}'"],
    exitCode={"type": "String", "default": "0", "allowedValues": ["0", "3"]},
)


@pytest.fixture
def client(moto_endpoint: str) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        return boto3.client(
            service, endpoint_url=moto_endpoint, region_name=REGION, config=NO_RETRIES
        )

    return make


def agentless_simulator(moto_endpoint: str, workdir: Path, hooks: SimulatorHooks) -> HostSimulator:
    """A host simulator without agents (each host's DCV is driven through its shims here)."""
    simulator = HostSimulator(
        endpoint_url=moto_endpoint,
        region=REGION,
        event_bus_name="fleet",
        fleet_tag_key=FLEET_TAG[0],
        fleet_tag_value=FLEET_TAG[1],
        workdir=workdir,
        poll_interval=0.05,
        tick_seconds=0.05,
        spare_agents=0,
        hooks=hooks,
    )
    simulator.agent_enabled = False
    return simulator


@pytest.fixture
def sim(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HostSimulator]:
    """A host simulator without agents, watching EC2."""
    hooks = SimulatorHooks()
    for owner, name, replacement in ssm.run_command_patches(hooks):
        monkeypatch.setattr(owner, name, replacement)
    simulator = agentless_simulator(moto_endpoint, tmp_path / "hosts", hooks)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def control(sim: HostSimulator, moto_endpoint: str) -> Iterator[ControlServer]:
    scheduler = Scheduler(moto_endpoint, minute_seconds=60)
    server = ControlServer(sim, {}, scheduler=scheduler)
    server.start()
    yield server
    server.stop()


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def launch(client: Callable[[str], Any], os_type: str = "linux", fleet: bool = True) -> str:
    ec2 = client("ec2")
    tags = [{"Key": "dcvfleet:os", "Value": os_type}, {"Key": "dcvfleet:session-id", "Value": "s1"}]
    if fleet:
        tags.append({"Key": FLEET_TAG[0], "Value": FLEET_TAG[1]})
    instance_id: str = ec2.run_instances(
        ImageId="ami-12345678",  # moto does not check it; describing its images takes seconds
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    return instance_id


def view(sim: HostSimulator, instance_id: str) -> dict[str, Any] | None:
    return next((h for h in sim.list() if h["instanceId"] == instance_id), None)


def booted(sim: HostSimulator, instance_id: str) -> Host:
    assert wait_until(lambda: (sim.managed_node(instance_id) or _offline()).online)
    return sim.hosts[instance_id]


def desktop_host(
    sim: HostSimulator, client: Callable[[str], Any], connections: int
) -> tuple[str, Host]:
    """A booted fleet host with a DCV session ``desktop`` and that many clients connected."""
    instance_id = launch(client)
    host = booted(sim, instance_id)
    on_host(host, "dcv", "create-session", "desktop")
    sim.set_connections(instance_id, connections)
    return instance_id, host


def _offline() -> ManagedNode:
    return ManagedNode("Linux", False, {}, "")


def on_host(host: Host, *command: str) -> str:
    """Run a command as the host's own shell would (its dcv and nvidia-smi shims first)."""
    env = host.shell_environ(dict(os.environ))
    return subprocess.run(
        command, env=env, cwd=host.workdir, capture_output=True, text=True, check=True
    ).stdout


class Lookups:
    """Counts Run Command's lookups of a host (``HostSimulator.managed_node`` reads the host's
    shell environment for each): a test waits on them, not on a clock."""

    def __init__(self, host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        environ = host.shell_environ

        def counted(base: dict[str, str]) -> dict[str, str]:
            self.count += 1
            return environ(base)

        monkeypatch.setattr(host, "shell_environ", counted)


def busiest(before: str, after: str) -> list[float]:
    """Each core's utilisation between two reads of a /proc/stat, as the agent computes it."""

    def cores(text: str) -> list[list[int]]:
        lines = [line.split() for line in text.splitlines()]
        return [list(map(int, p[1:])) for p in lines if p[0].startswith("cpu") and p[0] != "cpu"]

    out = []
    for a, b in zip(cores(before), cores(after), strict=True):
        delta = [y - x for x, y in zip(a, b, strict=True)]
        idle = delta[3] + delta[4]
        out.append(round(100 * (sum(delta) - idle) / sum(delta), 1))
    return out


def ticks(before: str, after: str) -> int:
    """How many clock ticks ``cpu0`` counted between two reads of a /proc/stat."""

    def total(text: str) -> int:
        line = next(line for line in text.splitlines() if line.startswith("cpu0 "))
        return sum(map(int, line.split()[1:]))

    return total(after) - total(before)


# -- power states ----------------------------------------------------------------------------------
def test_a_fleet_instance_boots_a_host_with_its_files(
    sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    instance_id = launch(client)
    other = launch(client, fleet=False)
    host = booted(sim, instance_id)
    assert view(sim, other) is None  # not a fleet instance: no simulated host
    shown = view(sim, instance_id)
    assert shown is not None
    assert (shown["state"], shown["agent"], shown["connections"]) == ("running", "disabled", 0)
    for name in ("proc-stat", "activity.json", "dcv-state.json", "bin/dcv", "bin/nvidia-smi"):
        assert (host.workdir / name).exists(), name
    assert "--query-gpu" not in on_host(host, "nvidia-smi")  # the shim on PATH answers


def test_a_stopped_host_halts_and_boots_again_with_the_same_id(
    sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    # Given a running host with a DCV session, a client, and a notice shown to it
    ec2 = client("ec2")
    instance_id, host = desktop_host(sim, client, connections=1)
    on_host(host, "dcv", "notify-users", "--session", "desktop", "Stopping in 5 minutes")
    # When its instance is stopped
    ec2.stop_instances(InstanceIds=[instance_id])
    stopped = wait_until(lambda: (view(sim, instance_id) or {}).get("state") == "stopped")
    # Then the host halts: no session, no client, the disconnection and the notice recorded
    assert stopped
    shown = view(sim, instance_id)
    assert shown is not None
    assert shown["agent"] == "halted"
    assert (shown["dcvSessions"], shown["connections"]) == ([], 0)
    assert shown["lastDisconnection"].endswith("Z")
    assert [n["message"] for n in shown["notices"]] == ["Stopping in 5 minutes"]
    node = sim.managed_node(instance_id)  # its SSM Agent is offline, the node still known
    assert node is not None
    assert (node.online, node.cwd) == (False, str(host.workdir))
    with pytest.raises(HostStateError, match="is stopped"):
        sim.set_connections(instance_id, 1)
    # When it is started again, it boots again: same id, same workdir, a fresh machine
    ec2.start_instances(InstanceIds=[instance_id])
    again = booted(sim, instance_id)
    assert again is not host
    assert again.workdir == host.workdir
    shown = view(sim, instance_id)
    assert shown is not None
    assert (shown["state"], shown["dcvSessions"], shown["connections"]) == ("running", [], 0)
    assert len(shown["notices"]) == 1
    # When it is terminated, the host is gone
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert wait_until(lambda: view(sim, instance_id) is None)
    assert sim.managed_node(instance_id) is None


def test_a_stop_and_start_between_two_looks_boots_the_host_again(
    moto_endpoint: str,
    client: Callable[[str], Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given EC2 that sets an instance's LaunchTime at each start (the emulator's EC2_LAUNCH_TIME),
    # and a simulator that looks at EC2 only when the test says (no watch loop)
    for owner, name, replacement in launch_time_patches():
        monkeypatch.setattr(owner, name, replacement)
    sim = agentless_simulator(moto_endpoint, tmp_path / "hosts", SimulatorHooks())
    try:
        # and a running host, launched an hour ago, with a DCV session and a client
        instance_id = launch(client)
        ec2_backends[ACCOUNT][REGION].get_instance(instance_id).launch_time = AN_HOUR_AGO
        sim.look()
        host = wait_until(lambda: sim.hosts[instance_id].booted and sim.hosts[instance_id])
        on_host(host, "dcv", "create-session", "desktop")
        sim.set_connections(instance_id, 1)
        # When its instance is stopped and started again between two looks (a resume soon
        # after a stop, while the simulator's listing of many instances is slow)
        client("ec2").stop_instances(InstanceIds=[instance_id])
        client("ec2").start_instances(InstanceIds=[instance_id])
        sim.look()
        # Then the host went down and boots again, as the machine did: a fresh machine, whose
        # agent would start and say Host Ready for the start
        again = wait_until(
            lambda: (
                sim.hosts[instance_id] is not host
                and sim.hosts[instance_id].booted
                and sim.hosts[instance_id]
            )
        )
        assert again, "the host kept running through its instance's stop and start"
        assert again.workdir == host.workdir
        shown = view(sim, instance_id)
        assert shown is not None
        assert (shown["state"], shown["dcvSessions"], shown["connections"]) == ("running", [], 0)
        # and a look that finds nothing changed changes nothing
        sim.look()
        assert sim.hosts[instance_id] is again
    finally:
        sim.stop()


def test_a_look_lists_only_the_fleet_instances_that_are_not_terminated(
    moto_endpoint: str, client: Callable[[str], Any], tmp_path: Path
) -> None:
    # Given a fleet instance that runs, one that is stopped, and many a long session made and
    # terminated (listing those cost seconds a look on a loaded machine)
    sim = agentless_simulator(moto_endpoint, tmp_path / "hosts", SimulatorHooks())
    ec2 = client("ec2")
    running, stopped = launch(client), launch(client)
    ec2.stop_instances(InstanceIds=[stopped])
    gone = [launch(client) for _ in range(3)]
    ec2.terminate_instances(InstanceIds=gone)
    # When the simulator lists the fleet / Then only the two that are not terminated are listed
    listed = sim.fleet_instances()
    assert {i: seen.state for i, seen in listed.items()} == {
        running: "running",
        stopped: "stopped",
    }


# -- simulated CPU and GPU -------------------------------------------------------------------------
def test_the_busiest_core_shows_the_set_cpu_percent(tmp_path: Path) -> None:
    host = Host("i-0123456789abcdef0", "s1", "", "linux", tmp_path)
    host.write_proc_stat()
    before = host.proc_stat.read_text()
    host.cpu_percent = 80
    host.advance(now=host.last_advance + 10)
    after = host.proc_stat.read_text()
    assert busiest(before, after) == [80.0, 20.0, 20.0, 20.0]
    aggregate = after.splitlines()[0].split()
    assert aggregate[0] == "cpu"
    assert int(aggregate[1]) == 800 + 3 * 200  # user ticks of all cores
    host.cpu_percent = 0
    host.advance(now=host.last_advance + 10)
    assert busiest(after, host.proc_stat.read_text()) == [0.0, 0.0, 0.0, 0.0]


def test_activity_set_through_control_shows_in_proc_stat_and_nvidia_smi(
    control: ControlServer, sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    instance_id = launch(client)
    host = booted(sim, instance_id)
    url = f"{control.url}/hosts/{instance_id}/activity"
    resp = requests.post(url, json={"cpuPercent": 65, "gpuPercent": 35}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["cpuPercent"], resp.json()["gpuPercent"]) == (65, 35)
    before = host.proc_stat.read_text()
    # the ticker advances the counters with wall time: wait until the busiest core has counted
    # 100 ticks since; its counters are whole ticks (floored), so its share is then within 2 %
    after = wait_until(lambda: ticks(before, text := host.proc_stat.read_text()) >= 100 and text)
    assert after, "the simulated CPU did not advance"
    cores = busiest(before, after)
    assert max(cores) == pytest.approx(65, abs=2)
    assert cores.index(max(cores)) == 0
    query = ["--query-gpu=utilization.gpu,utilization.encoder", "--format=csv,noheader,nounits"]
    assert on_host(host, "nvidia-smi", *query) == "35, 0\n"
    requests.post(url, json={"encoderPercent": 12}, timeout=10).raise_for_status()
    assert on_host(host, "nvidia-smi", *query) == "35, 12\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"cpuPercent": 101}, "cpuPercent:"),
        ({"gpuPercent": -1}, "gpuPercent:"),
        ({"gpuPercent": "35"}, "gpuPercent:"),
        ({"cpuPercent": True}, "cpuPercent:"),
        ({"gpuPercent": float("nan")}, "gpuPercent:"),
        ({"cpu": 5}, "cpu:"),
        ({}, "body:"),
        ([1], "body:"),
        ({"cpuPercent": 0, "gpuPercent": 100.0, "encoderPercent": 12.5}, ""),
    ],
)
def test_an_activity_body_is_checked_naming_the_field(body: object, message: str) -> None:
    problem = activity_problem(body)
    assert problem.startswith(message) if message else problem == ""


def test_control_answers_404_for_no_host_and_409_for_a_stopped_one(
    control: ControlServer, sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    instance_id = launch(client)
    booted(sim, instance_id)
    client("ec2").stop_instances(InstanceIds=[instance_id])
    assert wait_until(lambda: (view(sim, instance_id) or {}).get("state") == "stopped")
    for route, body in (("activity", {"cpuPercent": 5}), ("connections", {"count": 1})):
        stopped = requests.post(f"{control.url}/hosts/{instance_id}/{route}", json=body, timeout=10)
        assert stopped.status_code == 409
        assert stopped.json()["message"] == f"host {instance_id} is stopped"
        unknown = f"{control.url}/hosts/i-0000000000000000f/{route}"
        assert requests.post(unknown, json=body, timeout=10).status_code == 404
    hosts = requests.get(f"{control.url}/hosts", timeout=10).json()["hosts"]
    assert [(h["instanceId"], h["state"]) for h in hosts] == [(instance_id, "stopped")]
    url = f"{control.url}/hosts/{instance_id}/activity"
    bad = requests.post(url, json={"cpuPercent": 101}, timeout=10)
    assert (bad.status_code, bad.json()["message"].split(":")[0]) == (400, "cpuPercent")


def test_control_closes_a_hosts_sessions_and_sets_its_hibernation(
    control: ControlServer, sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    instance_id = launch(client)
    host = booted(sim, instance_id)
    on_host(host, "dcv", "create-session", "--type", "virtual", "--owner", "alice", "desktop")
    sim.set_connections(instance_id, 1)
    base = f"{control.url}/hosts/{instance_id}"
    for route, bad, field in (
        ("session", {"closed": False}, "closed"),
        ("session", {}, "closed"),
        ("hibernation", {"enabled": "yes"}, "enabled"),
        ("hibernation", [True], "enabled"),
    ):
        refused = requests.post(f"{base}/{route}", json=bad, timeout=10)
        assert (refused.status_code, refused.json()["message"].split(":")[0]) == (400, field)
    assert not host.hibernation
    assert requests.post(f"{base}/hibernation", json={"enabled": True}, timeout=10).ok
    assert host.hibernation
    # the user logs out: the client leaves, DCV closes the session
    closed = requests.post(f"{base}/session", json={"closed": True}, timeout=10)
    assert closed.status_code == 200
    assert (closed.json()["dcvSessions"], closed.json()["connections"]) == ([], 0)
    assert closed.json()["lastDisconnection"]
    assert json.loads(on_host(host, "dcv", "list-sessions", "-j")) == []
    unknown = f"{control.url}/hosts/i-0000000000000000f/session"
    assert requests.post(unknown, json={"closed": True}, timeout=10).status_code == 404


#: Every route of control_url: tests and tools outside the repository drive them by these paths.
CONTROL_ROUTES = [
    ("GET", "/hosts"),
    ("GET", "/schedules"),
    ("GET", "/mail"),
    ("GET", "/batch/capacity"),
    ("GET", "/jobs"),
    ("GET", "/batch/warm"),
    *(("POST", f"/hosts/i-0123456789abcdef0/{change}") for change in HOST_CHANGES),
    ("POST", "/faults"),
    ("POST", "/agents"),
    ("POST", "/boot-delay"),
    ("POST", "/host-images/linux/build"),
    ("POST", "/windows-counters"),
    ("POST", "/schedules/run"),
    ("POST", "/batch/capacity"),
    ("POST", "/jobs/8f3a2c1e-0000-4000-8000-000000000000/exit"),
]


def test_every_control_route_answers(control: ControlServer) -> None:
    # a body no route accepts: each answers its own way (400 naming the field, 404 for what it
    # does not have), and changes nothing; only a path it does not serve is "no route"
    unknown = requests.post(f"{control.url}/host", json=[], timeout=10)
    assert (unknown.status_code, unknown.json()["message"]) == (404, "no route POST /host")
    for method, path in CONTROL_ROUTES:
        resp = requests.request(method, control.url + path, json=[], timeout=10)
        assert not resp.json().get("message", "").startswith("no route"), (method, path)


def test_the_boot_delay_is_set_through_control(control: ControlServer, sim: HostSimulator) -> None:
    url = f"{control.url}/boot-delay"
    for bad in ({"seconds": -1}, {"seconds": 601}, {"seconds": True}, {"seconds": "3"}, [3]):
        refused = requests.post(url, json=bad, timeout=10)
        assert (refused.status_code, refused.json()["message"].split(":")[0]) == (400, "seconds")
    assert sim.boot_delay == 0
    answer = requests.post(url, json={"seconds": 2.5}, timeout=10)
    # a baked host's delay follows, scaled as AWS's figures are, unless it is set
    baked = 2.5 * BAKED_BOOT_SECONDS / BARE_BOOT_SECONDS
    assert (answer.status_code, answer.json()) == (200, {"seconds": 2.5, "bakedSeconds": baked})
    assert sim.boot_delay == 2.5
    for bad_baked in ({"seconds": 1, "bakedSeconds": -1}, {"seconds": 1, "bakedSeconds": "1"}):
        refused = requests.post(url, json=bad_baked, timeout=10)
        assert (refused.status_code, refused.json()["message"].split(":")[0]) == (
            400,
            "bakedSeconds",
        )
    assert sim.boot_delay == 2.5
    answer = requests.post(url, json={"seconds": 3, "bakedSeconds": 1}, timeout=10)
    assert answer.json() == {"seconds": 3.0, "bakedSeconds": 1.0}


def test_a_batch_image_pull_delay_is_refused_naming_the_field(control: ControlServer) -> None:
    url = f"{control.url}/boot-delay"
    for bad, field in (
        ({"seconds": 1, "pullSeconds": -1}, "pullSeconds"),
        ({"seconds": 1, "pullSeconds": "5"}, "pullSeconds"),
        ({"seconds": 1, "prepull": "no"}, "prepull"),
    ):
        refused = requests.post(url, json=bad, timeout=10)
        assert (refused.status_code, refused.json()["message"].split(":")[0]) == (400, field)


def test_aws_figures_boot_a_baked_host_faster_than_a_bare_one() -> None:
    assert 0 < BAKED_BOOT_SECONDS < BARE_BOOT_SECONDS


# -- host images (local.emulator.imagebuilder) -----------------------------------------------------
def test_a_host_from_a_built_host_image_boots_sooner_than_a_bare_one(
    control: ControlServer,
    sim: HostSimulator,
    client: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A simulated pipeline run publishes a new image in the host image parameter; the launch
    template resolves it at the next launch (LAUNCH_TEMPLATE_SSM_IMAGE), and that host boots with
    the baked delay while one launched at the same moment from the base image still boots."""
    for owner, name, replacement in launch_template_ssm_image_patches():
        monkeypatch.setattr(owner, name, replacement)
    ec2, ssm_client = client("ec2"), client("ssm")
    base = ec2.register_image(Name="gpu-base", RootDeviceName="/dev/xvda")["ImageId"]
    parameter = "/fleet/host-image/linux"
    ssm_client.put_parameter(Name=parameter, Value=base, Type="String")
    control.resources["LinuxHostImage"] = parameter
    tags = [{"Key": FLEET_TAG[0], "Value": FLEET_TAG[1]}, {"Key": "dcvfleet:os", "Value": "linux"}]
    ec2.create_launch_template(
        LaunchTemplateName="linux",
        LaunchTemplateData={
            "ImageId": f"resolve:ssm:{parameter}",
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        },
    )
    gone = requests.post(f"{control.url}/host-images/windows/build", json={}, timeout=10)
    assert (gone.status_code, gone.json()["message"]) == (
        404,
        "this stack has no windows host images (WindowsAmiId)",
    )
    built = requests.post(f"{control.url}/host-images/linux/build", json={}, timeout=30)
    assert built.status_code == 200, built.text
    image = built.json()["imageId"]
    assert built.json() == {"imageId": image, "parameter": parameter, "baseImageId": base}
    assert ssm_client.get_parameter(Name=parameter)["Parameter"]["Value"] == image
    (described,) = ec2.describe_images(ImageIds=[image])["Images"]
    assert {"Key": "dcvfleet:host-image", "Value": "linux"} in described["Tags"]
    # a rebuild starts again from the base
    again = requests.post(f"{control.url}/host-images/linux/build", json={}, timeout=30).json()
    assert again["baseImageId"] == base
    assert again["imageId"] != image

    sim.boot_delay, sim.baked_boot_delay = 3.0, 0.2
    baked = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateName": "linux"}, MinCount=1, MaxCount=1
    )["Instances"][0]
    assert baked["ImageId"] == again["imageId"]
    bare = ec2.run_instances(
        ImageId=base,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    booted(sim, baked["InstanceId"])
    assert not (sim.managed_node(bare) or _offline()).online, "the bare host booted as soon"
    assert booted(sim, bare) is not None  # and it does boot, later


# -- Run Command (SSM_RUN_COMMAND) -----------------------------------------------------------------
def create_document(client: Callable[[str], Any], content: dict[str, Any] = DOCUMENT) -> str:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    client("ssm").create_document(
        Content=json.dumps(content), Name=name, DocumentType="Command", DocumentFormat="JSON"
    )
    return name


def finished(ssm: Any, command_id: str, instance_id: str, step: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found: dict[str, Any] = ssm.get_command_invocation(
            CommandId=command_id, InstanceId=instance_id, PluginName=step
        )
        return None if found["Status"] in ("Pending", "InProgress") else found

    result: dict[str, Any] | None = wait_until(done)
    assert result is not None, "the invocation never finished"
    return result


def test_a_documents_linux_step_runs_on_a_simulated_host(
    sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    # Given a host with a DCV session and two clients
    ssm = client("ssm")
    instance_id, host = desktop_host(sim, client, connections=2)
    document = create_document(client)
    # When the document is sent to it
    command = ssm.send_command(
        DocumentName=document, InstanceIds=[instance_id], Parameters={"dcvSessionId": ["desktop"]}
    )["Command"]
    assert command["Status"] in ("Pending", "InProgress")
    # Then its Linux step ran there, in the host's environment, and its output comes back
    result = finished(ssm, command["CommandId"], instance_id, "linux")
    assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
        "Success",
        "Success",
        0,
    )
    assert len(json.loads(result["StandardOutputContent"])) == 2
    assert result["StandardErrorContent"] == f"from {host.workdir}\n"
    # And the Windows step was skipped; a two-step document needs the step's name
    windows = ssm.get_command_invocation(
        CommandId=command["CommandId"], InstanceId=instance_id, PluginName="windows"
    )
    assert (windows["Status"], windows["StatusDetails"]) == ("Success", "Skipped")
    with pytest.raises(ClientError) as unnamed:
        ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
    assert unnamed.value.response["Error"]["Code"] == "InvalidPluginName"
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["Status"], listed["CompletedCount"], listed["ErrorCount"]) == ("Success", 1, 0)
    # And a failing script is Failed with its exit code
    failing = ssm.send_command(
        DocumentName=document,
        InstanceIds=[instance_id],
        Parameters={"dcvSessionId": ["desktop"], "exitCode": ["3"]},
    )["Command"]
    result = finished(ssm, failing["CommandId"], instance_id, "linux")
    assert (result["Status"], result["ResponseCode"]) == ("Failed", 3)


def test_send_command_rejects_what_ssm_rejects(
    sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    ssm = client("ssm")
    host_id = launch(client)
    other_id = launch(client, fleet=False)  # an instance without SSM Agent
    booted(sim, host_id)
    document = create_document(client)
    desktop = {"dcvSessionId": ["desktop"]}
    cases = [
        (document, host_id, {"dcvSessionId": ["../etc"]}, "InvalidParameters"),
        (document, host_id, {**desktop, "exitCode": ["7"]}, "InvalidParameters"),
        (document, host_id, {**desktop, "colour": ["blue"]}, "InvalidParameters"),
        (document, host_id, {"dcvSessionId": ["a", "b"]}, "InvalidParameters"),
        (document, host_id, {}, "InvalidParameters"),
        (document, "i-0123456789abcdef0", desktop, "InvalidInstanceId"),
        (document, other_id, desktop, "InvalidInstanceId"),
        ("no-such-document", host_id, desktop, "InvalidDocument"),
    ]
    for name, instance_id, parameters, code in cases:
        with pytest.raises(ClientError) as err:
            ssm.send_command(DocumentName=name, InstanceIds=[instance_id], Parameters=parameters)
        assert err.value.response["Error"]["Code"] == code, (instance_id, parameters)
    client("ec2").terminate_instances(InstanceIds=[host_id])
    assert wait_until(lambda: view(sim, host_id) is None)
    with pytest.raises(ClientError) as gone:
        ssm.send_command(DocumentName=document, InstanceIds=[host_id], Parameters=desktop)
    assert gone.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_a_windows_host_runs_the_shell_lines_under_its_powershell_step(
    sim: HostSimulator, client: Callable[[str], Any]
) -> None:
    ssm = client("ssm")
    instance_id = launch(client, os_type="windows")
    booted(sim, instance_id)
    assert (view(sim, instance_id) or {})["dcvSessions"] == ["console"]  # DCV made it at boot
    document = create_document(client)
    command = ssm.send_command(
        DocumentName=document, InstanceIds=[instance_id], Parameters={"dcvSessionId": ["console"]}
    )["Command"]
    result = finished(ssm, command["CommandId"], instance_id, "windows")
    assert result["Status"] == "Success"
    assert json.loads(result["StandardOutputContent"]) == []
    linux = ssm.get_command_invocation(
        CommandId=command["CommandId"], InstanceId=instance_id, PluginName="linux"
    )
    assert linux["StatusDetails"] == "Skipped"


def test_a_command_for_a_stopped_host_waits_until_it_boots(
    sim: HostSimulator, client: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm, ec2 = client("ssm"), client("ec2")
    instance_id = launch(client)
    booted(sim, instance_id)
    ec2.stop_instances(InstanceIds=[instance_id])
    assert wait_until(lambda: (view(sim, instance_id) or {}).get("state") == "stopped")
    single_step = {**DOCUMENT, "mainSteps": DOCUMENT["mainSteps"][:1]}
    document = create_document(client, single_step)
    lookups = Lookups(sim.hosts[instance_id], monkeypatch)
    command = ssm.send_command(
        DocumentName=document, InstanceIds=[instance_id], Parameters={"dcvSessionId": ["desktop"]}
    )["Command"]
    # once Run Command has found the host off line, and looked again, it is waiting for it
    assert wait_until(lambda: lookups.count >= 2), "Run Command never looked the host up"
    pending = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
    assert (pending["Status"], pending["ResponseCode"]) == ("Pending", -1)
    ec2.start_instances(InstanceIds=[instance_id])
    result = finished(ssm, command["CommandId"], instance_id, "linux")
    # delivered once the host was up (a fresh machine: no DCV session yet, dcv says so)
    assert result["Status"] == "Success"
    assert "Could not find session 'desktop'" in result["StandardErrorContent"]


# -- POST /schedules/run ---------------------------------------------------------------------------
def test_schedules_run_fires_a_schedule_rule_at_once(
    control: ControlServer, client: Callable[[str], Any]
) -> None:
    sqs, events = client("sqs"), client("events")
    queue = sqs.create_queue(QueueName="scheduled")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    rule_arn = events.put_rule(Name="weekly", ScheduleExpression="rate(7 days)")["RuleArn"]
    events.put_targets(Rule="weekly", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    events.put_rule(Name="nightly", ScheduleExpression="cron(0 3 * * ? *)", State="DISABLED")
    url = f"{control.url}/schedules/run"
    resp = requests.post(url, json={"rule": "weekly"}, timeout=10)
    assert resp.json() == {"fired": ["weekly"]}
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)["Messages"]
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.events",
        "Scheduled Event",
        {},
    )
    assert event["resources"] == [rule_arn]
    assert requests.post(url, json={}, timeout=10).json() == {"fired": ["weekly"]}
    assert requests.post(url, json={"rule": "nightly"}, timeout=10).status_code == 409
    assert requests.post(url, json={"rule": "nope"}, timeout=10).status_code == 404
    bad = requests.post(url, json={"rule": 7}, timeout=10)
    assert (bad.status_code, bad.json()["message"].startswith("rule:")) == (400, True)
    schedules = requests.get(f"{control.url}/schedules", timeout=10).json()
    assert schedules["minuteSeconds"] == 60
    listed = {s["name"]: (s["runsLocally"], s["fired"]) for s in schedules["schedules"]}
    assert listed == {"weekly": (True, 2), "nightly": (False, 0)}


def test_a_hosts_ssm_agent_can_go_silent_and_come_back(
    control: ControlServer,
    sim: HostSimulator,
    client: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssm = client("ssm")
    instance_id, host = desktop_host(sim, client, connections=0)
    url = f"{control.url}/hosts/{instance_id}/agent"
    # When the host's SSM Agent stops answering (and its agent is ended)
    resp = requests.post(url, json={"ssmAgent": False, "running": False}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["ssmAgent"], resp.json()["agent"]) == (False, "stopped")
    single_step = {**DOCUMENT, "mainSteps": DOCUMENT["mainSteps"][:1]}
    document = create_document(client, single_step)
    lookups = Lookups(host, monkeypatch)
    command = ssm.send_command(
        DocumentName=document, InstanceIds=[instance_id], Parameters={"dcvSessionId": ["desktop"]}
    )["Command"]
    # Then a command waits for it (Run Command found it off line, and looked again), and runs
    # once it answers again
    assert wait_until(lambda: lookups.count >= 2), "Run Command never looked the host up"
    pending = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
    assert pending["Status"] == "Pending"
    requests.post(url, json={"ssmAgent": True}, timeout=10).raise_for_status()
    assert finished(ssm, command["CommandId"], instance_id, "linux")["Status"] == "Success"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"running": "no"}, "running:"),
        ({"ssmAgent": 0}, "ssmAgent:"),
        ({"alive": False}, "alive:"),
        ({}, "body:"),
        ("x", "body:"),
        ({"running": False, "ssmAgent": True}, ""),
    ],
)
def test_an_agent_body_is_checked_naming_the_field(body: object, message: str) -> None:
    problem = agent_problem(body)
    assert problem.startswith(message) if message else problem == ""
