"""SNS: subscriptions refused as SNS refuses them, and e-mail kept in a mailbox.

``GET /mail`` on ``control_url`` lists the mailbox (``mailbox``).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from local.emulator.gap import Gap, Patch

log = logging.getLogger("local.emulator")


def _same_attribute(name: str, given: Any, current: Any) -> bool:
    if name == "FilterPolicy":
        try:
            return bool(json.loads(given) == json.loads(current))
        except (TypeError, ValueError):
            return False
    return str(given).lower() == str(current).lower()


def sns_subscribe_patches() -> list[Patch]:
    """SNS_SUBSCRIBE_ATTRIBUTES: Subscribe refuses an existing subscription's endpoint with
    other attributes.."""
    from moto.sns.exceptions import SNSInvalidParameter
    from moto.sns.responses import SNSResponse

    original = SNSResponse.subscribe

    def subscribe(self: Any) -> Any:
        existing = self.backend._find_subscription(
            self._get_param("TopicArn"), self._get_param("Endpoint"), self._get_param("Protocol")
        )
        if existing is not None:
            for name, given in (self._get_attributes() or {}).items():
                if not _same_attribute(name, given, existing.attributes.get(name)):
                    raise SNSInvalidParameter(
                        "Invalid parameter: Attributes Reason: Subscription already exists "
                        "with different attributes"
                    )
        return original(self)

    return [Patch(SNSResponse, "subscribe", subscribe)]


#: Every e-mail SNS would have sent, oldest first.
SNS_MAILBOX: list[dict[str, Any]] = []
_mailbox_lock = threading.Lock()
EMAIL_PROTOCOLS = ("email", "email-json")


def mailbox() -> list[dict[str, Any]]:
    """SNS_EMAIL: a copy of every e-mail delivered so far."""
    with _mailbox_lock:
        return [dict(mail) for mail in SNS_MAILBOX]


def sns_email_patches() -> list[Patch]:
    """SNS_EMAIL: an e-mail subscription's ``publish`` records what it would send, when the
    subscription's filter policy lets the message through.."""
    from moto.sns.models import Subscription

    original = Subscription.publish

    def publish(  # noqa: PLR0917 (moto's signature)
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol not in EMAIL_PROTOCOLS:
            original(
                self, message, message_id, subject, message_attributes, group_id,
                deduplication_id, message_structure,
            )  # fmt: skip
            return
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        attributes = {k: v.get("Value") for k, v in (message_attributes or {}).items()}
        with _mailbox_lock:
            SNS_MAILBOX.append(
                {
                    "to": self.endpoint,
                    "subject": subject,
                    "message": message,
                    "attributes": attributes,
                    "topicArn": self.topic.arn,
                    "messageId": message_id,
                }
            )

    return [Patch(Subscription, "publish", publish)]


SNS_SUBSCRIBE_ATTRIBUTES = Gap(
    "SNS_SUBSCRIBE_ATTRIBUTES",
    moto_does="Subscribe of an endpoint already subscribed to the topic (same protocol) with"
    " other attributes answers the existing subscription and overwrites its attributes (a"
    " second user subscribing the first one's address with their own filter policy would"
    " redirect their notifications)",
    we_do="it is refused as SNS refuses it: InvalidParameter Invalid parameter: Attributes"
    " Reason: Subscription already exists with different attributes; the subscription stays"
    " (FilterPolicy compared as JSON)",
    install=lambda context: sns_subscribe_patches(),
)
SNS_EMAIL = Gap(
    "SNS_EMAIL",
    moto_does="an email (or email-json) subscription delivers nowhere and leaves no record; it is"
    " also confirmed at once (not worked around: every address here has confirmed)",
    we_do="each message an e-mail subscription would deliver, after its filter policy, goes to"
    " SNS_MAILBOX (to, subject, message, attributes, topicArn), which GET /mail lists",
    install=lambda context: sns_email_patches(),
)
