"""Lambda SnapStart: what a function makes before its snapshot, and renews after each restore.

With SnapStart, Lambda runs a function's INIT once, when a version is published, snapshots the
initialised environment, and resumes every new environment of that version from the snapshot
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html). Whatever INIT made is then shared
by every environment restored from it, so it must not be unique to one environment
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html):

- the clients are made before the snapshot only so that their service models are read then;
  after a restore the clients and their session (credentials, connection pools) are made again
  in the restored environment, from the models already in memory (``aws.renew_session``);
- ``random``'s state is seeded again after a restore (botocore's retry jitter draws from it: two
  environments restored from one snapshot would otherwise retry in step); our secrets and ids
  come from ``secrets``/``uuid4``, which read the OS's generator at call time.

The hooks are registered with the Snapshot Restore for Python library, which Lambda's Python
managed runtimes include
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html); it is
imported only on a SnapStart INIT, which Lambda tells by AWS_LAMBDA_INITIALIZATION_TYPE
``snap-start``
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
Any other INIT (on demand, or the local stack's) makes nothing early and registers nothing.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping

from dcvfleet import aws

INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START = "snap-start"


def prepare(services: Iterable[str], environ: Mapping[str, str] = os.environ) -> bool:
    """On a SnapStart INIT: make the clients of ``services`` (their models read before the
    snapshot) and register ``after_restore``. Returns whether it did."""
    if environ.get(INITIALIZATION_TYPE) != SNAP_START:
        return False
    from snapshot_restore_py import register_after_restore  # Lambda's runtime has it

    aws.warm(services)
    register_after_restore(after_restore)
    return True


def after_restore() -> None:
    """What one environment restored from the snapshot must not share with another."""
    random.seed()  # from the OS's generator, as at interpreter start
    aws.renew_session()
