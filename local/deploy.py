"""Deploy ``template.yaml`` into the emulator, as ``sam package`` + ``sam deploy`` would.

The template is the only list of resources: code and ASL files are uploaded to the emulated S3
(as ``sam package`` does), the template is translated with aws-sam-translator, and the result is
created with the emulator's CloudFormation. Types the emulator's CloudFormation only fakes are
created through their API (``cloudformation.API_CREATED_TYPES``) and state machines are re-created
executable with their substitutions resolved; every other type is left to CloudFormation, and a
type it cannot create at all fails the deployment by name. Then the image build project's source
bundle (``make image-source``'s) is uploaded where the project's source points, as the release
step of docs/deploying.md does after ``sam deploy``.
"""

from __future__ import annotations

import copy
import io
import json
import re
import runpy
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from dcvfleet.profiles import check_parameter
from local import emulator
from local.emulator import cloudformation, ssm

ROOT = emulator.ROOT
STACK_NAME = "dcvfleet-local"
ARTIFACT_BUCKET = "dcvfleet-local-artifacts"
#: The CodeBuild project whose S3 source is the image source bundle.
IMAGE_BUILD_PROJECT = "ImageBuildProject"

#: Public SSM parameters AWS provides in every region; the emulator is seeded with them.
PUBLIC_AMI_PARAMETERS = {
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
    "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base",
    # the ECS GPU AMI AWS Batch launches for the batch desktops' ECS_AL2023_NVIDIA image type
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id",
}


def image_source_bundle() -> bytes:
    """``make image-source``'s bundle (container/source_bundle.py), built in memory."""
    module = runpy.run_path(str(ROOT / "container" / "source_bundle.py"))
    data: bytes = module["bundle"]()
    return data


def parse_overrides(text: str) -> dict[str, str]:
    """``sam deploy --parameter-overrides`` syntax: ``Key=Value Key2="a b"``."""
    pairs = re.findall(r"""(\w+)=("[^"]*"|'[^']*'|\S*)""", text or "")
    return {k: v.strip("\"'") for k, v in pairs}


def samconfig_overrides(environment: str = "local") -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config.get(environment, {}).get("deploy", {}).get("parameters", {})
    raw = deploy.get("parameter_overrides", "")
    return parse_overrides(" ".join(raw) if isinstance(raw, list) else raw)


@dataclass
class Deployment:
    region: str
    account_id: str
    parameters: dict[str, str]
    template: dict[str, Any]
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_emulated: list[str] = field(default_factory=list)

    def parameter(self, name: str) -> str:
        """A template parameter's deployed value: the override, else the template's default."""
        return str(_ref(name, self))


class Deployer:
    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region)

    # -- packaging -----------------------------------------------------------------------
    def _upload(self, key: str, body: bytes) -> str:
        self.client("s3").put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
        return f"s3://{ARTIFACT_BUCKET}/{key}"

    @staticmethod
    def _zip_dir(path: Path) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(path.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts:
                    archive.write(file, file.relative_to(path).as_posix())
        return buffer.getvalue()

    def package(self, sam: dict[str, Any]) -> dict[str, Any]:
        """Upload code and ASL files and point the template at them (what ``sam package`` does)."""
        self.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
        sam = copy.deepcopy(sam)
        uploaded: dict[str, str] = {}

        def code_uri(path: str) -> str:
            if path not in uploaded:
                uploaded[path] = self._upload(
                    f"code/{path.strip('/')}.zip", self._zip_dir(ROOT / path)
                )
            return uploaded[path]

        globals_fn = sam.get("Globals", {}).get("Function", {})
        if isinstance(globals_fn.get("CodeUri"), str):
            globals_fn["CodeUri"] = code_uri(globals_fn["CodeUri"])
        for resource in sam["Resources"].values():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Serverless::Function" and isinstance(
                props.get("CodeUri"), str
            ):
                props["CodeUri"] = code_uri(props["CodeUri"])
            if resource["Type"] == "AWS::Serverless::LayerVersion" and isinstance(
                props.get("ContentUri"), str
            ):
                props["ContentUri"] = code_uri(props["ContentUri"])
            if resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(
                props.get("DefinitionUri"), str
            ):
                path = props["DefinitionUri"]
                props["DefinitionUri"] = self._upload(f"asl/{path}", (ROOT / path).read_bytes())
        return sam

    # -- emulator defaults ---------------------------------------------------------------
    def environment_defaults(self, account_id: str) -> dict[str, str]:
        """Values a real account supplies: the default VPC and its subnets, public AMI params."""
        ec2 = self.client("ec2")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        subnet_ids = sorted(s["SubnetId"] for s in subnets["Subnets"])[:2]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for name in PUBLIC_AMI_PARAMETERS:
            ssm.seed_public_parameter(account_id, self.region, name, image)
        return {"VpcId": vpc["VpcId"], "SubnetIds": ",".join(subnet_ids)}

    # -- deploy --------------------------------------------------------------------------
    def deploy(self, overrides: dict[str, str]) -> Deployment:
        sam = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
        account_id = self.client("sts").get_caller_identity()["Account"]
        parameters = {**self.environment_defaults(account_id), **overrides}
        unknown = sorted(set(overrides) - set(sam.get("Parameters", {})))
        if unknown:
            raise ValueError(f"unknown template parameter(s): {', '.join(unknown)}")
        iam = self.client("iam")
        policies = {
            p["PolicyName"]: p["Arn"]
            for page in iam.get_paginator("list_policies").paginate(Scope="AWS")
            for p in page["Policies"]
        }

        class _Loader:
            def load(self) -> dict[str, str]:
                return policies

        cfn_template: dict[str, Any] = transform(self.package(sam), parameters, _Loader())
        deployment = Deployment(self.region, account_id, parameters, cfn_template)
        cloudformation.fix_template_for_emulator(cfn_template, parameters)
        cloudformation.resolve_ssm_references(cfn_template, parameters, account_id, self.region)

        api_created = {
            k: v
            for k, v in cfn_template["Resources"].items()
            if v["Type"] in cloudformation.API_CREATED_TYPES
        }
        self._create_cognito(
            {k: v for k, v in api_created.items() if v["Type"].startswith("AWS::Cognito::")},
            deployment,
        )
        self._publish_layers(
            {k: v for k, v in api_created.items() if v["Type"] == "AWS::Lambda::LayerVersion"},
            deployment,
        )
        served = {
            k: v
            for k, v in cfn_template["Resources"].items()
            if v["Type"] in cloudformation.LOCALLY_SERVED_TYPES
        }
        self._serve_locally(served, deployment)
        api_created.update(served)
        for logical_id, resource in api_created.items():
            if resource["Type"] == "AWS::ApiGateway::Account":
                deployment.physical[logical_id] = f"{STACK_NAME}-{logical_id}"
        stack_template = _replace_refs(copy.deepcopy(cfn_template), deployment)
        for logical_id in api_created:
            del stack_template["Resources"][logical_id]
        cfn = self.client("cloudformation")
        cfn.create_stack(
            StackName=STACK_NAME,
            TemplateBody=json.dumps(stack_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = self._wait(cfn)
        for res in cfn.describe_stack_resources(StackName=STACK_NAME)["StackResources"]:
            if "LogicalResourceId" not in res:
                continue  # moto lists the stack itself among its resources
            if "PhysicalResourceId" not in res:
                raise RuntimeError(
                    f"{res['LogicalResourceId']} ({res['ResourceType']}): not emulated"
                )
            deployment.physical[res["LogicalResourceId"]] = res["PhysicalResourceId"]
        deployment.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self._create_state_machines(stack_template, deployment)
        self._deploy_apis(api_created, stack_template, deployment)
        self._add_permissions(api_created, deployment)
        self._upload_image_source(deployment)
        self._note_bucket_policies(api_created, deployment)
        self._put_alarms_and_dashboards(api_created, deployment)
        self._set_api_gateway_account(api_created, deployment)
        self._check_desktop_profiles(api_created, deployment)
        return deployment

    def _check_desktop_profiles(self, api_created: dict[str, Any], deployment: Deployment) -> None:
        """CUSTOM_RESOURCES: the DesktopProfiles check, run as its function would run it; a bad
        profile fails the deploy with the reason CloudFormation would give."""
        for logical_id, resource in api_created.items():
            if resource["Type"] != "Custom::DesktopProfiles":
                continue
            props = _resolve(resource["Properties"], deployment)
            function = str(props["ServiceToken"]).rsplit(":", 1)[-1]
            config = self.client("lambda").get_function_configuration(FunctionName=function)
            environ = config.get("Environment", {}).get("Variables", {})
            event = {"RequestType": "Create", "ResourceProperties": props}
            try:
                check_parameter(event, environ=environ)
            except Exception as exc:
                raise RuntimeError(f"{logical_id} ({resource['Type']}): {exc}") from exc
            deployment.physical[logical_id] = "desktop-profiles"

    def _set_api_gateway_account(self, api_created: dict[str, Any], deployment: Deployment) -> None:
        """APIGW_ACCOUNT: the account's CloudWatch role, when the stack sets it."""
        for resource in api_created.values():
            if resource["Type"] != "AWS::ApiGateway::Account":
                continue
            if "Condition" in resource and not _condition(resource["Condition"], deployment):
                continue
            role = _resolve(resource["Properties"]["CloudWatchRoleArn"], deployment)
            self.client("apigateway").update_account(
                patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
            )

    def _put_alarms_and_dashboards(
        self, api_created: dict[str, Any], deployment: Deployment
    ) -> None:
        """CLOUDWATCH_ALARMS: each alarm as CloudFormation would name it, then the dashboards."""
        cloudwatch = self.client("cloudwatch")
        region, account = deployment.region, deployment.account_id
        for logical_id, resource in api_created.items():
            if resource["Type"] != "AWS::CloudWatch::Alarm":
                continue
            props = _resolve(resource["Properties"], deployment)
            name = props.pop("AlarmName", f"{STACK_NAME}-{logical_id}")
            props["Threshold"] = float(props["Threshold"])
            cloudwatch.put_metric_alarm(AlarmName=name, **props)
            deployment.physical[logical_id] = name
            arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
            deployment.attributes[(logical_id, "Arn")] = arn
        for logical_id, resource in api_created.items():
            if resource["Type"] != "AWS::CloudWatch::Dashboard":
                continue
            props = _resolve(resource["Properties"], deployment)
            cloudwatch.put_dashboard(
                DashboardName=props["DashboardName"], DashboardBody=props["DashboardBody"]
            )
            deployment.physical[logical_id] = props["DashboardName"]

    def _publish_layers(self, resources: dict[str, Any], deployment: Deployment) -> None:
        lam = self.client("lambda")
        for logical_id, resource in resources.items():
            props = _resolve(resource["Properties"], deployment)
            arn = lam.publish_layer_version(
                LayerName=props.get("LayerName", f"{STACK_NAME}-{logical_id}"),
                Description=props.get("Description", ""),
                Content={
                    "S3Bucket": props["Content"]["S3Bucket"],
                    "S3Key": props["Content"]["S3Key"],
                },
            )["LayerVersionArn"]
            deployment.physical[logical_id] = arn

    @staticmethod
    def _note_bucket_policies(resources: dict[str, Any], deployment: Deployment) -> None:
        """Bucket policies are not applied: the emulator is reached over plain HTTP, where the
        template's TLS-only statements would refuse every call (moto then refused calls to
        other buckets too)."""
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::S3::BucketPolicy":
                continue
            deployment.physical[logical_id] = f"local-{logical_id}"
            deployment.not_emulated.append(
                f"{logical_id} (AWS::S3::BucketPolicy): not applied; the emulator is plain HTTP"
            )

    @staticmethod
    def _serve_locally(resources: dict[str, Any], deployment: Deployment) -> None:
        """The portal's CloudFront distribution and its publishing custom resource: the local
        stack serves ``portal/`` itself (``local.portal``); references to them resolve to
        stand-ins so the rest of the stack deploys as written."""
        for logical_id, resource in resources.items():
            deployment.physical[logical_id] = f"local-{logical_id}"
            deployment.attributes[(logical_id, "Id")] = f"local-{logical_id}"
            deployment.attributes[(logical_id, "DomainName")] = "portal.localhost"
            deployment.not_emulated.append(
                f"{logical_id} ({resource['Type']}): the local stack serves portal/ itself"
            )

    def _upload_image_source(self, deployment: Deployment) -> None:
        """The image build project's source bundle where its Source points (docs/deploying.md's
        release step after ``sam deploy``: ``make image-source`` uploaded to the builds bucket)."""
        project = deployment.physical.get(IMAGE_BUILD_PROJECT)
        if project is None:
            return
        (found,) = self.client("codebuild").batch_get_projects(names=[project])["projects"]
        bucket, _, key = found["source"]["location"].partition("/")
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=image_source_bundle())

    def _add_permissions(self, api_created: dict[str, Any], deployment: Deployment) -> None:
        lam = self.client("lambda")
        for logical_id, resource in api_created.items():
            if resource["Type"] != "AWS::Lambda::Permission":
                continue
            props = _resolve(resource["Properties"], deployment)
            lam.add_permission(
                FunctionName=props["FunctionName"],
                StatementId=logical_id,
                Action=props["Action"],
                Principal=props["Principal"],
                **({"SourceArn": props["SourceArn"]} if "SourceArn" in props else {}),
            )
            deployment.physical[logical_id] = logical_id

    def _deploy_apis(
        self, api_created: dict[str, Any], template: dict[str, Any], deployment: Deployment
    ) -> None:
        """Stages are served by the local API server from each RestApi's resolved OpenAPI body.

        moto imports only OpenAPI 3 bodies (SAM writes Swagger 2.0), so the emulator holds the
        RestApi without its methods; ``not_emulated`` says so at start-up.
        """
        for logical_id, resource in api_created.items():
            if resource["Type"] == "AWS::ApiGateway::Deployment":
                deployment.not_emulated.append(
                    f"{logical_id} (AWS::ApiGateway::Deployment): served by the local API server"
                )
            if resource["Type"] != "AWS::ApiGateway::Stage":
                continue
            props = resource["Properties"]
            api_logical_id = props["RestApiId"]["Ref"]
            body = _resolve(template["Resources"][api_logical_id]["Properties"]["Body"], deployment)
            deployment.apis[api_logical_id] = {
                "stage": props["StageName"],
                "body": body,
                "methodSettings": _resolve(props.get("MethodSettings", []), deployment),
            }
            deployment.not_emulated.append(
                f"{logical_id} (AWS::ApiGateway::Stage): served by the local API server"
            )

    def _wait(self, cfn: Any) -> dict[str, Any]:
        for _ in range(600):
            stack: dict[str, Any] = cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
            if not stack["StackStatus"].endswith("IN_PROGRESS"):
                break
            time.sleep(0.1)
        if stack["StackStatus"] != "CREATE_COMPLETE":
            events = cfn.describe_stack_events(StackName=STACK_NAME)["StackEvents"]
            failed = [
                f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason')}"
                for e in events
                if e["ResourceStatus"].endswith("FAILED")
            ]
            raise RuntimeError(f"stack {stack['StackStatus']}: {'; '.join(failed)}")
        return stack

    def _create_cognito(self, resources: dict[str, Any], deployment: Deployment) -> None:
        idp = self.client("cognito-idp")
        ordered = sorted(
            resources.items(), key=lambda kv: kv[1]["Type"] != "AWS::Cognito::UserPool"
        )
        for logical_id, resource in ordered:
            props = _resolve(resource.get("Properties", {}), deployment)
            if resource["Type"] == "AWS::Cognito::UserPool":
                optional = {
                    api: props[cfn]
                    for cfn, api in (
                        ("Policies", "Policies"),
                        ("AutoVerifiedAttributes", "AutoVerifiedAttributes"),
                        ("AdminCreateUserConfig", "AdminCreateUserConfig"),
                        ("Schema", "Schema"),
                        ("UsernameConfiguration", "UsernameConfiguration"),
                        ("MfaConfiguration", "MfaConfiguration"),
                        ("DeletionProtection", "DeletionProtection"),
                    )
                    if props.get(cfn)
                }
                pool = idp.create_user_pool(
                    PoolName=props.get("UserPoolName", logical_id), **optional
                )["UserPool"]
                if "SOFTWARE_TOKEN_MFA" in (props.get("EnabledMfas") or []):
                    # CloudFormation's EnabledMfas is the API's SoftwareTokenMfaConfiguration
                    idp.set_user_pool_mfa_config(
                        UserPoolId=pool["Id"],
                        SoftwareTokenMfaConfiguration={"Enabled": True},
                        MfaConfiguration=props.get("MfaConfiguration", "OFF"),
                    )
                deployment.physical[logical_id] = pool["Id"]
                deployment.attributes[(logical_id, "Arn")] = pool["Arn"]
                deployment.attributes[(logical_id, "ProviderName")] = (
                    f"cognito-idp.{self.region}.amazonaws.com/{pool['Id']}"
                )
            elif resource["Type"] == "AWS::Cognito::UserPoolClient":
                client = idp.create_user_pool_client(
                    UserPoolId=props["UserPoolId"],
                    ClientName=props.get("ClientName", logical_id),
                    GenerateSecret=bool(props.get("GenerateSecret", False)),
                    ExplicitAuthFlows=props.get("ExplicitAuthFlows", []),
                )["UserPoolClient"]
                deployment.physical[logical_id] = client["ClientId"]
            else:
                idp.create_group(
                    GroupName=props["GroupName"],
                    UserPoolId=props["UserPoolId"],
                    Description=props.get("Description", ""),
                )
                deployment.physical[logical_id] = props["GroupName"]

    def _create_state_machines(self, template: dict[str, Any], deployment: Deployment) -> None:
        """SFN_FROM_CLOUDFORMATION: re-create each state machine executable, same name and ARN."""
        sfn, s3 = self.client("stepfunctions"), self.client("s3")
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::StepFunctions::StateMachine":
                continue
            props = resource["Properties"]
            if "DefinitionS3Location" in props:
                loc = props["DefinitionS3Location"]
                body = s3.get_object(Bucket=loc["Bucket"], Key=loc["Key"])["Body"].read().decode()
            else:
                body = json.dumps(_resolve(props["Definition"], deployment))
            subs = _resolve(props.get("DefinitionSubstitutions", {}), deployment)
            definition = substitute_definition(body, subs)
            name = deployment.physical[logical_id].rsplit(":", 1)[-1]
            role = _resolve(props["RoleArn"], deployment)
            arn = sfn.create_state_machine(
                name=name, definition=definition, roleArn=role, type="STANDARD"
            )["stateMachineArn"]
            deployment.physical[logical_id] = arn


def substitute_definition(body: str, substitutions: dict[str, Any]) -> str:
    """Resolve ``${Name}`` placeholders in an ASL file as Step Functions does; none may remain."""
    resolved = re.sub(
        r"\$\{(\w+)\}",
        lambda m: str(substitutions[m.group(1)]) if m.group(1) in substitutions else m.group(0),
        body,
    )
    missing = sorted(set(re.findall(r"\$\{(\w+)\}", resolved)))
    if missing:
        raise ValueError(f"definition placeholders without a substitution: {', '.join(missing)}")
    json.loads(resolved)
    return resolved


# -- a small intrinsic-function resolver, for the values the emulator's CFN cannot give us ------
def _pseudo(deployment: Deployment) -> dict[str, str]:
    return {
        "AWS::Region": deployment.region,
        "AWS::AccountId": deployment.account_id,
        "AWS::Partition": "aws",
        "AWS::StackName": STACK_NAME,
        "AWS::URLSuffix": "amazonaws.com",
    }


def _ref(name: str, deployment: Deployment) -> Any:
    if name == "AWS::NoValue":
        return None  # the property is left out (``_resolve`` drops it)
    pseudo = _pseudo(deployment)
    if name in pseudo:
        return pseudo[name]
    if name in deployment.parameters:
        return deployment.parameters[name]
    if name in deployment.physical:
        return deployment.physical[name]
    default = deployment.template.get("Parameters", {}).get(name, {}).get("Default")
    if default is not None:
        return str(default)
    raise KeyError(f"Ref {name}: not resolvable")


def _get_att(logical_id: str, attribute: str, deployment: Deployment) -> str:
    if (logical_id, attribute) in deployment.attributes:
        return deployment.attributes[(logical_id, attribute)]
    resource = deployment.template["Resources"][logical_id]
    physical = deployment.physical[logical_id]
    region, account = deployment.region, deployment.account_id
    if resource["Type"] == "AWS::Lambda::Function" and attribute == "Arn":
        return f"arn:aws:lambda:{region}:{account}:function:{physical}"
    if resource["Type"] == "AWS::S3::Bucket" and attribute == "Arn":
        return f"arn:aws:s3:::{physical}"
    if resource["Type"] == "AWS::IAM::Role" and attribute == "Arn":
        return f"arn:aws:iam::{account}:role/{physical}"
    if resource["Type"] == "AWS::SQS::Queue" and attribute == "QueueName":
        return physical.rstrip("/").rsplit("/", 1)[-1]  # the physical id is the queue's URL
    if resource["Type"] == "AWS::Events::Rule" and attribute == "Arn":
        return (
            physical
            if physical.startswith("arn:")
            else (f"arn:aws:events:{region}:{account}:rule/{physical}")
        )
    raise KeyError(f"Fn::GetAtt {logical_id}.{attribute}: not resolvable")


def _resolve(value: Any, deployment: Deployment) -> Any:
    if isinstance(value, list):
        return [_resolve(v, deployment) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _ref(arg, deployment)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return _get_att(logical_id, attribute, deployment)
        if key == "Fn::Sub":
            text, local_vars = (arg, {}) if isinstance(arg, str) else arg
            local_vars = _resolve(local_vars, deployment)

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in local_vars:
                    return str(local_vars[name])
                if "." in name:
                    logical_id, attribute = name.split(".", 1)
                    return _get_att(logical_id, attribute, deployment)
                return str(_ref(name, deployment))

            return re.sub(r"\$\{([\w:.]+)\}", sub, text)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(i) for i in _resolve(items, deployment))
        if key == "Fn::If":
            condition, when_true, when_false = arg
            chosen = when_true if _condition(condition, deployment) else when_false
            return _resolve(chosen, deployment)
    resolved = {k: _resolve(v, deployment) for k, v in value.items()}
    return {k: v for k, v in resolved.items() if v is not None}


def _condition(name: str, deployment: Deployment) -> bool:
    """A template condition's value (Fn::Equals, Not, And, Or, Condition over parameters)."""

    def evaluate(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Fn::Equals":
                left, right = (evaluate(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not evaluate(arg[0])
            if key == "Fn::And":
                return all(evaluate(a) for a in arg)
            if key == "Fn::Or":
                return any(evaluate(a) for a in arg)
            if key == "Condition":
                return _condition(arg, deployment)
        return _resolve(value, deployment)

    return bool(evaluate(deployment.template["Conditions"][name]))


def _replace_refs(template: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """Replace references to API-created resources with their real ids (CFN never sees them)."""
    created = set(deployment.physical)

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if value.keys() == {"Ref"} and value["Ref"] in created:
                return deployment.physical[value["Ref"]]
            if value.keys() == {"Fn::GetAtt"}:
                arg = value["Fn::GetAtt"]
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                if logical_id in created:
                    return _get_att(logical_id, attribute, deployment)
            if value.keys() == {"Fn::Sub"}:
                arg = value["Fn::Sub"]
                text = arg if isinstance(arg, str) else arg[0]

                def sub(match: re.Match[str]) -> str:
                    name = match.group(1)
                    base, _, attribute = name.partition(".")
                    if base in created:
                        return (
                            _get_att(base, attribute, deployment)
                            if attribute
                            else deployment.physical[base]
                        )
                    return match.group(0)

                text = re.sub(r"\$\{([\w:.]+)\}", sub, text)
                return {"Fn::Sub": text if isinstance(arg, str) else [text, walk(arg[1])]}
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(template)  # type: ignore[no-any-return]
