"""Idle signals against recorded outputs (tests/unit/fixtures/agent/README.md says where each
comes from): what each signal reports, and that odd output is an error in the reading, never a
crash."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dcvfleet_agent.config import load_config
from dcvfleet_agent.dcv import DcvCli
from dcvfleet_agent.signals import (
    NVIDIA_SMI_QUERY,
    DcvSignal,
    GpuSignal,
    ProcessSignal,
    ProcStatCpu,
    Reading,
    TypeperfCpu,
    build_signals,
    parse_time,
)

FIXTURES = Path(__file__).parent / "fixtures" / "agent"
DISCONNECTED_AT = parse_time("2026-11-22T04:40:12.357567Z")
LAST_INTERACTION = parse_time("2026-11-22T04:20:00Z")


def fixture(name: str) -> str:
    with open(FIXTURES / name, encoding="utf-8", newline="") as handle:
        return handle.read()


class Tool:
    """A Runner that replays outputs: (exit code, stdout[, stderr]) or an exception to raise."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls: list[list[str]] = []

    def __call__(
        self, argv: Sequence[str], *, input_text: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        code, stdout, *stderr = step
        return subprocess.CompletedProcess(list(argv), code, stdout, stderr[0] if stderr else "")


def dcv_signal(tool: Tool, now: float | None = 0.0, timeout: float = 1800) -> DcvSignal:
    return DcvSignal(DcvCli(["dcv"], 10, run=tool), "desktop", timeout, wall=lambda: now or 0.0)


# --- dcv ------------------------------------------------------------------------------------


def test_given_no_connection_ever_when_sampled_then_dcv_is_idle_with_one_call() -> None:
    tool = Tool((0, fixture("dcv/describe-session-never-disconnected.json")))
    reading = dcv_signal(tool).sample()
    assert reading == Reading(
        {"idle": True, "connections": 0, "lastDisconnectAt": None, "lastInteractionAt": None}
    )
    assert tool.calls == [["dcv", "describe-session", "desktop", "-j"]]


def test_given_a_past_disconnection_when_sampled_then_dcv_is_idle_since_then() -> None:
    reading = dcv_signal(Tool((0, fixture("dcv/describe-session-disconnected.json")))).sample()
    assert reading is not None
    assert reading.values["idle"] is True
    assert reading.values["lastDisconnectAt"] == "2026-11-22T04:40:12.357Z"
    assert reading.quiet_since == DISCONNECTED_AT


def test_given_two_connections_when_sampled_then_dcv_is_busy_and_counts_them() -> None:
    tool = Tool(
        (0, fixture("dcv/describe-session-2-connections.json")),
        (0, fixture("dcv/list-connections-2.json")),
    )
    reading = dcv_signal(tool).sample()
    assert reading is not None
    assert (reading.values["idle"], reading.values["connections"]) == (False, 2)
    assert reading.quiet_since is None
    assert tool.calls[1] == ["dcv", "list-connections", "-j", "desktop"]


@pytest.mark.parametrize(("age", "idle"), [(1799, False), (1800, True)])
def test_given_connections_with_old_interactions_when_sampled_then_idle_after_the_timeout(
    age: float, idle: bool
) -> None:
    assert LAST_INTERACTION is not None
    tool = Tool(
        (0, fixture("dcv/describe-session-2-connections.json")),
        (0, fixture("dcv/list-connections-2-interaction.json")),
    )
    reading = dcv_signal(tool, now=LAST_INTERACTION + age).sample()
    assert reading is not None
    assert reading.values["idle"] is idle
    assert reading.values["lastInteractionAt"] == "2026-11-22T04:20:00.000Z"  # the latest one
    assert reading.quiet_since == (LAST_INTERACTION if idle else None)


def test_given_everyone_left_between_the_two_calls_then_idle_without_a_quiet_time() -> None:
    tool = Tool(
        (0, fixture("dcv/describe-session-disconnected.json").replace('ions" : 0', 'ions" : 2')),
        (0, fixture("dcv/list-connections-0.json")),
    )
    reading = dcv_signal(tool).sample()
    assert reading is not None
    assert (reading.values["idle"], reading.values["connections"]) == (True, 0)
    assert reading.quiet_since is None  # the recorded disconnection is older than that


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ((0, "Welcome to DCV <html>"), "not JSON"),
        ((0, ""), "not JSON"),
        ((0, "[1, 2]"), "did not print a session object"),
        ((1, "", "Could not find session 'desktop'"), "exit code 1: Could not find session"),
        (subprocess.TimeoutExpired("dcv", 10), "did not finish within 10s"),
        (FileNotFoundError(2, "No such file or directory"), "is Amazon DCV Server installed"),
        ((127, "", "dcv: command not found"), "exited 127"),
    ],
)
def test_given_broken_dcv_output_when_sampled_then_an_error_not_a_crash(
    step: Any, fragment: str
) -> None:
    reading = dcv_signal(Tool(step)).sample()
    assert reading is not None
    assert reading.values["idle"] is None
    assert reading.values["connections"] is None
    assert fragment in reading.values["error"]
    assert not reading.idle


def test_given_a_connection_list_that_is_not_a_list_then_an_error() -> None:
    tool = Tool((0, fixture("dcv/describe-session-2-connections.json")), (0, '{"a": 1}'))
    reading = dcv_signal(tool).sample()
    assert reading is not None
    assert "did not print a list of connections" in reading.values["error"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-05-14T12:32:14.357567Z", 1557837134.357567),
        ("2019-05-14T12:32:14Z", 1557837134.0),
        ("2019-05-14T14:32:14+02:00", 1557837134.0),
        ("2019-05-14 12:32:14", 1557837134.0),
        ("", None),
        ("yesterday", None),
        ("2019-13-14T12:32:14Z", None),
        ("0001-01-01T00:00:00Z", None),  # before 1970: not a time DCV would print
        (None, None),
        (1557837134, None),
    ],
)
def test_dcv_timestamps_parse_or_are_ignored(text: object, expected: float | None) -> None:
    assert parse_time(text) == pytest.approx(expected)


# --- cpu ------------------------------------------------------------------------------------


def cpu_between(tmp_path: Path, before: str, after: str, threshold: float = 10) -> Reading:
    path = tmp_path / "stat"
    path.write_text(fixture(before))
    signal = ProcStatCpu(str(path), threshold)
    path.write_text(fixture(after))
    reading = signal.sample()
    assert reading is not None
    return reading


def average_busy_percent(before: str, after: str) -> float:
    def totals(name: str) -> tuple[int, int]:
        numbers = [int(n) for n in fixture(name).splitlines()[0].split()[1:9]]
        return sum(numbers) - numbers[3] - numbers[4], sum(numbers)

    (busy0, total0), (busy1, total1) = totals(before), totals(after)
    return 100 * (busy1 - busy0) / (total1 - total0)


def test_given_one_busy_core_of_16_then_cpu_is_busy_though_the_average_is_low(
    tmp_path: Path,
) -> None:
    before, after = "proc/stat-16cpu-before.txt", "proc/stat-16cpu-after.txt"
    assert average_busy_percent(before, after) < 7  # what a system-wide figure would say
    reading = cpu_between(tmp_path, before, after)
    assert reading.values == {"idle": False, "busiestCorePercent": 100.0, "thresholdPercent": 10}


def test_given_a_recorded_busy_loop_on_cpu1_then_cpu_reads_it(tmp_path: Path) -> None:
    reading = cpu_between(tmp_path, "proc/stat-2cpu-before.txt", "proc/stat-2cpu-after.txt")
    assert reading.values["busiestCorePercent"] == 100.0
    assert reading.values["idle"] is False


def test_given_the_live_proc_stat_then_cpu_reads_a_percentage() -> None:
    signal = ProcStatCpu("/proc/stat", 10)
    for _ in range(200_000):  # let some ticks pass
        pass
    reading = signal.sample()
    assert reading is not None
    if "error" not in reading.values:  # a quiet box may count no tick in between
        assert 0 <= reading.values["busiestCorePercent"] <= 100


@pytest.mark.parametrize(
    ("before", "after", "fragment"),
    [
        ("proc/stat-2cpu-after.txt", "proc/stat-2cpu-after.txt", "no CPU time was counted"),
        (
            "proc/stat-2cpu-before.txt",
            "nvidia-smi/l40s-595.80-default-table.txt",
            "no per-core cpuN lines",
        ),
    ],
)
def test_given_unusable_proc_stat_then_cpu_reports_an_error(
    tmp_path: Path, before: str, after: str, fragment: str
) -> None:
    reading = cpu_between(tmp_path, before, after)
    assert reading.values["idle"] is None
    assert reading.values["busiestCorePercent"] is None
    assert fragment in reading.values["error"]


def test_given_a_missing_stat_file_then_an_error_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    signal = ProcStatCpu(str(path), 10)
    first = signal.sample()
    assert first is not None
    assert "cannot read" in first.values["error"]
    path.write_text(fixture("proc/stat-2cpu-before.txt"))
    second = signal.sample()
    assert second is not None
    assert "no earlier reading" in second.values["error"]
    path.write_text(fixture("proc/stat-2cpu-after.txt"))
    third = signal.sample()
    assert third is not None
    assert third.values["busiestCorePercent"] == 100.0


def test_given_a_mangled_cpu_line_then_an_error(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    path.write_text("cpu0 1 2 x 4\n")
    reading = ProcStatCpu(str(path), 10).sample()
    assert reading is not None
    assert "unexpected line" in reading.values["error"]


# --- gpu ------------------------------------------------------------------------------------


def gpu(*steps: Any, threshold: float = 10) -> tuple[Reading | None, Tool]:
    tool = Tool(*steps)
    return GpuSignal(["nvidia-smi"], threshold, 10, run=tool).sample(), tool


# Recorded outputs of real GPUs (fixtures/agent/README.md): the whole --query-gpu CSV of each
# capture, its header naming ~200 fields, the two the signal reads found by name.
@pytest.mark.parametrize(
    ("recording", "idle", "gpu_percent", "encoder_percent"),
    [
        ("h100-590.48.01-idle.csv", True, 0.0, 0.0),
        ("h100-590.48.01-load.csv", False, 100.0, 0.0),  # CUDA burn: busy, encoder unused
        ("l40s-595.80-nvenc.csv", False, 9.0, 60.0),  # video encoding: GPU 9 %, encoder 60 %
        ("windows-rtx-2080-super-610.62-nvenc.csv", False, 7.0, 99.0),  # Windows driver
    ],
)
def test_given_a_recorded_gpu_then_gpu_reads_its_utilisation(
    recording: str, idle: bool, gpu_percent: float, encoder_percent: float
) -> None:
    reading, tool = gpu((0, fixture(f"nvidia-smi/{recording}")))
    assert reading is not None
    assert reading.values == {
        "idle": idle,
        "utilizationPercent": gpu_percent,
        "encoderPercent": encoder_percent,
        "thresholdPercent": 10,
    }
    assert tool.calls == [["nvidia-smi", *NVIDIA_SMI_QUERY]]


def test_what_the_agent_asks_for_is_what_the_recordings_show() -> None:
    assert NVIDIA_SMI_QUERY == (
        "--query-gpu=utilization.gpu,utilization.encoder",
        "--format=csv",  # header and units, as recorded; never noheader/nounits
    )
    header = fixture("nvidia-smi/l40s-595.80-nvenc.csv").splitlines()[0]
    assert "utilization.gpu [%], utilization.memory [%], utilization.encoder [%]" in header


def test_given_two_gpus_then_the_busiest_of_each_counts() -> None:
    # one line per GPU: the L40S capture's two recorded rows under its header
    reading, _ = gpu((0, fixture("nvidia-smi/l40s-595.80-two-rows.csv")), threshold=90)
    assert reading is not None
    assert reading.values["utilizationPercent"] == 100.0  # the first row's GPU
    assert reading.values["encoderPercent"] == 60.0  # the second row's encoder
    assert reading.values["idle"] is False


def test_the_agents_own_two_columns_parse_as_the_full_recording_does() -> None:
    reading, _ = gpu((0, "utilization.gpu [%], utilization.encoder [%]\n2 %, 35 %\n"))
    assert reading is not None
    assert reading.values["idle"] is False  # encoding only: busy


# A GPU in MIG mode prints "[N/A]" for both utilisations (recorded: h100-mig); a field one GPU
# or driver cannot read prints "[N/A]" or "[Not Supported]" (nvidia-smi's notation, as in the
# recordings' other columns): the readable column still counts. These per-column cases are
# written, not recorded.
HEADER = "utilization.gpu [%], utilization.encoder [%]\n"


@pytest.mark.parametrize(
    ("rows", "idle", "gpu_percent", "encoder_percent"),
    [
        ("3 %, [N/A]\n", True, 3.0, None),
        ("45 %, [N/A]\n", False, 45.0, None),
        ("[N/A], 0 %\n", True, None, 0.0),
        ("[Not Supported], 35 %\n", False, None, 35.0),
        ("0 %, [N/A]\n87 %, 12 %\n", False, 87.0, 12.0),
        ("2 %, [N/A]\n[N/A], [N/A]\n", True, 2.0, None),
    ],
)
def test_given_an_unreadable_column_then_gpu_judges_on_the_readable_ones(
    rows: str, idle: bool, gpu_percent: float | None, encoder_percent: float | None
) -> None:
    reading, _ = gpu((0, HEADER + rows))
    assert reading is not None
    assert "error" not in reading.values
    assert reading.values == {
        "idle": idle,
        "utilizationPercent": gpu_percent,
        "encoderPercent": encoder_percent,
        "thresholdPercent": 10,
    }


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ((0, fixture("nvidia-smi/h100-mig-590.48.01-idle.csv")), "could read no utilisation"),
        ((0, fixture("nvidia-smi/l40s-595.80-default-table.txt")), "not a header naming"),
        ((0, ""), "printed no GPU"),
        ((0, HEADER), "printed no GPU"),
        ((0, "3, 0\n"), "not a header naming"),  # noheader output
        ((0, HEADER + "3, 0\n"), "'3', not a percentage"),  # nounits output
        ((0, HEADER + "101 %, 0 %\n"), "'101 %', not a percentage"),
        ((0, HEADER + "3 %, x %\n"), "'x %', not a percentage"),
        ((0, HEADER + "3 %\n"), "1 values under 2 column(s)"),
        ((9, fixture("nvidia-smi/driver-failure.txt")), "exit code 9: NVIDIA-SMI has failed"),
        (subprocess.TimeoutExpired("nvidia-smi", 10), "did not finish within 10s"),
        (PermissionError(13, "Permission denied"), "cannot run 'nvidia-smi'"),
    ],
)
def test_given_a_broken_nvidia_smi_then_gpu_reports_an_error(step: Any, fragment: str) -> None:
    reading, _ = gpu(step)
    assert reading is not None
    assert reading.values["idle"] is None
    assert reading.values["utilizationPercent"] is None
    assert fragment in reading.values["error"]


@pytest.mark.parametrize(
    "step", [FileNotFoundError(2, "No such file"), (127, "", "nvidia-smi: not found")]
)
def test_given_no_nvidia_smi_then_gpu_is_absent(step: Any) -> None:
    reading, _ = gpu(step)
    assert reading is None


def test_given_a_missing_binary_for_real_then_gpu_is_absent(tmp_path: Path) -> None:
    assert GpuSignal([str(tmp_path / "nvidia-smi")], 10, 5).sample() is None


# --- processes ------------------------------------------------------------------------------


def fake_proc(root: Path, processes: dict[str, tuple[str, bytes]]) -> Path:
    """/proc/<pid>/comm and cmdline; a pid without files is one that exited meanwhile."""
    for pid, (comm, cmdline) in processes.items():
        (root / pid).mkdir(parents=True)
        if comm:
            (root / pid / "comm").write_text(comm + "\n")
            (root / pid / "cmdline").write_bytes(cmdline)
    (root / "self").mkdir()
    (root / "stat").write_text("")
    return root


def test_given_a_busy_process_running_on_linux_then_processes_is_busy(tmp_path: Path) -> None:
    root = fake_proc(
        tmp_path / "proc",
        {
            "1": ("systemd", b"/sbin/init\0splash\0"),
            "2": ("kthreadd", b""),
            "812": ("blender", b"/opt/blender/blender\0-b\0scene.blend\0"),
            "913": ("python3", b"/usr/bin/python3\0/opt/render/farm.py\0"),
            "914": ("", b""),
        },
    )
    signal = ProcessSignal(["blender", "maya", "python3"], "linux", 10, proc_root=str(root))
    reading = signal.sample()
    assert reading == Reading({"idle": False, "running": ["blender", "python3"]})
    idle = ProcessSignal(["maya", "Blender"], "linux", 10, proc_root=str(root)).sample()
    assert idle == Reading({"idle": True, "running": []})  # names are case-sensitive on Linux


def test_given_argv0_differs_from_comm_then_either_name_matches(tmp_path: Path) -> None:
    root = fake_proc(tmp_path / "proc", {"7": ("MainThread", b"/opt/app/render-node\0")})
    reading = ProcessSignal(["render-node"], "linux", 10, proc_root=str(root)).sample()
    assert reading is not None
    assert reading.values["running"] == ["render-node"]


def test_given_the_live_proc_then_this_process_is_found() -> None:
    comm = Path("/proc/self/comm").read_text().strip()
    reading = ProcessSignal([comm], "linux", 10).sample()
    assert reading == Reading({"idle": False, "running": [comm]})


def test_given_no_proc_then_processes_reports_an_error(tmp_path: Path) -> None:
    reading = ProcessSignal(["x"], "linux", 10, proc_root=str(tmp_path / "none")).sample()
    assert reading is not None
    assert (reading.values["idle"], reading.values["running"]) == (None, [])
    assert "cannot list" in reading.values["error"]


def tasklist_nh() -> str:
    """The recorded `tasklist /fo csv` run as `/nh` prints it: without its column-header line
    ("/nh: Suppresses column headers in the output. Valid when the /fo parameter is set to
    TABLE or CSV": https://learn.microsoft.com/windows-server/administration/windows-commands/tasklist)."""
    header, rows = fixture("windows/tasklist-recorded-pl.csv").split("\n", 1)
    assert header.startswith('"Image Name","PID"')
    return rows


def test_given_tasklist_then_windows_names_match_without_case_or_exe() -> None:
    tool = Tool((0, tasklist_nh()))
    names = ["blender", "CODE.EXE", "discord", "NVIDIA Web Helper", "com.docker.service"]
    reading = ProcessSignal(names, "windows", 10, run=tool).sample()
    running = ["CODE.EXE", "NVIDIA Web Helper", "com.docker.service", "discord"]
    assert reading == Reading({"idle": False, "running": running})
    assert tool.calls == [["tasklist", "/fo", "csv", "/nh"]]


def test_given_a_quiet_recorded_windows_desktop_then_processes_is_idle() -> None:
    # 230 processes, memory sizes with a no-break space ("84\u00a0496 K"), none of them busy
    signal = ProcessSignal(["blender", "maya"], "windows", 10, run=Tool((0, tasklist_nh())))
    assert signal.sample() == Reading({"idle": True, "running": []})


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ((0, "INFO: No tasks are running which match the specified criteria.\r\n"), "no process"),
        ((0, ""), "no process"),
        ((1, "", "ERROR: Access denied"), "exit code 1: ERROR: Access denied"),
        (subprocess.TimeoutExpired("tasklist", 10), "did not finish"),
    ],
)
def test_given_broken_tasklist_then_processes_reports_an_error(step: Any, fragment: str) -> None:
    reading = ProcessSignal(["blender"], "windows", 10, run=Tool(step)).sample()
    assert reading is not None
    assert reading.values["idle"] is None
    assert fragment in reading.values["error"]


# --- which signals ------------------------------------------------------------------------------


@pytest.fixture
def no_default_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")


def signals_for(**env: str) -> list[Any]:
    base = {"DCVFLEET_EVENT_BUS_NAME": "fleet", "DCVFLEET_REGION": "us-east-1"}
    config = load_config({**base, **{f"DCVFLEET_{k}": v for k, v in env.items()}})
    return build_signals(config, DcvCli(["dcv"], 1), "desktop")


@pytest.mark.usefixtures("no_default_file")
def test_enabled_signals_follow_the_config() -> None:
    assert [type(s) for s in signals_for(PLATFORM="linux")] == [DcvSignal, ProcStatCpu, GpuSignal]
    assert [type(s) for s in signals_for(PLATFORM="windows")] == [DcvSignal, TypeperfCpu, GpuSignal]
    disabled = signals_for(CPU_THRESHOLD_PERCENT="null", GPU_THRESHOLD_PERCENT="null")
    assert [s.name for s in disabled] == ["dcv"]
    named = signals_for(BUSY_PROCESSES='["blender"]', GPU_THRESHOLD_PERCENT="null")
    assert [s.name for s in named] == ["dcv", "cpu", "processes"]


@pytest.mark.usefixtures("no_default_file")
def test_configured_nvidia_smi_and_stat_path_are_used(tmp_path: Path) -> None:
    script = tmp_path / "fake-nvidia-smi"
    script.write_text(
        "#!/bin/sh\necho 'utilization.gpu [%], utilization.encoder [%]'\necho '42 %, 7 %'\n"
    )
    script.chmod(0o755)
    stat = tmp_path / "stat"
    stat.write_text(fixture("proc/stat-2cpu-before.txt"))
    signals = signals_for(NVIDIA_SMI_COMMAND=str(script), CPU_STAT_PATH=str(stat))
    stat.write_text(fixture("proc/stat-2cpu-after.txt"))
    readings = {s.name: s.sample() for s in signals[1:]}
    assert readings["gpu"].values["utilizationPercent"] == 42.0
    assert readings["cpu"].values["busiestCorePercent"] == 100.0


@pytest.mark.skipif(shutil.which("sh") is None or os.name != "posix", reason="needs sh")
def test_a_hung_nvidia_smi_is_cut_off_by_the_command_timeout(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    reading = GpuSignal([str(script)], 10, 0.3).sample()
    assert reading is not None
    assert "did not finish within 0.3s" in reading.values["error"]
