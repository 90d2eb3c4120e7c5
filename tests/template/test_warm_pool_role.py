"""The warm pool's refill may make every EC2 call it makes: a refill is run against the emulator
through every path (launch, health check, stop to wait, start again, retire), each EC2 operation
it calls is recorded, and the refill function's role must allow each one. The emulator does not
enforce IAM: this reads the role as IAM would (tests/support/iam.py)."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dcvfleet import batch_warm, pool, pool_targets
from dcvfleet.adapters import POOL_READY_TAG, Ec2Hosts
from dcvfleet.config import PoolSettings
from dcvfleet.pool import InMemoryPoolStore, PoolState
from tests.support.iam import grants
from tests.support.service import COMMON
from tests.support.template import translated

ROLE = "RefillPoolFunctionRole"


def _refill_calls() -> set[str]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="pool", LaunchTemplateData={"ImageId": image}
    )["LaunchTemplate"]["LaunchTemplateId"]
    settings = PoolSettings(
        common=COMMON,
        pool_table="pool",
        size=1,
        state="stopped",
        launch_template_id=template,
        instance_type="g5.xlarge",
        subnet_ids=(subnet,),
    )
    calls: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        calls.add(model.name)

    ec2.meta.events.register("before-call.ec2", record)
    store, hosts = InMemoryPoolStore(), Ec2Hosts(ec2)
    now = "2026-12-07T10:00:00.000Z"

    def refill(run: str, demand: pool.Demand | None = None, **changes: Any) -> dict[str, Any]:
        return pool.refill(
            store, hosts, replace(settings, **changes), run_id=run, now=now, demand=demand
        )

    [instance_id] = refill("run-1")["launched"]
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": POOL_READY_TAG, "Value": "true"}])
    calls.discard("CreateTags")  # (the host's agent's call, not the refill's)
    assert refill("run-2")["stopping"] == [instance_id]
    refill("run-3", state="running")  # STOPPING -> STOPPED
    assert refill("run-4", state="running")["starting"] == [instance_id]
    assert {h.state for h in store.hosts("linux-workstation")} == {PoolState.WARMING}
    assert refill("run-5", size=0)["retired"] == [instance_id]
    # a profile's pool that waits hibernated: whether its type can hibernate
    hibernated = pool.Demand(plan=pool_targets.PoolPlan(size=0, state="hibernated"))
    assert refill("run-6", demand=hibernated)["state"] == "stopped"  # (g5.xlarge cannot)
    return calls


def test_the_refill_role_allows_every_ec2_call_the_refill_makes(moto_endpoint: str) -> None:
    calls = _refill_calls()
    # every path was taken
    assert {
        "RunInstances",
        "DescribeInstances",
        "DescribeInstanceStatus",
        "StopInstances",
        "StartInstances",
        "TerminateInstances",
        "DescribeInstanceTypes",
    } <= calls
    allowed = [a for g in grants(translated()) if g.role == ROLE for a in g.actions]
    missing = sorted(c for c in calls if not any(fnmatch.fnmatch(f"ec2:{c}", a) for a in allowed))
    assert not missing, f"{ROLE} does not allow {missing}"


def test_a_windows_pool_host_has_the_role_that_lets_a_linux_one_tag_itself_made() -> None:
    """Every launch template (Linux and Windows) gives its hosts the one instance profile whose
    role carries PoolHostTagsItselfMade (its conditions: tests/template/test_least_privilege.py),
    so a Windows pool host's agent tags itself made as a Linux one's does."""
    resources = translated()["Resources"]
    templates = {
        name: r["Properties"]["LaunchTemplateData"]
        for name, r in resources.items()
        if r["Type"] == "AWS::EC2::LaunchTemplate"
    }
    assert {"LinuxLaunchTemplate", "WindowsLaunchTemplate"} <= set(templates)
    for name in ("LinuxLaunchTemplate", "WindowsLaunchTemplate"):
        profile = templates[name]["IamInstanceProfile"]["Arn"]
        assert profile == {"Fn::GetAtt": ["HostInstanceProfile", "Arn"]}, name
    assert resources["HostInstanceProfile"]["Properties"]["Roles"] == [{"Ref": "HostRole"}]
    sids = [
        s.get("Sid")
        for p in resources["HostRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if isinstance(s, dict)
    ]
    assert "PoolHostTagsItselfMade" in sids


def _batch_refill_calls() -> set[str]:
    """The Batch operations a refill of a batch profile's warm instances calls."""
    batch = boto3.client("batch", region_name="us-east-1")
    calls: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        calls.add(model.name)

    batch.meta.events.register("before-call.batch", record)
    environments = batch_warm.ComputeEnvironments(batch, "queue")
    with mock_aws():
        # what refill calls, in its order: read the environment, count the busy desktops, update
        assert (
            environments.describe("arn:aws:batch:us-east-1:123456789012:compute-environment/x")
            is None
        )
        with pytest.raises(ClientError):  # (moto has no such queue)
            environments.busy()
        with pytest.raises(ClientError):  # (moto has no such environment: the call is what counts)
            environments.set_min_vcpus(
                "arn:aws:batch:us-east-1:123456789012:compute-environment/x", 8
            )
    return calls


def test_the_refill_role_may_update_only_the_fleets_own_compute_environments() -> None:
    """The refill sets minvCpus (UpdateComputeEnvironment) of the fleet's compute environments
    and of nothing else: the grant names their ARNs, never a wildcard; what it reads of Batch
    (DescribeComputeEnvironments, ListJobs) has no resource type
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsbatch.html)."""
    calls = _batch_refill_calls()
    assert calls == {"DescribeComputeEnvironments", "ListJobs", "UpdateComputeEnvironment"}
    role_grants = [g for g in grants(translated()) if g.role == ROLE]
    allowed = [a for g in role_grants for a in g.actions]
    missing = sorted(c for c in calls if not any(fnmatch.fnmatch(f"batch:{c}", a) for a in allowed))
    assert not missing, f"{ROLE} does not allow {missing}"
    updates = {
        r
        for g in role_grants
        if any(fnmatch.fnmatch("batch:UpdateComputeEnvironment", a) for a in g.actions)
        for r in g.resources
    }
    prefix = "arn:aws:batch:us-east-1:123456789012:compute-environment/dcvfleet-"
    assert updates == {f"{prefix}SpotComputeEnvironment", f"{prefix}OnDemandComputeEnvironment"}
