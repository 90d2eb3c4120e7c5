"""``dcvfleet preflight`` against an in-process emulator (moto): each check passes on an account
set up for the deploy, and fails (or warns) on the one thing each is there to catch, with a
message that says what to do. Where moto lacks AWS's behaviour the local stack's workarounds
(``local.emulator``: SERVICE_QUOTAS_EC2, DEFAULT_VPC_INTERNET) are applied, as the local stack
applies them."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dcvfleet_cli import preflight
from dcvfleet_cli.errors import CliError
from dcvfleet_cli.main import main
from dcvfleet_cli.preflight import FAIL, PASS, WARN, Account, Result
from local.emulator import ec2, service_quotas

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ARTIFACT_BUCKET = "fleet-artifacts"
ARTIFACT_KEY = "dcvfleet/agent-0.1.0.tar.gz"
#: A zone moto's offerings (AWS's, as moto ships them) give no G instance in.
ZONE_WITHOUT_G = "us-east-1e"
RUNTIME_313 = {"Globals": {"Function": {"Runtime": "python3.13"}}}
TEMPLATE = preflight.load_template(ROOT / "template.yaml")
TEMPLATE_DEFAULTS = preflight.deploy_config(TEMPLATE, None, "default", "").parameters


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for owner, attribute, replacement in (
        *service_quotas.service_quota_patches(),
        *ec2.default_vpc_patches(),
    ):
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        yield


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def default_subnets(*zones: str) -> list[str]:
    subnets = client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    by_zone = {s["AvailabilityZone"]: s["SubnetId"] for s in subnets}
    return [by_zone[z] for z in zones]


def ready_account() -> dict[str, str]:
    """An account ready for the deploy: the template's defaults, the default VPC's subnets in
    two zones that offer every default type, the agent uploaded, Batch's role there."""
    params = dict(TEMPLATE_DEFAULTS)
    vpc = client("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
    s3 = client("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=b"agent")
    # as AWS names it (moto's CreateServiceLinkedRole would name it AWSServiceRoleForbatch)
    client("iam").create_role(
        RoleName="AWSServiceRoleForBatch",
        Path="/aws-service-role/batch.amazonaws.com/",
        AssumeRolePolicyDocument=trust("batch.amazonaws.com"),
    )
    # the operator's Windows desktop image, made from AWS's and marked as one (docs/host-windows.md)
    ec2 = client("ec2")
    windows = ec2.describe_images(
        Owners=["amazon"], Filters=[{"Name": "platform", "Values": ["windows"]}]
    )["Images"][0]["ImageId"]
    builder = ec2.run_instances(ImageId=windows, MinCount=1, MaxCount=1)["Instances"][0]
    image = ec2.create_image(InstanceId=builder["InstanceId"], Name="windows-desktop")["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": preflight.WINDOWS_IMAGE_TAG, "Value": "1"}])
    client("ssm").put_parameter(Name="/fleet/windows-desktop-ami", Value=image, Type="String")
    params |= {
        "WindowsAmiId": "/fleet/windows-desktop-ami",
        "VpcId": vpc["Vpcs"][0]["VpcId"],
        "SubnetIds": ",".join(default_subnets("us-east-1a", "us-east-1b")),
        "AgentArtifactS3Uri": f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}",
        "AllowedCidr": "203.0.113.0/24",
    }
    return params


def check(name: str, params: dict[str, str], region: str | None = REGION) -> Result:
    acct = Account(lambda service: boto3.client(service, region_name=region), region, params)
    checks = dict(preflight.AWS_CHECKS)
    return checks[name](acct)


def check_says(name: str, params: dict[str, str], status: str, says: str) -> None:
    """The check ``name`` ends in ``status`` with ``says`` in its message."""
    result = check(name, params)
    assert result.status == status, result
    assert says in result.message, result


def set_quota(code: str, value: float) -> None:
    service_quotas.set_ec2_quota(ACCOUNT, REGION, code, value)


def trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def api_gateway_role(name: str = "apigw-logs") -> str:
    arn: str = client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=trust("apigateway.amazonaws.com")
    )["Role"]["Arn"]
    client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    )
    return arn


# --- an account ready for the deploy passes every check ----------------------------------------


@pytest.mark.usefixtures("aws")
def test_an_account_ready_for_the_deploy_passes_every_aws_check() -> None:
    params = ready_account()
    acct = Account(client, REGION, params)
    results = preflight.run_checks(acct, {"Globals": {"Function": {"Runtime": "python3.13"}}}, {})
    by_name = {r.check: r for r in results}
    assert [r.check for r in results] == [*(n for n, _ in preflight.AWS_CHECKS), "build-python"]
    for name, _ in preflight.AWS_CHECKS:
        assert by_name[name].status == PASS, by_name[name]
    assert "account 123456789012" in by_name["region"].message
    assert "internet gateway igw-" in by_name["s3-route"].message
    assert "Running On-Demand G and VT instances (L-DB2E81BA) is 64 vCPUs" in (
        by_name["quota-on-demand"].message
    )


# --- each check fails on what it is there to catch ---------------------------------------------

Mutation = Callable[[dict[str, str]], str | None]


def no_region(params: dict[str, str]) -> str | None:
    return None


def region_not_enabled(params: dict[str, str]) -> str | None:
    return "ap-east-1"  # moto, as AWS, lists it not-opted-in


def no_subnets(params: dict[str, str]) -> str | None:
    params["SubnetIds"] = ""
    return REGION


def subnet_of_another_vpc(params: dict[str, str]) -> str | None:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    other = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    params["SubnetIds"] = other
    return REGION


def zone_without_the_types(params: dict[str, str]) -> str | None:
    params["SubnetIds"] = ",".join(default_subnets(ZONE_WITHOUT_G))
    return REGION


def on_demand_quota_below_one_users_desktops(params: dict[str, str]) -> str | None:
    params["MaxActiveSessionsPerUser"] = "2"  # 2 x 8 vCPUs (g5.2xlarge) = 16
    set_quota("L-DB2E81BA", 12)
    return REGION


def no_spot_quota(params: dict[str, str]) -> str | None:
    set_quota("L-3819A6DF", 0)
    return REGION


def hibernate_on_types_that_cannot(params: dict[str, str]) -> str | None:
    params["IdleAction"] = "hibernate"
    return REGION


def keep_an_api_gateway_role_the_account_lacks(params: dict[str, str]) -> str | None:
    params["ApiGatewayAccountRole"] = "keep"
    return REGION


def keep_an_api_gateway_role_that_was_deleted(params: dict[str, str]) -> str | None:
    params["ApiGatewayAccountRole"] = "keep"
    api_gateway_role("gone")
    client("iam").delete_role(RoleName="gone")
    return REGION


def subnet_without_a_way_to_s3(params: dict[str, str]) -> str | None:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24", AvailabilityZone="us-east-1a")
    params["VpcId"] = vpc
    params["SubnetIds"] = subnet["Subnet"]["SubnetId"]
    return REGION


def no_agent_artifact(params: dict[str, str]) -> str | None:
    params["AgentArtifactS3Uri"] = ""
    return REGION


def agent_artifact_not_uploaded(params: dict[str, str]) -> str | None:
    params["AgentArtifactS3Uri"] = f"s3://{ARTIFACT_BUCKET}/dcvfleet/agent-9.9.9.tar.gz"
    return REGION


def key_policy(*statements: dict[str, Any]) -> str:
    root = {
        "Sid": "AccountIamPolicies",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


#: What the EventBridge User Guide's key policy for an encrypted bus grants the service.
EVENTBRIDGE_USES = {
    "Effect": "Allow",
    "Principal": {"Service": "events.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
    "Resource": "*",
}


def fleet_key(policy: str) -> str:
    arn: str = client("kms").create_key(Policy=policy)["KeyMetadata"]["Arn"]
    return arn


def key_without_an_eventbridge_grant(params: dict[str, str]) -> str | None:
    params["KmsKeyArn"] = fleet_key(key_policy())
    return REGION


def key_whose_policy_leaves_iam_out(params: dict[str, str]) -> str | None:
    only_events = {"Version": "2012-10-17", "Statement": [EVENTBRIDGE_USES]}
    params["KmsKeyArn"] = fleet_key(json.dumps(only_events))
    return REGION


def key_disabled(params: dict[str, str]) -> str | None:
    params["KmsKeyArn"] = fleet_key(key_policy(EVENTBRIDGE_USES))
    client("kms").disable_key(KeyId=params["KmsKeyArn"].rsplit("/", 1)[-1])
    return REGION


def key_of_another_region(params: dict[str, str]) -> str | None:
    kms = boto3.client("kms", region_name="eu-west-1")
    params["KmsKeyArn"] = kms.create_key(Policy=key_policy(EVENTBRIDGE_USES))["KeyMetadata"]["Arn"]
    return REGION


def aws_plain_windows_ami(params: dict[str, str]) -> str | None:
    images = client("ec2").describe_images(
        Owners=["amazon"], Filters=[{"Name": "platform", "Values": ["windows"]}]
    )["Images"]
    plain = next(i for i in images if "English-Full-Base" in i["Name"])
    params["WindowsAmiId"] = plain["ImageId"]
    return REGION


FAILURES: list[tuple[str, Mutation, str]] = [
    ("region", no_region, "no region: pass --region"),
    ("region", region_not_enabled, "ap-east-1 is not enabled for account 123456789012"),
    ("subnets", no_subnets, "SubnetIds has no value"),
    ("subnets", subnet_of_another_vpc, "not in VpcId"),
    ("instance-types", zone_without_the_types, "not offered in any of the subnets' zones"),
    (
        "quota-on-demand",
        on_demand_quota_below_one_users_desktops,
        "is 12 vCPUs in us-east-1; the parameters need at least 16 (2 desktop(s) per user x 8 "
        "vCPUs (largest EC2 type), and one batch desktop of 4 vCPUs). request an increase to at "
        "least 16 vCPUs",
    ),
    ("quota-spot", no_spot_quota, "--quota-code L-3819A6DF --desired-value 64"),
    ("hibernation", hibernate_on_types_that_cannot, "no desktop type can hibernate"),
    ("windows-ami", aws_plain_windows_ami, "AWS's plain Windows Server AMI"),
    (
        "apigateway-role",
        keep_an_api_gateway_role_the_account_lacks,
        "ApiGatewayAccountRole=keep, but API Gateway has no CloudWatch role",
    ),
    ("apigateway-role", keep_an_api_gateway_role_that_was_deleted, "no longer exists"),
    ("s3-route", subnet_without_a_way_to_s3, "cannot reach S3, where DCV checks its license"),
    ("agent-artifact", no_agent_artifact, "AgentArtifactS3Uri is empty"),
    ("agent-artifact", agent_artifact_not_uploaded, "does not exist: upload it"),
    ("kms-key", key_without_an_eventbridge_grant, "does not let EventBridge"),
    ("kms-key", key_whose_policy_leaves_iam_out, "does not let account 123456789012's IAM"),
    ("kms-key", key_disabled, "it is Disabled, not Enabled"),
    ("kms-key", key_of_another_region, "is not in us-east-1"),
]


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize(
    ("name", "mutation", "says"), FAILURES, ids=[f[1].__name__ for f in FAILURES]
)
def test_each_check_fails_on_what_it_catches_and_says_what_to_do(
    name: str, mutation: Mutation, says: str
) -> None:
    params = ready_account()
    assert check(name, params).status == PASS
    region = mutation(params)
    result = check(name, params, region)
    assert result.status == FAIL, result
    assert says in result.message


@pytest.mark.usefixtures("aws")
def test_every_aws_check_has_a_failure_shown() -> None:
    assert {name for name, _, _ in FAILURES} >= {name for name, _ in preflight.AWS_CHECKS} - {
        "batch-role"  # only ever a warning: Batch creates its role itself (see below)
    }


# --- warnings ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_an_existing_api_gateway_role_warns_that_the_stack_sets_its_own_and_passes_on_keep() -> (
    None
):
    params = ready_account()
    arn = api_gateway_role()
    created = check("apigateway-role", params)
    assert created.status == WARN
    assert arn in created.message
    assert "the stack sets its own in its place" in created.message
    params["ApiGatewayAccountRole"] = "keep"
    kept = check("apigateway-role", params)
    assert (kept.status, kept.message) == (PASS, f"the account's role {arn} is kept")


@pytest.mark.usefixtures("aws")
def test_the_stacks_own_api_gateway_role_from_an_earlier_deploy_passes() -> None:
    # Given a stack deployed before, whose role is the account's API Gateway role
    params = ready_account()
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": json.loads(trust("apigateway.amazonaws.com"))},
    }
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName="fleet",
        TemplateBody=json.dumps({"Resources": {"ApiGatewayCloudWatchRole": role}}),
    )
    (found,) = cfn.describe_stack_resources(StackName="fleet")["StackResources"]
    arn = client("iam").get_role(RoleName=found["PhysicalResourceId"])["Role"]["Arn"]
    client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    )
    acct = Account(client, REGION, params, "fleet")
    # Then a redeploy of that stack passes; another stack would replace it, and is warned
    mine = dict(preflight.AWS_CHECKS)["apigateway-role"](acct)
    assert (mine.status, mine.message) == (
        PASS,
        f"the account's role {arn} is this stack's own, set by an earlier deploy",
    )
    other = dict(preflight.AWS_CHECKS)["apigateway-role"](Account(client, REGION, params, "x"))
    assert other.status == WARN


@pytest.mark.usefixtures("aws")
def test_a_missing_batch_service_linked_role_warns_that_batch_creates_it() -> None:
    params = ready_account()
    client("iam").delete_role(RoleName="AWSServiceRoleForBatch")
    result = check("batch-role", params)
    assert result.status == WARN
    assert "iam:CreateServiceLinkedRole" in result.message
    assert "create-service-linked-role --aws-service-name batch.amazonaws.com" in result.message


@pytest.mark.usefixtures("aws")
def test_a_customer_managed_key_that_eventbridge_and_iam_may_use_passes() -> None:
    params = ready_account()
    params["KmsKeyArn"] = fleet_key(key_policy(EVENTBRIDGE_USES))
    check_says("kms-key", params, PASS, "EventBridge and this account's IAM may use it")


@pytest.mark.usefixtures("aws")
def test_types_offered_in_some_zones_only_warn() -> None:
    params = ready_account()
    params["SubnetIds"] = ",".join(default_subnets("us-east-1a", ZONE_WITHOUT_G))
    check_says("instance-types", params, WARN, f"g5.xlarge (not in {ZONE_WITHOUT_G})")


@pytest.mark.usefixtures("aws")
def test_quotas_that_fit_one_desktop_but_not_batch_max_vcpus_warn() -> None:
    params = ready_account()
    set_quota("L-3819A6DF", 8)
    spot = check("quota-spot", params)
    assert spot.status == WARN
    assert "below BatchMaxVcpus (64)" in spot.message
    params["BatchUseSpot"] = "false"
    set_quota("L-DB2E81BA", 16)
    check_says(
        "quota-on-demand", params, WARN, "not for batch desktops up to BatchMaxVcpus as well (72)"
    )
    assert check("quota-spot", params) == Result(
        "quota-spot", PASS, "not needed (BatchUseSpot=false)"
    )


@pytest.mark.usefixtures("aws")
def test_hibernation_passes_for_types_that_can_and_warns_for_a_mix() -> None:
    params = ready_account() | {"IdleAction": "hibernate"}
    for name in preflight.EC2_TYPE_PARAMETERS:
        params[name] = "m5.large"  # HibernationSupported in DescribeInstanceTypes
    assert check("hibernation", params) == Result("hibernation", PASS, "m5.large can hibernate")
    params["AllowedInstanceTypes"] = "m5.large,g5.xlarge"
    check_says("hibernation", params, WARN, "g5.xlarge (not supported) cannot hibernate")
    params["RootVolumeSizeGiB"] = "8"  # m5.large has 8 GiB of RAM
    check_says("hibernation", params, FAIL, "its RAM does not fit the 8 GiB root volume")


@pytest.mark.usefixtures("aws")
def test_an_s3_gateway_endpoint_is_a_way_to_the_dcv_license() -> None:
    params = ready_account()
    subnet_without_a_way_to_s3(params)
    ec2 = client("ec2")
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [params["VpcId"]]}])
    ec2.create_vpc_endpoint(
        VpcId=params["VpcId"],
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[table["RouteTables"][0]["RouteTableId"]],
    )
    check_says("s3-route", params, PASS, "S3 gateway endpoint")


@pytest.mark.usefixtures("aws")
def test_a_quota_code_that_names_another_quota_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    params = ready_account()
    monkeypatch.setattr(preflight, "ON_DEMAND_G_QUOTA", ("L-3819A6DF", "Running On-Demand G"))
    check_says(
        "quota-on-demand", params, FAIL, "quota L-3819A6DF is 'All G and VT Spot Instance Requests'"
    )


@pytest.mark.usefixtures("aws")
def test_a_refused_call_fails_its_check_naming_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    params = ready_account()
    real = boto3.client

    def refusing(service: str, **kwargs: Any) -> Any:
        made = real(service, **kwargs)
        if service == "apigateway":

            def get_account() -> Any:
                from botocore.exceptions import ClientError

                raise ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}},
                    "GetAccount",
                )

            made.get_account = get_account
        return made

    acct = Account(lambda service: refusing(service, region_name=REGION), REGION, params)
    results = {r.check: r for r in preflight.run_checks(acct, RUNTIME_313, {})}
    assert results["apigateway-role"].status == FAIL
    assert "AccessDeniedException: not allowed (GetAccount" in results["apigateway-role"].message
    assert results["batch-role"].status == PASS  # the other checks go on


@pytest.mark.usefixtures("aws")
def test_an_answer_the_sdk_cannot_read_fails_its_check_not_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.parsers import ResponseParserError

    params = ready_account()

    def garbled(acct: Account) -> Result:
        raise ResponseParserError("Unable to parse response (syntax error), invalid XML")

    monkeypatch.setattr(
        preflight,
        "AWS_CHECKS",
        tuple((n, garbled if n == "batch-role" else c) for n, c in preflight.AWS_CHECKS),
    )
    results = {
        r.check: r for r in preflight.run_checks(Account(client, REGION, params), RUNTIME_313, {})
    }
    assert results["batch-role"].status == FAIL
    assert results["batch-role"].message.startswith("could not check: ResponseParserError")
    assert results["agent-artifact"].status == PASS  # the other checks go on


# --- the parameters the deploy will use --------------------------------------------------------


def test_parameters_are_the_template_defaults_then_samconfig_then_params(tmp_path: Path) -> None:
    template = TEMPLATE
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text(
        'version = 0.1\n[prod.global.parameters]\nstack_name = "fleet"\nregion = "eu-west-1"\n'
        "[prod.deploy.parameters]\n"
        'parameter_overrides = "MaxActiveSessionsPerUser=3 LinuxInstanceType=g6.xlarge '
        "BusyProcesses='blender make'\"\n",
        encoding="utf-8",
    )
    config = preflight.deploy_config(template, samconfig, "prod", "LinuxInstanceType=g5.2xlarge")
    assert config.region == "eu-west-1"
    assert config.stack_name == "fleet"
    assert config.parameters["MaxActiveSessionsPerUser"] == "3"
    assert config.parameters["BusyProcesses"] == "blender make"
    assert config.parameters["LinuxInstanceType"] == "g5.2xlarge"
    assert config.sources["LinuxInstanceType"] == "--params"
    assert config.parameters["IdleAction"] == "stop"
    assert config.sources["IdleAction"] == "default"
    assert config.parameters["AllowedInstanceTypes"].startswith("g5.xlarge,")
    assert config.parameters["ApiGatewayAccountRole"] in ("create", "keep")
    with pytest.raises(ValueError, match="unknown template parameter"):
        preflight.deploy_config(template, samconfig, "prod", "MaxActiveSesions=2")


def workdir(tmp_path: Path, overrides: str) -> Path:
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    (tmp_path / "samconfig.toml").write_text(
        f'version = 0.1\n[default.deploy.parameters]\nparameter_overrides = "{overrides}"\n',
        encoding="utf-8",
    )
    return tmp_path


@pytest.mark.usefixtures("aws")
def test_the_command_prints_one_line_per_check_and_exits_non_zero_on_a_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = ready_account()
    named = ("VpcId", "SubnetIds", "AgentArtifactS3Uri", "WindowsAmiId")
    overrides = " ".join(f"{k}={params[k]}" for k in named)
    monkeypatch.chdir(workdir(tmp_path, overrides))
    monkeypatch.setenv("PATH", str(tmp_path))  # no Python 3.13 here
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    assert main(["preflight", "--region", REGION]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"preflight: {REGION}, samconfig.toml [default]"
    verdicts = {line.split()[1]: line.split()[0] for line in lines[1:-1]}
    assert verdicts == {name: PASS for name, _ in preflight.AWS_CHECKS} | {"build-python": FAIL}
    assert lines[-1] == "13 checks: 1 failed, 0 warned; fix each FAIL before sam deploy"

    assert (
        main(["preflight", "--region", REGION, "--json", "--params", "IdleAction=hibernate"]) == 1
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False
    failed = {c["check"] for c in answer["checks"] if c["status"] == FAIL}
    assert failed == {"hibernation", "build-python"}


def test_an_unknown_parameter_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir(tmp_path, ""))
    assert main(["preflight", "--region", REGION, "--params", "NoSuchThing=1"]) == 2
    assert "unknown template parameter(s): NoSuchThing" in capsys.readouterr().err


def test_local_without_a_local_stack_says_how_to_start_one(tmp_path: Path) -> None:
    args = type("Args", (), {"template": "template.yaml", "local": True, "config_env": None})
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    args.params = ""
    args.config_file = "samconfig.toml"
    args.endpoint_url = None
    args.profile = None
    args.json = False
    with pytest.raises(CliError, match=r"no local stack: .*start one with make local"):
        preflight.command(args, {}, io.StringIO(), cwd=tmp_path)


# --- the interpreter sam build needs -----------------------------------------------------------


def fake_python(directory: Path, name: str, version: str | None) -> Path:
    """A script answering the version probe with ``version``; None: fails as a pyenv shim for a
    version not selected does."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    body = f"echo {version}" if version else 'echo "pyenv: {0}: command not found" >&2; exit 127'
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_build_python_is_found_on_path_and_a_shim_that_fails_is_passed_over(
    tmp_path: Path,
) -> None:
    shims, good = tmp_path / "shims", tmp_path / "good"
    fake_python(shims, "python3.13", None)
    fake_python(shims, "python3", "3.11")
    interpreter = fake_python(good, "python3.13", "3.13")
    env = {"PATH": os.pathsep.join([str(shims), str(good)]), "HOME": str(tmp_path)}
    template = {"Globals": {"Function": {"Runtime": "python3.13"}}}
    result = preflight.check_build_python(template, env)
    assert result == Result(
        "build-python", PASS, f"Python 3.13 for sam build (python3.13): {interpreter}"
    )


def test_build_python_follows_the_templates_runtime(tmp_path: Path) -> None:
    interpreter = fake_python(tmp_path / "bin", "python3", "3.12")
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)}
    assert preflight.check_build_python(
        {"Globals": {"Function": {"Runtime": "python3.12"}}}, env
    ).message.endswith(str(interpreter))
    missing = preflight.check_build_python(
        {"Globals": {"Function": {"Runtime": "python3.13"}}}, env
    )
    assert missing.status == FAIL
    assert "sam build needs Python 3.13" in missing.message
    assert "uv python install 3.13" in missing.message
    assert "pyenv install 3.13" in missing.message


def test_build_python_installed_by_pyenv_but_not_selected_is_found_with_a_warning(
    tmp_path: Path,
) -> None:
    fake_python(tmp_path / "shims", "python3.13", None)
    installed = fake_python(
        tmp_path / "pyenv" / "versions" / "3.13.0" / "bin", "python3.13", "3.13"
    )
    env = {"PATH": str(tmp_path / "shims"), "PYENV_ROOT": str(tmp_path / "pyenv")}
    result = preflight.check_build_python({"Globals": {"Function": {"Runtime": "python3.13"}}}, env)
    assert result.status == WARN
    assert str(installed) in result.message
    assert "use make build" in result.message
