"""Build dist/dcvfleet-agent.tar.gz, byte-for-byte reproducible (sorted entries, fixed mtimes and
owners, normalised modes, gzip header without name or time).

The archive holds the dcvfleet_agent package, which is all the install scripts put on a host,
plus linux/ and windows/ (install scripts and systemd unit): host bootstrap unpacks the archive
and runs linux/install.sh or windows/install.ps1 from it.

    python agent/build.py [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import tarfile
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parent
PARTS = ("dcvfleet_agent", "linux", "windows")
DEFAULT_OUT = AGENT_DIR.parent / "dist" / "dcvfleet-agent.tar.gz"
MTIME = 315532800  # 1980-01-01T00:00:00Z


def _entries(agent_dir: Path) -> list[Path]:
    """Relative paths of every directory and file to pack, parents first, sorted."""
    entries: set[Path] = set()
    for part in PARTS:
        for path in (agent_dir / part).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                relative = path.relative_to(agent_dir)
                entries.add(relative)
                entries.update(p for p in relative.parents if p != Path("."))
    return sorted(entries, key=lambda p: p.parts)


def build(out: Path = DEFAULT_OUT, agent_dir: Path = AGENT_DIR) -> Path:
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for relative in _entries(agent_dir):
            path = agent_dir / relative
            info = tarfile.TarInfo(relative.as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o755 if path.suffix == ".sh" else 0o644
                tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(payload.getvalue())
    os.replace(tmp, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the DCV Fleet agent archive.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
