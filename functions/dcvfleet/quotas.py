"""EC2's vCPU quotas, which decide whether an instance type can be launched at all in an account.

EC2 counts running On-Demand instances against one vCPU quota per group of instance families
(Running On-Demand G and VT instances, Running On-Demand P instances, Running On-Demand Standard
(A, C, D, H, I, M, R, T, Z) instances, ...), per account and Region; a new account's quota for the
GPU families is 0. RunInstances then answers ``VcpuLimitExceeded`` for every type of the group, in
every subnet: only a type of another group could launch.

- Error codes: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
  (``VcpuLimitExceeded``: "You've reached the limit on the number of vCPUs ... assigned to the
  running On-Demand instances in your AWS account").
- The groups: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-resource-limits.html and,
  for Spot, https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html.
- Quota codes (Service Quotas, service code ``ec2``): L-1216C47A is the Standard group's (the
  AWS CLI's example of ``get-aws-default-service-quota``,
  https://docs.aws.amazon.com/cli/latest/userguide/cli_service-quotas_code_examples.html);
  L-DB2E81BA (On-Demand G and VT), L-3819A6DF (Spot G and VT) and L-417A185B (On-Demand P) as the
  Service Quotas console lists them. A group without a code here is named, and looked up in the
  console by that name.
- Requesting an increase:
  https://docs.aws.amazon.com/servicequotas/latest/userguide/request-quota-increase.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: RunInstances' answer when the type's vCPU quota is used up (0 in a new account for GPUs).
VCPU_QUOTA_ERRORS = frozenset({"VcpuLimitExceeded"})

STANDARD = frozenset("acdhimrtz")


@dataclass(frozen=True)
class Quota:
    """One On-Demand vCPU quota: its name and, where known, its Service Quotas code."""

    name: str
    code: str | None
    #: The same group's Spot quota ("All G and VT Spot Instance Requests"), where known.
    spot_code: str | None = None

    @property
    def key(self) -> str:
        return self.code or self.name


G_AND_VT = Quota("Running On-Demand G and VT instances", "L-DB2E81BA", "L-3819A6DF")
P = Quota("Running On-Demand P instances", "L-417A185B")
STANDARD_QUOTA = Quota(
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A"
)
_NAMED = {"dl": "DL", "f": "F", "inf": "Inf", "trn": "Trn", "x": "X", "hpc": "HPC"}


def family(instance_type: str) -> str:
    """The family letters of an instance type: g4dn.xlarge -> g, vt1.3xlarge -> vt."""
    found = re.match(r"[a-z]+", instance_type.split(".", 1)[0].lower())
    return found.group(0) if found else instance_type


def on_demand_quota(instance_type: str) -> Quota:
    """The On-Demand vCPU quota an instance type counts against."""
    letters = family(instance_type)
    if letters in ("g", "vt"):
        return G_AND_VT
    if letters == "p":
        return P
    if letters in _NAMED:
        return Quota(f"Running On-Demand {_NAMED[letters]} instances", None)
    if len(letters) == 1 and letters in STANDARD:
        return STANDARD_QUOTA
    return Quota(f"the On-Demand vCPU quota of the {letters} instance family", None)


_SIZES = {"medium": 1, "large": 2, "xlarge": 4}


def vcpus(instance_type: str) -> int | None:
    """vCPUs of one instance of the type by its size name (xlarge 4, 2xlarge 8, ...): true of
    the x86 G, P and Standard types; None for a size it cannot tell (metal, ...)."""
    size = instance_type.split(".", 1)[-1]
    found = re.fullmatch(r"(\d*)(xlarge|large|medium)", size)
    if not found:
        return None
    return int(found.group(1) or 1) * _SIZES[found.group(2)]


def console_url(code: str, region: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{code}"
        f"?region={region}"
    )


def increase_advice(quota: Quota, region: str, instance_type: str) -> str:
    """How an operator asks for more of ``quota``: the console page and the AWS CLI command."""
    need = vcpus(instance_type)
    desired = need * 4 if need else 16
    per_desktop = (
        f"One {instance_type} desktop needs {need} vCPUs; ask for that many times the desktops "
        f"you expect to run at once (below: {desired}, four desktops)."
        if need
        else f"Ask for the vCPUs of the {instance_type} desktops you expect to run at once."
    )
    if quota.code is None:
        return (
            f"{per_desktop}\nRequest an increase of '{quota.name}' (service ec2, Region "
            f"{region}) in the Service Quotas console: "
            f"https://{region}.console.aws.amazon.com/servicequotas/home/services/ec2/quotas"
            f"?region={region}"
        )
    return (
        f"{per_desktop}\n"
        f"Request an increase in the Service Quotas console: {console_url(quota.code, region)}\n"
        "or with the AWS CLI:\n"
        f"  aws service-quotas request-service-quota-increase --region {region} "
        f"--service-code ec2 --quota-code {quota.code} --desired-value {desired}"
    )
