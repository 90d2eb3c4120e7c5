"""Put the desktops made before the sessions table's creation-time index into it, once, after
upgrading to the release that added the index: GET /admin/sessions lists from that index, and a
desktop made before it joins it only when it is next written (an ended one never is).

Usage::

    python tools/index_sessions.py --table <the stack's SessionsTable> [--region eu-west-1]

Safe to run again, and while the fleet runs: it writes only the index attribute, never a
desktop's version, so no desktop's own change is refused because of it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from dcvfleet.store import DynamoSessionStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--table", required=True, help="the stack's sessions table")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    dynamodb = boto3.client("dynamodb", region_name=args.region)
    added = DynamoSessionStore(dynamodb, args.table).index_earlier_sessions()
    print(f"{added} earlier desktop(s) added to the creation-time index of {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
