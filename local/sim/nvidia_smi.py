#!/usr/bin/env python3
"""Simulated ``nvidia-smi`` for the local emulator's hosts (stdlib only).

    SIM_GPU_STATE=/tmp/host1/activity.json python3 local/sim/nvidia_smi.py \\
        --query-gpu=utilization.gpu,utilization.encoder --format=csv,noheader,nounits

prints one line per GPU (the simulated hosts have one), the queried fields in order, ``", "``
between them: ``35, 12``. Without ``nounits`` a percentage reads ``35 %`` and a memory size
``1024 MiB``; without ``noheader`` a header line comes first (``utilization.gpu [%], ...``), as
the real tool prints them. An unknown field is an error (stderr, exit 2), as is a query without
``--format=csv``. Without ``--query-gpu`` it prints a one-line summary.

The state file is written by the host simulator (``POST /hosts/{id}/activity``):
``{"gpuPercent": 0-100, "encoderPercent": 0-100, "decoderPercent": 0-100}``; missing keys and a
missing file read as 0.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

STATE_ENV = "SIM_GPU_STATE"
GPU_NAME = "NVIDIA A10G"
MEMORY_TOTAL_MIB = 23028

#: field -> (state key or constant, unit shown without ``nounits``)
FIELDS: dict[str, tuple[str, str]] = {
    "utilization.gpu": ("gpuPercent", "%"),
    "utilization.encoder": ("encoderPercent", "%"),
    "utilization.decoder": ("decoderPercent", "%"),
    "utilization.memory": ("gpuPercent", "%"),
    "memory.total": ("=memoryTotal", "MiB"),
    "memory.used": ("=memoryUsed", "MiB"),
    "name": ("=name", ""),
    "index": ("=index", ""),
    "count": ("=count", ""),
}


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def value(field: str, state: dict[str, Any]) -> str:
    key, _unit = FIELDS[field]
    percent = round(float(state.get("gpuPercent", 0) or 0))
    constants = {
        "=memoryTotal": str(MEMORY_TOTAL_MIB),
        "=memoryUsed": str(MEMORY_TOTAL_MIB * percent // 200),
        "=name": GPU_NAME,
        "=index": "0",
        "=count": "1",
    }
    if key in constants:
        return constants[key]
    return str(round(float(state.get(key, 0) or 0)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    options = dict(arg.split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)
    state = load(os.environ.get(STATE_ENV, ""))
    query = options.get("--query-gpu")
    if query is None:
        print(f"GPU 0: {GPU_NAME} | utilization {value('utilization.gpu', state)} %")
        return 0
    formats = options.get("--format", "").split(",")
    if formats[0] != "csv":
        print('"--format" must be given with "csv" for a query', file=sys.stderr)
        return 2
    fields = [f.strip() for f in query.split(",") if f.strip()]
    for field in fields:
        if field not in FIELDS:
            print(f'Field "{field}" is not a valid field to query.', file=sys.stderr)
            return 2
    units = "nounits" not in formats
    if "noheader" not in formats:
        print(", ".join(f"{f} [{FIELDS[f][1]}]" if FIELDS[f][1] else f for f in fields))
    cells = []
    for field in fields:
        unit = FIELDS[field][1]
        cells.append(f"{value(field, state)} {unit}" if units and unit else value(field, state))
    print(", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
