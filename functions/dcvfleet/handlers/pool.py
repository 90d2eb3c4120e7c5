"""The warm pool's refill, run on a schedule (template.yaml, RefillPoolFunction)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from dcvfleet import batch_warm, pool, quotas
from dcvfleet.adapters import Ec2Hosts
from dcvfleet.aws import client
from dcvfleet.config import PoolSettings
from dcvfleet.handlers import entry_point
from dcvfleet.profiles import ProfileRecords, parse_definitions, pool_plan
from dcvfleet.store import DynamoSessionStore, now_iso

logger = Logger()


def pool_store() -> pool.DynamoPoolStore:
    """The warm pool's table (POOL_TABLE)."""
    return pool.DynamoPoolStore(client("dynamodb"), os.environ["POOL_TABLE"])


def vcpu_quota(instance_type: str) -> int | None:
    """The account's On-Demand vCPU quota for ``instance_type`` (G and VT for the GPU types):
    its applied value (GetServiceQuota), else AWS's default where the account has none applied
    (NoSuchResourceException: "If the applied quota value is not available for a quota, the
    quota is not retrieved", then GetAWSDefaultServiceQuota), None when it cannot be read.
    https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html
    https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetAWSDefaultServiceQuota.html
    """
    quota = quotas.on_demand_quota(instance_type)
    if quota.code is None:
        return None
    service_quotas = client("service-quotas")
    request = {"ServiceCode": "ec2", "QuotaCode": quota.code}
    try:
        try:
            found = service_quotas.get_service_quota(**request)["Quota"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchResourceException":
                raise
            found = service_quotas.get_aws_default_service_quota(**request)["Quota"]
    except ClientError as exc:
        logger.warning("vCPU quota not read", quota=quota.code, error=str(exc))
        return None
    return int(found["Value"])


def template_profiles() -> str:
    """The template's DesktopProfiles (its SSM parameter, checked at deploy time)."""
    parameter = os.environ.get("DESKTOP_PROFILES_PARAMETER", "")
    if not parameter:
        return os.environ.get("DESKTOP_PROFILES", "")
    return str(client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])


def demand(settings: PoolSettings) -> pool.Demand:
    """The pool's plan (the default Linux EC2 profile's own ``pool``, from the admins' profiles
    or DesktopProfiles; else WarmPoolSize and WarmPoolState), its request history and the
    account's vCPU quota."""
    records = ProfileRecords(client("dynamodb"), os.environ["PROFILES_TABLE"])
    spec, source = pool_plan(settings.profile, template_profiles(), records)
    sessions = DynamoSessionStore(client("dynamodb"), settings.common.table_name)
    return pool.Demand(
        plan=spec.plan() if spec else None,
        source=f"the {source} profile {settings.profile}" if spec else "WarmPoolSize",
        history=sessions.requested_since,
        vcpu_quota=vcpu_quota,
    )


@entry_point()
def refill(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = PoolSettings.from_env(os.environ)
    # the scheduled event's id: Lambda retries a failed asynchronous invocation with the same
    # event (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html)
    run_id = str(event.get("id") or context.aws_request_id)
    result = pool.refill(
        pool_store(),
        Ec2Hosts(client("ec2")),
        settings,
        run_id=run_id,
        now=now_iso(),
        demand=demand(settings),
    )
    warm = batch_warm.WarmSettings.from_env(os.environ)
    if warm is not None:
        result["batch"] = batch_warm.refill(
            batch_warm.ComputeEnvironments(client("batch"), warm.job_queue),
            warm,
            batch_demand(settings),
            now=now_iso(),
        )
    return result


def batch_demand(settings: PoolSettings) -> batch_warm.Demand:
    """The batch profiles that carry a ``pool``: the template's (DesktopProfiles), with the
    admins' of the same id put over them, and their request history."""
    records = ProfileRecords(client("dynamodb"), os.environ["PROFILES_TABLE"])
    found = {d.id: (d, "template") for d in parse_definitions(template_profiles())}
    found.update({d.id: (d, "admin") for d in records.list()})
    sessions = DynamoSessionStore(client("dynamodb"), settings.common.table_name)
    return batch_warm.Demand(
        plans=[
            batch_warm.WarmPlan(d.id, d.pool.plan(), d.instanceTypes[0], source)
            for d, source in found.values()
            if d.backend == "batch" and d.pool is not None
        ],
        history=sessions.requested_since,
    )
