"""Each user's notifications reach that user only: their address is subscribed to the users'
topic with a filter policy on the ``owner`` attribute every notification carries, once per
address (SNS, https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from dcvfleet import aws, service, sessions
from dcvfleet.adapters import UserNotifications
from dcvfleet.store import InMemorySessionStore
from local.emulator import sns as emulated_sns
from tests.support.handlers import HANDLER_ENV

REGION = "us-east-1"


class CountingNotifications(UserNotifications):
    """The real adapter, counting its Subscribe calls."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        super().__init__(sns, topic_arn)
        self.calls: list[tuple[str, str]] = []

    def subscribe(self, email: str, owner: str) -> str:
        self.calls.append((email, owner))
        return super().subscribe(email, owner)


@pytest.fixture
def sns() -> Iterator[Any]:
    with mock_aws():
        yield aws.client("sns")


@pytest.fixture
def notifications(sns: Any) -> CountingNotifications:
    topic = sns.create_topic(Name="dcvfleet-users")["TopicArn"]
    return CountingNotifications(sns, topic)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The API function's module, imported afresh with a notification topic configured."""
    for key, value in {
        **HANDLER_ENV,
        "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:1:users",
    }.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("dcvfleet.handlers.api", None)
    yield importlib.import_module("dcvfleet.handlers.api")
    sys.modules.pop("dcvfleet.handlers.api", None)


def _matches(subscription_arn: str, owner: str) -> bool:
    """Whether SNS would deliver a notification with ``owner`` to this subscription (moto's
    implementation of SNS's filter-policy matching)."""
    subscription = sns_backends[DEFAULT_ACCOUNT_ID][REGION].subscriptions[subscription_arn]
    attributes = {"owner": {"Type": "String", "Value": owner}, "event": {"Type": "String",
                  "Value": "Session Ready"}}  # fmt: skip
    return bool(subscription._filter_policy_matcher.matches(attributes, "ready"))


def test_each_users_address_gets_their_own_notifications_only(
    sns: Any, notifications: CountingNotifications
) -> None:
    # Given two users asking for desktops
    store = InMemorySessionStore()
    alice = sessions.Caller(sub="sub-alice", username="alice", email="alice@example.com")
    bob = sessions.Caller(sub="sub-bob", username="bob", email="bob@example.com")
    # When each is subscribed
    for_alice = service.subscribe_owner(store, notifications, alice)
    for_bob = service.subscribe_owner(store, notifications, bob)
    assert for_alice is not None
    assert for_bob is not None
    # Then each address is an e-mail subscription filtered on its owner's sub
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=notifications._topic_arn)
    endpoints = {s["Endpoint"]: s["Protocol"] for s in subscriptions["Subscriptions"]}
    assert endpoints == {"alice@example.com": "email", "bob@example.com": "email"}
    attributes = sns.get_subscription_attributes(SubscriptionArn=for_alice.subscription_arn)
    assert json.loads(attributes["Attributes"]["FilterPolicy"]) == {"owner": ["sub-alice"]}
    assert attributes["Attributes"]["FilterPolicyScope"] == "MessageAttributes"
    # and a notification reaches its owner's address, never the other's
    assert _matches(for_alice.subscription_arn, "sub-alice")
    assert not _matches(for_alice.subscription_arn, "sub-bob")
    assert _matches(for_bob.subscription_arn, "sub-bob")
    assert not _matches(for_bob.subscription_arn, "sub-alice")
    # and each is told, in plain words, to confirm the subscription
    assert "alice@example.com" in for_alice.message
    assert "confirmation link" in for_alice.message


def test_an_address_is_subscribed_once_and_again_when_it_changes(
    sns: Any, notifications: CountingNotifications
) -> None:
    store = InMemorySessionStore()
    alice = sessions.Caller(sub="sub-alice", username="alice", email="alice@example.com")
    assert service.subscribe_owner(store, notifications, alice) is not None
    # a second desktop: no second Subscribe, no second confirmation e-mail
    assert service.subscribe_owner(store, notifications, alice) is None
    assert notifications.calls == [("alice@example.com", "sub-alice")]
    # her address changed in Cognito: the new one is subscribed, for her, and the old one gets
    # nothing more of hers
    moved = sessions.Caller(sub="sub-alice", username="alice", email="alice@example.org")
    changed = service.subscribe_owner(store, notifications, moved)
    assert changed is not None
    assert changed.email == "alice@example.org"
    assert notifications.calls[-1] == ("alice@example.org", "sub-alice")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=notifications._topic_arn)
    assert [s["Endpoint"] for s in subscriptions["Subscriptions"]] == ["alice@example.org"]


def test_a_user_without_an_address_is_not_subscribed(notifications: CountingNotifications) -> None:
    store = InMemorySessionStore()
    nobody = sessions.Caller(sub="sub-carol", username="carol", email=None)
    assert service.subscribe_owner(store, notifications, nobody) is None
    assert notifications.calls == []


class LimitedSns:
    """SNS when the topic has as many filter policies as its quota allows."""

    def subscribe(self, **_: Any) -> dict[str, Any]:
        error = {"Code": "FilterPolicyLimitExceeded", "Message": "Filter policy limit exceeded"}
        raise ClientError({"Error": error}, "Subscribe")


def test_a_full_topic_costs_the_new_user_their_e_mails_not_their_desktop_and_tells_operators(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api, "client", lambda service_name: LimitedSns())
    alice = sessions.Caller(sub="sub-alice", username="alice", email="alice@example.com")
    store = InMemorySessionStore()
    assert api._subscribe(store, alice) is None
    assert store.notification_address("sub-alice") is None  # tried again next time
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "filter policies per topic" in record.getMessage()


def test_an_address_subscribed_for_another_user_stays_theirs(
    sns: Any, notifications: CountingNotifications, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNS refuses to subscribe an address again with other attributes (as the local stack's
    SNS_SUBSCRIBE_ATTRIBUTES does), so bob cannot take alice's address over."""
    for owner, name, replacement in emulated_sns.sns_subscribe_patches():
        monkeypatch.setattr(owner, name, replacement)
    store = InMemorySessionStore()
    alice = sessions.Caller(sub="sub-alice", username="alice", email="shared@example.com")
    bob = sessions.Caller(sub="sub-bob", username="bob", email="shared@example.com")
    subscribed = service.subscribe_owner(store, notifications, alice)
    assert subscribed is not None
    with pytest.raises(ClientError) as refused:
        service.subscribe_owner(store, notifications, bob)
    assert refused.value.response["Error"]["Code"] == "InvalidParameter"
    assert store.notification_address("sub-bob") is None
    assert _matches(subscribed.subscription_arn, "sub-alice")
    assert not _matches(subscribed.subscription_arn, "sub-bob")


class SharedAddressSns:
    """SNS when the address is subscribed already, for someone else."""

    def subscribe(self, **_: Any) -> dict[str, Any]:
        message = "Invalid parameter: Attributes Reason: Subscription already exists with different attributes"
        raise ClientError({"Error": {"Code": "InvalidParameter", "Message": message}}, "Subscribe")


def test_a_shared_address_is_logged_for_operators_and_costs_no_desktop(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api, "client", lambda service_name: SharedAddressSns())
    bob = sessions.Caller(sub="sub-bob", username="bob", email="shared@example.com")
    assert api._subscribe(InMemorySessionStore(), bob) is None
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "subscribed for another user" in record.getMessage()
