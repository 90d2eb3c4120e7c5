"""The administrators' audit trail: every admin action (stop, terminate, release activation,
profile put and delete, host image build and rollback) recorded with who, what, when and on
what, and listed newest first.

Entries live in the sessions table as items of their own (``audit#<time>#<random>``) in the
creation-time index's ``audit`` partition: a Query of that index lists them newest first, and a
session listing (its ``session`` partition) never sees them. Pure of environment and client
construction: the API builds the log with ``dynamo_log``.

How to record one (the profile routes call it the same way)::

    audit.record(log, actor=caller.username, action="put-profile", target=profile_id,
                 detail="replaced a template profile")
"""

from __future__ import annotations

import abc
import copy
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aws_lambda_powertools import Logger

from dcvfleet.errors import InvalidRequestError
from dcvfleet.store import CREATED_INDEX, LISTED_ATTR, decode_cursor, now_iso

logger = Logger(child=True)

#: What an administrator can do that is recorded (the API's AuditItem names the same type).
AuditAction = Literal[
    "stop",
    "terminate",
    "activate-release",
    "put-profile",
    "delete-profile",
    "build-host-image",
    "roll-back-host-image",
]
ACTIONS: tuple[str, ...] = get_args(AuditAction)
#: The creation-time index's partition of audit entries (sessions are in "session").
AUDIT_PARTITION = "audit"
MAX_DETAIL = 500


@dataclass(frozen=True)
class AuditEntry:
    at: str
    actor: str
    action: str
    target: str
    detail: str | None = None
    key: str = ""

    def to_api(self) -> dict[str, str]:
        view = {"at": self.at, "actor": self.actor, "action": self.action, "target": self.target}
        if self.detail:
            view["detail"] = self.detail
        return view


def _cursor(entry: AuditEntry) -> str:
    return json.dumps({"pk": entry.key, "createdAt": entry.at}, sort_keys=True)


def _audit_cursor(cursor: str) -> tuple[str, str]:
    """(key, time) of a cursor ``_cursor`` made; InvalidRequestError for any other."""
    key, at = decode_cursor(cursor)
    if not key.startswith("audit#"):  # a session's cursor is not an audit entry's
        raise InvalidRequestError("nextToken: not a token this API gave")
    return key, at


class AuditLog(abc.ABC):
    @abc.abstractmethod
    def append(self, entry: AuditEntry) -> None: ...

    @abc.abstractmethod
    def page(self, *, limit: int, after: str | None) -> tuple[list[AuditEntry], str | None]:
        """Up to ``limit`` entries, newest first, from just after the cursor ``after``; and the
        cursor to continue from, or None at the end."""


def record(
    log: AuditLog, actor: str, action: str, target: str, detail: str | None = None
) -> AuditEntry:
    """Record that administrator ``actor`` did ``action`` (one of ACTIONS) on ``target`` (a
    session id, a release or a profile id), now. Call it once the action is done."""
    if action not in ACTIONS:
        raise ValueError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    if not actor or not target:
        raise ValueError("actor and target: are required")
    at = now_iso()
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        target=target,
        detail=detail[:MAX_DETAIL] if detail else None,
        key=f"audit#{at}#{uuid.uuid4().hex[:12]}",
    )
    log.append(entry)
    logger.info(
        "admin action",
        audit=True,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
    )
    return entry


class DynamoAuditLog(AuditLog):
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def append(self, entry: AuditEntry) -> None:
        item = {
            "pk": {"S": entry.key},
            LISTED_ATTR: {"S": AUDIT_PARTITION},
            "createdAt": {"S": entry.at},
            "actor": {"S": entry.actor},
            "action": {"S": entry.action},
            "target": {"S": entry.target},
        }
        if entry.detail:
            item["detail"] = {"S": entry.detail}
        self._db.put_item(
            TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )

    def page(self, *, limit: int, after: str | None) -> tuple[list[AuditEntry], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CREATED_INDEX,
            "KeyConditionExpression": "#listed = :audit",
            "ExpressionAttributeNames": {"#listed": LISTED_ATTR},
            "ExpressionAttributeValues": {":audit": {"S": AUDIT_PARTITION}},
            "ScanIndexForward": False,  # newest first
            "Limit": limit,
        }
        if after:
            key, at = _audit_cursor(after)
            kwargs["ExclusiveStartKey"] = {
                "pk": {"S": key},
                LISTED_ATTR: {"S": AUDIT_PARTITION},
                "createdAt": {"S": at},
            }
        found: list[AuditEntry] = []
        while len(found) < limit:
            resp = self._db.query(**kwargs)
            found += [self._entry(i) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                return found[:limit], None
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return found[:limit], _cursor(found[limit - 1])

    @staticmethod
    def _entry(item: dict[str, Any]) -> AuditEntry:
        return AuditEntry(
            at=item["createdAt"]["S"],
            actor=item["actor"]["S"],
            action=item["action"]["S"],
            target=item["target"]["S"],
            detail=item.get("detail", {}).get("S"),
            key=item["pk"]["S"],
        )


class InMemoryAuditLog(AuditLog):
    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        with self._lock:
            self._entries.append(copy.deepcopy(entry))

    def page(self, *, limit: int, after: str | None) -> tuple[list[AuditEntry], str | None]:
        with self._lock:
            ordered = sorted(self._entries, key=lambda e: (e.at, e.key), reverse=True)
        if after:
            key, at = _audit_cursor(after)
            ordered = [e for e in ordered if (e.at, e.key) < (at, key)]
        if len(ordered) > limit:
            return ordered[:limit], _cursor(ordered[limit - 1])
        return ordered, None


def dynamo_log(dynamodb: Any, table_name: str) -> AuditLog:
    return DynamoAuditLog(dynamodb, table_name)
