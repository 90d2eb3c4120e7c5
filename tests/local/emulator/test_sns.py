"""SNS's gaps: SNS_EMAIL, SNS_SUBSCRIBE_ATTRIBUTES."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from local.emulator import sns as sns_emulation
from local.emulator.sns import mailbox, sns_email_patches, sns_subscribe_patches
from tests.support.emulator import (
    REGION,
    aws_client,
)


# -- SNS_EMAIL ---------------------------------------------------------------------------------
def _topic_with_addresses(sns: Any) -> tuple[str, dict[str, str]]:
    """A topic and two e-mail subscriptions, each filtered on its owner (as the API makes
    them); the topic's ARN and each owner's subscription ARN."""
    topic = sns.create_topic(Name="users")["TopicArn"]
    subscriptions = {}
    for owner in ("alice", "bob"):
        subscriptions[owner] = sns.subscribe(
            TopicArn=topic,
            Protocol="email",
            Endpoint=f"{owner}@example.com",
            Attributes={
                "FilterPolicyScope": "MessageAttributes",
                "FilterPolicy": json.dumps({"owner": [owner]}),
            },
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    return topic, subscriptions


def _publish_for(sns: Any, topic: str, owner: str, text: str) -> None:
    sns.publish(
        TopicArn=topic,
        Subject="Your desktop is ready",
        Message=text,
        MessageAttributes={"owner": {"DataType": "String", "StringValue": owner}},
    )


@mock_aws
def test_gap_sns_email() -> None:
    """GAP SNS_EMAIL: an e-mail subscription is confirmed at once, and what it delivers is kept
    nowhere: the SNS backend holds the message only as the topic's (every subscriber's) sent
    notification. When this fails, moto has changed: drop ``sns_email_patches`` in
    local/emulator/sns.py."""
    from moto.sns.models import sns_backends

    sns = aws_client("sns")
    topic, subscriptions = _topic_with_addresses(sns)
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscriptions["alice"])
    assert attributes["Attributes"]["PendingConfirmation"] == "false"
    backend = sns_backends[DEFAULT_ACCOUNT_ID][REGION]
    text = "for-alice-7f3c"
    _publish_for(sns, topic, "alice", text)
    (sent,) = backend.topics[topic].sent_notifications
    assert sent[1] == text
    backend.topics[topic].sent_notifications.clear()
    assert text not in repr(vars(backend))  # no record of alice's e-mail anywhere else
    assert mailbox() == []


def test_workaround_sns_email(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sns_email_patches``: each address receives what its filter policy lets through: alice
    her notification, bob his, neither the other's."""
    for owner, name, replacement in sns_email_patches():
        monkeypatch.setattr(owner, name, replacement)
    monkeypatch.setattr(sns_emulation, "SNS_MAILBOX", [])
    with mock_aws():
        sns = aws_client("sns")
        topic, _ = _topic_with_addresses(sns)
        _publish_for(sns, topic, "alice", "ready for alice")
        _publish_for(sns, topic, "bob", "ready for bob")
        _publish_for(sns, topic, "carol", "ready for carol")
    assert [(m["to"], m["message"]) for m in mailbox()] == [
        ("alice@example.com", "ready for alice"),
        ("bob@example.com", "ready for bob"),
    ]
    assert mailbox()[0]["subject"] == "Your desktop is ready"
    assert mailbox()[0]["attributes"] == {"owner": "alice"}


# -- SNS_SUBSCRIBE_ATTRIBUTES -------------------------------------------------------------------
def _subscribe_for(sns: Any, topic: str, owner: str, address: str) -> str:
    arn: str = sns.subscribe(
        TopicArn=topic,
        Protocol="email",
        Endpoint=address,
        Attributes={
            "FilterPolicyScope": "MessageAttributes",
            "FilterPolicy": json.dumps({"owner": [owner]}),
        },
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return arn


def _filter_of(sns: Any, arn: str) -> Any:
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    return json.loads(attributes["FilterPolicy"])


@mock_aws
def test_gap_sns_subscribe_attributes() -> None:
    """GAP SNS_SUBSCRIBE_ATTRIBUTES: bob subscribing alice's address with his own filter policy
    takes her subscription over. When this fails, moto has changed: drop
    ``sns_subscribe_patches`` in local/emulator/sns.py."""

    sns = aws_client("sns")
    topic = sns.create_topic(Name="users")["TopicArn"]
    alices = _subscribe_for(sns, topic, "alice", "alice@example.com")
    assert _subscribe_for(sns, topic, "bob", "alice@example.com") == alices
    assert _filter_of(sns, alices) == {"owner": ["bob"]}


def test_workaround_sns_subscribe_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sns_subscribe_patches``: refused, alice's subscription unchanged; the same request again
    answers her subscription."""
    for owner, name, replacement in sns_subscribe_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        sns = aws_client("sns")
        topic = sns.create_topic(Name="users")["TopicArn"]
        alices = _subscribe_for(sns, topic, "alice", "alice@example.com")
        with pytest.raises(ClientError) as refused:
            _subscribe_for(sns, topic, "bob", "alice@example.com")
        assert refused.value.response["Error"]["Code"] == "InvalidParameter"
        assert (
            "already exists with different attributes" in refused.value.response["Error"]["Message"]
        )
        assert _filter_of(sns, alices) == {"owner": ["alice"]}
        assert _subscribe_for(sns, topic, "alice", "alice@example.com") == alices
