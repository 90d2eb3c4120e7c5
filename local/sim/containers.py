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

Warm instances and cached images. A managed environment keeps instances running up to its
``minvCpus`` (``BATCH_SCALING_UPDATES`` lets UpdateComputeEnvironment set it): the simulator
launches idle instances (the environment's first instance type that EC2 knows) until the
environment's busy and idle instances' vCPUs reach ``minvCpus``, and terminates the newest idle
ones above it; a job's instance whose job ended is kept idle instead of terminated while the
environment would otherwise fall below ``minvCpus``. An idle instance is ready (booted, its
container instance registered) ``boot_delay`` after its launch. As BatchLaunchTemplate's user
data does, a booted instance pulls the current release's image (the ``image`` of
``release_parameter``, when given and ``prepull`` is on), which is on the instance
``pull_delay`` later. A job is placed on a ready idle instance of its environment first; its
container then starts at once when its image is on the instance (the ECS agent's
``prefer-cached``), when the pull underway ends, or after ``pull_delay``. A job that launches
its own instance waits ``boot_delay`` and then ``pull_delay`` (the local stack's settings: their
AWS figures are in bench/batch_warm.py).

Not simulated: ECS's reserved memory, retries (the desktop job definition makes one
attempt), job dependencies, array jobs, an ECS task one could describe, and IAM (the job role's
condition on its own secret is not evaluated). A timeout under Batch's 60 s minimum is accepted
(moto does not refuse it), which lets tests see one expire.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import json
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
from local.sim.hosts import BAKED_BOOT_SECONDS
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
#: AWS's figures for a Batch desktop's start, the local stack's ``--aws-boot-delays``
#: (bench/batch_warm.py prints them beside what they save):
#: - An instance of the ECS-optimized GPU AMI installs nothing at boot: it boots as an instance
#:   from a prebuilt image does, which AppStream 2.0 puts at "one to two minutes" for its
#:   On-Demand fleet instances (FleetType,
#:   https://docs.aws.amazon.com/appstream2/latest/APIReference/API_Fleet.html): 90 s, as
#:   local.sim.hosts.BAKED_BOOT_SECONDS.
BATCH_INSTANCE_SECONDS = BAKED_BOOT_SECONDS
#: - The desktop image's pull writes its layers to the instance's root volume: at a gp3 volume's
#:   default throughput, 125 MiB/s ("Default: ... the default value is 125",
#:   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyVolume.html), an image of
#:   DESKTOP_IMAGE_MIB takes at least this long, downloading from ECR aside. The size is an
#:   estimate of this project's image (Ubuntu with a desktop, DCV, the NVIDIA user space), not
#:   an AWS figure.
GP3_DEFAULT_MIB_PER_SECOND = 125.0
DESKTOP_IMAGE_MIB = 6144.0
IMAGE_PULL_SECONDS = DESKTOP_IMAGE_MIB / GP3_DEFAULT_MIB_PER_SECOND
HOST_TERMINATED = "Host EC2 (instance {}) terminated."
TIMED_OUT = "Job attempt duration exceeded timeout"
POLL_SECONDS = 0.5


class JobStateError(Exception):
    """The job is not in a state that allows the request."""


@dataclass
class WarmInstance:
    """An idle instance an environment keeps for its ``minvCpus``."""

    environment: Any  # moto's ComputeEnvironment
    instance_id: str
    instance_type: str
    vcpus: int
    container_instance_arn: str
    ready_at: float  # monotonic: booted, its container instance registered
    cached: dict[str, float]  # image -> when it is on the instance (monotonic)


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


def _ecs(environment: Any) -> Any:
    """The ECS backend of a compute environment's account and region (from its ARN)."""
    from moto.ecs.models import ecs_backends

    _, _, _, region, account, _ = str(environment.arn).split(":", 5)
    return ecs_backends[account][region]


class JobSimulator:
    """Places RUNNABLE Batch jobs on simulated capacity and runs their containers."""

    def __init__(
        self,
        hosts: ContainerHosts,
        hooks: SimulatorHooks,
        *,
        boot_delay: float | None = None,
        poll_interval: float = POLL_SECONDS,
        pull_delay: float = 0.0,
        release_parameter: str | None = None,
    ) -> None:
        self.hosts = hosts
        self.hooks = hooks  # the emulator's: job and instance changes
        self.boot_delay = hosts.boot_delay if boot_delay is None else boot_delay
        #: how long pulling the desktop image takes, on an instance that does not have it
        self.pull_delay = pull_delay
        #: the SSM parameter naming the current release (``image``) a booted instance pulls
        self.release_parameter = release_parameter
        self.prepull = True
        self.warm: dict[str, WarmInstance] = {}  # instance id -> an idle instance kept
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
        self._keep_warm(now)
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

    # -- warm instances ------------------------------------------------------------------------
    def warm_view(self) -> builtins.list[dict[str, Any]]:
        """The idle instances kept: ``ready`` once booted, ``images`` on them by now."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "instanceId": w.instance_id,
                    "instanceType": w.instance_type,
                    "computeEnvironment": w.environment.name,
                    "ready": now >= w.ready_at,
                    "images": sorted(image for image, at in w.cached.items() if at <= now),
                }
                for w in self.warm.values()
            ]

    def _release_image(self) -> str | None:
        """The current release's image (what BatchLaunchTemplate's user data pulls)."""
        if not self.release_parameter or not self.prepull:
            return None
        try:
            value = self._ssm.get_parameter(Name=self.release_parameter)["Parameter"]["Value"]
            image = json.loads(value).get("image")
        except (ClientError, ValueError):
            return None
        return str(image) if image else None

    def _keep_warm(self, now: float) -> None:
        """Each managed environment's busy and idle instances reach its ``minvCpus``; idle ones
        above it are terminated (the newest first)."""
        for environment in batch.compute_environments():
            if environment.env_type != "MANAGED":
                continue
            resources = environment.compute_resources or {}
            minimum = int(resources.get("minvCpus", 0) or 0)
            busy = sum(p.vcpus for p in self.placements.values() if p.environment is environment)
            idle = [w for w in self.warm.values() if w.environment is environment]
            have = busy + sum(w.vcpus for w in idle)
            while have < minimum and (self.capacity is None or self.capacity > 0):
                kept = self._launch_warm(environment, now)
                if kept is None:
                    break
                have += kept.vcpus
            while idle and have - idle[-1].vcpus >= minimum:
                gone = idle.pop()
                have -= gone.vcpus
                self.warm.pop(gone.instance_id, None)
                with contextlib.suppress(ClientError):
                    self._ec2.terminate_instances(InstanceIds=[gone.instance_id])
                self._deregister_arn(environment, gone.container_instance_arn)

    def _launch_warm(self, environment: Any, now: float) -> WarmInstance | None:
        for instance_type in environment.compute_resources.get("instanceTypes", []):
            info = instance_type_info(instance_type)
            if info is None:
                continue
            instance_id = self._launch(environment, instance_type)
            if instance_id is None:
                continue
            if self.capacity is not None:
                self.capacity -= 1
            ready_at = now + self.boot_delay
            image = self._release_image()
            kept = WarmInstance(
                environment=environment,
                instance_id=instance_id,
                instance_type=instance_type,
                vcpus=info[0],
                container_instance_arn=self._register(environment, instance_id),
                ready_at=ready_at,
                cached={image: ready_at + self.pull_delay} if image else {},
            )
            self.warm[instance_id] = kept
            log.info("warm instance %s (%s, %s)", instance_id, instance_type, environment.name)
            return kept
        return None

    def _warm_for(
        self, environment: Any, vcpus: float, memory: int, gpus: int
    ) -> WarmInstance | None:
        """An idle instance of ``environment`` the job fits on, the soonest ready first."""
        fitting = [
            w
            for w in self.warm.values()
            if w.environment is environment
            and (info := instance_type_info(w.instance_type)) is not None
            and info[0] >= vcpus
            and info[1] >= memory
            and info[2] >= gpus
        ]
        return min(fitting, key=lambda w: w.ready_at) if fitting else None

    def _start_time(self, job: Any, now: float, warm: WarmInstance | None) -> float:
        """When the job's container runs: after its instance boots (none to wait for on a warm
        one) and its image is on the instance (at once when cached: prefer-cached)."""
        if warm is None:
            return now + self.boot_delay + self.pull_delay
        booted = max(now, warm.ready_at)
        image = (job.job_definition.container_properties or {}).get("image")
        cached = warm.cached.get(str(image)) if image else None
        return max(booted, cached) if cached is not None else booted + self.pull_delay

    # -- placing a job -------------------------------------------------------------------------
    def _place(self, job: Any, now: float) -> None:
        queue = job.job_queue
        if queue.state != "ENABLED":
            return
        vcpus, memory, gpus = requirements(job)
        for environment in queue.environments:  # in the queue's order: an idle instance first
            if environment.state != "ENABLED" or environment.env_type != "MANAGED":
                continue
            warm = self._warm_for(environment, vcpus, memory, gpus)
            if warm is None:
                continue
            del self.warm[warm.instance_id]
            self._started(
                job,
                environment=environment,
                instance_id=warm.instance_id,
                instance_type=warm.instance_type,
                vcpus=warm.vcpus,
                now=now,
                warm=warm,
            )
            return
        if self.capacity is not None and self.capacity <= 0:
            return
        for environment in queue.environments:  # in the queue's order
            if environment.state != "ENABLED" or environment.env_type != "MANAGED":
                continue
            resources = environment.compute_resources
            used = sum(p.vcpus for p in self.placements.values() if p.environment is environment)
            used += sum(w.vcpus for w in self.warm.values() if w.environment is environment)
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
        warm: WarmInstance | None = None,
    ) -> None:
        """Register the instance with the environment's cluster (a warm one is already); the
        job's task is placed on it."""
        backend = job.backend
        if warm is not None:
            container_instance_arn = warm.container_instance_arn
        else:
            container_instance_arn = self._register(environment, instance_id)
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
            container_instance_arn=container_instance_arn,
            task_arn=task_arn,
            log_group=log_group,
            log_stream=f"{prefix}/default/{task_id}",
            starts_at=self._start_time(job, now, warm),
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
            "job %s: STARTING on %s (%s, %s%s)",
            placement.job_id,
            instance_id,
            instance_type,
            environment.name,
            ", warm" if warm is not None else "",
        )

    def _register(self, environment: Any, instance_id: str) -> str:
        """The instance as a container instance of the environment's ECS cluster."""
        found = _ecs(environment).register_container_instance(environment.ecs_name, instance_id)
        return str(found.container_instance_arn)

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
        if not lost and self._kept_warm(placement):
            return
        if not lost:
            self._scale_down(placement)
        self._deregister(placement)

    def _kept_warm(self, placement: Placement) -> bool:
        """Keep the ended job's instance idle (its image cached) while its environment would
        otherwise fall below ``minvCpus``, as Batch scales in only above it."""
        environment = placement.environment
        minimum = int((environment.compute_resources or {}).get("minvCpus", 0) or 0)
        have = sum(p.vcpus for p in self.placements.values() if p.environment is environment)
        have += sum(w.vcpus for w in self.warm.values() if w.environment is environment)
        if have >= minimum:
            return False
        image = (placement.job.job_definition.container_properties or {}).get("image")
        self.warm[placement.instance_id] = WarmInstance(
            environment=environment,
            instance_id=placement.instance_id,
            instance_type=placement.instance_type,
            vcpus=placement.vcpus,
            container_instance_arn=placement.container_instance_arn,
            ready_at=0.0,
            cached={str(image): 0.0} if image else {},
        )
        return True

    def _timed_out(self, placement: Placement, now: float) -> bool:
        timeout = placement.job.timeout or placement.job.job_definition.timeout or {}
        seconds = timeout.get("attemptDurationSeconds")
        return bool(
            seconds and placement.running_since and now - placement.running_since >= seconds
        )

    def _lost_instances(self) -> set[str]:
        """Instances of placed jobs that are stopping, stopped or gone (an idle instance kept
        warm that is gone is forgotten: the environment launches another)."""
        ids = [p.instance_id for p in self.placements.values()] + list(self.warm)
        if not ids:
            return set()
        found = self._ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ids}])[
            "Reservations"
        ]
        states = {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}
        lost = {i for i in ids if states.get(i, "terminated") not in ("pending", "running")}
        for instance_id in lost & set(self.warm):
            gone = self.warm.pop(instance_id)
            self._deregister_arn(gone.environment, gone.container_instance_arn)
        return lost

    def _scale_down(self, placement: Placement) -> None:
        with contextlib.suppress(ClientError):
            self._ec2.terminate_instances(InstanceIds=[placement.instance_id])

    @classmethod
    def _deregister(cls, placement: Placement) -> None:
        """Batch's container instance is deregistered with its instance (INACTIVE)."""
        cls._deregister_arn(placement.environment, placement.container_instance_arn)

    @staticmethod
    def _deregister_arn(environment: Any, container_instance_arn: str) -> None:
        ecs = _ecs(environment)
        instance_id = container_instance_arn.rsplit("/", 1)[-1]
        found = ecs.container_instances.get(environment.ecs_name, {}).get(instance_id)
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
