"""Build dist/dcvfleet-agent.tar.gz: the dcvfleet_agent package only, byte-for-byte reproducible
(sorted entries, fixed mtimes and owners, normalised modes, gzip header without name or time).

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
PACKAGE_DIR = AGENT_DIR / "dcvfleet_agent"
DEFAULT_OUT = AGENT_DIR.parent / "dist" / "dcvfleet-agent.tar.gz"
MTIME = 315532800  # 1980-01-01T00:00:00Z


def _entries(package: Path) -> list[Path]:
    files = [
        path
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    dirs = {parent for path in files for parent in path.relative_to(package).parents}
    return sorted([package / d for d in dirs] + files, key=lambda p: p.relative_to(package).parts)


def build(out: Path = DEFAULT_OUT, package: Path = PACKAGE_DIR) -> Path:
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in _entries(package):
            info = tarfile.TarInfo((Path(package.name) / path.relative_to(package)).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(payload.getvalue())
    os.replace(tmp, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
