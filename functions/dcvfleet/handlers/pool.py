"""The warm pool's refill, run on a schedule (template.yaml, RefillPoolFunction)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from dcvfleet import batch_warm, pool, quotas
from dcvfleet.adapters import POOL_TAG, SESSION_TAG, Ec2Hosts
from dcvfleet.aws import client
from dcvfleet.config import PoolSettings
from dcvfleet.errors import ConfigurationError
from dcvfleet.handlers import entry_point
from dcvfleet.profiles import ProfileDefinition, ProfileRecords, parse_definitions
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


#: Every profile by id: its definition and where it comes from ("template" or "admin").
Definitions = dict[str, tuple[ProfileDefinition, str]]


def read_profiles() -> tuple[Definitions, list[dict[str, str]], bool]:
    """Every profile (the admins', which win over the template's DesktopProfiles of the same
    id), what could not be read (why), and whether everything was read."""
    failed: list[dict[str, str]] = []
    complete = True
    found: Definitions = {}
    try:
        found |= {d.id: (d, "template") for d in parse_definitions(template_profiles())}
    except (ConfigurationError, ClientError) as exc:
        complete = False
        failed.append({"profile": "DesktopProfiles", "error": str(exc)})
    try:
        records = ProfileRecords(client("dynamodb"), os.environ["PROFILES_TABLE"])
        found |= {d.id: (d, "admin") for d in records.list()}
    except (ValueError, ClientError) as exc:  # (a pydantic ValidationError is a ValueError)
        complete = False
        failed.append({"profile": "the admins' profiles", "error": str(exc)})
    return found, failed, complete


def plans(
    settings: PoolSettings, read: tuple[Definitions, list[dict[str, str]], bool] | None = None
) -> tuple[list[pool.ProfilePool], list[dict[str, str]], bool]:
    """Every pool the refill serves: each EC2 profile's with a ``pool`` of its own, and the
    default Linux EC2 profile's, set by WarmPoolSize and WarmPoolState when it has no plan of
    its own. Each with its OS's launch template, its default type, and hibernation where its
    desktops hibernate. Also the profiles it could not serve (why), and whether every profile
    was read (``read``: read_profiles()'s answer, read now if None): a pool is drained only
    when the refill knows its profile no longer keeps one."""
    found, read_failed, complete = read if read is not None else read_profiles()
    failed = list(read_failed)
    sessions = DynamoSessionStore(client("dynamodb"), settings.common.table_name)
    served: list[pool.ProfilePool] = []
    for profile_id, (definition, source) in sorted(found.items()):
        spec = definition.pool
        if definition.backend != "ec2" or (spec is None and profile_id != settings.profile):
            continue
        try:
            each = settings.for_profile(
                profile_id,
                os=definition.os,
                instance_type=definition.instanceTypes[0],
                hibernate=definition.idle.action == "hibernate",
            )
        except ConfigurationError as exc:
            failed.append({"profile": profile_id, "error": str(exc)})
            continue
        if spec is None:  # the default profile without a plan: WarmPoolSize, WarmPoolState
            each = replace(each, size=settings.size, state=settings.state)
        served.append(
            pool.ProfilePool(
                each,
                pool.Demand(
                    plan=spec.plan() if spec else None,
                    source=f"the {source} profile {profile_id}" if spec else "WarmPoolSize",
                    history=sessions.requested_since,
                    vcpu_quota=vcpu_quota,
                ),
            )
        )
    if settings.profile not in found and complete:
        # no profile of that id (DesktopProfiles without it): WarmPoolSize as before profiles
        served.append(
            pool.ProfilePool(
                settings,
                pool.Demand(history=sessions.requested_since, vcpu_quota=vcpu_quota),
            )
        )
    return served, failed, complete


def drained(
    settings: PoolSettings,
    served: list[pool.ProfilePool],
    store: pool.PoolStore,
    hosts: Ec2Hosts,
) -> list[pool.ProfilePool]:
    """The pools of profiles that no longer keep one (deleted, or their ``pool`` removed),
    found in the pool table (hosts or a last target) and among the fleet's pool instances: each
    is emptied, its unclaimed hosts terminated, never left running and billed."""
    kept = {p.settings.profile for p in served}
    hosts_found, targets = store.everything()
    tag = settings.common
    tagged = {
        i.tags[POOL_TAG]
        for i in hosts.fleet_instances(tag.fleet_tag_key, tag.fleet_tag_value, pool.LIVE_STATES)
        if i.tags.get(POOL_TAG) and SESSION_TAG not in i.tags
    }
    gone = ({h.profile for h in hosts_found} | set(targets) | tagged) - kept
    return [
        pool.ProfilePool(
            replace(settings, profile=profile),
            pool.Demand(
                drained=f"profile {profile} keeps no warm pool (deleted, or its pool removed)"
            ),
        )
        for profile in sorted(gone)
    ]


@entry_point()
def refill(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = PoolSettings.from_env(os.environ)
    # the scheduled event's id: Lambda retries a failed asynchronous invocation with the same
    # event (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html)
    run_id = str(event.get("id") or context.aws_request_id)
    store, hosts = pool_store(), Ec2Hosts(client("ec2"))
    read = read_profiles()
    served, failed, complete = plans(settings, read)
    if complete:
        served += drained(settings, served, store, hosts)
    out = pool.refill_all(store, hosts, served, run_id=run_id, now=now_iso())
    result = {**out, "failed": failed + out["failed"]}
    warm = batch_warm.WarmSettings.from_env(os.environ)
    # the Batch capacity is sized only from every profile (a profile not read would lower it)
    if warm is not None and complete:
        result["batch"] = batch_warm.refill(
            batch_warm.ComputeEnvironments(client("batch"), warm.job_queue),
            warm,
            batch_demand(settings, read[0]),
            now=now_iso(),
        )
    return result


def batch_demand(settings: PoolSettings, found: Definitions | None = None) -> batch_warm.Demand:
    """The batch profiles that carry a ``pool`` (of ``found``, every profile read now if None)
    and their request history."""
    if found is None:
        found = read_profiles()[0]
    sessions = DynamoSessionStore(client("dynamodb"), settings.common.table_name)
    return batch_warm.Demand(
        plans=[
            batch_warm.WarmPlan(d.id, d.pool.plan(), d.instanceTypes[0], source)
            for d, source in found.values()
            if d.backend == "batch" and d.pool is not None
        ],
        history=sessions.requested_since,
    )
