"""``make local``: run the local stack in the foreground until interrupted (Ctrl-C: exit 0).

``python -m local [--params "K=V ..."] [--boot-delay S] [--baked-boot-delay S] [--pull-delay S]
[--aws-boot-delays] [--port N] [--state-dir DIR]
[--minute-seconds S]``: ``--minute-seconds`` makes one minute of an EventBridge schedule last S
real seconds (default 60; only schedules are compressed); ``control_url``'s
``POST /schedules/run`` fires them at once.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import time
from pathlib import Path

from local import console
from local.deploy import parse_overrides
from local.sim.containers import BATCH_INSTANCE_SECONDS, IMAGE_PULL_SECONDS
from local.sim.hosts import BAKED_BOOT_SECONDS, BARE_BOOT_SECONDS
from local.stack import STATE_DIR, LocalStack

log = logging.getLogger("local")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("--params", default="", help='sam deploy syntax: "Key=Value Key2=Value"')
    parser.add_argument(
        "--boot-delay",
        type=float,
        default=0.0,
        help="seconds a host (or a Batch job's container) takes to boot",
    )
    parser.add_argument(
        "--baked-boot-delay",
        type=float,
        default=None,
        help="seconds a host from a baked host image takes to boot (default: --boot-delay"
        f" scaled by AWS's figures, {BAKED_BOOT_SECONDS:g} s baked to"
        f" {BARE_BOOT_SECONDS:g} s bare)",
    )
    parser.add_argument(
        "--pull-delay",
        type=float,
        default=0.0,
        help="seconds a Batch desktop's image takes to pull on an instance that does not have it"
        " (an instance kept warm pulls the release's image once it boots)",
    )
    parser.add_argument(
        "--aws-boot-delays",
        action="store_true",
        help=f"boot as AWS's figures say: {BARE_BOOT_SECONDS:g} s from a bare image (first-boot"
        f" install), {BAKED_BOOT_SECONDS:g} s from a baked one (local/sim/hosts.py names the"
        f" sources); a Batch instance {BATCH_INSTANCE_SECONDS:g} s and its image's pull"
        f" {IMAGE_PULL_SECONDS:g} s (local/sim/containers.py)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="emulator port (default: the last one, if free; else a free one)",
    )
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR, help="where stack.json goes")
    parser.add_argument(
        "--minute-seconds",
        type=_positive,
        default=60.0,
        help="real seconds one minute of an EventBridge schedule lasts (default 60)",
    )
    args = parser.parse_args(argv)
    debug_log = console.configure(args.state_dir, sys.stderr)
    # A signal may reach any of the stack's threads, and then a main thread blocked on a lock
    # (Event.wait) never wakes to run the handler; and a handler must take no lock the main
    # thread may hold. So the handler only records the signal, and the main thread polls.
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    # SIGUSR1 prints every thread's stack to stderr: what a stack that will not stop is doing
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    started = time.monotonic()
    stack = LocalStack(
        parse_overrides(args.params),
        boot_delay=BARE_BOOT_SECONDS if args.aws_boot_delays else args.boot_delay,
        baked_boot_delay=BAKED_BOOT_SECONDS if args.aws_boot_delays else args.baked_boot_delay,
        batch_boot_delay=BATCH_INSTANCE_SECONDS if args.aws_boot_delays else None,
        pull_delay=IMAGE_PULL_SECONDS if args.aws_boot_delays else args.pull_delay,
        moto_port=args.port,
        state_dir=args.state_dir,
        minute_seconds=args.minute_seconds,
    )
    try:
        try:
            info = stack.start()
        except (ValueError, RuntimeError) as exc:
            print(f"the local stack could not start: {exc}", file=sys.stderr, flush=True)
            return 2
        for line in info.not_emulated:
            log.info("not emulated: %s", line)
        print(f"DCV Fleet local stack is up ({time.monotonic() - started:.1f}s)\n", flush=True)
        stack_file = args.state_dir / "stack.json"
        for line in console.banner(info, stack_file, debug_log, args.minute_seconds):
            print(line, flush=True)
        while not stopping:
            time.sleep(0.2)
    finally:
        stop_began = time.monotonic()
        print("stopping the local stack", flush=True)
        stack.stop()
        print(f"local stack stopped ({time.monotonic() - stop_began:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
