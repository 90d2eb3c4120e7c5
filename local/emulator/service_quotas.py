"""Service Quotas: EC2's G and VT vCPU quotas.

Each account and region's values live in ``_QUOTAS`` (a weak map by moto's backend: a reset
backend starts again from ``EC2_QUOTA_VCPUS``).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from local.emulator.gap import Gap, Patch

log = logging.getLogger("local.emulator")


#: EC2's vCPU quotas for G and VT instances, by code, with the names AWS gives them
#: (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html,
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html).
EC2_QUOTAS = {
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-3819A6DF": "All G and VT Spot Instance Requests",
}
#: The value each answers with until ``set_ec2_quota`` changes it (the emulator's own).
EC2_QUOTA_VCPUS = 64.0


_QUOTAS: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()


def _ec2_quota_values(backend: Any) -> dict[str, float]:
    return _QUOTAS.setdefault(backend, dict.fromkeys(EC2_QUOTAS, EC2_QUOTA_VCPUS))


def set_ec2_quota(account_id: str, region: str, code: str, value: float) -> None:
    """Sets one of ``EC2_QUOTAS`` in the emulator (an account's quota, as AWS would have it)."""
    from moto.servicequotas.models import servicequotas_backends

    if code not in EC2_QUOTAS:
        raise ValueError(f"{code} is not one of the emulated EC2 quotas ({', '.join(EC2_QUOTAS)})")
    _ec2_quota_values(servicequotas_backends[account_id][region])[code] = float(value)


def service_quota_patches() -> list[Patch]:
    """SERVICE_QUOTAS_EC2: GetServiceQuota answers ``EC2_QUOTAS``.."""
    from moto.servicequotas.models import ServiceQuotasBackend

    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code != "ec2" or quota_code not in EC2_QUOTAS:
            return original(self, service_code, quota_code)
        return {
            "ServiceCode": "ec2",
            "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
            "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:"
            f"ec2/{quota_code}",
            "QuotaCode": quota_code,
            "QuotaName": EC2_QUOTAS[quota_code],
            "Value": _ec2_quota_values(self)[quota_code],
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    return [Patch(ServiceQuotasBackend, "get_service_quota", get_service_quota)]


SERVICE_QUOTAS_EC2 = Gap(
    "SERVICE_QUOTAS_EC2",
    moto_does="Service Quotas knows only the vpc service: GetServiceQuota for EC2's G and VT vCPU"
    " quotas (L-DB2E81BA, L-3819A6DF) is NoSuchResourceException",
    we_do="GetServiceQuota answers those two, as AWS shapes a quota, with EC2_QUOTA_VCPUS (64, the"
    " emulator's own value) until set_ec2_quota changes one",
    install=lambda context: service_quota_patches(),
)
