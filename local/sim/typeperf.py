#!/usr/bin/env python3
"""Simulated ``typeperf`` for the local emulator's Windows hosts (stdlib only).

    SIM_GPU_STATE=/tmp/host1/activity.json SIM_PERF_LANGUAGE=de \\
        python3 local/sim/typeperf.py "\\Prozessor(*)\\Prozessorzeit (%)" -si 1 -sc 3600

prints what typeperf prints for a processor counter (the recorded outputs in
``tests/unit/fixtures/agent/windows/``): a ``"(PDH-CSV 4.0)"`` header row naming one column per
``\\\\HOST\\<object>(N)\\<counter>`` instance and ``_Total``, a first row of blanks (a rate
counter has no value before its second raw sample), then one quoted row each ``-si`` seconds,
``-sc`` rows in all. The busiest core, ``0``, shows the host's set CPU % (``cpuPercent`` of
``$SIM_GPU_STATE``, the host simulator's ``activity.json``), the others a quarter of it, as the
simulated ``/proc/stat`` does.

Counter names are localized: typeperf takes only the names of the system's language
(PdhAddCounter, not PdhAddEnglishCounter:
https://learn.microsoft.com/en-us/windows/win32/api/pdh/nf-pdh-pdhaddcounterw). The host's
language is ``$SIM_PERF_LANGUAGE`` (a key of NAMES; ``en`` when unset); a counter path in another
language is refused with typeperf's "Error: No valid counters.", as on a German Windows asked
for ``\\Processor(*)\\...``.
``NAMES`` is also the host's table of performance names by index (238: the Processor object,
6: "% Processor Time"), which the simulator gives the agent's PdhLookupPerfNameByIndexW.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

STATE_ENV = "SIM_GPU_STATE"
LANGUAGE_ENV = "SIM_PERF_LANGUAGE"
CORES = 4
#: Performance object and counter names by index, per system language (the names Windows
#: shows in Performance Monitor: "Prozessor"/"Prozessorzeit (%)" on a German Windows).
NAMES: dict[str, dict[int, str]] = {
    "en": {238: "Processor", 6: "% Processor Time"},
    "de": {238: "Prozessor", 6: "Prozessorzeit (%)"},
}
NO_VALID_COUNTERS = "Error: No valid counters."


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stamp(now: float) -> str:
    millis = int(now * 1000) % 1000
    return time.strftime("%m/%d/%Y %H:%M:%S", time.localtime(now)) + f".{millis:03d}"


def _row(cells: list[str]) -> str:
    return ",".join(f'"{cell}"' for cell in cells)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    options: dict[str, str] = {}
    counters: list[str] = []
    index = 0
    while index < len(args):
        if args[index] in ("-si", "-sc") and index + 1 < len(args):
            options[args[index]] = args[index + 1]
            index += 2
            continue
        counters.append(args[index])
        index += 1
    names = NAMES.get(os.environ.get(LANGUAGE_ENV) or "en", NAMES["en"])
    wanted = f"\\{names[238]}(*)\\{names[6]}"
    if counters != [wanted]:
        print(NO_VALID_COUNTERS)
        return 1
    interval = float(options.get("-si", "1"))
    rows = int(options.get("-sc", "0")) or sys.maxsize
    host = socket.gethostname().upper()[:15]
    instances = [*(str(core) for core in range(CORES)), "_Total"]
    columns = [f"\\\\{host}\\{names[238]}({i})\\{names[6]}" for i in instances]
    print(_row(["(PDH-CSV 4.0)", *columns]))
    print(_row([_stamp(time.time()), *(" " for _ in instances)]), flush=True)
    for _ in range(rows - 1):
        time.sleep(interval)
        busy = float(load(os.environ.get(STATE_ENV, "")).get("cpuPercent", 0) or 0)
        cores = [busy, *(busy / 4 for _ in range(CORES - 1))]
        values = [*cores, sum(cores) / CORES]
        print(_row([_stamp(time.time()), *(f"{v:.6f}" for v in values)]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
