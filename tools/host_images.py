"""Copy the host image component documents (images/*.yaml) into template.yaml.

CloudFormation takes an ``AWS::ImageBuilder::Component``'s document inline (``Data``) or from
S3 (``Uri``), and ``sam package`` uploads no file for it
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-imagebuilder-component.html).
The documents live as files; this tool writes each into its component's ``Data: |`` block, and
``--check`` exits 1, naming the component, when the template's copy differs from the file.

Usage::

    python tools/host_images.py           # rewrite template.yaml's Data blocks
    python tools/host_images.py --check   # exit 1 if a Data block is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "template.yaml"
#: Each component's logical id and the file holding its document.
COMPONENTS = {
    "LinuxHostComponent": "images/linux.yaml",
    "WindowsHostComponent": "images/windows.yaml",
}
DATA_LINE = "      Data: |\n"
DATA_INDENT = " " * 8


def render(template: str, documents: dict[str, str]) -> str:
    """``template`` with each component's Data block replaced by its document."""
    lines = template.splitlines(keepends=True)
    for logical_id, document in documents.items():
        start = lines.index(f"  {logical_id}:\n")
        data = next(
            i for i in range(start + 1, len(lines)) if lines[i] == DATA_LINE
        )  # within the resource: the next top-level key would come first otherwise
        if any(
            line.startswith("  ") and not line.startswith("   ") for line in lines[start + 1 : data]
        ):
            raise ValueError(f"{logical_id} has no 'Data: |' block")
        end = data + 1
        while end < len(lines) and (lines[end].startswith(DATA_INDENT) or lines[end] == "\n"):
            end += 1
        body = [
            DATA_INDENT + line if line.strip() else "\n"
            for line in document.splitlines(keepends=True)
        ]
        lines[data + 1 : end] = body
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if template.yaml is stale")
    parser.add_argument("--root", type=Path, default=REPO_ROOT)
    args = parser.parse_args(argv)
    path = args.root / TEMPLATE
    template = path.read_text(encoding="utf-8")
    documents = {k: (args.root / v).read_text(encoding="utf-8") for k, v in COMPONENTS.items()}
    updated = render(template, documents)
    if args.check:
        if updated != template:
            stale = [k for k in COMPONENTS if render(template, {k: documents[k]}) != template]
            print(
                f"{TEMPLATE}: the Data of {', '.join(stale)} differs from "
                f"{', '.join(COMPONENTS[k] for k in stale)}; run python tools/host_images.py",
                file=sys.stderr,
            )
            return 1
        return 0
    path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
