"""``dcvfleet preflight``: what a deployer runs before ``sam deploy``.

It reads the parameters the deploy will use (the template's defaults, then ``samconfig.toml``'s
``parameter_overrides`` for the chosen config env, then ``--params``) and checks the account
and region against them with read-only calls only (Describe*, Get*, Head*). One line per check,
PASS, WARN or FAIL; any FAIL makes the exit status non-zero. Each WARN and FAIL says what to do.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from dcvfleet_cli import interpreter
from dcvfleet_cli.errors import USAGE, CliError

PASS = "PASS"  # noqa: S105 (a verdict, not a password)
WARN = "WARN"
FAIL = "FAIL"

#: EC2's vCPU quotas for G and VT instances (Service Quotas, service code ``ec2``), with the
#: names AWS gives them; the check compares the name the account reports with the one here, so
#: a code that came to mean something else fails instead of passing on the wrong quota.
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html#ec2-on-demand-instances-limits
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html
ON_DEMAND_G_QUOTA = ("L-DB2E81BA", "Running On-Demand G and VT instances")
SPOT_G_QUOTA = ("L-3819A6DF", "All G and VT Spot Instance Requests")
G_AND_VT = re.compile(r"^(g|vt)\d", re.IGNORECASE)

#: AWS Batch's service-linked role, which a compute environment without ``ServiceRole`` (the
#: template's) uses; Batch tries to create it when it is missing:
#: https://docs.aws.amazon.com/batch/latest/APIReference/API_CreateComputeEnvironment.html
#: https://docs.aws.amazon.com/batch/latest/userguide/using-service-linked-roles.html
BATCH_SERVICE_LINKED_ROLE = "AWSServiceRoleForBatch"

#: The parameter naming how the stack treats API Gateway's account-level CloudWatch role, and
#: its default when the template does not declare it yet.
API_GATEWAY_ACCOUNT_ROLE = "ApiGatewayAccountRole"
API_GATEWAY_ACCOUNT_ROLE_DEFAULT = "create"

#: Parameters naming the GPU instance types desktops run on.
EC2_TYPE_PARAMETERS = (
    "LinuxInstanceType",
    "WindowsInstanceType",
    "AllowedInstanceTypes",
    "FallbackInstanceTypes",
)
TYPE_PARAMETERS = (*EC2_TYPE_PARAMETERS, "BatchInstanceTypes")

ClientFactory = Callable[[str], Any]


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    message: str


# --- the parameters the deploy will use ------------------------------------------------------


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML with CloudFormation's short forms (``!Ref``, ``!Sub``...), read as plain values
    (with libyaml where PyYAML has it)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"Fn::{suffix}" if suffix != "Ref" else "Ref": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


def parse_overrides(text: str) -> dict[str, str]:
    """``sam deploy --parameter-overrides`` syntax: ``Key=Value Key2="a b"``."""
    pairs = re.findall(r"""(\w+)=("[^"]*"|'[^']*'|\S*)""", text or "")
    return {k: v.strip("\"'") for k, v in pairs}


@dataclass
class DeployConfig:
    """What ``sam deploy --config-env ENV`` would deploy, as far as the checks need it."""

    parameters: dict[str, str]
    region: str | None
    stack_name: str | None
    #: Where each parameter's value came from ("default", "samconfig.toml [ENV]", "--params").
    sources: dict[str, str] = field(default_factory=dict)


def deploy_config(
    template: Mapping[str, Any],
    samconfig: Path | None,
    config_env: str,
    overrides: str,
) -> DeployConfig:
    declared: Mapping[str, Any] = template.get("Parameters", {})
    parameters: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, spec in declared.items():
        if "Default" in spec:
            parameters[name] = _plain(spec["Default"])
            sources[name] = "default"
    region = stack_name = None
    if samconfig is not None and samconfig.exists():
        config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
        env = config.get(config_env, {})
        common = env.get("global", {}).get("parameters", {})
        deploy = env.get("deploy", {}).get("parameters", {})
        raw = deploy.get("parameter_overrides", common.get("parameter_overrides", ""))
        for name, value in parse_overrides(" ".join(raw) if isinstance(raw, list) else raw).items():
            parameters[name] = value
            sources[name] = f"samconfig.toml [{config_env}]"
        region = deploy.get("region") or common.get("region")
        stack_name = deploy.get("stack_name") or common.get("stack_name")
    given = parse_overrides(overrides)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"unknown template parameter(s): {', '.join(unknown)}")
    for name, value in given.items():
        parameters[name] = value
        sources[name] = "--params"
    if API_GATEWAY_ACCOUNT_ROLE not in parameters:
        parameters[API_GATEWAY_ACCOUNT_ROLE] = API_GATEWAY_ACCOUNT_ROLE_DEFAULT
        sources[API_GATEWAY_ACCOUNT_ROLE] = "default"
    return DeployConfig(parameters, region, stack_name, sources)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _int(parameters: Mapping[str, str], name: str, default: int = 0) -> int:
    try:
        return int(parameters.get(name, default))
    except ValueError:
        return default


# --- the checks ------------------------------------------------------------------------------


class Account:
    """The read-only calls the checks make, each made once."""

    def __init__(
        self,
        client: ClientFactory,
        region: str | None,
        parameters: dict[str, str],
        stack_name: str | None = None,
    ):
        self.client = client
        self.region = region
        self.parameters = parameters
        #: The stack the deploy creates or updates (samconfig.toml's stack_name), if known.
        self.stack_name = stack_name
        self._subnets: list[dict[str, Any]] | None = None
        self._types: dict[str, dict[str, Any]] | None = None

    def subnet_ids(self) -> list[str]:
        return _list(self.parameters.get("SubnetIds", ""))

    def subnets(self) -> list[dict[str, Any]]:
        if self._subnets is None:
            ids = self.subnet_ids()
            self._subnets = (
                self.client("ec2").describe_subnets(SubnetIds=ids)["Subnets"] if ids else []
            )
        return self._subnets

    def chosen_types(self, names: Iterable[str] = TYPE_PARAMETERS) -> list[str]:
        types: list[str] = []
        for name in names:
            for kind in _list(self.parameters.get(name, "")):
                if kind not in types:
                    types.append(kind)
        return types

    def instance_types(self) -> dict[str, dict[str, Any]]:
        """DescribeInstanceTypes of every chosen type the region knows."""
        if self._types is None:
            self._types = {}
            ec2 = self.client("ec2")
            for kind in self.chosen_types():
                try:
                    found = ec2.describe_instance_types(InstanceTypes=[kind])["InstanceTypes"]
                except ClientError as exc:
                    if _code(exc) in ("InvalidInstanceType", "InvalidParameterValue"):
                        continue
                    raise
                for item in found:
                    self._types[item["InstanceType"]] = item
        return self._types

    def vcpus(self, kind: str) -> int:
        info = self.instance_types().get(kind, {})
        return int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def check_region(acct: Account) -> Result:
    if not acct.region:
        return Result(
            "region",
            FAIL,
            "no region: pass --region, set AWS_REGION, or put region in samconfig.toml",
        )
    identity = acct.client("sts").get_caller_identity()
    regions = acct.client("ec2").describe_regions(AllRegions=True)["Regions"]
    found = next((r for r in regions if r["RegionName"] == acct.region), None)
    if found is None:
        return Result("region", FAIL, f"{acct.region} is not an AWS Region EC2 knows")
    if found.get("OptInStatus") == "not-opted-in":
        return Result(
            "region",
            FAIL,
            f"{acct.region} is not enabled for account {identity['Account']}: enable it under "
            "Account settings > AWS Regions first",
        )
    return Result("region", PASS, f"{acct.region}, account {identity['Account']}")


def check_subnets(acct: Account) -> Result:
    ids = acct.subnet_ids()
    vpc = acct.parameters.get("VpcId", "")
    if not ids or not vpc:
        missing = " and ".join(n for n, v in (("VpcId", vpc), ("SubnetIds", ids)) if not v)
        return Result(
            "subnets",
            FAIL,
            f"{missing} has no value: give it in samconfig.toml's parameter_overrides "
            '(sam deploy --guided asks) or PARAMS="VpcId=vpc-... SubnetIds=subnet-a,subnet-b"',
        )
    try:
        subnets = acct.subnets()
    except ClientError as exc:
        if _code(exc) == "InvalidSubnetID.NotFound":
            return Result("subnets", FAIL, f"{exc.response['Error']['Message']} in {acct.region}")
        raise
    elsewhere = [s["SubnetId"] for s in subnets if s["VpcId"] != vpc]
    if elsewhere:
        return Result(
            "subnets",
            FAIL,
            f"{', '.join(elsewhere)} not in VpcId {vpc}: choose subnets of that VPC",
        )
    zones = ", ".join(f"{s['SubnetId']} ({s['AvailabilityZone']})" for s in subnets)
    return Result("subnets", PASS, f"{zones} in {vpc}")


def check_instance_types(acct: Account) -> Result:
    """Each chosen type must be offered in the subnets' zones (DescribeInstanceTypeOfferings by
    availability-zone:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html).
    """
    types = acct.chosen_types()
    zones = sorted({s["AvailabilityZone"] for s in acct.subnets()})
    if not types:
        return Result("instance-types", FAIL, "no instance type chosen")
    if not zones:
        return Result("instance-types", FAIL, "no subnet to check the types against")
    offered: dict[str, set[str]] = {kind: set() for kind in types}
    pages = (
        acct.client("ec2")
        .get_paginator("describe_instance_type_offerings")
        .paginate(
            LocationType="availability-zone",
            Filters=[
                {"Name": "instance-type", "Values": types},
                {"Name": "location", "Values": zones},
            ],
        )
    )
    for page in pages:
        for offer in page["InstanceTypeOfferings"]:
            offered.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    nowhere = [kind for kind in types if not offered[kind]]
    partly = [
        f"{kind} (not in {', '.join(sorted(set(zones) - offered[kind]))})"
        for kind in types
        if offered[kind] and offered[kind] != set(zones)
    ]
    if nowhere:
        used_by = {
            kind: [n for n in TYPE_PARAMETERS if kind in _list(acct.parameters.get(n, ""))]
            for kind in nowhere
        }
        named = "; ".join(f"{k} ({', '.join(v)})" for k, v in used_by.items())
        return Result(
            "instance-types",
            FAIL,
            f"not offered in any of the subnets' zones ({', '.join(zones)}): {named}. Choose "
            "types offered there (aws ec2 describe-instance-type-offerings --location-type "
            "availability-zone) or subnets in zones that offer them",
        )
    if partly:
        return Result(
            "instance-types",
            WARN,
            f"offered in some of the subnets' zones only: {'; '.join(partly)}; launches of those "
            "types go to the other subnets",
        )
    return Result("instance-types", PASS, f"{', '.join(types)} offered in {', '.join(zones)}")


def _quota(acct: Account, code: str, name: str) -> tuple[float, str | None]:
    """The quota's applied value (its AWS default where the account has none applied), and a
    problem with it if the code no longer names what it should."""
    sq = acct.client("service-quotas")
    try:
        quota = sq.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
    except ClientError as exc:
        if _code(exc) != "NoSuchResourceException":
            raise
        quota = sq.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
    reported = quota.get("QuotaName", "")
    if reported.lower() != name.lower():
        return float(quota.get("Value", 0)), f"quota {code} is {reported!r}, not {name!r}"
    return float(quota.get("Value", 0)), None


def _request(code: str, value: int, region: str | None) -> str:
    return (
        f"request an increase to at least {value} vCPUs: Service Quotas console > Amazon EC2 > "
        f"{code}, or aws service-quotas request-service-quota-increase --service-code ec2 "
        f"--quota-code {code} --desired-value {value} --region {region}"
    )


def check_on_demand_quota(acct: Account) -> Result:
    """The rule: one user at their limit on the largest type they may get
    (MaxActiveSessionsPerUser x its vCPUs) must fit, and so must one batch desktop (the
    largest batch type), as the On-Demand compute environment is always in the job queue;
    below that, FAIL. Below that plus BatchMaxVcpus (when BatchUseSpot=false, batch desktops
    run On-Demand only), WARN."""
    code, name = ON_DEMAND_G_QUOTA
    users = max(1, _int(acct.parameters, "MaxActiveSessionsPerUser", 1))
    ec2_types = [t for t in acct.chosen_types(EC2_TYPE_PARAMETERS) if G_AND_VT.match(t)]
    batch_types = [
        t for t in _list(acct.parameters.get("BatchInstanceTypes", "")) if G_AND_VT.match(t)
    ]
    largest = max((acct.vcpus(t) for t in ec2_types), default=0)
    largest_batch = max((acct.vcpus(t) for t in batch_types), default=0)
    needed = max(users * largest, largest_batch)
    spot = acct.parameters.get("BatchUseSpot", "true") == "true"
    ceiling = users * largest + (0 if spot else _int(acct.parameters, "BatchMaxVcpus", 0))
    others = [t for t in acct.chosen_types() if not G_AND_VT.match(t)]
    value, problem = _quota(acct, code, name)
    if problem:
        return Result("quota-on-demand", FAIL, f"{problem}: check the quota code")
    rule = (
        f"{users} desktop(s) per user x {largest} vCPUs (largest EC2 type), and one batch "
        f"desktop of {largest_batch} vCPUs"
    )
    if value < needed:
        return Result(
            "quota-on-demand",
            FAIL,
            f"{name} ({code}) is {value:g} vCPUs in {acct.region}; the parameters need at least "
            f"{needed} ({rule}). {_request(code, max(needed, ceiling), acct.region)}",
        )
    note = f"; {', '.join(others)} draw on other quotas, not checked" if others else ""
    if value < ceiling:
        return Result(
            "quota-on-demand",
            WARN,
            f"{name} ({code}) is {value:g} vCPUs: enough for {rule}, not for batch desktops "
            f"up to BatchMaxVcpus as well ({ceiling}); {_request(code, ceiling, acct.region)}"
            f"{note}",
        )
    status = WARN if others else PASS
    return Result(
        "quota-on-demand",
        status,
        f"{name} ({code}) is {value:g} vCPUs, at least {needed} needed ({rule}); the quota is "
        f"shared with every G and VT instance of the account in {acct.region}{note}",
    )


def check_spot_quota(acct: Account) -> Result:
    """With BatchUseSpot=true, batch desktops try the Spot compute environment first: one batch
    desktop (the largest batch type) must fit the Spot quota (else FAIL), and BatchMaxVcpus
    should (else WARN)."""
    code, name = SPOT_G_QUOTA
    if acct.parameters.get("BatchUseSpot", "true") != "true":
        return Result("quota-spot", PASS, "not needed (BatchUseSpot=false)")
    batch_types = [
        t for t in _list(acct.parameters.get("BatchInstanceTypes", "")) if G_AND_VT.match(t)
    ]
    needed = max((acct.vcpus(t) for t in batch_types), default=0)
    ceiling = max(needed, _int(acct.parameters, "BatchMaxVcpus", 0))
    value, problem = _quota(acct, code, name)
    if problem:
        return Result("quota-spot", FAIL, f"{problem}: check the quota code")
    if value < needed:
        return Result(
            "quota-spot",
            FAIL,
            f"{name} ({code}) is {value:g} vCPUs in {acct.region}; one batch desktop needs "
            f"{needed}. {_request(code, ceiling, acct.region)}; or deploy with BatchUseSpot=false",
        )
    if value < ceiling:
        return Result(
            "quota-spot",
            WARN,
            f"{name} ({code}) is {value:g} vCPUs, below BatchMaxVcpus ({ceiling}); "
            f"{_request(code, ceiling, acct.region)}",
        )
    return Result("quota-spot", PASS, f"{name} ({code}) is {value:g} vCPUs, {ceiling} wanted")


def check_hibernation(acct: Account) -> Result:
    """With IdleAction=hibernate, the desktops' types must support it (DescribeInstanceTypes
    HibernationSupported) and their RAM must fit on the root volume; a type that cannot is
    stopped instead. https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-prerequisites.html
    """
    action = acct.parameters.get("IdleAction", "stop")
    if action != "hibernate":
        return Result("hibernation", PASS, f"not needed (IdleAction={action})")
    known = acct.instance_types()
    root_mib = _int(acct.parameters, "RootVolumeSizeGiB", 0) * 1024
    able: list[str] = []
    unable: list[str] = []
    for kind in acct.chosen_types(EC2_TYPE_PARAMETERS):
        info = known.get(kind)
        if info is None or not info.get("HibernationSupported"):
            unable.append(f"{kind} (not supported)")
        elif int(info.get("MemoryInfo", {}).get("SizeInMiB", 0)) >= root_mib:
            unable.append(f"{kind} (its RAM does not fit the {root_mib // 1024} GiB root volume)")
        else:
            able.append(kind)
    if not able:
        return Result(
            "hibernation",
            FAIL,
            f"IdleAction=hibernate, but no desktop type can hibernate: {', '.join(unable)}; every "
            "idle desktop would be stopped. Choose types that can (aws ec2 describe-instance-types "
            "--filters Name=hibernation-supported,Values=true) or IdleAction=stop",
        )
    if unable:
        return Result(
            "hibernation",
            WARN,
            f"{', '.join(unable)} cannot hibernate: idle desktops of those types are stopped "
            f"instead; {', '.join(able)} can",
        )
    return Result("hibernation", PASS, f"{', '.join(able)} can hibernate")


#: The tag an operator puts on the Windows desktop AMI to say it carries what docs/host-windows.md
#: lists (the GRID driver, DCV Server, Python): nothing read-only can look inside an image.
WINDOWS_IMAGE_TAG = "dcvfleet:windows-desktop"
#: AWS's own Windows Server AMIs are named so ("Windows_Server-2022-English-Full-Base-2025.01.15")
#: and owned by "amazon"; the plain ones carry no GPU driver, no DCV and no Python.
AWS_PLAIN_WINDOWS = re.compile(r"^Windows_Server-\d{4}-.*-Base", re.IGNORECASE)
GPU_OR_DCV = re.compile(r"nvidia|grid|dcv|gpu", re.IGNORECASE)


def check_windows_ami(acct: Account) -> Result:
    """The Windows desktop AMI (WindowsAmiId, an SSM parameter name) resolves to an available,
    x86_64 Windows image that is not one of AWS's plain Windows Server AMIs, and is marked as a
    desktop image (WINDOWS_IMAGE_TAG). GetParameter, then DescribeImages, whose Image has
    "Platform": "windows" for Windows AMIs and "ImageOwnerAlias": "amazon" for AWS's own
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Image.html). What the image
    contains cannot be seen read-only: an untagged image is a WARN that says what it needs.
    WindowsAmiId empty (the template's default) means a fleet without Windows desktops."""
    name = acct.parameters.get("WindowsAmiId", "")
    needs = "the NVIDIA GRID driver, Amazon DCV Server and Python 3.9+ (docs/host-windows.md)"
    if not name:
        return Result("windows-ami", PASS, "no Windows desktops (WindowsAmiId empty)")
    image_id = name
    if not name.startswith("ami-"):
        try:
            image_id = acct.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as exc:
            if _code(exc) != "ParameterNotFound":
                raise
            return Result("windows-ami", FAIL, f"WindowsAmiId names {name}, which does not exist")
    try:
        images = acct.client("ec2").describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        if _code(exc) not in ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"):
            raise
        images = []
    if not images:
        return Result(
            "windows-ami", FAIL, f"{name} names {image_id}, which this region does not have"
        )
    image = images[0]
    label = f"{image_id} ({image.get('Name', 'no name')})"
    problems = []
    if image.get("State", "available") != "available":
        problems.append(f"its state is {image.get('State')}")
    if image.get("Platform") != "windows":
        problems.append("it is not a Windows image")
    if image.get("Architecture", "x86_64") != "x86_64":
        problems.append(f"it is {image.get('Architecture')}, not x86_64")
    plain = (
        image.get("ImageOwnerAlias") == "amazon"
        and AWS_PLAIN_WINDOWS.match(image.get("Name", ""))
        and not GPU_OR_DCV.search(f"{image.get('Name', '')} {image.get('Description', '')}")
    )
    if plain:
        problems.append(f"it is AWS's plain Windows Server AMI, without {needs}")
    if problems:
        return Result(
            "windows-ami",
            FAIL,
            f"WindowsAmiId {name} is {label}, but {'; '.join(problems)}: a Windows desktop "
            "would never come up",
        )
    tags = {t.get("Key"): t.get("Value") for t in image.get("Tags", [])}
    if WINDOWS_IMAGE_TAG in tags:
        return Result("windows-ami", PASS, f"{label} is a Windows image marked {WINDOWS_IMAGE_TAG}")
    return Result(
        "windows-ami",
        WARN,
        f"{label} is a Windows image, but what it contains cannot be seen from outside: it needs "
        f"{needs}. Once it does, tag it {WINDOWS_IMAGE_TAG}=true (aws ec2 create-tags "
        f"--resources {image_id} --tags Key={WINDOWS_IMAGE_TAG},Value=true)",
    )


def check_api_gateway_role(acct: Account) -> Result:
    """API Gateway writes the API's access logs with the account's CloudWatch role, one per
    account and region (GetAccount cloudwatchRoleArn;
    https://docs.aws.amazon.com/apigateway/latest/api/API_GetAccount.html,
    https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html,
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-account.html).
    """
    mode = acct.parameters.get(API_GATEWAY_ACCOUNT_ROLE, API_GATEWAY_ACCOUNT_ROLE_DEFAULT)
    arn = acct.client("apigateway").get_account().get("cloudwatchRoleArn") or ""
    if mode == "keep":
        if not arn:
            return Result(
                "apigateway-role",
                FAIL,
                f"{API_GATEWAY_ACCOUNT_ROLE}=keep, but API Gateway has no CloudWatch role in "
                f"{acct.region}: the API's access logs need one. Deploy with "
                f"{API_GATEWAY_ACCOUNT_ROLE}=create (the stack sets its own), or set one: "
                "aws apigateway update-account --patch-operations "
                "op=replace,path=/cloudwatchRoleArn,value=ROLE_ARN",
            )
        role_name = arn.rsplit("/", 1)[-1]
        try:
            acct.client("iam").get_role(RoleName=role_name)
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            return Result(
                "apigateway-role",
                FAIL,
                f"API Gateway's CloudWatch role {arn} no longer exists: create it again or "
                f"deploy with {API_GATEWAY_ACCOUNT_ROLE}=create",
            )
        return Result("apigateway-role", PASS, f"the account's role {arn} is kept")
    if arn and _stack_resource(acct, "ApiGatewayCloudWatchRole") == arn.rsplit("/", 1)[-1]:
        return Result(
            "apigateway-role",
            PASS,
            f"the account's role {arn} is this stack's own, set by an earlier deploy",
        )
    if arn:
        return Result(
            "apigateway-role",
            WARN,
            f"API Gateway already has a CloudWatch role in {acct.region} ({arn}); with "
            f"{API_GATEWAY_ACCOUNT_ROLE}=create the stack sets its own in its place, for every "
            f"API of the account in this region. Deploy with {API_GATEWAY_ACCOUNT_ROLE}=keep to "
            "leave it",
        )
    return Result(
        "apigateway-role", PASS, "none in the account yet; the stack creates and sets one"
    )


def _stack_resource(acct: Account, logical_id: str) -> str | None:
    """The physical id of one of the deploy's stack's resources, when that stack exists."""
    if not acct.stack_name:
        return None
    try:
        found = acct.client("cloudformation").describe_stack_resources(StackName=acct.stack_name)
    except ClientError as exc:
        if _code(exc) != "ValidationError":  # no such stack
            raise
        return None
    for resource in found["StackResources"]:
        if resource.get("LogicalResourceId") == logical_id:
            physical: str | None = resource.get("PhysicalResourceId")
            return physical
    return None


def check_batch_role(acct: Account) -> Result:
    try:
        role = acct.client("iam").get_role(RoleName=BATCH_SERVICE_LINKED_ROLE)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        return Result(
            "batch-role",
            WARN,
            f"{BATCH_SERVICE_LINKED_ROLE} does not exist yet: AWS Batch creates it when the stack "
            "creates its compute environments, which needs iam:CreateServiceLinkedRole for the "
            "identity that deploys; without it the stack fails. Or create it first: aws iam "
            "create-service-linked-role --aws-service-name batch.amazonaws.com",
        )
    return Result("batch-role", PASS, f"{role['Arn']} exists")


def _route_table(tables: Sequence[dict[str, Any]], subnet: dict[str, Any]) -> dict[str, Any] | None:
    for table in tables:
        for assoc in table.get("Associations", []):
            if assoc.get("SubnetId") == subnet["SubnetId"]:
                return table
    for table in tables:
        if table.get("VpcId") == subnet["VpcId"] and any(
            a.get("Main") for a in table.get("Associations", [])
        ):
            return table
    return None


def check_s3_reachable(acct: Account) -> Result:
    """DCV on EC2 checks its license in the S3 bucket ``dcv-license.<region>``: the hosts must
    reach S3, through the internet (an internet gateway or NAT default route) or an S3 gateway
    endpoint. https://docs.aws.amazon.com/dcv/latest/adminguide/setting-up-license.html"""
    subnets = acct.subnets()
    if not subnets:
        return Result("s3-route", FAIL, "no subnet to check")
    ec2 = acct.client("ec2")
    vpcs = sorted({s["VpcId"] for s in subnets})
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": vpcs}])["RouteTables"]
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[
            {"Name": "vpc-id", "Values": vpcs},
            {"Name": "service-name", "Values": [f"com.amazonaws.{acct.region}.s3"]},
        ]
    )["VpcEndpoints"]
    gateway_tables = {
        rt
        for e in endpoints
        if e.get("VpcEndpointType", "Gateway") == "Gateway"
        and e.get("State", "available").lower() == "available"
        for rt in e.get("RouteTableIds", [])
    }
    bucket = f"dcv-license.{acct.region}"
    ways: list[str] = []
    blocked: list[str] = []
    for subnet in subnets:
        table = _route_table(tables, subnet)
        if table is None:
            blocked.append(f"{subnet['SubnetId']} (no route table)")
            continue
        rt_id = table["RouteTableId"]
        default = next(
            (
                r
                for r in table.get("Routes", [])
                if r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("State") != "blackhole"
            ),
            None,
        )
        target = ""
        if default is not None:
            gateway = default.get("GatewayId", "")
            if gateway.startswith("igw-"):
                target = f"internet gateway {gateway}"
            elif default.get("NatGatewayId"):
                target = f"NAT gateway {default['NatGatewayId']}"
            elif default.get("TransitGatewayId") or default.get("NetworkInterfaceId"):
                target = str(default.get("TransitGatewayId") or default.get("NetworkInterfaceId"))
        if rt_id in gateway_tables:
            ways.append(f"{subnet['SubnetId']}: S3 gateway endpoint")
        elif target:
            ways.append(f"{subnet['SubnetId']}: {target}")
        else:
            blocked.append(f"{subnet['SubnetId']} (route table {rt_id})")
    if blocked:
        return Result(
            "s3-route",
            FAIL,
            f"hosts in {', '.join(blocked)} cannot reach S3, where DCV checks its license "
            f"({bucket}); without it DCV refuses connections. Add a default route to an internet "
            f"or NAT gateway, or an S3 gateway endpoint (com.amazonaws.{acct.region}.s3) on that "
            "route table",
        )
    return Result("s3-route", PASS, f"S3 ({bucket}) reachable: {'; '.join(ways)}")


def check_agent_artifact(acct: Account) -> Result:
    uri = acct.parameters.get("AgentArtifactS3Uri", "")
    if not uri:
        return Result(
            "agent-artifact",
            FAIL,
            "AgentArtifactS3Uri is empty: hosts could not install the agent and no desktop would "
            "become READY. make agent-archive, aws s3 cp dist/dcvfleet-agent.tar.gz "
            "s3://YOUR-BUCKET/dcvfleet/agent-0.1.0.tar.gz, then give that URI",
        )
    match = re.match(r"^s3://([^/]+)/(.+)$", uri)
    if not match:
        return Result("agent-artifact", FAIL, f"{uri} is not s3://bucket/key")
    bucket, key = match.groups()
    try:
        head = acct.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        what = {404: "does not exist", 403: "cannot be read (access denied)"}.get(
            int(status or 0), f"cannot be read ({_code(exc)})"
        )
        return Result(
            "agent-artifact",
            FAIL,
            f"{uri} {what}: upload it (make agent-archive, then aws s3 cp "
            f"dist/dcvfleet-agent.tar.gz {uri}) or correct AgentArtifactS3Uri",
        )
    return Result("agent-artifact", PASS, f"{uri} ({head.get('ContentLength', 0)} bytes)")


#: What EventBridge needs of the key that encrypts the fleet bus, in the key's own policy:
#: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-key-policy.html
#: The roles use it through DynamoDB, Secrets Manager, SNS and EventBridge by their IAM policies,
#: which count only where the key policy lets the account's IAM decide:
#: https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
KMS_NEEDED = ("kms:Decrypt", "kms:GenerateDataKey")


def _allows(statement: Mapping[str, Any], action: str) -> bool:
    actions = statement.get("Action", [])
    for granted in [actions] if isinstance(actions, str) else actions:
        if granted in ("*", "kms:*", action) or (
            granted.endswith("*") and action.startswith(granted[:-1])
        ):
            return True
    return False


def _principals(statement: Mapping[str, Any], kind: str) -> list[str]:
    principal = statement.get("Principal", {})
    if principal == "*":
        return ["*"]
    named = principal.get(kind, []) if isinstance(principal, dict) else []
    return [named] if isinstance(named, str) else list(named)


def check_kms_key(acct: Account) -> Result:
    """The customer-managed key ``KmsKeyArn`` names, when one does: usable, and its policy lets
    EventBridge encrypt the fleet bus and this account's IAM grant the roles its use (the
    template test tests/template/test_kms.py cannot read a key given as a parameter)."""
    arn = acct.parameters.get("KmsKeyArn", "")
    if not arn:
        return Result("kms-key", PASS, "none given: AWS-managed keys")
    if acct.region and f":kms:{acct.region}:" not in arn:
        return Result(
            "kms-key", FAIL, f"{arn} is not in {acct.region}: give a key of the deploy's region"
        )
    kms = acct.client("kms")
    meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
    problems = []
    if meta.get("KeyManager") != "CUSTOMER":
        problems.append("it is AWS-managed, and its policy cannot be changed")
    if meta.get("KeyState") != "Enabled":
        problems.append(f"it is {meta.get('KeyState')}, not Enabled")
    if meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        problems.append(f"it is {meta.get('KeySpec')}; the services need a symmetric key")
    statements = json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
    statements = statements.get("Statement", [])
    allowed = [s for s in statements if s.get("Effect") == "Allow"]
    partition, account = arn.split(":")[1], arn.split(":")[4]
    root = {account, f"arn:{partition}:iam::{account}:root"}
    if not any(set(_principals(s, "AWS")) & root and _allows(s, "kms:Decrypt") for s in allowed):
        problems.append(
            f"its policy does not let account {account}'s IAM policies grant its use (a "
            f'statement with Principal {{"AWS": "arn:aws:iam::{account}:root"}})'
        )
    if not any(
        "events.amazonaws.com" in _principals(s, "Service")
        and all(_allows(s, need) for need in KMS_NEEDED)
        for s in allowed
    ):
        problems.append(
            "its policy does not let EventBridge (events.amazonaws.com) use it for the fleet bus: "
            "allow kms:Decrypt and kms:GenerateDataKey to that service"
        )
    if problems:
        return Result("kms-key", FAIL, f"KmsKeyArn {arn}: " + "; ".join(problems))
    return Result("kms-key", PASS, f"{arn}: enabled; EventBridge and this account's IAM may use it")


def check_build_python(template: Mapping[str, Any], env: Mapping[str, str]) -> Result:
    """Not an AWS call: the interpreter ``sam build`` needs (``make build`` finds it)."""
    runtime = interpreter.template_runtime(template)
    version = interpreter.runtime_version(runtime)
    found = interpreter.find(version, env)
    if found is None:
        return Result("build-python", FAIL, interpreter.how_to_get(version))
    on_path = found.how == "PATH"
    return Result(
        "build-python",
        PASS if on_path else WARN,
        f"Python {version} for sam build ({runtime}): {found.path}"
        + ("" if on_path else f" (from {found.how}, not on PATH: use make build)"),
    )


AWS_CHECKS: tuple[tuple[str, Callable[[Account], Result]], ...] = (
    ("region", check_region),
    ("subnets", check_subnets),
    ("instance-types", check_instance_types),
    ("quota-on-demand", check_on_demand_quota),
    ("quota-spot", check_spot_quota),
    ("hibernation", check_hibernation),
    ("windows-ami", check_windows_ami),
    ("apigateway-role", check_api_gateway_role),
    ("batch-role", check_batch_role),
    ("s3-route", check_s3_reachable),
    ("agent-artifact", check_agent_artifact),
    ("kms-key", check_kms_key),
)

#: The checks that cannot run without a region or the subnets.
NEEDS_REGION = frozenset(name for name, _ in AWS_CHECKS)
NEEDS_SUBNETS = frozenset({"instance-types", "s3-route"})


def run_checks(
    acct: Account,
    template: Mapping[str, Any],
    env: Mapping[str, str],
) -> list[Result]:
    results: list[Result] = []
    failed: set[str] = set()
    for name, check in AWS_CHECKS:
        if name != "region" and "region" in failed:
            results.append(Result(name, FAIL, "not checked: no usable region or credentials"))
            continue
        if name in NEEDS_SUBNETS and "subnets" in failed:
            results.append(Result(name, FAIL, "not checked: the subnets are not usable"))
            continue
        try:
            result = check(acct)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            result = Result(
                name,
                FAIL,
                f"could not check: {error.get('Code')}: {error.get('Message')} "
                f"({exc.operation_name}; preflight needs read-only access to it)",
            )
        except NoCredentialsError:
            result = Result(
                name,
                FAIL,
                "no AWS credentials: run aws configure (or aws sso login), set AWS_PROFILE, "
                "or pass --profile",
            )
        except BotoCoreError as exc:
            result = Result(name, FAIL, f"could not check: {exc}")
        except Exception as exc:  # an answer the SDK could not read: this check, not the run
            result = Result(name, FAIL, f"could not check: {type(exc).__name__}: {exc}")
        if result.status == FAIL:
            failed.add(name)
        results.append(result)
    results.append(check_build_python(template, env))
    return results


def report(results: Sequence[Result], out: TextIO, *, as_json: bool, header: str) -> int:
    failed = sum(r.status == FAIL for r in results)
    if as_json:
        json.dump(
            {"target": header, "ok": failed == 0, "checks": [asdict(r) for r in results]},
            out,
            indent=2,
        )
        out.write("\n")
    else:
        print(header, file=out)
        width = max(len(r.check) for r in results)
        for r in results:
            print(f"{r.status}  {r.check.ljust(width)}  {r.message}", file=out)
        warned = sum(r.status == WARN for r in results)
        print(
            f"{len(results)} checks: {failed} failed, {warned} warned"
            + ("; fix each FAIL before sam deploy" if failed else ""),
            file=out,
        )
    return 1 if failed else 0


# --- the command -----------------------------------------------------------------------------

LOCAL_STACK_FILE = Path(".local") / "stack.json"
#: Parameters a real account must be given, which the local stack takes from its emulator.
LOCAL_ENVIRONMENT = ("VpcId", "SubnetIds")


def _local_target(path: Path) -> tuple[str, str]:
    if not path.is_file():
        raise CliError(f"no local stack: {path} does not exist (start one with make local)", USAGE)
    info = json.loads(path.read_text(encoding="utf-8"))
    return str(info["aws_endpoint_url"]), str(info["region"])


def command(args: Any, env: Mapping[str, str], out: TextIO, cwd: Path | None = None) -> int:
    import boto3

    here = cwd or Path.cwd()
    template_path = here / args.template
    if not template_path.is_file():
        raise CliError(
            f"{template_path} not found: run where template.yaml is, or pass --template", USAGE
        )
    template = load_template(template_path)
    config_env = args.config_env or ("local" if args.local else "default")
    try:
        config = deploy_config(template, here / args.config_file, config_env, args.params or "")
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from exc
    endpoint = args.endpoint_url or None
    region = getattr(args, "region", None) or None
    credentials: dict[str, str] = {}
    if args.local:
        stack_file = getattr(args, "stack_file", None)
        endpoint, local_region = _local_target(
            Path(stack_file) if stack_file else here / LOCAL_STACK_FILE
        )
        region = region or local_region
        if not (env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE")):
            # the emulator takes any credentials
            credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    session = (
        boto3.Session(profile_name=args.profile, **credentials)
        if args.profile
        else boto3.Session(**credentials)
    )
    region = region or config.region or session.region_name

    def client(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint)

    stack_name = config.stack_name or ("dcvfleet-local" if args.local else None)
    if args.local and stack_name:
        _fill_from_stack(config, client, stack_name)
    target = f"preflight: {region or 'no region'}"
    target += f" at {endpoint}" if endpoint else ""
    target += f", samconfig.toml [{config_env}]"
    acct = Account(client, region, config.parameters, stack_name)
    results = run_checks(acct, template, env)
    return report(results, out, as_json=args.json, header=target)


def _fill_from_stack(config: DeployConfig, client: ClientFactory, stack_name: str) -> None:
    """The local stack takes VpcId and SubnetIds from its emulator (the default VPC); the
    checks use the values it was deployed with."""
    missing = [n for n in LOCAL_ENVIRONMENT if not config.parameters.get(n)]
    if not missing:
        return
    try:
        stacks = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError):
        return
    for item in stacks[0].get("Parameters", []) if stacks else []:
        if item["ParameterKey"] in missing:
            config.parameters[item["ParameterKey"]] = item.get("ParameterValue", "")
            config.sources[item["ParameterKey"]] = f"stack {stack_name}"
