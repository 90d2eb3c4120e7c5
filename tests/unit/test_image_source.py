"""The image build project's source bundle (``make image-source``): reproducible, and holding
what container/buildspec.yml builds the image from."""

from __future__ import annotations

import runpy
import shutil
import zipfile
from pathlib import Path

from local import deploy

ROOT = Path(__file__).resolve().parents[2]
source_bundle = runpy.run_path(str(ROOT / "container" / "source_bundle.py"))


def test_the_bundle_is_reproducible_and_holds_what_the_build_spec_runs(tmp_path: Path) -> None:
    out = source_bundle["build"](tmp_path / "dist" / "dcvfleet-image.zip")
    copy = tmp_path / "copy"
    for part in ("container", "agent"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "agent" / "dcvfleet_agent" / "__pycache__").mkdir()
    (copy / "agent" / "dcvfleet_agent" / "__pycache__" / "agent.cpython-311.pyc").write_bytes(b"0")
    (copy / "container" / "entrypoint.sh").chmod(0o600)  # modes on disk do not matter
    assert out.read_bytes() == source_bundle["bundle"](copy) == deploy.image_source_bundle()
    with zipfile.ZipFile(out) as archive:
        members = {i.filename: i for i in archive.infolist()}
    assert {
        "container/buildspec.yml",
        "container/Dockerfile",
        "container/entrypoint.sh",
        "agent/build.py",
        "agent/dcvfleet_agent/agent.py",
    } <= set(members)
    assert all(name.split("/")[0] in ("container", "agent") for name in members)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in members)
    assert members["container/entrypoint.sh"].external_attr >> 16 == 0o100755
    assert members["container/Dockerfile"].external_attr >> 16 == 0o100644
    assert {i.date_time for i in members.values()} == {source_bundle["DATE_TIME"]}
