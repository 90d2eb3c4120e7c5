"""``python -m local.emulator``: every gap of the emulator, in the order it is installed."""

from __future__ import annotations

import textwrap

from local.emulator.registry import GAPS


def main() -> None:
    for gap in GAPS:
        where = "installed by the registry" if gap.install else "closed outside the registry"
        print(f"{gap.name} ({where})")
        for label, text in (("moto does", gap.moto_does), ("we do", gap.we_do)):
            print(
                textwrap.fill(
                    f"{label}: {text}", 100, initial_indent="  ", subsequent_indent="    "
                )
            )


if __name__ == "__main__":
    main()
