"""AWS Batch's gaps: BATCH_FROM_CLOUDFORMATION, BATCH_JOBS, BATCH_SCALING_UPDATES."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from local.emulator.batch import (
    CONTAINER_EXITED,
    batch_cloudformation_patches,
    batch_jobs,
    job_ended,
    job_running,
    job_started,
    stop_requested,
)
from tests.support.emulator import (
    ACCOUNT,
    ROLE_ARN,
    Installer,
    aws_client,
    create_stack,
    drain,
    stack_outputs,
)


# -- BATCH_FROM_CLOUDFORMATION -----------------------------------------------------------------
def _batch_network() -> dict[str, str]:
    """A subnet, a security group and an instance profile for a compute environment."""
    ec2, iam = aws_client("ec2"), aws_client("iam")
    iam.create_instance_profile(InstanceProfileName="batch-instances")
    return {
        "subnet": ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        "group": ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"],
        "profile": "batch-instances",
    }


def _batch_template(network: dict[str, str]) -> dict[str, Any]:
    """A compute environment without ServiceRole, its queue and a job definition, as the
    project's template declares them (its vCPUs a Number parameter)."""
    return {
        "Parameters": {"Vcpus": {"Type": "Number", "Default": 4}},
        "Resources": {
            "Environment": {
                "Type": "AWS::Batch::ComputeEnvironment",
                "Properties": {
                    "Type": "MANAGED",
                    "State": "ENABLED",
                    "Tags": {"dcvfleet:fleet": "probe"},
                    "ComputeResources": {
                        "Type": "SPOT",
                        "AllocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED",
                        "MinvCpus": 0,
                        "MaxvCpus": 8,
                        "InstanceTypes": ["g5.xlarge"],
                        "Subnets": [network["subnet"]],
                        "SecurityGroupIds": [network["group"]],
                        "InstanceRole": network["profile"],
                        "Ec2Configuration": [{"ImageType": "ECS_AL2023_NVIDIA"}],
                    },
                },
            },
            "Queue": {
                "Type": "AWS::Batch::JobQueue",
                "Properties": {
                    "Priority": 1,
                    "ComputeEnvironmentOrder": [
                        {"Order": 1, "ComputeEnvironment": {"Ref": "Environment"}}
                    ],
                },
            },
            "Definition": {
                "Type": "AWS::Batch::JobDefinition",
                "Properties": {
                    "Type": "container",
                    "PlatformCapabilities": ["EC2"],
                    "PropagateTags": True,
                    "Timeout": {"AttemptDurationSeconds": 600},
                    "Tags": {"dcvfleet:fleet": "probe", "Owner": "desktops"},
                    "RetryStrategy": {"Attempts": 1},
                    "ContainerProperties": {
                        "Image": "desktop:initial",
                        "ResourceRequirements": [
                            {"Type": "GPU", "Value": "1"},
                            {"Type": "VCPU", "Value": {"Ref": "Vcpus"}},
                            {"Type": "MEMORY", "Value": "15000"},
                        ],
                        "LogConfiguration": {
                            "LogDriver": "awslogs",
                            "Options": {"awslogs-stream-prefix": "desktop"},
                        },
                    },
                },
            },
        },
        "Outputs": {"Queue": {"Value": {"Ref": "Queue"}}},
    }


def _environment_resources(network: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "EC2",
        "minvCpus": 0,
        "maxvCpus": 8,
        "instanceTypes": ["g5.xlarge"],
        "subnets": [network["subnet"]],
        "securityGroupIds": [network["group"]],
        "instanceRole": network["profile"],
    }


def test_gap_batch_from_cloudformation() -> None:
    """GAP BATCH_FROM_CLOUDFORMATION: a compute environment needs a ``ServiceRole`` (on AWS,
    without one Batch uses its service-linked role): the stack fails and CreateComputeEnvironment
    refuses; given one, it loses its ``Tags``; a job definition from CloudFormation loses its
    ``PlatformCapabilities``, ``PropagateTags`` and ``Timeout``, mangles its tag keys, and keeps
    a resource requirement given by a Number parameter a number (the API's is a string), so the
    SDK refuses to register it back as a new revision. When this fails, moto has changed: drop
    ``batch_cloudformation_patches`` in local/emulator/batch.py (or the parts moto now does)."""

    with mock_aws():
        template = _batch_template(_batch_network())
        with pytest.raises(KeyError, match="ServiceRole"):
            create_stack("probe", template)
        role = aws_client("iam").create_role(RoleName="batch", AssumeRolePolicyDocument="{}")
        template["Resources"]["Environment"]["Properties"]["ServiceRole"] = role["Role"]["Arn"]
        create_stack("with-role", template)
        (environment,) = aws_client("batch").describe_compute_environments()["computeEnvironments"]
        assert environment["tags"] == {}
    with mock_aws():
        network = _batch_network()
        with pytest.raises(ClientError, match="ServiceRole is required"):
            aws_client("batch").create_compute_environment(
                computeEnvironmentName="desktops",
                type="MANAGED",
                computeResources=_environment_resources(network),
            )
        template = _batch_template(network)
        del template["Resources"]["Environment"], template["Resources"]["Queue"]
        template["Outputs"] = {}
        create_stack("probe", template)
        (definition,) = aws_client("batch").describe_job_definitions()["jobDefinitions"]
        assert "platformCapabilities" not in definition
        assert "propagateTags" not in definition
        assert "timeout" not in definition
        assert definition["tags"] == {"dcvfleet:fleet": "probe", "owner": "desktops"}
        requirements = definition["containerProperties"]["resourceRequirements"]
        assert {"type": "VCPU", "value": 4} in requirements
        with pytest.raises(ParamValidationError, match="resourceRequirements"):
            aws_client("batch").register_job_definition(
                jobDefinitionName=definition["jobDefinitionName"],
                type="container",
                containerProperties=definition["containerProperties"],
            )


@mock_aws
def test_workaround_batch_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``batch_cloudformation_patches``: without a service role the compute environment uses
    Batch's service-linked role (through CloudFormation and the API alike), keeps its tags, and
    the job definition keeps what its template says."""
    for owner, name, replacement in batch_cloudformation_patches():
        monkeypatch.setattr(owner, name, replacement)
    network = _batch_network()
    stack = create_stack("probe", _batch_template(network))
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    batch = aws_client("batch")
    (environment,) = batch.describe_compute_environments()["computeEnvironments"]
    linked = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/batch.amazonaws.com/"
    assert environment["serviceRole"] == linked + "AWSServiceRoleForBatch"
    assert environment["tags"] == {"dcvfleet:fleet": "probe"}
    assert environment["computeResources"]["ec2Configuration"] == [
        {"imageType": "ECS_AL2023_NVIDIA"}
    ]
    (queue,) = batch.describe_job_queues()["jobQueues"]
    assert stack_outputs(stack)["Queue"] == queue["jobQueueArn"]
    assert (
        queue["computeEnvironmentOrder"][0]["computeEnvironment"]
        == (environment["computeEnvironmentArn"])
    )
    (definition,) = batch.describe_job_definitions()["jobDefinitions"]
    assert definition["platformCapabilities"] == ["EC2"]
    assert definition["propagateTags"] is True
    assert definition["timeout"] == {"attemptDurationSeconds": 600}
    assert definition["tags"] == {"dcvfleet:fleet": "probe", "Owner": "desktops"}
    assert definition["containerProperties"]["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-stream-prefix": "desktop"},
    }
    assert definition["containerProperties"]["resourceRequirements"] == [
        {"type": "GPU", "value": "1"},
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "15000"},
    ]
    revision = batch.register_job_definition(
        jobDefinitionName=definition["jobDefinitionName"],
        type="container",
        containerProperties=definition["containerProperties"],
    )
    assert revision["revision"] == definition["revision"] + 1
    batch.create_compute_environment(
        computeEnvironmentName="by-api",
        type="MANAGED",
        computeResources=_environment_resources(network),
    )
    by_api = batch.describe_compute_environments(computeEnvironments=["by-api"])
    assert by_api["computeEnvironments"][0]["serviceRole"] == linked + "AWSServiceRoleForBatch"


# -- BATCH_JOBS --------------------------------------------------------------------------------
def _job_queue(batch: Any, network: dict[str, str], role_arn: str | None) -> tuple[str, str]:
    """A queue on one managed compute environment and a GPU job definition: (queue, definition)."""
    extra = {"serviceRole": role_arn} if role_arn else {}
    environment = batch.create_compute_environment(
        computeEnvironmentName="desktops",
        type="MANAGED",
        computeResources=_environment_resources(network),
        **extra,
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName="desktops",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="desktop",
        type="container",
        containerProperties={
            "image": "desktop:initial",
            "jobRoleArn": ROLE_ARN,
            "resourceRequirements": [
                {"type": "GPU", "value": "1"},
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "15000"},
            ],
            "environment": [{"name": "DCVFLEET_EVENT_BUS_NAME", "value": "fleet"}],
        },
    )["jobDefinitionArn"]
    return queue, definition


def _batch_events(sqs: Any, events: Any, name: str) -> str:
    """A queue that gets every ``Batch Job State Change`` on the default bus."""
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(
            {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"]}
        ),
    )
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    return url


SESSION_ENVIRONMENT = [{"name": "DCVFLEET_SESSION_ID", "value": "s-1"}]


def test_gap_batch_jobs(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP BATCH_JOBS: moto runs a job in Docker; without Docker the job is FAILED within a
    second, with no statusReason, no instance, no container instance, an attempt whose
    ``containerInstanceArn`` is "TBD" and whose ``taskArn`` is the job definition's ARN, and no
    ``Batch Job State Change`` event; and every DescribeJobs adds one more
    ``AWS_BATCH_JOB_ID`` to the job's environment. When this fails, moto has changed: revisit
    ``batch_job_patches`` in local/emulator/batch.py (and local/sim/containers.py)."""

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no Docker here
    batch, iam = aws_client("batch", moto_server), aws_client("iam", moto_server)
    ec2, sqs = aws_client("ec2", moto_server), aws_client("sqs", moto_server)
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]
    iam.create_instance_profile(InstanceProfileName="batch-instances")
    network = {
        "subnet": ec2.describe_subnets()["Subnets"][0]["SubnetId"],
        "group": ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"],
        "profile": "batch-instances",
    }
    queue, definition = _job_queue(batch, network, role["Arn"])
    events_url = _batch_events(sqs, aws_client("events", moto_server), "batch-changes")
    job_id = batch.submit_job(
        jobName="desktop-job",
        jobQueue=queue,
        jobDefinition=definition,
        containerOverrides={"environment": SESSION_ENVIRONMENT},
    )["jobId"]
    deadline = time.monotonic() + 10
    while batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] != "FAILED":
        assert time.monotonic() < deadline, "the job did not fail without Docker"
        time.sleep(0.1)
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert "statusReason" not in job
    assert {"containerInstanceArn", "taskArn", "exitCode"}.isdisjoint(job["container"])
    (attempt,) = job["attempts"]
    assert attempt["container"]["containerInstanceArn"] == "TBD"
    assert attempt["container"]["taskArn"] == definition
    assert ec2.describe_instances()["Reservations"] == []
    counts = [
        [
            e["name"]
            for e in batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["environment"]
        ].count("AWS_BATCH_JOB_ID")
        for _ in range(2)
    ]
    assert counts[1] == counts[0] + 1
    assert "Messages" not in sqs.receive_message(QueueUrl=events_url)


@mock_aws
def test_workaround_batch_jobs(install: Installer) -> None:
    """``batch_job_patches``: a submitted job goes PENDING, then RUNNABLE, and stays there until
    it is placed; ``job_started``, ``job_running`` and ``job_ended`` move it along with its
    container's fields; every change is a ``Batch Job State Change`` on the default bus whose
    detail is the job as DescribeJobs shows it; its environment is stable; TerminateJob ends a
    job that has not started at once and asks the simulator to stop one that has; CancelJob
    leaves a started job alone."""
    hooks = install("BATCH_FROM_CLOUDFORMATION", "BATCH_JOBS")
    woken: list[int] = []
    hooks.on_jobs(lambda: woken.append(1))
    batch, sqs = aws_client("batch"), aws_client("sqs")
    events_url = _batch_events(sqs, aws_client("events"), "batch-changes")
    queue, definition = _job_queue(batch, _batch_network(), None)

    def submit() -> Any:
        job_id = batch.submit_job(
            jobName="desktop-job",
            jobQueue=queue,
            jobDefinition=definition,
            containerOverrides={"environment": SESSION_ENVIRONMENT},
            timeout={"attemptDurationSeconds": 600},
        )["jobId"]
        deadline = time.monotonic() + 5
        while batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] != "RUNNABLE":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return next(j for j in batch_jobs() if j.job_id == job_id)

    job = submit()
    time.sleep(0.3)
    described = batch.describe_jobs(jobs=[job.job_id])["jobs"][0]
    assert described["status"] == "RUNNABLE"
    assert woken
    environments = [
        batch.describe_jobs(jobs=[job.job_id])["jobs"][0]["container"]["environment"]
        for _ in range(2)
    ]
    assert (
        environments[0]
        == environments[1]
        == [
            *SESSION_ENVIRONMENT,
            {"name": "DCVFLEET_EVENT_BUS_NAME", "value": "fleet"},
            {"name": "AWS_BATCH_JOB_ID", "value": job.job_id},
        ]
    )
    cluster = "arn:aws:ecs:us-east-1:123456789012:container-instance/desktops/1"
    task = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/desktops/{'a' * 32}"
    assert job_started(
        job, container_instance_arn=cluster, task_arn=task, log_stream="desktop/default/a"
    )
    job_running(job)
    running = batch.describe_jobs(jobs=[job.job_id])["jobs"][0]
    assert running["status"] == "RUNNING"
    assert "startedAt" in running
    container = running["container"]
    assert container["containerInstanceArn"] == cluster
    assert container["taskArn"] == task
    assert container["logStreamName"] == "desktop/default/a"
    assert container["image"] == "desktop:initial"
    assert container["jobRoleArn"] == ROLE_ARN
    assert {"type": "GPU", "value": "1"} in container["resourceRequirements"]
    job_ended(job, reason=CONTAINER_EXITED, exit_code=3)
    ended = batch.describe_jobs(jobs=[job.job_id])["jobs"][0]
    assert (ended["status"], ended["statusReason"]) == ("FAILED", CONTAINER_EXITED)
    assert ended["container"]["exitCode"] == 3
    (attempt,) = ended["attempts"]
    assert attempt["container"]["taskArn"] == task
    assert attempt["container"]["exitCode"] == 3
    assert attempt["stoppedAt"] >= attempt["startedAt"]
    changes = [e for e in drain(events_url) if e["detail"]["jobId"] == job.job_id]
    assert [e["detail"]["status"] for e in changes] == [
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "FAILED",
    ]
    assert all(e["source"] == "aws.batch" for e in changes)
    assert changes[-1]["resources"] == [ended["jobArn"]]
    assert changes[-1]["detail"]["container"]["exitCode"] == 3
    assert changes[3]["detail"]["container"]["taskArn"] == task

    waiting = submit()
    batch.terminate_job(jobId=waiting.job_id, reason="no longer wanted")
    cancelled = batch.describe_jobs(jobs=[waiting.job_id])["jobs"][0]
    assert (cancelled["status"], cancelled["statusReason"]) == ("FAILED", "no longer wanted")
    assert "startedAt" not in cancelled

    started = submit()
    assert job_started(
        started, container_instance_arn=cluster, task_arn=task, log_stream="desktop/default/b"
    )
    job_running(started)
    batch.cancel_job(jobId=started.job_id, reason="too late to cancel")
    assert batch.describe_jobs(jobs=[started.job_id])["jobs"][0]["status"] == "RUNNING"
    woken.clear()
    batch.terminate_job(jobId=started.job_id, reason="user deleted the desktop")
    assert stop_requested(started) == "user deleted the desktop"
    assert woken
    assert batch.describe_jobs(jobs=[started.job_id])["jobs"][0]["status"] == "RUNNING"
    assert not job_started(waiting, container_instance_arn=cluster, task_arn=task, log_stream="x")


# -- BATCH_SCALING_UPDATES ---------------------------------------------------------------------
def _environment(batch: Any) -> str:
    return str(
        batch.create_compute_environment(
            computeEnvironmentName="desktops",
            type="MANAGED",
            computeResources=_environment_resources(_batch_network()),
            serviceRole=aws_client("iam").create_role(
                RoleName="batch", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"],
        )["computeEnvironmentArn"]
    )


def _scaling(batch: Any, arn: str) -> dict[str, Any]:
    (found,) = batch.describe_compute_environments(computeEnvironments=[arn])["computeEnvironments"]
    resources: dict[str, Any] = found["computeResources"]
    return {k: resources.get(k) for k in ("minvCpus", "maxvCpus")}


@mock_aws
def test_gap_batch_scaling_updates() -> None:
    """GAP BATCH_SCALING_UPDATES: UpdateComputeEnvironment ignores ``computeResources``:
    ``minvCpus`` stays as created, and one above ``maxvCpus`` is not refused. When this fails,
    moto has changed: drop ``batch_scaling_patches`` in local/emulator/batch.py (or the parts
    moto now does)."""
    batch = aws_client("batch")
    arn = _environment(batch)
    batch.update_compute_environment(computeEnvironment=arn, computeResources={"minvCpus": 4})
    assert _scaling(batch, arn) == {"minvCpus": 0, "maxvCpus": 8}
    batch.update_compute_environment(computeEnvironment=arn, computeResources={"minvCpus": 64})
    assert _scaling(batch, arn) == {"minvCpus": 0, "maxvCpus": 8}


@mock_aws
def test_workaround_batch_scaling_updates(install: Installer) -> None:
    """``batch_scaling_patches``: a scaling update sets ``minvCpus`` (by name or ARN) and wakes
    the job simulator; a ``minvCpus`` above ``maxvCpus`` or below 0 is refused and changes
    nothing."""
    hooks = install("BATCH_SCALING_UPDATES")
    woken: list[int] = []
    hooks.on_jobs(lambda: woken.append(1))
    batch = aws_client("batch")
    arn = _environment(batch)
    batch.update_compute_environment(computeEnvironment=arn, computeResources={"minvCpus": 4})
    assert _scaling(batch, arn) == {"minvCpus": 4, "maxvCpus": 8}
    assert woken
    batch.update_compute_environment(
        computeEnvironment="desktops", computeResources={"minvCpus": 0}
    )
    assert _scaling(batch, arn) == {"minvCpus": 0, "maxvCpus": 8}
    for wrong in ({"minvCpus": 64}, {"minvCpus": -1}, {"maxvCpus": 4, "minvCpus": 8}):
        with pytest.raises(ClientError, match="minvCpus"):
            batch.update_compute_environment(computeEnvironment=arn, computeResources=wrong)
    assert _scaling(batch, arn) == {"minvCpus": 0, "maxvCpus": 8}
