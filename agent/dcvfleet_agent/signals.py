"""Idle signals: each says whether one kind of activity is absent from this host right now.

A signal's sample() returns a Reading whose `values` is the signal's object in the Host Heartbeat
and Session Idle events (signals.dcv, .cpu, .gpu, .processes), or None when the signal is absent
this time (no GPU). Nothing a host prints can crash it: a signal that cannot be read reports
"idle": null and an "error", and counts as not idle.

- dcv: `dcv describe-session <id> -j` ("num-of-connections", "last-disconnection-time"), then
  `dcv list-connections -j <id>` only while there are connections. Idle with 0 connections, or
  when every connection carries a "last-interaction-time" older than the idle timeout. When
  describe-session fails and `dcv list-sessions` no longer lists the session (DCV closed it),
  idle with 0 connections, and the agent is told (it re-creates the session on Linux).
- cpu: the busiest core between two samples, not the average (one busy core of 16 reads as 6 %).
  Linux: the per-core `cpuN` lines of /proc/stat (`cpuStatPath`). Windows: a background
  `typeperf "\\Processor(*)\\% Processor Time" -si 1` (its counter names in the system's
  language), every row since the last reading averaged per processor (TypeperfCpu).
- gpu: `nvidia-smi --query-gpu=utilization.gpu,utilization.encoder --format=csv`, the maximum over
  GPUs, the columns found by their header.
  Absent when nvidia-smi is not installed; an error when it is there but fails. A column that
  prints "[N/A]" (or another bracketed "cannot read") is left out: the signal judges on the
  columns it could read, and is unreadable (an error) only when no column could be read.
- processes: whether any of `busyProcesses` runs (Linux: /proc/<pid>/comm and the basename of
  argv[0]; Windows: `tasklist /fo csv /nh`, image names compared without case or ".exe").
"""

from __future__ import annotations

import calendar
import contextlib
import csv
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .config import Config
from .dcv import DcvCli, DcvError
from .logs import iso_utc
from .proc import Runner, run_command

ERROR_LIMIT = 500  # the events' "error" maxLength
#: The two nvidia-smi fields the GPU signal reads, and how it asks for them: CSV with its header
#: line and units ("utilization.gpu [%], utilization.encoder [%]", then "9 %, 60 %" per GPU), the
#: form public recordings of real GPUs show (tests/unit/fixtures/agent/README.md), so the columns
#: are found by name and a value is checked against its unit.
NVIDIA_SMI_FIELDS = ("utilization.gpu", "utilization.encoder")
NVIDIA_SMI_QUERY = (f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv")
TASKLIST_ARGV = ("tasklist", "/fo", "csv", "/nh")
_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$"
)

log = logging.getLogger(__name__)


class SignalError(Exception):
    """The signal could not be read; the message goes into the events."""


@dataclass(frozen=True)
class Reading:
    values: dict[str, Any]
    #: dcv only: since when DCV itself reports no activity (last disconnection, or the latest
    #: interaction when every connection carries one); None when it does not say.
    quiet_since: float | None = None

    @property
    def idle(self) -> bool:
        return self.values.get("idle") is True


def parse_time(text: object) -> float | None:
    """ISO-8601 (as DCV prints it, e.g. 2019-05-14T12:32:14.357567Z) to epoch seconds; None for
    "" or anything else. No zone means UTC."""
    found = _TIME_RE.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second)  # validates the date
    except ValueError:
        return None
    stamp = calendar.timegm(moment.timetuple()) + float(found.group(7) or 0)
    zone = found.group(8) or "Z"
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        stamp -= offset if zone[0] == "+" else -offset
    return stamp if stamp >= 0 else None


def _clip(text: str) -> str:
    text = " ".join(text.split()) or "unknown error"
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def _run_tool(run: Runner, label: str, argv: Sequence[str], timeout: float) -> str | None:
    """stdout of a tool; None when it is not installed; SignalError when it fails."""
    try:
        result = run(argv, timeout=timeout)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise SignalError(f"'{label}' did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise SignalError(f"cannot run '{label}': {exc.strerror or exc}") from None
    if result.returncode == 127:
        return None
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout or "no output").split())[-300:]
        raise SignalError(f"'{label}' failed with exit code {result.returncode}: {detail}")
    return result.stdout


class Signal:
    name = ""

    def sample(self) -> Reading | None:
        try:
            return self.read()
        except SignalError as exc:
            return self.failed(str(exc))

    def failed(self, error: str) -> Reading:
        return Reading({**self.unknown(), "idle": None, "error": _clip(error)})

    def read(self) -> Reading | None:
        raise NotImplementedError

    def unknown(self) -> dict[str, Any]:
        """The signal's required fields when it could not be read."""
        raise NotImplementedError


class DcvSignal(Signal):
    name = "dcv"

    def __init__(
        self,
        dcv: DcvCli,
        session_id: str,
        idle_timeout: float,
        wall: Callable[[], float] = time.time,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        """`on_gone`: called when the session is no longer listed (DCV closed it: its user
        logged out, or its desktop exited); the host then counts as idle (nobody can be using a
        session that does not exist). Without it, a missing session is an error (a container
        ends with its session instead: monitor.py)."""
        self.dcv = dcv
        self.session_id = session_id
        self.idle_timeout = idle_timeout
        self._wall = wall
        self._on_gone = on_gone

    def unknown(self) -> dict[str, Any]:
        return {"connections": None}

    def _listed(self) -> bool:
        """Whether DCV still lists the session; SignalError when it cannot say."""
        try:
            return any(s.id == self.session_id for s in self.dcv.list_sessions())
        except DcvError as exc:
            raise SignalError(str(exc)) from None

    def _gone(self) -> Reading:
        if self._on_gone is not None:
            self._on_gone()
        values = {"idle": True, "connections": 0, "lastDisconnectAt": None}
        return Reading({**values, "lastInteractionAt": None})

    def read(self) -> Reading:
        try:
            info = self.dcv.describe_session(self.session_id)
            described = info.get("num-of-connections")
            if not isinstance(described, int) or isinstance(described, bool) or described < 0:
                described = None
            connections = [] if described == 0 else self.dcv.list_connections(self.session_id)
        except DcvError as exc:
            if self._on_gone is not None and not self._listed():
                return self._gone()
            raise SignalError(str(exc)) from None
        disconnected = parse_time(info.get("last-disconnection-time"))
        interactions = [parse_time(c.get("last-interaction-time")) for c in connections]
        known = [t for t in interactions if t is not None]
        latest = max(known) if known else None
        values: dict[str, Any] = {
            "idle": False,
            "connections": len(connections),
            "lastDisconnectAt": None if disconnected is None else iso_utc(disconnected),
            "lastInteractionAt": None if latest is None else iso_utc(latest),
        }
        if not connections:
            values["idle"] = True
            # Only when describe-session itself said 0: else someone left between the calls.
            return Reading(values, disconnected if described == 0 else None)
        every_one_known = len(known) == len(connections)
        if latest is not None and every_one_known and self._wall() - latest >= self.idle_timeout:
            values["idle"] = True
            return Reading(values, latest)
        return Reading(values)


def busiest_core_percent(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> float:
    """Highest busy share of any core between two (busy, total) counter snapshots."""
    shares = []
    for core, (busy, total) in after.items():
        if core not in before:
            continue
        busy_delta, total_delta = busy - before[core][0], total - before[core][1]
        if total_delta > 0:  # iowait may run backwards: clamp rather than trust it
            shares.append(100.0 * min(max(busy_delta, 0), total_delta) / total_delta)
    if not shares:
        raise SignalError("no CPU time was counted between two samples")
    return max(shares)


def parse_proc_stat(text: str) -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core from the `cpuN` lines; iowait counts as idle and guest
    time is already part of user time."""
    cores: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or not re.fullmatch(r"cpu\d+", fields[0]):
            continue
        try:
            numbers = [int(f) for f in fields[1:9]]
        except ValueError:
            raise SignalError(f"unexpected line in /proc/stat: {line[:80]!r}") from None
        if len(numbers) < 4:
            raise SignalError(f"unexpected line in /proc/stat: {line[:80]!r}")
        total = sum(numbers)
        idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
        cores[fields[0]] = (total - idle, total)
    if not cores:
        raise SignalError("no per-core cpuN lines in /proc/stat")
    return cores


class ProcStatCpu(Signal):
    """Linux: the busiest core over the last sample interval, from /proc/stat counters."""

    name = "cpu"

    def __init__(self, path: str, threshold: float) -> None:
        self.path = path
        self.threshold = threshold
        self._last: dict[str, tuple[int, int]] | None = None
        with contextlib.suppress(SignalError):
            self._last = self._snapshot()  # so that the first sample has an interval to measure

    def unknown(self) -> dict[str, Any]:
        return {"busiestCorePercent": None, "thresholdPercent": self.threshold}

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        try:
            with open(self.path, encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError as exc:
            raise SignalError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        return parse_proc_stat(text)

    def read(self) -> Reading:
        current = self._snapshot()
        before, self._last = self._last, current
        if before is None:
            raise SignalError(f"no earlier reading of {self.path} to compare with yet")
        return cpu_reading(busiest_core_percent(before, current), self.threshold)


def cpu_reading(busiest: float, threshold: float) -> Reading:
    busiest = round(min(100.0, max(0.0, busiest)), 1)
    return Reading(
        {"idle": busiest < threshold, "busiestCorePercent": busiest, "thresholdPercent": threshold}
    )


def _typeperf_row(row: list[str], names: list[str]) -> dict[str, float] | None:
    """Percent per processor instance (not _Total) of one typeperf CSV row, keyed by column;
    only the first counter's columns count when a header names several. None for a row without
    values (typeperf prints " " for a rate counter before it has two raw samples)."""
    cores: dict[str, float] = {}
    counter: str | None = None
    for column in range(1, min(len(names), len(row))):
        name, value = names[column], row[column].strip()
        instance = re.search(r"\(([^()]*)\)\\([^\\]*)$", name)
        if instance is None or instance.group(1) == "_Total":
            continue
        counter = counter or instance.group(2)
        if instance.group(2) != counter:
            continue
        if not value:
            return None
        try:
            cores[name] = float(value.replace(",", "."))
        except ValueError:
            raise SignalError(f"typeperf printed {value!r} for {name}") from None
    if not cores:
        raise SignalError("typeperf printed no per-processor column")
    return cores


def parse_typeperf(text: str) -> list[dict[str, float]]:
    """Per-processor percentages of each row of typeperf's CSV: a "(PDH-CSV 4.0)" header row
    naming one column per `\\\\HOST\\Processor(N)\\% Processor Time` instance (and _Total),
    then one row per sample interval. Other lines (typeperf's closing messages, in the
    system's language) are skipped; a row without values (the first of a run) is left out."""
    names: list[str] | None = None
    rows: list[dict[str, float]] = []
    for row in csv.reader(text.splitlines()):
        if not row or not row[0].strip():
            continue
        if row[0].startswith("(PDH-CSV"):
            names = row
        elif names is not None and len(row) > 1:
            cores = _typeperf_row(row, names)
            if cores is not None:
                rows.append(cores)
    if names is None:
        raise SignalError(f"typeperf printed no counter header: {_clip(text)[:200]!r}")
    return rows


def busiest_core_over(rows: Sequence[dict[str, float]]) -> float:
    """The busiest processor over rows of equal intervals: each processor's mean, then the
    highest, as ProcStatCpu's counter deltas give over the whole interval."""
    if not rows:
        raise SignalError("typeperf printed no sample since the last reading")
    totals: dict[str, list[float]] = {}
    for row in rows:
        for core, percent in row.items():
            totals.setdefault(core, []).append(percent)
    return max(sum(values) / len(values) for values in totals.values())


#: The Processor object and its "% Processor Time" counter by their fixed indexes, which the
#: performance library maps to the system language's names ("\\Prozessor(*)\\Prozessorzeit (%)"
#: on a German Windows); typeperf takes only those names
#: (https://learn.microsoft.com/en-us/windows/win32/api/pdh/nf-pdh-pdhlookupperfnamebyindexw).
PROCESSOR_OBJECT_INDEX = 238
PROCESSOR_TIME_INDEX = 6
ENGLISH_PROCESSOR_COUNTER = "\\Processor(*)\\% Processor Time"
#: typeperf's sample interval (-si) and how many rows one run prints (-sc): a run ends by
#: itself within the hour, so one left behind by an agent that was ended goes away too.
TYPEPERF_INTERVAL_SECONDS = 1
#: How recent typeperf's newest row must be to stand for a reading that found no new row.
TYPEPERF_FRESH_SECONDS = 3.0
TYPEPERF_ROWS_PER_RUN = 3600


def pdh_counter_name(index: int) -> str | None:
    """The system language's name of a performance object or counter, from its index
    (PdhLookupPerfNameByIndexW); None off Windows or when the lookup fails."""
    if not sys.platform.startswith("win"):
        return None
    import ctypes

    size = ctypes.c_ulong(1024)
    buffer = ctypes.create_unicode_buffer(size.value)
    try:
        status = ctypes.windll.pdh.PdhLookupPerfNameByIndexW(
            None, index, buffer, ctypes.byref(size)
        )
    except (AttributeError, OSError):
        return None
    return buffer.value if status == 0 and buffer.value else None


def processor_counter(lookup: Callable[[int], str | None] = pdh_counter_name) -> str:
    """`\\Processor(*)\\% Processor Time` in the system's language, English when not found."""
    processor, processor_time = lookup(PROCESSOR_OBJECT_INDEX), lookup(PROCESSOR_TIME_INDEX)
    if not processor or not processor_time:
        return ENGLISH_PROCESSOR_COUNTER
    return f"\\{processor}(*)\\{processor_time}"


def typeperf_argv(counter: str) -> list[str]:
    return [
        "typeperf",
        counter,
        "-si",
        str(TYPEPERF_INTERVAL_SECONDS),
        "-sc",
        str(TYPEPERF_ROWS_PER_RUN),
    ]


class Process(Protocol):
    @property
    def stdout(self) -> Iterable[str] | None: ...

    def poll(self) -> int | None: ...


def spawn_process(argv: Sequence[str]) -> Process:
    """A child whose text stdout is read line by line (stderr joins it)."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )


class TypeperfCpu(Signal):
    """Windows: the busiest processor over the whole interval since the last reading. One
    typeperf runs in the background and prints a row a second, each the share of that second
    PDH computes from the raw counters' deltas; a reading averages every row since the one
    before, per processor, so a one-second spike weighs one second, not the whole sample.
    (A one-shot `typeperf -sc 1` measured one second of ten: one routine spike made the whole
    sample busy.) A run that ends is started again at the next reading."""

    name = "cpu"

    def __init__(
        self,
        threshold: float,
        counter: str | None = None,
        spawn: Callable[[Sequence[str]], Process] = spawn_process,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.argv = typeperf_argv(counter or processor_counter())
        self._spawn = spawn
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: list[dict[str, float]] = []
        #: The newest row and when it came: typeperf prints a row every 1.02-1.03 s, so a
        #: reading a second after the last may find none new; the newest row, if this recent,
        #: then stands for the interval (a typeperf that stalls longer is an error).
        self._newest: tuple[float, dict[str, float]] | None = None
        self._problem: str | None = None
        self._process: Process | None = None
        self.reader: threading.Thread | None = None
        with contextlib.suppress(SignalError):
            self._start()  # so that the first reading has an interval to measure

    def unknown(self) -> dict[str, Any]:
        return {"busiestCorePercent": None, "thresholdPercent": self.threshold}

    def _start(self) -> None:
        try:
            process = self._spawn(self.argv)
        except FileNotFoundError:
            raise SignalError("typeperf is not installed") from None
        except OSError as exc:
            raise SignalError(f"cannot run 'typeperf': {exc.strerror or exc}") from None
        self._process = process
        self.reader = threading.Thread(
            target=self._pump, args=(process,), name="typeperf", daemon=True
        )
        self.reader.start()

    def _pump(self, process: Process) -> None:
        names: list[str] | None = None
        other: list[str] = []
        for line in process.stdout or ():
            row = next(csv.reader([line]), [])
            if not row or not row[0].strip():
                continue
            if row[0].startswith("(PDH-CSV"):
                names = row
                continue
            if names is None or len(row) < 2:
                other.append(line.strip())  # a message: typeperf's error, or its last words
                continue
            try:
                cores = _typeperf_row(row, names)
            except SignalError as exc:
                with self._lock:
                    self._problem = str(exc)
                continue
            if cores is not None:
                with self._lock:
                    self._rows.append(cores)
                    del self._rows[:-TYPEPERF_ROWS_PER_RUN]
                    self._newest = (self._clock(), cores)
        if names is None:
            with self._lock:
                self._problem = "typeperf printed no counter header: " + (
                    " ".join(other)[-300:] or "no output"
                )

    def read(self) -> Reading:
        process = self._process
        if process is None or process.poll() is not None:
            if self.reader is not None:
                self.reader.join(timeout=1)
            with self._lock:  # what the run that ended printed
                rows, self._rows = self._rows, []
                problem, self._problem = self._problem, None
            self._start()
            if rows:
                return cpu_reading(busiest_core_over(rows), self.threshold)
            raise SignalError(problem or "typeperf had ended; started again")
        with self._lock:
            rows, self._rows = self._rows, []
            problem, self._problem = self._problem, None
            newest = self._newest
        if problem is not None and not rows:
            raise SignalError(problem)
        if not rows and newest is not None and self._clock() - newest[0] <= TYPEPERF_FRESH_SECONDS:
            rows = [newest[1]]
        return cpu_reading(busiest_core_over(rows), self.threshold)


def _percent(cell: str) -> float | None:
    """One cell: "9 %" (a percentage with its unit), or None for what nvidia-smi prints when it
    cannot read the field ("[N/A]", "[Not Supported]", "[Unknown Error]", ...: always in square
    brackets; a GPU in MIG mode prints "[N/A]" for both utilisations)."""
    text = cell.strip()
    if text.startswith("[") and text.endswith("]"):
        return None
    problem = SignalError(f"nvidia-smi printed {text[:40]!r}, not a percentage")
    if not text.endswith("%"):
        raise problem
    try:
        number = float(text[:-1])
    except ValueError:
        raise problem from None
    if not 0 <= number <= 100:
        raise problem
    return number


def _column_name(cell: str) -> str:
    """A header cell without its unit: "utilization.gpu [%]" -> "utilization.gpu"."""
    return re.sub(r"\s*\[[^\]]*\]$", "", cell.strip())


def parse_nvidia_smi(text: str) -> tuple[float | None, float | None]:
    """Highest GPU and encoder utilisation over the GPUs of `nvidia-smi --query-gpu=...
    --format=csv` output: a header line naming the fields, then one line per GPU. The columns
    are found by name, so any other fields may stand beside them. A column no GPU could read
    (e.g. "[N/A]" in MIG mode) is None; the signal judges on what was readable."""
    rows = [row for row in csv.reader(text.splitlines(), skipinitialspace=True) if row]
    if not rows:
        raise SignalError("nvidia-smi printed no GPU")
    header = [_column_name(cell) for cell in rows[0]]
    missing = [field for field in NVIDIA_SMI_FIELDS if field not in header]
    if missing:
        raise SignalError(
            f"nvidia-smi printed {','.join(rows[0])[:80]!r}, not a header naming "
            + " and ".join(NVIDIA_SMI_FIELDS)
        )
    if len(rows) == 1:
        raise SignalError("nvidia-smi printed no GPU")
    gpu_at, encoder_at = (header.index(field) for field in NVIDIA_SMI_FIELDS)
    gpu: float | None = None
    encoder: float | None = None
    for row in rows[1:]:
        if len(row) != len(header):
            raise SignalError(
                f"nvidia-smi printed {','.join(row)[:80]!r}: {len(row)} values "
                f"under {len(header)} column(s)"
            )
        values = _percent(row[gpu_at]), _percent(row[encoder_at])
        if values[0] is not None:
            gpu = values[0] if gpu is None else max(gpu, values[0])
        if values[1] is not None:
            encoder = values[1] if encoder is None else max(encoder, values[1])
    return gpu, encoder


class GpuSignal(Signal):
    name = "gpu"

    def __init__(
        self, command: Sequence[str], threshold: float, timeout: float, run: Runner = run_command
    ) -> None:
        self.argv = (*command, *NVIDIA_SMI_QUERY)
        self.threshold = threshold
        self.timeout = timeout
        self._run = run
        self._absent_logged = False

    def unknown(self) -> dict[str, Any]:
        return {
            "utilizationPercent": None,
            "encoderPercent": None,
            "thresholdPercent": self.threshold,
        }

    def read(self) -> Reading | None:
        output = _run_tool(self._run, "nvidia-smi", self.argv, self.timeout)
        if output is None:
            if not self._absent_logged:
                log.info("no nvidia-smi: no GPU signal", extra={"fields": {"argv": self.argv[0]}})
                self._absent_logged = True
            return None
        gpu, encoder = parse_nvidia_smi(output)
        readable = [value for value in (gpu, encoder) if value is not None]
        if not readable:
            raise SignalError(f"nvidia-smi could read no utilisation: {_clip(output)[:200]!r}")
        return Reading(
            {
                "idle": all(value < self.threshold for value in readable),
                "utilizationPercent": gpu,
                "encoderPercent": encoder,
                "thresholdPercent": self.threshold,
            }
        )


def linux_process_names(proc_root: str = "/proc") -> set[str]:
    """comm and the basename of argv[0] of every process; processes may vanish meanwhile."""
    try:
        pids = [entry for entry in os.listdir(proc_root) if entry.isdigit()]
    except OSError as exc:
        raise SignalError(f"cannot list {proc_root}: {exc.strerror or exc}") from None
    names: set[str] = set()
    for pid in pids:
        base = os.path.join(proc_root, pid)
        try:
            with open(os.path.join(base, "comm"), "rb") as handle:
                names.add(handle.read().decode("utf-8", "replace").strip())
            with open(os.path.join(base, "cmdline"), "rb") as handle:
                argv0 = handle.read().split(b"\0", 1)[0].decode("utf-8", "replace")
        except OSError:
            continue
        if argv0:
            names.add(os.path.basename(argv0))
    return names


def parse_tasklist(text: str) -> set[str]:
    """Image names from `tasklist /fo csv /nh`: "name","pid","session","#","memory" rows."""
    names = {row[0] for row in csv.reader(text.splitlines()) if len(row) >= 2 and row[0]}
    if not names:
        raise SignalError(f"tasklist printed no process: {_clip(text)[:200]!r}")
    return names


def _windows_key(name: str) -> str:
    name = name.lower()
    return name[:-4] if name.endswith(".exe") else name


class ProcessSignal(Signal):
    name = "processes"

    def __init__(
        self,
        names: Sequence[str],
        platform: str,
        timeout: float,
        run: Runner = run_command,
        proc_root: str = "/proc",
    ) -> None:
        self.names = tuple(names)
        self.windows = platform == "windows"
        self.timeout = timeout
        self._run = run
        self.proc_root = proc_root

    def unknown(self) -> dict[str, Any]:
        return {"running": []}

    def read(self) -> Reading:
        if self.windows:
            output = _run_tool(self._run, "tasklist", TASKLIST_ARGV, self.timeout)
            if output is None:
                raise SignalError("tasklist is not installed")
            seen = {_windows_key(name) for name in parse_tasklist(output)}
            running = [name for name in self.names if _windows_key(name) in seen]
        else:
            seen = linux_process_names(self.proc_root)
            running = [name for name in self.names if name in seen]
        return Reading({"idle": not running, "running": sorted(set(running))})


def build_signals(
    config: Config,
    dcv: DcvCli,
    dcv_session_id: str,
    run: Runner = run_command,
    on_gone: Callable[[], None] | None = None,
) -> list[Signal]:
    """The enabled signals: dcv always; cpu and gpu unless their threshold is null; processes
    when busyProcesses names any. `on_gone`: DcvSignal's."""
    timeout = config.command_timeout_seconds
    signals: list[Signal] = [
        DcvSignal(dcv, dcv_session_id, config.idle_timeout_seconds, on_gone=on_gone)
    ]
    if config.cpu_threshold_percent is not None:
        if config.platform == "windows":
            signals.append(TypeperfCpu(config.cpu_threshold_percent))
        else:
            signals.append(ProcStatCpu(config.cpu_stat_path, config.cpu_threshold_percent))
    if config.gpu_threshold_percent is not None:
        signals.append(
            GpuSignal(config.nvidia_smi_command, config.gpu_threshold_percent, timeout, run)
        )
    if config.busy_processes:
        signals.append(ProcessSignal(config.busy_processes, config.platform, timeout, run))
    return signals
