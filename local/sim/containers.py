"""Simulated containers for AWS Batch jobs: what a managed compute environment, ECS and the
container itself do for a job once the emulator has made it RUNNABLE
(``emulator.batch.BATCH_JOBS``).

A RUNNABLE job is placed when the simulated capacity allows (``capacity``: how many more GPU
instances the compute environments may launch; None, the default, for no limit), trying its
queue's ENABLED compute environments in their order and each one's instance types in theirs:
the first type that fits the job (vCPUs, memory, GPUs) and keeps the environment within its
``maxvCpus``, and that EC2 has capacity for (``POST /faults {"noCapacity": [...]}`` applies),
is launched as Batch launches it (``RunInstances`` with the environment's launch template,
subnets, security groups, instance profile and image type's ECS AMI, Spot for a SPOT
environment, tagged with the environment's tags and ``aws:batch:compute-environment``). Until
then the job stays RUNNABLE. The instance is registered as a container instance in the
environment's ECS cluster and the job goes STARTING with its ``containerInstanceArn``, an
ECS-style ``taskArn`` (a 32-hex task id) and its ``logStreamName``
(``<awslogs-stream-prefix>/default/<task id>``). After the boot delay its container runs
(``run_container`` of ``local.sim.hosts``: simulated ``dcv``, ``nvidia-smi``, ``/proc/stat``
and user commands, and the real agent with ``platform`` ``container``, ``instanceId`` the
instance's, ``sessionId`` and ``secretArn`` from the job's ``DCVFLEET_SESSION_ID`` and
``DCVFLEET_SECRET_ARN``, reading the secret itself with ``manageUser``) and the job is RUNNING.

A job ends when its container exits (``exit``, from ``POST /jobs/{jobId}/exit``: SUCCEEDED
for 0, FAILED otherwise, "Essential container in task exited"), when TerminateJob stops it
(FAILED with the given reason; ``exitCode`` is what the agent, the container's process, exited
with on SIGTERM), when it runs past its ``attemptDurationSeconds`` (FAILED, "Job attempt
duration exceeded timeout") or when its instance is stopped or terminated under it (FAILED,
"Host EC2 (instance <id>) terminated."). Then the container is gone, its agent's log is put in
the job's log stream, its container instance is INACTIVE and its instance is terminated (as
Batch scales down), which puts the EC2 state-change events. Every status change puts ``Batch
Job State Change`` on the default bus (``emulator``).

Not simulated: instances kept warm for ``minvCpus`` (every job launches its own instance, as
one desktop fills one), ECS's reserved memory, retries (the desktop job definition makes one
attempt), job dependencies, array jobs, an ECS task one could describe, and IAM (the job role's
condition on its own secret is not evaluated). A timeout under Batch's 60 s minimum is accepted
(moto does not refuse it), which lets tests see one expire.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from local.emulator import batch
from local.emulator.hooks import SimulatorHooks
from local.sim.machine import (
    BATCH_INSTANCE_TAG,
    Container,
    ContainerHosts,
    Host,
    own_idle_timeout,
)

log = logging.getLogger("local.sim.containers")

#: The public SSM parameter of the AMI Batch launches for each ``Ec2Configuration`` image type.
ECS_AMI = "/aws/service/ecs/optimized-ami"
ECS_IMAGE_PARAMETERS = {
    "ECS_AL2023_NVIDIA": f"{ECS_AMI}/amazon-linux-2023/gpu/recommended/image_id",
    "ECS_AL2023": f"{ECS_AMI}/amazon-linux-2023/recommended/image_id",
    "ECS_AL2_NVIDIA": f"{ECS_AMI}/amazon-linux-2/gpu/recommended/image_id",
    "ECS_AL2": f"{ECS_AMI}/amazon-linux-2/recommended/image_id",
}
HOST_TERMINATED = "Host EC2 (instance {}) terminated."
TIMED_OUT = "Job attempt duration exceeded timeout"
POLL_SECONDS = 0.5


class JobStateError(Exception):
    """The job is not in a state that allows the request."""


@dataclass
class Placement:
    """A job's container on its instance."""

    job: Any  # moto's Job
    environment: Any  # moto's ComputeEnvironment
    instance_id: str
    instance_type: str
    vcpus: int
    cluster: str
    container_instance_arn: str
    task_arn: str
    log_group: str | None
    log_stream: str
    starts_at: float  # monotonic: when its container runs (the boot delay)
    host: Host | None = None
    running_since: float | None = None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def view(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "status": self.job.status,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "computeEnvironment": self.environment.name,
            "containerInstanceArn": self.container_instance_arn,
            "taskArn": self.task_arn,
            "logStreamName": self.log_stream,
        }


def job_environment(job: Any) -> dict[str, str]:
    """The job's container environment (its definition's, with its overrides)."""
    return {e["name"]: str(e["value"]) for e in job._get_container_property("environment", [])}


def requirements(job: Any) -> tuple[float, int, int]:
    """(vCPUs, memory MiB, GPUs) the job's container needs, with its overrides."""
    properties = job.job_definition.container_properties or {}
    required = {r["type"]: r["value"] for r in properties.get("resourceRequirements", [])}
    for requirement in job.container_overrides.get("resourceRequirements", []):
        required[requirement["type"]] = requirement["value"]
    vcpus = float(required.get("VCPU", properties.get("vcpus", 1)))
    memory = int(required.get("MEMORY", properties.get("memory", 0)))
    return vcpus, memory, int(required.get("GPU", 0))


def instance_type_info(instance_type: str) -> tuple[int, int, int] | None:
    """(vCPUs, memory MiB, GPUs) of an EC2 instance type, None for one EC2 does not know."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    info = INSTANCE_TYPES.get(instance_type)
    if info is None:
        return None
    gpus = sum(int(g.get("Count", 0)) for g in info.get("GpuInfo", {}).get("Gpus", []))
    return int(info["VCpuInfo"]["DefaultVCpus"]), int(info["MemoryInfo"]["SizeInMiB"]), gpus


class JobSimulator:
    """Places RUNNABLE Batch jobs on simulated capacity and runs their containers."""

    def __init__(
        self,
        hosts: ContainerHosts,
        hooks: SimulatorHooks,
        *,
        boot_delay: float | None = None,
        poll_interval: float = POLL_SECONDS,
    ) -> None:
        self.hosts = hosts
        self.hooks = hooks  # the emulator's: job and instance changes
        self.boot_delay = hosts.boot_delay if boot_delay is None else boot_delay
        self.poll_interval = poll_interval
        self.capacity: int | None = None
        self.placements: dict[str, Placement] = {}  # job id -> its container's placement
        self._subnets = itertools.count()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._ec2 = boto3.client("ec2", endpoint_url=hosts.endpoint_url, region_name=hosts.region)
        self._ssm = boto3.client("ssm", endpoint_url=hosts.endpoint_url, region_name=hosts.region)
        self._thread = threading.Thread(target=self._loop, name="job-simulator", daemon=True)

    def start(self) -> None:
        self.hooks.on_jobs(self._wake.set)
        self.hooks.on_instances(self._wake.set)
        self._thread.start()

    def stop(self) -> None:
        self.hooks.forget(self._wake.set)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # -- control -------------------------------------------------------------------------------
    def set_capacity(self, instances: int | None) -> None:
        with self._lock:
            self.capacity = instances
        self._wake.set()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.view() for p in self.placements.values()]

    def exit(self, job_id: str, code: int) -> dict[str, Any] | None:
        """The job's container exits with ``code``; the job as DescribeJobs shows it. None when
        the simulator has no container for it; JobStateError before its container runs."""
        with self._lock:
            placement = self.placements.get(job_id)
            if placement is None:
                return None
            if placement.host is None:
                raise JobStateError(f"job {job_id} is {placement.job.status}: no container yet")
            self._end(placement, batch.CONTAINER_EXITED, exit_code=code, succeeded=code == 0)
            described: dict[str, Any] = placement.job.describe()
            return described

    # -- the loop ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a change from here on wakes the next wait at once
            wait = self.poll_interval
            try:
                wait = min(wait, self.step())
            except Exception:  # the emulator is shutting down, or changed under us
                log.debug("job simulator step failed", exc_info=True)
            self._wake.wait(max(0.01, wait))

    def step(self, now: float | None = None) -> float:
        """Place RUNNABLE jobs, start containers whose boot delay is over, end what must end;
        how long until something is due (``now``: monotonic seconds)."""
        with self._lock:
            return self._step(time.monotonic() if now is None else now)

    def _step(self, now: float) -> float:
        due = self.poll_interval
        for job in batch.batch_jobs():
            if job.status == "RUNNABLE" and job.job_id not in self.placements:
                self._place(job, now)
        lost = self._lost_instances()
        for placement in list(self.placements.values()):
            job = placement.job
            reason = batch.stop_requested(job)
            if job.status in batch.ENDED:
                self._end(placement, job.job_stopped_reason or "")
            elif reason is not None:
                self._end(placement, reason, exit_code=self._agent_exit_code(placement))
            elif placement.instance_id in lost:
                self._end(placement, HOST_TERMINATED.format(placement.instance_id), lost=True)
            elif placement.host is None and now >= placement.starts_at:
                self._run(placement, now)
            elif placement.host is None:
                due = min(due, placement.starts_at - now)
            elif self._timed_out(placement, now):
                self._end(placement, TIMED_OUT, exit_code=self._agent_exit_code(placement))
        return due

    # -- placing a job -------------------------------------------------------------------------
    def _place(self, job: Any, now: float) -> None:
        if self.capacity is not None and self.capacity <= 0:
            return
        queue = job.job_queue
        if queue.state != "ENABLED":
            return
        vcpus, memory, gpus = requirements(job)
        for environment in queue.environments:  # in the queue's order
            if environment.state != "ENABLED" or environment.env_type != "MANAGED":
                continue
            resources = environment.compute_resources
            used = sum(p.vcpus for p in self.placements.values() if p.environment is environment)
            for instance_type in resources.get("instanceTypes", []):
                info = instance_type_info(instance_type)
                if info is None or info[0] < vcpus or info[1] < memory or info[2] < gpus:
                    continue
                if used + info[0] > int(resources.get("maxvCpus", 0)):
                    continue
                instance_id = self._launch(environment, instance_type)
                if instance_id is None:
                    continue  # no capacity for this type: the next one
                if self.capacity is not None:
                    self.capacity -= 1
                self._started(
                    job,
                    environment=environment,
                    instance_id=instance_id,
                    instance_type=instance_type,
                    vcpus=info[0],
                    now=now,
                )
                return

    def _image_id(self, resources: dict[str, Any]) -> str:
        """The AMI Batch picks: the image type's override, else its ECS-optimised AMI."""
        configuration = (resources.get("ec2Configuration") or [{}])[0]
        if configuration.get("imageIdOverride") or resources.get("imageId"):
            return str(configuration.get("imageIdOverride") or resources["imageId"])
        parameter = ECS_IMAGE_PARAMETERS.get(configuration.get("imageType", "ECS_AL2"))
        with contextlib.suppress(ClientError):
            if parameter:
                return str(self._ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
        images = self._ec2.describe_images(Owners=["amazon"])["Images"]
        return str(images[0]["ImageId"])

    def _launch(self, environment: Any, instance_type: str) -> str | None:
        """Launch one instance for the environment, as Batch does; None when EC2 has no
        capacity for the type."""
        resources = environment.compute_resources
        tags = {**(resources.get("tags") or {}), BATCH_INSTANCE_TAG: environment.name}
        subnets = resources.get("subnets") or [None]
        subnet = subnets[next(self._subnets) % len(subnets)]
        profile = str(resources.get("instanceRole", ""))
        params: dict[str, Any] = {
            "ImageId": self._image_id(resources),
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": instance_type,
            "SecurityGroupIds": resources.get("securityGroupIds", []),
            "IamInstanceProfile": {"Arn": profile}
            if profile.startswith("arn:")
            else {"Name": profile},
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        }
        if subnet:
            params["SubnetId"] = subnet
        template = resources.get("launchTemplate") or {}
        if template:
            spec = {
                k[:1].upper() + k[1:]: str(v)
                for k, v in template.items()
                if k in ("launchTemplateId", "launchTemplateName", "version")
            }
            params["LaunchTemplate"] = spec
        if resources.get("type") == "SPOT":
            params["InstanceMarketOptions"] = {"MarketType": "spot"}
        try:
            reservation = self._ec2.run_instances(**params)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "InsufficientInstanceCapacity":
                return None
            raise
        return str(reservation["Instances"][0]["InstanceId"])

    def _started(
        self,
        job: Any,
        *,
        environment: Any,
        instance_id: str,
        instance_type: str,
        vcpus: int,
        now: float,
    ) -> None:
        """Register the instance with the environment's cluster; the job's task is placed on it."""
        from moto.ecs.models import ecs_backends

        backend = job.backend
        ecs = ecs_backends[backend.account_id][backend.region_name]
        container_instance = ecs.register_container_instance(environment.ecs_name, instance_id)
        task_id = uuid.uuid4().hex
        task_arn = (
            f"arn:aws:ecs:{backend.region_name}:{backend.account_id}:task/"
            f"{environment.ecs_name}/{task_id}"
        )
        properties = job.job_definition.container_properties or {}
        options = (properties.get("logConfiguration") or {}).get("options", {})
        prefix = options.get("awslogs-stream-prefix") or job.job_definition.name
        log_group = options.get("awslogs-group") or "/aws/batch/job"
        placement = Placement(
            job=job,
            environment=environment,
            instance_id=instance_id,
            instance_type=instance_type,
            vcpus=vcpus,
            cluster=environment.ecs_name,
            container_instance_arn=container_instance.container_instance_arn,
            task_arn=task_arn,
            log_group=log_group,
            log_stream=f"{prefix}/default/{task_id}",
            starts_at=now + self.boot_delay,
        )
        self.placements[placement.job_id] = placement
        started = batch.job_started(
            job,
            container_instance_arn=placement.container_instance_arn,
            task_arn=task_arn,
            log_stream=placement.log_stream,
        )
        if not started:  # cancelled or terminated meanwhile: nothing runs on the instance
            self._scale_down(placement)
            del self.placements[placement.job_id]
            return
        log.info(
            "job %s: STARTING on %s (%s, %s)",
            placement.job_id,
            instance_id,
            instance_type,
            environment.name,
        )

    # -- running and ending a container ---------------------------------------------------------
    def _run(self, placement: Placement, now: float) -> None:
        environment = job_environment(placement.job)
        settings = {
            "sessionId": environment.get("DCVFLEET_SESSION_ID", ""),
            "secretArn": environment.get("DCVFLEET_SECRET_ARN", ""),
            "manageUser": True,
        }
        for key, variable in (
            ("eventBusName", "DCVFLEET_EVENT_BUS_NAME"),
            ("settingsParameter", "DCVFLEET_SETTINGS_PARAMETER"),
            ("region", "AWS_REGION"),
        ):
            if environment.get(variable):
                settings[key] = environment[variable]
        settings.update(own_idle_timeout(environment.get("DCVFLEET_IDLE_TIMEOUT_SECONDS", "")))
        # Without the 3D X server the container's session renders OpenGL in software
        # (container/entrypoint.sh: DCVFLEET_GPU_X_SERVER=false creates it with --gl off).
        software = environment.get("DCVFLEET_GPU_X_SERVER", "true").lower() == "false"
        container = Container(
            placement.job_id,
            settings,
            task_arn=placement.task_arn,
            gl_renderer="llvmpipe" if software else "nvidia",
        )
        placement.host = self.hosts.run_container(placement.instance_id, container)
        placement.running_since = now
        batch.job_running(placement.job)
        log.info("job %s: RUNNING", placement.job_id)

    def _agent_exit_code(self, placement: Placement) -> int | None:
        if placement.host is None:
            return None
        return self.hosts.end_container(placement.instance_id)

    def _end(
        self,
        placement: Placement,
        reason: str,
        *,
        exit_code: int | None = None,
        succeeded: bool = False,
        lost: bool = False,
    ) -> None:
        """The container is gone (the job ends with ``reason``), then so is its instance."""
        if placement.host is not None:
            self.hosts.end_container(placement.instance_id)
        self._ship_log(placement)
        batch.job_ended(placement.job, reason=reason, exit_code=exit_code, succeeded=succeeded)
        log.info("job %s: %s (%s)", placement.job_id, placement.job.status, reason)
        self.placements.pop(placement.job_id, None)
        if not lost:
            self._scale_down(placement)
        self._deregister(placement)

    def _timed_out(self, placement: Placement, now: float) -> bool:
        timeout = placement.job.timeout or placement.job.job_definition.timeout or {}
        seconds = timeout.get("attemptDurationSeconds")
        return bool(
            seconds and placement.running_since and now - placement.running_since >= seconds
        )

    def _lost_instances(self) -> set[str]:
        """Instances of placed jobs that are stopping, stopped or gone."""
        ids = [p.instance_id for p in self.placements.values()]
        if not ids:
            return set()
        found = self._ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ids}])[
            "Reservations"
        ]
        states = {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}
        return {i for i in ids if states.get(i, "terminated") not in ("pending", "running")}

    def _scale_down(self, placement: Placement) -> None:
        with contextlib.suppress(ClientError):
            self._ec2.terminate_instances(InstanceIds=[placement.instance_id])

    @staticmethod
    def _deregister(placement: Placement) -> None:
        """Batch's container instance is deregistered with its instance (INACTIVE)."""
        from moto.ecs.models import ecs_backends

        backend = placement.job.backend
        ecs = ecs_backends[backend.account_id][backend.region_name]
        instance_id = placement.container_instance_arn.rsplit("/", 1)[-1]
        found = ecs.container_instances.get(placement.cluster, {}).get(instance_id)
        if found is not None:
            found.status, found.agent_connected = "INACTIVE", False

    def _ship_log(self, placement: Placement) -> None:
        """The container's output (its agent's log) in the job's log stream, as awslogs does."""
        from moto.logs.models import logs_backends

        if placement.host is None or placement.log_group is None:
            return
        path = placement.host.workdir / "agent.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        backend = placement.job.backend
        logs = logs_backends[backend.account_id][backend.region_name]
        stamp = int(time.time() * 1000)
        try:
            logs.ensure_log_group(placement.log_group)
            logs.ensure_log_stream(placement.log_group, placement.log_stream)
            events = [{"timestamp": stamp, "message": line} for line in lines if line.strip()]
            if events:
                logs.put_log_events(placement.log_group, placement.log_stream, events)
        except Exception:  # logs are a convenience; the job's end is what matters
            log.debug("job %s: its log was not shipped", placement.job_id, exc_info=True)
