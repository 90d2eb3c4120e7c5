"""AWS Batch: jobs placed by the local stack's job simulator; compute environments and job
definitions from CloudFormation as AWS creates them.

The job simulator (``local.sim.containers``) hears of jobs through ``SimulatorHooks.jobs_changed``
and moves them on with ``job_started``, ``job_running`` and ``job_ended``. What the simulation
knows of a job's container (moto's ``Job`` keeps none of it) is kept here, by job, in
``_SIMULATED`` (a weak map: a job moto forgets is forgotten here too).
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from datetime import datetime
from typing import Any

from local.emulator import trust_policy
from local.emulator.cloudformation import created_from_template, lower_first
from local.emulator.gap import Gap, Patch
from local.emulator.hooks import SimulatorHooks

log = logging.getLogger("local.emulator")


NOT_STARTED = ("SUBMITTED", "PENDING", "RUNNABLE")
ENDED = ("SUCCEEDED", "FAILED")
#: The statusReason Batch gives a job whose container exited.
CONTAINER_EXITED = "Essential container in task exited"
#: Check-and-set of a job's status (the simulator's placement, TerminateJob, CancelJob).
_jobs_lock = threading.RLock()


def batch_jobs() -> list[Any]:
    """Every Batch job the emulator holds, in every account and region."""
    from moto.batch.models import batch_backends

    jobs: list[Any] = []
    for regions in list(batch_backends.values()):
        for backend in list(regions.values()):
            jobs.extend(list(backend._jobs.values()))
    return jobs


def compute_environments() -> list[Any]:
    """Every Batch compute environment the emulator holds, in every account and region."""
    from moto.batch.models import batch_backends

    found: list[Any] = []
    for regions in list(batch_backends.values()):
        for backend in list(regions.values()):
            found.extend(list(backend._compute_environments.values()))
    return found


#: What the simulation knows of each job's container: ``container``, ``stopReason``.
_SIMULATED: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _sim(job: Any) -> dict[str, Any]:
    """What the simulation knows of a job's container (moto's Job keeps none of it)."""
    with _jobs_lock:
        return _SIMULATED.setdefault(job, {})


def _job_state_event(job: Any) -> None:
    """Put Batch's ``Batch Job State Change`` event (detail: the job as DescribeJobs returns it)
    on the default bus."""
    from moto.events.models import events_backends

    backend = job.backend
    try:
        events_backends[backend.account_id][backend.region_name].put_events(
            [
                {
                    "Source": "aws.batch",
                    "DetailType": "Batch Job State Change",
                    "Detail": json.dumps(job.describe(), default=str),
                    "Resources": [job.arn],
                    "EventBusName": "default",
                }
            ]
        )
    except Exception:  # the emulator is being reset under us: the job's state still changes
        log.exception("job %s: its state-change event was not put", job.job_id)


def job_started(job: Any, *, container_instance_arn: str, task_arn: str, log_stream: str) -> bool:
    """ECS placed the job's task on a container instance: STARTING. False (nothing changes)
    when the job is no longer RUNNABLE (it was cancelled or terminated meanwhile)."""
    with _jobs_lock:
        if job.status != "RUNNABLE":
            return False
        container = {
            "containerInstanceArn": container_instance_arn,
            "taskArn": task_arn,
            "logStreamName": log_stream,
            "networkInterfaces": [],
        }
        _sim(job)["container"] = container
        job.log_stream_name = log_stream
        job.latest_attempt = {"container": dict(container)}
        job.attempts.append(job.latest_attempt)
        job.status = "STARTING"
        return True


def job_running(job: Any) -> None:
    """The job's container started: RUNNING (its startedAt)."""
    with _jobs_lock:
        if job.status != "STARTING":
            return
        job.job_started_at = datetime.now()
        if job.latest_attempt is not None:
            job.latest_attempt["startedAt"] = int(job.job_started_at.timestamp() * 1000)
        job.status = "RUNNING"


def job_ended(
    job: Any,
    *,
    reason: str,
    exit_code: int | None = None,
    succeeded: bool = False,
) -> None:
    """The job ended, SUCCEEDED or FAILED, with ``statusReason`` (and its container's
    ``exitCode`` when it has one)."""
    with _jobs_lock:
        if job.status in ENDED:
            return
        container = _sim(job).get("container")
        if container is not None and exit_code is not None:
            container["exitCode"] = exit_code
        job.exit_code = exit_code
        job.job_stopped = True
        job.job_stopped_at = datetime.now()
        job.job_stopped_reason = reason
        if job.latest_attempt is not None and container is not None:
            job.latest_attempt["container"] = dict(container)
            job.latest_attempt["stoppedAt"] = int(job.job_stopped_at.timestamp() * 1000)
            job.latest_attempt["statusReason"] = reason
        job.status = "SUCCEEDED" if succeeded else "FAILED"


def stop_requested(job: Any) -> str | None:
    """Why TerminateJob asked this started job to end, if it did."""
    reason: str | None = _sim(job).get("stopReason")
    return reason


def batch_job_patches(hooks: SimulatorHooks) -> list[Patch]:
    """BATCH_JOBS: the replacements of moto's Batch job methods.

    * ``Job.run``: no Docker. The job goes PENDING, then RUNNABLE, and the listeners
      (``hooks.jobs_changed``: the local stack's job simulator) are told; it stays RUNNABLE until
      something places it (``job_started``, ``job_running``, ``job_ended``).
    * ``Job.status``: only what happened to the job changes it (moto's state manager would move
      it along on every read), and every change puts ``Batch Job State Change`` on the default
      bus.
    * ``Job._get_container_property``: the job's environment without appending to its
      overrides (each DescribeJobs added one more ``AWS_BATCH_JOB_ID``).
    * ``Job.describe``: ``container`` carries the job definition's ``image``, ``jobRoleArn``,
      ``logConfiguration`` and ``resourceRequirements`` (with the overrides), and once placed
      ``containerInstanceArn``, ``taskArn``, ``logStreamName``, then ``exitCode``;
      ``startedAt`` only once it ran; ``retryStrategy`` and
      ``platformCapabilities``.
    * ``BatchBackend.terminate_job`` / ``cancel_job``: a job that has not started ends FAILED at
      once with the reason (TerminateJob and CancelJob alike); TerminateJob on a STARTING or
      RUNNING job asks the simulator to stop its container (``stop_requested``); CancelJob
      leaves a started job alone, as Batch does.
    """
    from moto.batch.exceptions import ClientException
    from moto.batch.models import BatchBackend, Job

    original_property = Job._get_container_property
    original_describe = Job.describe

    def run(self: Any) -> None:
        self.status = "PENDING"
        self.status = "RUNNABLE"
        hooks.jobs_changed()

    def get_status(self: Any) -> str | None:
        status: str | None = self._status
        return status

    def set_status(self: Any, value: str) -> None:
        previous = self.__dict__.get("_status")
        self._status = value
        if value != previous:
            _job_state_event(self)

    def get_container_property(self: Any, name: str, default: Any) -> Any:
        if name != "environment":
            return original_property(self, name, default)
        overrides = [dict(e) for e in self.container_overrides.get("environment", [])]
        given = {e["name"] for e in overrides}
        defined = self.job_definition.container_properties.get("environment", [])
        return [
            *overrides,
            *(dict(e) for e in defined if e["name"] not in given),
            {"name": "AWS_BATCH_JOB_ID", "value": self.job_id},
        ]

    def describe(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_describe(self)
        definition = self.job_definition
        properties = definition.container_properties
        if properties is not None and "container" in result:
            container = result["container"]
            for key in ("image", "jobRoleArn", "executionRoleArn", "logConfiguration"):
                if key in properties:
                    container[key] = properties[key]
            required = {r["type"]: r for r in properties.get("resourceRequirements", [])}
            for requirement in self.container_overrides.get("resourceRequirements", []):
                required[requirement["type"]] = requirement
            container["resourceRequirements"] = [
                {"type": r["type"], "value": str(r["value"])} for r in required.values()
            ]
            container.pop("logStreamName", None)
            container.update(_sim(self).get("container", {}))
        if self.job_started_at.year == 1970:  # it never ran
            result.pop("startedAt", None)
        if definition.retry_strategy:
            result["retryStrategy"] = definition.retry_strategy
        if definition.platform_capabilities:
            result["platformCapabilities"] = definition.platform_capabilities
        return result

    def checked(job_id: str, reason: str) -> None:
        for name, value in (("jobId", job_id), ("reason", reason)):
            if value == "":
                raise ClientException(f"'{name}' is a required field (cannot be an empty string)")

    def terminate_job(self: Any, job_id: str, reason: str) -> None:
        checked(job_id, reason)
        job = self.get_job_by_id(job_id)
        with _jobs_lock:
            if job is None or job.status in ENDED:
                return
            if job.status in NOT_STARTED:
                job_ended(job, reason=reason)
                return
            _sim(job)["stopReason"] = reason
            job.stop = True
        hooks.jobs_changed()

    def cancel_job(self: Any, job_id: str, reason: str) -> None:
        checked(job_id, reason)
        job = self.get_job_by_id(job_id)
        with _jobs_lock:
            if job is not None and job.status in NOT_STARTED:
                job_ended(job, reason=reason)

    return [
        Patch(Job, "run", run),
        Patch(Job, "status", property(get_status, set_status)),
        Patch(Job, "_get_container_property", get_container_property),
        Patch(Job, "describe", describe),
        Patch(BatchBackend, "terminate_job", terminate_job),
        Patch(BatchBackend, "cancel_job", cancel_job),
    ]


BATCH_SERVICE_LINKED_ROLE = "AWSServiceRoleForBatch"


def batch_service_role(iam: Any) -> str:
    """The AWS Batch service-linked role's ARN, created (as AWS does) the first time."""
    from moto.iam.exceptions import NotFoundException

    try:
        role = iam.get_role(BATCH_SERVICE_LINKED_ROLE)
    except NotFoundException:
        role = iam.create_role(
            BATCH_SERVICE_LINKED_ROLE,
            json.dumps(trust_policy("batch.amazonaws.com")),
            "/aws-service-role/batch.amazonaws.com/",
            permissions_boundary=None,
            description="Allows Batch to create and manage AWS resources on your behalf.",
            tags=[],
            max_session_duration="3600",
            linked_service="batch.amazonaws.com",
        )
    return str(role.arn)


def batch_cloudformation_patches() -> list[Patch]:
    """BATCH_FROM_CLOUDFORMATION: the replacements of moto's Batch methods.

    * ``BatchBackend.create_compute_environment``: without a service role, the AWS Batch
      service-linked role (CreateComputeEnvironment's ``serviceRole`` is optional on AWS).
    * ``ComputeEnvironment.create_from_cloudformation_json``: ``ServiceRole`` optional,
      ``ComputeEnvironmentName``, ``State`` and ``Tags`` honoured.
    * ``JobDefinition.create_from_cloudformation_json``: ``JobDefinitionName``, ``Type``,
      ``PlatformCapabilities``, ``PropagateTags``, ``Timeout`` and ``Tags`` honoured (tag keys
      as written), ``ResourceRequirements`` values strings."""
    import inspect

    from moto.batch.models import BatchBackend, ComputeEnvironment, JobDefinition, batch_backends

    original = BatchBackend.create_compute_environment
    signature = inspect.signature(original)

    def create_compute_environment(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        if not call.arguments.get("service_role"):
            call.arguments["service_role"] = batch_service_role(self.iam_backend)
        return original(*call.args, **call.kwargs)

    def environment_from_cloudformation(
        properties: Any, resource_name: str, account_id: str, region_name: str
    ) -> Any:
        return batch_backends[account_id][region_name].create_compute_environment(
            compute_environment_name=properties.get("ComputeEnvironmentName") or resource_name,
            _type=properties["Type"],
            state=properties.get("State", "ENABLED"),
            compute_resources=lower_first(properties.get("ComputeResources")),
            service_role=properties.get("ServiceRole"),
            tags=properties.get("Tags"),
        )

    def job_definition_from_cloudformation(
        properties: Any, resource_name: str, account_id: str, region_name: str
    ) -> Any:

        def lowered(key: str) -> Any:
            return lower_first(properties[key]) if key in properties else None

        container = lowered("ContainerProperties")
        if container and "resourceRequirements" in container:  # the API's values are strings
            container["resourceRequirements"] = [
                {**r, "value": str(r["value"])} for r in container["resourceRequirements"]
            ]
        return batch_backends[account_id][region_name].register_job_definition(
            def_name=properties.get("JobDefinitionName") or resource_name,
            parameters=properties.get("Parameters", {}),
            _type=properties.get("Type", "container"),
            tags=properties.get("Tags", {}),
            retry_strategy=lowered("RetryStrategy"),
            container_properties=container,
            node_properties=lowered("NodeProperties"),
            eks_properties=lowered("EksProperties"),
            timeout=lowered("Timeout") or {},
            platform_capabilities=properties.get("PlatformCapabilities"),
            propagate_tags=bool(properties.get("PropagateTags", False)),
        )

    return [
        Patch(BatchBackend, "create_compute_environment", create_compute_environment),
        Patch(
            ComputeEnvironment,
            "create_from_cloudformation_json",
            created_from_template(environment_from_cloudformation),
        ),
        Patch(
            JobDefinition,
            "create_from_cloudformation_json",
            created_from_template(job_definition_from_cloudformation),
        ),
    ]


BATCH_FROM_CLOUDFORMATION = Gap(
    "BATCH_FROM_CLOUDFORMATION",
    moto_does="a compute environment must name a ServiceRole (through CloudFormation the stack"
    " fails on a KeyError, through the API CreateComputeEnvironment refuses); from"
    " CloudFormation a compute environment loses its Tags, a job definition its"
    " PlatformCapabilities, PropagateTags and Timeout, its tag keys' first letter is"
    " lower-cased, and a ResourceRequirements Value that is a Ref to a Number parameter stays a"
    " number (the SDK then refuses to send the definition back)",
    we_do="without a service role, Batch's service-linked role AWSServiceRoleForBatch (created"
    " the first time, as AWS does); tags, platform capabilities, propagation and timeout kept;"
    " requirement values strings, as the API gives them",
    install=lambda context: batch_cloudformation_patches(),
)
BATCH_JOBS = Gap(
    "BATCH_JOBS",
    moto_does="runs a job's container in Docker; without Docker a submitted job is FAILED"
    " within a second, with no statusReason, no instance, no container instance, an attempt"
    " whose containerInstanceArn is TBD, and no Batch Job State Change event; each DescribeJobs"
    " adds one more AWS_BATCH_JOB_ID to the job's environment",
    we_do="a submitted job goes PENDING, then RUNNABLE, and waits for the job simulator, which"
    " places it on simulated capacity (job_started: STARTING, job_running: RUNNING, job_ended:"
    " SUCCEEDED or FAILED with statusReason and exitCode); every status change puts Batch Job"
    " State Change on the default bus; TerminateJob and CancelJob end a job not yet started at"
    " once, and TerminateJob asks the simulator to stop a started one",
    install=lambda context: batch_job_patches(context.hooks),
)


def batch_scaling_patches(hooks: SimulatorHooks) -> list[Patch]:
    """BATCH_SCALING_UPDATES: ``BatchBackend.update_compute_environment`` applies a scaling
    update, as Batch does: ``minvCpus``, ``maxvCpus`` and ``desiredvCpus`` of a managed
    environment's ``computeResources`` take the values given (then the job simulator, told
    through ``hooks.jobs_changed``, keeps ``minvCpus`` of instances running). Refused as Batch
    refuses them: a value below 0, ``minvCpus`` above ``maxvCpus``
    (https://docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResourceUpdate.html), and
    a ``desiredvCpus`` outside ``minvCpus``..``maxvCpus`` ("When updating desiredvCpus, the
    value must be between minvCpus and maxvCpus",
    https://docs.aws.amazon.com/batch/latest/userguide/scaling-updates.html)."""
    from moto.batch.exceptions import ClientException
    from moto.batch.models import BatchBackend

    original = BatchBackend.update_compute_environment
    scaling = ("minvCpus", "maxvCpus", "desiredvCpus")

    def update_compute_environment(
        self: Any,
        compute_environment_name: str,
        state: str | None,
        compute_resources: Any | None,
        service_role: str | None,
    ) -> tuple[str, str]:
        result: tuple[str, str] = original(
            self, compute_environment_name, state, compute_resources, service_role
        )
        given = {k: int(v) for k, v in (compute_resources or {}).items() if k in scaling}
        if not given:
            return result
        environment = self.get_compute_environment(compute_environment_name)
        resources = environment.compute_resources
        merged = {k: int(resources.get(k, 0)) for k in scaling} | given
        for key, value in given.items():
            if value < 0:
                raise ClientException(f"computeResources.{key} must be 0 or more")
        if merged["minvCpus"] > merged["maxvCpus"]:
            raise ClientException("computeResources.minvCpus must not be greater than maxvCpus")
        if "desiredvCpus" in given and not (
            merged["minvCpus"] <= merged["desiredvCpus"] <= merged["maxvCpus"]
        ):
            raise ClientException(
                "computeResources.desiredvCpus must be between minvCpus and maxvCpus"
            )
        resources.update(given)
        hooks.jobs_changed()
        return result

    return [Patch(BatchBackend, "update_compute_environment", update_compute_environment)]


BATCH_SCALING_UPDATES = Gap(
    "BATCH_SCALING_UPDATES",
    moto_does="UpdateComputeEnvironment accepts computeResources and ignores them: minvCpus,"
    " maxvCpus and desiredvCpus stay as created, and a minvCpus above maxvCpus is not refused",
    we_do="a scaling update: minvCpus, maxvCpus and desiredvCpus take the values given (refused"
    " below 0, with minvCpus above maxvCpus, or desiredvCpus outside them); the job simulator"
    " keeps minvCpus of warm instances running",
    install=lambda context: batch_scaling_patches(context.hooks),
)
