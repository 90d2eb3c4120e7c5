"""Plain-text tables, times and JSON for people and scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned columns, two spaces apart; an empty cell shows as ``-``."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 time from the API (``...Z`` or with an offset); None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def timestamp(value: object) -> float | None:
    parsed = parse_time(value)
    return parsed.timestamp() if parsed else None


def short_time(value: object) -> str:
    """``2025-01-31 14:05Z`` (UTC, to the minute) for a table."""
    parsed = parse_time(value)
    if parsed is None:
        return str(value or "")
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"


def duration(seconds: float) -> str:
    """``7s``, ``2m 05s``, ``1h 02m``: a time taken, for people."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def print_json(data: Any, out: TextIO) -> None:
    print(json.dumps(data, indent=2, sort_keys=True), file=out)


def symbols(stream: TextIO) -> tuple[str, str, str]:
    """Done, in progress and failed marks, in ASCII where the stream cannot show Unicode."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "✓…✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "ok", "..", "x"
    return "✓", "…", "✗"
