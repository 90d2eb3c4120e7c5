"""The batch backend's adapters as fakes: AWS Batch jobs followed to their container instance, and
the current release.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from dcvfleet.adapters import (
    JOB_ENDED,
    BatchJob,
    BatchJobs,
    Release,
    Releases,
)
from dcvfleet.config import BatchSettings
from dcvfleet.sessions import Caller
from tests.support.service import COMMON, FakeSecrets

NOW = 1_800_000_000.0
ROLE_ID = "AROAJOBROLE"
SETTINGS = BatchSettings(
    common=COMMON,
    job_queue="arn:aws:batch:us-east-1:123456789012:job-queue/desktops",
    release_parameter="/fleet/release/current",
    job_role_id=ROLE_ID,
    capacity_timeout_seconds=600,
    instance_types=("g5.xlarge", "g4dn.xlarge"),
    max_session_seconds=12 * 3600,
    region="eu-west-1",
)
RELEASE = Release("1.4.2", "123.dkr.ecr.eu-west-1.amazonaws.com/desk:1.4.2", "jobdef:7")
ALICE_BATCH = Caller(sub="sub-alice", username="alice", email="alice@example.com")
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dcvfleet/sessions/s-1"
CLUSTER_INSTANCE = "arn:aws:ecs:us-east-1:123456789012:container-instance/desk-cluster/abc123"


class FakeJobs(BatchJobs):
    def __init__(self) -> None:
        super().__init__(None, None, SETTINGS.job_queue)
        self.jobs: dict[str, BatchJob] = {}
        self.submitted: list[dict[str, Any]] = []
        self.terminated: list[tuple[str, str]] = []
        self.hosts: dict[str, str] = {}  # container instance ARN -> EC2 instance id
        self._ids = itertools.count(1)

    def find(self, session_id: str) -> BatchJob | None:
        name = self.name_for(session_id)
        live = [j for j in self.jobs.values() if j.name == name and j.status not in JOB_ENDED]
        return live[-1] if live else None

    def submit(
        self,
        session_id: str,
        job_definition: str,
        environment: dict[str, str],
        timeout_seconds: int,
        tags: dict[str, str],
    ) -> str:
        job_id = f"job-{next(self._ids)}"
        self.submitted.append(
            {"definition": job_definition, "env": environment, "timeout": timeout_seconds}
        )
        self.jobs[job_id] = BatchJob(
            job_id, self.name_for(session_id), "SUBMITTED", "", NOW, None, None, None, ""
        )
        return job_id

    def describe(self, job_id: str) -> BatchJob | None:
        return self.jobs.get(job_id)

    def set(self, job_id: str, **changes: Any) -> None:
        self.jobs[job_id] = replace(self.jobs[job_id], **changes)

    def start(self, job_id: str, instance_id: str, status: str = "RUNNING") -> None:
        self.hosts[CLUSTER_INSTANCE] = instance_id
        self.set(
            job_id,
            status=status,
            container_instance_arn=CLUSTER_INSTANCE,
            task_arn="arn:aws:ecs:us-east-1:123456789012:task/desk-cluster/0123abcd",
        )

    def terminate(self, job_id: str, reason: str) -> None:
        self.terminated.append((job_id, reason))
        self.set(job_id, status="FAILED", status_reason=reason)

    def instance_of(self, job: BatchJob) -> str | None:
        return self.hosts.get(job.container_instance_arn or "")


class FakeReleases(Releases):
    def __init__(self) -> None:
        super().__init__(None, "/fleet/release/current")

    def current(self) -> Release:
        return RELEASE


class TaggingSecrets(FakeSecrets):
    def __init__(self) -> None:
        super().__init__()
        self.readers: dict[str, str] = {}

    def grant_reader(self, secret_arn: str, reader: str) -> None:
        self.readers[secret_arn] = reader
