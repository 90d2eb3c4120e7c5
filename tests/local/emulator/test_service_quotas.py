"""SERVICE_QUOTAS_EC2: Service Quotas knows only the vpc service."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator.service_quotas import (
    EC2_QUOTA_VCPUS,
    EC2_QUOTAS,
    service_quota_patches,
    set_ec2_quota,
)
from tests.support.emulator import (
    ACCOUNT,
    REGION,
)


# ==============================================================================================
# SERVICE_QUOTAS_EC2
def test_gap_service_quotas_ec2() -> None:
    """GAP SERVICE_QUOTAS_EC2: Service Quotas knows only VPC's quotas; EC2's G and VT vCPU quotas
    are NoSuchResourceException and GetAWSDefaultServiceQuota is not implemented."""

    with mock_aws():
        quotas = boto3.client("service-quotas", region_name=REGION)
        for code in EC2_QUOTAS:
            with pytest.raises(ClientError) as refused:
                quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)
            assert refused.value.response["Error"]["Code"] == "NoSuchResourceException"
            with pytest.raises(NotImplementedError):
                quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)


def test_workaround_service_quotas_ec2(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in service_quota_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        quotas = boto3.client("service-quotas", region_name=REGION)
        quota = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-DB2E81BA")["Quota"]
        assert quota["QuotaName"] == "Running On-Demand G and VT instances"
        assert quota["Value"] == EC2_QUOTA_VCPUS
        set_ec2_quota(ACCOUNT, REGION, "L-3819A6DF", 8)
        spot = quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-3819A6DF")["Quota"]
        assert (spot["QuotaName"], spot["Value"]) == ("All G and VT Spot Instance Requests", 8.0)
        # the others stay moto's
        vpc = quotas.list_aws_default_service_quotas(ServiceCode="vpc")["Quotas"][0]
        assert quotas.get_service_quota(ServiceCode="vpc", QuotaCode=vpc["QuotaCode"])["Quota"]
        with pytest.raises(ClientError):
            quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")
