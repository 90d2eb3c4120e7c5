"""Which EC2 vCPU quota an instance type counts against, and how an operator raises it."""

from __future__ import annotations

import pytest

from dcvfleet import quotas


@pytest.mark.parametrize(
    ("instance_type", "code"),
    [
        ("g5.xlarge", "L-DB2E81BA"),
        ("g4dn.2xlarge", "L-DB2E81BA"),
        ("g6e.12xlarge", "L-DB2E81BA"),
        ("vt1.3xlarge", "L-DB2E81BA"),
        ("p3.2xlarge", "L-417A185B"),
        ("p4d.24xlarge", "L-417A185B"),
        ("m5.large", "L-1216C47A"),
        ("c6i.xlarge", "L-1216C47A"),
        ("t3.medium", "L-1216C47A"),
    ],
)
def test_every_g_and_vt_type_shares_one_quota_and_other_families_have_their_own(
    instance_type: str, code: str
) -> None:
    assert quotas.on_demand_quota(instance_type).code == code


@pytest.mark.parametrize(
    ("instance_type", "name"),
    [
        ("inf2.xlarge", "Running On-Demand Inf instances"),
        ("dl1.24xlarge", "Running On-Demand DL instances"),
        ("trn1.2xlarge", "Running On-Demand Trn instances"),
        ("x2iedn.xlarge", "Running On-Demand X instances"),
    ],
)
def test_a_family_without_a_known_code_is_named_and_keyed_by_its_name(
    instance_type: str, name: str
) -> None:
    quota = quotas.on_demand_quota(instance_type)
    assert (quota.name, quota.code, quota.key) == (name, None, name)
    assert quota.key != quotas.G_AND_VT.key


@pytest.mark.parametrize(
    ("instance_type", "vcpus"),
    [("g5.xlarge", 4), ("g4dn.2xlarge", 8), ("g6.48xlarge", 192), ("m5.large", 2)],
)
def test_vcpus_follow_the_size_name(instance_type: str, vcpus: int) -> None:
    assert quotas.vcpus(instance_type) == vcpus


def test_a_size_it_cannot_tell_has_no_vcpu_count() -> None:
    assert quotas.vcpus("g4dn.metal") is None


def test_the_advice_for_a_quota_without_a_code_points_to_the_console_by_name() -> None:
    advice = quotas.increase_advice(quotas.on_demand_quota("inf2.xlarge"), "ap-south-1", "inf2")
    assert "'Running On-Demand Inf instances' (service ec2, Region ap-south-1)" in advice
    assert "https://ap-south-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas" in (
        advice
    )
    assert "request-service-quota-increase" not in advice
