"""CloudFormation: what its templates need before moto's CloudFormation can take them, and what
it answers.

The template rewrites (``fix_template_for_emulator``, ``resolve_ssm_references``) and the resource
types created through the API (``API_CREATED_TYPES``) or served locally
(``LOCALLY_SERVED_TYPES``) are applied by the deployer, ``local.deploy``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, cast

from local.emulator.gap import Gap, Patch

log = logging.getLogger("local.emulator")


#: Resource types whose CloudFormation resources moto only fakes; created through the API instead.
#: CLOUDFRONT: moto's CloudFormation has no CloudFront resources (a stack naming one never
#: completes them), and a Lambda-backed custom resource runs its function, whose layer (the
#: portal's files) is not unpacked in-process. The portal's distribution and publishing are
#: stood in for by the local stack, which serves ``portal/`` and its ``config.json`` itself.
LOCALLY_SERVED_TYPES = frozenset(
    {
        "AWS::CloudFront::Distribution",
        "AWS::CloudFront::OriginAccessControl",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "Custom::PortalSite",
    }
)

API_CREATED_TYPES = frozenset(
    {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolGroup",
        # moto's CloudFormation ignores a RestApi's Body, so a Deployment of it fails ("no
        # methods"); the Body is imported, deployed and staged through the API instead.
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        # moto's CloudFormation adds the permission but gives the resource no physical id.
        "AWS::Lambda::Permission",
        # moto's CloudFormation has no layer versions and no bucket policies (it warns and
        # skips them): layers are published through the API before the stack; bucket policies
        # are left out (the emulator is plain HTTP, where their TLS-only statements refuse all).
        "AWS::Lambda::LayerVersion",
        "AWS::S3::BucketPolicy",
        # CLOUDWATCH_ALARMS: moto's CloudFormation has no alarms. They are put through the API
        # once the stack is up, and then the dashboard, which names them.
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        # APIGW_ACCOUNT: moto's CloudFormation does not set the account's CloudWatch role.
        "AWS::ApiGateway::Account",
        # CUSTOM_RESOURCES: the deployer runs the DesktopProfiles check itself.
        "Custom::DesktopProfiles",
    }
)


def stack_parameter_patches() -> list[Patch]:
    """CFN_STACK_LIST_PARAMETERS: a list parameter's value as AWS gives it, comma-separated."""
    from moto.cloudformation.models import Stack

    original = cast(property, Stack.__dict__["parameter_list"])
    read = cast(Callable[[Any], list[dict[str, Any]]], original.fget)

    def parameter_list(self: Any) -> list[dict[str, Any]]:
        listed = read(self)
        return [
            {**item, "ParameterValue": ",".join(str(v) for v in item["ParameterValue"])}
            if isinstance(item.get("ParameterValue"), list)
            else item
            for item in listed
        ]

    return [Patch(Stack, "parameter_list", property(parameter_list))]


def fix_template_for_emulator(template: dict[str, Any], parameters: dict[str, str]) -> None:
    """CFN_PLACEHOLDERS and CFN_LIST_PARAMETERS: rewrite what moto's CloudFormation can't take."""
    lists = {
        name: parameters.get(name, str(spec.get("Default", "")))
        for name, spec in template.get("Parameters", {}).items()
        if spec.get("Type") == "CommaDelimitedList" or spec.get("Type", "").startswith("List<")
    }

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        join = value.get("Fn::Join")
        if (
            len(value) == 1
            and isinstance(join, list)
            and isinstance(join[0], str)
            and isinstance(join[1], dict)
            and join[1].get("Ref") in lists
        ):
            return join[0].join(members(join[1]["Ref"]))
        if value.keys() == {"Ref"} and value["Ref"] in lists:
            return members(value["Ref"])
        return {k: walk(v) for k, v in value.items()}

    def members(name: str) -> list[str]:
        return [x.strip() for x in lists[name].split(",")]

    template["Resources"] = walk(template.get("Resources", {}))
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::ApiGateway::RestApi":
            resource.setdefault("Properties", {}).setdefault("Name", logical_id)


#: A whole dynamic reference to an SSM String parameter (name, optional :version).
SSM_REFERENCE = re.compile(r"^\{\{resolve:ssm:([^}]+)\}\}$")


def resolve_ssm_references(
    template: dict[str, Any], parameters: dict[str, str], account_id: str, region: str
) -> None:
    """CFN_DYNAMIC_REFERENCES: each ``{"Fn::Sub": "{{resolve:ssm:...}}"}`` (its ``${Param}``
    from the stack's parameters) and each literal ``{{resolve:ssm:...}}`` string becomes the
    parameter's value, as CloudFormation resolves it; a missing parameter fails, as it does."""
    from moto.ssm.models import ssm_backends

    values = {
        name: parameters.get(name, str(spec.get("Default", "")))
        for name, spec in template.get("Parameters", {}).items()
    }

    def resolved(text: str) -> str | None:
        found = SSM_REFERENCE.match(re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], text))
        if not found:
            return None
        # moto's get_parameter reads "name" and "name:version" as SSM does
        parameter = ssm_backends[account_id][region].get_parameter(found[1])
        if parameter is None:
            raise ValueError(f"dynamic reference {text!r}: no SSM parameter {found[1]}")
        return str(parameter.value)

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return (resolved(value) or value) if "{{resolve:ssm:" in value else value
        if not isinstance(value, dict):
            return value
        sub = value.get("Fn::Sub")
        if value.keys() == {"Fn::Sub"} and isinstance(sub, str) and "{{resolve:ssm:" in sub:
            done = resolved(sub)
            if done is not None:
                return done
        return {k: walk(v) for k, v in value.items()}

    template["Resources"] = walk(template.get("Resources", {}))


def lower_first(value: Any) -> Any:
    """CloudFormation's property casing (``ScanOnPush``) -> the API's (``scanOnPush``); a map of
    tags (``Tags``) and a log driver's ``Options`` keep their keys."""
    if isinstance(value, dict):
        return {
            k[:1].lower() + k[1:]: v if k in ("Tags", "Options") else lower_first(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [lower_first(v) for v in value]
    return value


CFN_LIST_PARAMETERS = Gap(
    "CFN_LIST_PARAMETERS",
    moto_does="Fn::Join over a CommaDelimitedList parameter left at its default joins the"
    " characters of its raw string, Ref to a List<...> parameter stringifies a Python list, and"
    " Ref to a CommaDelimitedList left at its default is its raw string where a list belongs",
    we_do="the deployer replaces Fn::Join [<separator>, Ref List] by the members joined by the"
    " separator, and any other Ref List by its members (fix_template_for_emulator)",
)
CFN_PLACEHOLDERS = Gap(
    "CFN_PLACEHOLDERS",
    moto_does="CloudFormation creates only placeholders for Cognito resources, ignores a RestApi's"
    " Body, gives a Lambda::Permission no physical id, has no layer versions or bucket"
    " policies, and an AWS::ApiGateway::RestApi needs a Name",
    we_do="the deployer creates those through the API (API_CREATED_TYPES) and names each RestApi"
    " (fix_template_for_emulator)",
)
CFN_STACK_LIST_PARAMETERS = Gap(
    "CFN_STACK_LIST_PARAMETERS",
    moto_does="DescribeStacks gives a List<...> or CommaDelimitedList parameter's value as a"
    " Python list's repr (['subnet-a', 'subnet-b'])",
    we_do="its members joined with commas, as AWS gives it (subnet-a,subnet-b)",
    install=lambda context: stack_parameter_patches(),
)
CFN_DYNAMIC_REFERENCES = Gap(
    "CFN_DYNAMIC_REFERENCES",
    moto_does="a {{resolve:ssm:<name>}} dynamic reference is left as written (the Windows launch"
    " template's ImageId would be that text)",
    we_do="the deployer resolves the template's Fn::Sub of such a reference from the emulator's"
    " parameter store before the stack is created, as CloudFormation does"
    " (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references-ssm.html;"
    " resolve_ssm_references)",
)
CLOUDFRONT = Gap(
    "CLOUDFRONT",
    moto_does="moto's CloudFormation has no CloudFront resources, and a custom resource's"
    " function runs without its layers unpacked",
    we_do="the portal's distribution, origin access control, headers policy and the PortalSite"
    " custom resource are left out of the emulated stack (LOCALLY_SERVED_TYPES); local.portal"
    " serves portal/ with the config.json dcvfleet.portal writes on AWS, under the"
    " distribution's security headers",
)
CLOUDWATCH_ALARMS = Gap(
    "CLOUDWATCH_ALARMS",
    moto_does="moto's CloudFormation has no AWS::CloudWatch::Alarm (a stack naming one fails, and"
    " a Fn::GetAtt of one is an undefined resource)",
    we_do="the deployer puts the alarms, then the dashboard that lists them, through"
    " CloudWatch's API after the stack (API_CREATED_TYPES)",
)
CUSTOM_RESOURCES = Gap(
    "CUSTOM_RESOURCES",
    moto_does="moto's CloudFormation invokes a Lambda-backed custom resource's function inside"
    " CreateStack itself and never reads the answer it PUTs to the ResponseURL (the stack stays"
    " CREATE_IN_PROGRESS; a function it cannot find fails CreateStack)",
    we_do="the deployer leaves Custom::DesktopProfiles out of the emulated stack"
    " (API_CREATED_TYPES) and, once the stack is up, runs its check"
    " (dcvfleet.profiles.check_parameter, which its handler calls) in-process with the check function's environment,"
    " failing the deploy with its reason as CloudFormation would"
    " (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)",
)
APIGW_ACCOUNT = Gap(
    "APIGW_ACCOUNT",
    moto_does="moto's CloudFormation has no AWS::ApiGateway::Account (it warns and leaves the"
    " account's CloudWatch role unset)",
    we_do="the deployer sets the role through API Gateway's UpdateAccount after the stack"
    " (API_CREATED_TYPES), so GetAccount answers as on AWS",
)


def created_from_template(
    create: Callable[[Any, str, str, str], Any],
) -> classmethod[Any, ..., Any]:
    """A model's ``create_from_cloudformation_json`` as moto calls it, made of ``create(properties,
    resource_name, account_id, region_name)``; ``resource_name`` is the name CloudFormation gives
    a resource that names none (``<stack>-<LogicalId>-<suffix>``)."""

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        return create(cloudformation_json["Properties"], resource_name, account_id, region_name)

    return classmethod(create_from_cloudformation_json)
