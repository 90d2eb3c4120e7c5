"""Build dist/dcvfleet-image.zip, the source of the image build project (``ImageBuildProject``),
byte-for-byte reproducible (sorted entries, fixed times, modes from content: 0755 for a script
that starts with ``#!``, 0644 for anything else).

The bundle holds container/ and agent/, the repository paths container/buildspec.yml builds the
desktop image from (the build spec itself, the Dockerfile and its files, agent/build.py). Upload
it to the builds bucket as ``image-source/dcvfleet-image.zip``, where the project looks for it.

    python container/source_bundle.py [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("container", "agent")
DEFAULT_OUT = ROOT / "dist" / "dcvfleet-image.zip"
#: Where the image build project's source is, in the builds bucket.
KEY = "image-source/dcvfleet-image.zip"
DATE_TIME = (1980, 1, 1, 0, 0, 0)


def files(root: Path = ROOT) -> list[Path]:
    """Relative paths of every file to pack, sorted (no bytecode, no caches)."""
    found = {
        path.relative_to(root)
        for part in PARTS
        for path in (root / part).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    return sorted(found, key=lambda p: p.parts)


def bundle(root: Path = ROOT) -> bytes:
    """The bundle's bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for relative in files(root):
            data = (root / relative).read_bytes()
            info = zipfile.ZipInfo(relative.as_posix(), date_time=DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix: unzip restores the mode below
            mode = 0o755 if data.startswith(b"#!") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def build(out: Path = DEFAULT_OUT, root: Path = ROOT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(bundle(root))
    os.replace(tmp, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the DCV Fleet image source bundle.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
