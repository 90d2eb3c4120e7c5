"""Encryption that AWS services can write through, read from the translated template.

An AWS service that writes to an encrypted topic, queue or bus does so as its own service
principal, and only when the key's policy lets that principal use the key. The policy of an
AWS-managed key (``alias/aws/sns``, ``alias/aws/sqs``...) cannot be changed, so such a
destination silently drops what the service sends:
- SNS: https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
- SQS: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html#compatibility-with-aws-services
- EventBridge dead-letter queues: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
- EventBridge buses: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-encryption-event-bus-cmkey.html

The emulator checks no key policy, so these tests stand in for AWS: every edge from a service
principal to a destination (alarm actions, rule targets and their dead-letter queues, a bus's
own encryption, S3 notifications, SNS-to-SQS subscriptions) is found in the template, both
branches of every ``Fn::If`` are followed, and the destination's key must be one of the
template's own whose policy grants that principal. A key given as a parameter cannot be read
here; ``make preflight`` reads its policy in the account (its ``kms-key`` check).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from dcvfleet_cli import preflight
from tests.support.template import translated

#: Destinations an AWS service writes to, with the property that names their key.
KEY_PROPERTY = {
    "AWS::SNS::Topic": "KmsMasterKeyId",
    "AWS::SQS::Queue": "KmsMasterKeyId",
    "AWS::Events::EventBus": "KmsKeyIdentifier",
}
#: What a service principal needs of the key to write an encrypted message.
NEEDED = ("kms:GenerateDataKey", "kms:Decrypt")


def _branches(value: Any) -> Iterator[Any]:
    """Every value ``value`` can take, following both branches of each ``Fn::If``."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, when_true, when_false = value["Fn::If"]
        yield from _branches(when_true)
        yield from _branches(when_false)
    elif isinstance(value, list):
        for item in value:
            yield from _branches(item)
    else:
        yield value


def _target(value: Any) -> str | None:
    """The logical id a Ref or GetAtt names, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return str(att[0] if isinstance(att, list) else att.split(".")[0])
    return None


def service_writes(resources: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(service principal, where it is said, destination) for every write by an AWS service."""
    for name, res in resources.items():
        props = res.get("Properties", {})
        kind = res["Type"]
        if kind == "AWS::CloudWatch::Alarm":
            for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                for action in _branches(props.get(key, [])):
                    yield "cloudwatch.amazonaws.com", f"{name}.{key}", action
        elif kind == "AWS::Events::Rule":
            for target in props.get("Targets", []):
                yield "events.amazonaws.com", f"{name} target {target['Id']}", target["Arn"]
                dlq = target.get("DeadLetterConfig", {}).get("Arn")
                if dlq is not None:
                    yield "events.amazonaws.com", f"{name} target {target['Id']} DLQ", dlq
        elif kind == "AWS::Events::EventBus":
            # EventBridge encrypts and decrypts a bus's events itself.
            yield "events.amazonaws.com", f"{name} (its own events)", {"Ref": name}
            dlq = props.get("DeadLetterConfig", {}).get("Arn")
            if dlq is not None:
                yield "events.amazonaws.com", f"{name} DLQ", dlq
        elif kind == "AWS::S3::Bucket":
            notifications = props.get("NotificationConfiguration", {})
            for topic in notifications.get("TopicConfigurations", []):
                yield "s3.amazonaws.com", f"{name} notification", topic["Topic"]
            for queue in notifications.get("QueueConfigurations", []):
                yield "s3.amazonaws.com", f"{name} notification", queue["Queue"]
        elif kind == "AWS::SNS::Subscription" and props.get("Protocol") == "sqs":
            yield "sns.amazonaws.com", name, props["Endpoint"]


def _grants(policy: dict[str, Any], principal: str) -> bool:
    """Whether a key policy lets ``principal`` encrypt and decrypt, with no condition it could
    fail to meet."""
    granted: set[str] = set()
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        services = statement.get("Principal", {}).get("Service", [])
        if principal not in ([services] if isinstance(services, str) else services):
            continue
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            granted |= {
                need
                for need in NEEDED
                if action in (need, f"{need}*", "kms:*") or need.startswith(action.rstrip("*"))
            }
    return granted == set(NEEDED)


def key_problems(resources: dict[str, Any], principal: str, destination: Any) -> list[str]:
    """Why ``principal`` could not write to ``destination``; empty when it can."""
    problems = []
    for branch in _branches(destination):
        dest = _target(branch)
        if dest is None:
            if isinstance(branch, str) and (":sns:" in branch or ":sqs:" in branch):
                problems.append(f"{branch}: a topic or queue this test cannot see")
            continue
        res = resources.get(dest)
        if res is None or res["Type"] not in KEY_PROPERTY:
            continue  # a function, workflow or other target that holds nothing encrypted
        props = res.get("Properties", {})
        for key in _branches(props.get(KEY_PROPERTY[res["Type"]])):
            if key is None or key == {"Ref": "AWS::NoValue"}:
                continue  # not encrypted with KMS (SQS may use SSE-SQS, which needs no key)
            key_id = _target(key)
            if key_id is None:
                problems.append(f"{dest}: AWS-managed key {key}, whose policy cannot grant it")
            elif resources.get(key_id, {}).get("Type") == "AWS::KMS::Key":
                policy = resources[key_id]["Properties"]["KeyPolicy"]
                if not _grants(policy, principal):
                    problems.append(f"{dest}: key {key_id}'s policy does not grant it")
            else:
                problems.append(f"{dest}: key {key_id}, a parameter: checked by make preflight")
    return problems


def _findings(resources: dict[str, Any]) -> list[str]:
    return [
        f"{principal} ({where}): {problem}"
        for principal, where, destination in service_writes(resources)
        for problem in key_problems(resources, principal, destination)
    ]


#: Keys given as parameters, which only the account can show, and the principal each must
#: grant: make preflight reads their policies (``check_kms_key`` checks EventBridge's grant).
PARAMETER_KEYS = {"events.amazonaws.com (FleetBus (its own events)): FleetBus: key KmsKeyArn"}


def test_every_service_written_destination_has_a_key_that_grants_the_service() -> None:
    findings = _findings(translated()["Resources"])
    blocking = [f for f in findings if not f.endswith("checked by make preflight")]
    assert blocking == []
    assert {f.split(", a parameter")[0] for f in findings} == PARAMETER_KEYS
    assert "events.amazonaws.com" in inspect.getsource(preflight.check_kms_key)


def test_the_alarms_reach_the_operators_topic_and_the_rules_their_dead_letter_queue() -> None:
    resources = translated()["Resources"]
    writes = list(service_writes(resources))
    alarms = [w for w in writes if w[0] == "cloudwatch.amazonaws.com"]
    assert len(alarms) >= 5
    assert {_target(d) for _, _, d in alarms} == {"OperatorTopic"}
    dlqs = {_target(d) for p, where, d in writes if where.endswith("DLQ")}
    assert "EventDeliveryDeadLetterQueue" in dlqs


# The guard itself, on templates it must refuse (each the shape of a real past defect).
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": "alias/aws/sns"}}
ALARM = {
    "Type": "AWS::CloudWatch::Alarm",
    "Properties": {"AlarmActions": [{"Ref": "Topic"}]},
}


def _key(statement: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::KMS::Key",
        "Properties": {"KeyPolicy": {"Statement": [statement]}},
    }


CLOUDWATCH_USES = {
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"Topic": TOPIC, "Alarm": ALARM}, "AWS-managed key"),
        (
            {
                "Topic": {
                    "Type": "AWS::SNS::Topic",
                    "Properties": {
                        "KmsMasterKeyId": {"Fn::If": ["Own", {"Ref": "Key"}, "alias/aws/sns"]}
                    },
                },
                "Key": _key(CLOUDWATCH_USES),
                "Alarm": ALARM,
            },
            "AWS-managed key",
        ),
        (
            {
                "Topic": {
                    "Type": "AWS::SNS::Topic",
                    "Properties": {"KmsMasterKeyId": {"Ref": "Key"}},
                },
                "Key": _key({**CLOUDWATCH_USES, "Principal": {"Service": "events.amazonaws.com"}}),
                "Alarm": ALARM,
            },
            "does not grant",
        ),
        (
            {
                "Topic": {
                    "Type": "AWS::SNS::Topic",
                    "Properties": {"KmsMasterKeyId": {"Ref": "Key"}},
                },
                "Key": _key({**CLOUDWATCH_USES, "Action": "kms:Decrypt"}),
                "Alarm": ALARM,
            },
            "does not grant",
        ),
        (
            {
                "Queue": {
                    "Type": "AWS::SQS::Queue",
                    "Properties": {"KmsMasterKeyId": "alias/aws/sqs"},
                },
                "Rule": {
                    "Type": "AWS::Events::Rule",
                    "Properties": {
                        "Targets": [
                            {
                                "Id": "F",
                                "Arn": {"Fn::GetAtt": ["Function", "Arn"]},
                                "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["Queue", "Arn"]}},
                            }
                        ]
                    },
                },
            },
            "AWS-managed key",
        ),
    ],
    ids=[
        "managed-key",
        "managed-key-in-else-branch",
        "other-principal",
        "decrypt-only",
        "rule-dlq",
    ],
)
def test_the_guard_refuses_a_destination_the_service_cannot_write(
    resources: dict[str, Any], expected: str
) -> None:
    findings = _findings(resources)
    assert findings
    assert all(expected in f for f in findings), findings


def test_the_guard_accepts_a_key_that_grants_the_service() -> None:
    resources = {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": {"Ref": "Key"}}},
        "Key": _key(CLOUDWATCH_USES),
        "Alarm": ALARM,
    }
    assert _findings(resources) == []
