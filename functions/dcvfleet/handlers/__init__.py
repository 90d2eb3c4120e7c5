"""Lambda entry points: parse, validate, call one domain function, serialise."""

from __future__ import annotations

import os

from dcvfleet.adapters import BatchJobs
from dcvfleet.aws import client


def batch_jobs() -> BatchJobs:
    """The batch backend's jobs (JOB_QUEUE is only needed to submit or find one by name)."""
    return BatchJobs(client("batch"), client("ecs"), os.environ.get("JOB_QUEUE", ""))
