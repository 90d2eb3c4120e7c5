"""The session store: an interface, a DynamoDB implementation and an in-memory one.

Every status change is a conditional, versioned write: the caller names the status and version it
read, and the write fails with SessionConflictError if either changed. A per-user counter item,
written in the same transaction, holds the active-session limit under concurrency (also when a
stopped desktop is resumed).

The newest event accepted from each session's agent is kept on an item of its own
(``agent#<session id>``), written only if the event is newer still (``accept_agent_event``): a
signed event sent again, or an older one, is then refused, and of two copies of one event
delivered at once exactly one is accepted. The session's record is never touched by it.

Heartbeats are the exception: they come every minute from every host, so they are written to
their own attributes with a condition on the status and instance only, never bumping the
version (a heartbeat must not make a workflow's versioned write lose). Versioned writes never
touch those attributes.
"""

from __future__ import annotations

import abc
import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dcvfleet.errors import (
    InvalidRequestError,
    SessionConflictError,
    SessionLimitExceededError,
    SessionNotFoundError,
)
from dcvfleet.estimates import PATH_KEY
from dcvfleet.model import ACTIVE, Session, Status, can_transition
from dcvfleet.session_profile import PROFILE_KEY

#: Dataclass field -> DynamoDB attribute.
_ATTRS = {
    "session_id": "pk",
    "owner": "owner",
    "backend": "backend",
    "os": "os",
    "instance_type": "instanceType",
    "status": "status",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "version": "version",
    "owner_email": "ownerEmail",
    "instance_id": "instanceId",
    "job_id": "jobId",
    "secret_arn": "secretArn",
    "dcv_session_id": "dcvSessionId",
    "connection_url": "connectionUrl",
    "status_reason": "statusReason",
    "status_detail": "statusDetail",
    "execution_arn": "executionArn",
    "task_token": "taskToken",
    "ready_at": "readyAt",
    "resumed_at": "resumedAt",
    "idle_check": "idleCheck",
    "idle_check_at": "idleCheckAt",
    "evidence": "evidence",
    "last_heartbeat_at": "lastHeartbeatAt",
    "heartbeat": "heartbeat",
    "progress": "progress",
    "extra": "extra",
}
#: Fields held as JSON documents in a string attribute.
_JSON_FIELDS = frozenset({"evidence", "heartbeat", "progress"})
#: Fields only record_heartbeat writes.
HEARTBEAT_FIELDS = frozenset({"last_heartbeat_at", "heartbeat"})
_FIELDS = {f.name for f in fields(Session)}
OWNER_INDEX = "byOwner"
#: Every session, newest first: a sparse index (only items with ``listed``: sessions, never a
#: user's counter or an agent's mark) on one constant partition, sorted by ``createdAt``.
CREATED_INDEX = "byCreatedAt"
#: ``recent_starts`` reads at most this many pages of this many index items.
RECENT_READ_PAGES = 3
RECENT_READ_LIMIT = 100
LISTED_ATTR = "listed"
LISTED = "session"


def encode_cursor(session: Session) -> str:
    """Where a page of sessions ends: the key of its last session (its id and creation time)."""
    return json.dumps({"pk": session.session_id, "createdAt": session.created_at}, sort_keys=True)


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(session id, createdAt) of a cursor ``encode_cursor`` made; InvalidRequestError else."""
    try:
        parsed = json.loads(cursor)
    except ValueError:
        parsed = None
    if (
        not isinstance(parsed, dict)
        or set(parsed) != {"pk", "createdAt"}
        or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in parsed.values())
    ):
        raise InvalidRequestError("nextToken: not a token this API gave")
    return parsed["pk"], parsed["createdAt"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class NotificationAddress:
    """The e-mail address subscribed to a user's notifications, and its subscription's ARN."""

    email: str
    subscription: str


def counter_key(owner: str) -> str:
    return f"user#{owner}"


def agent_mark_key(session_id: str) -> str:
    """The item holding the newest event accepted from a session's agent."""
    return f"agent#{session_id}"


class SessionStore(abc.ABC):
    @abc.abstractmethod
    def create(self, session: Session, max_active: int) -> None:
        """Insert a new session, counting it against its owner's limit."""

    @abc.abstractmethod
    def get(self, session_id: str) -> Session | None: ...

    @abc.abstractmethod
    def list_by_owner(self, owner: str) -> list[Session]: ...

    @abc.abstractmethod
    def active_count(self, owner: str) -> int: ...

    @abc.abstractmethod
    def notification_address(self, owner: str) -> NotificationAddress | None:
        """The e-mail address last subscribed to ``owner``'s notifications, if any."""

    @abc.abstractmethod
    def record_notification_address(self, owner: str, email: str, subscription: str) -> None:
        """Remember that ``email`` is subscribed to ``owner``'s notifications (``subscription``
        its ARN), on the owner's own record (the one that counts their active sessions)."""

    @abc.abstractmethod
    def scan_by_status(self, statuses: frozenset[Status]) -> list[Session]:
        """Every session in one of ``statuses`` (the fleet sweep)."""

    @abc.abstractmethod
    def page(
        self, *, status: Status | None, user: str | None, limit: int, after: str | None
    ) -> tuple[list[Session], str | None]:
        """Up to ``limit`` sessions of every user, newest first by ``createdAt`` (``status``
        and ``user``, a sub, user name or e-mail, filter them), from just after the cursor
        ``after``; and the cursor to continue from (``encode_cursor``), or None at the end."""

    @abc.abstractmethod
    def get_many(self, session_ids: list[str]) -> dict[str, Session]:
        """The sessions of these ids that exist, by id (not a consistent read)."""

    @abc.abstractmethod
    def recent_starts(self, profile: str, path: str, limit: int) -> list[Session]:
        """Up to ``limit`` of the newest desktops of ``profile`` whose last start went along
        ``path`` (``estimates.PATH_KEY``) and reached READY, newest first."""

    @abc.abstractmethod
    def requested_since(self, profile: str, since: str) -> list[str]:
        """When each desktop of ``profile`` created at or after ``since`` was asked for
        (``createdAt``, any order): the request history a warm pool's forecast reads."""

    @abc.abstractmethod
    def batch_desktops(self, instance_ids: list[str]) -> dict[str, list[Session]]:
        """The active batch desktops whose containers run on each of these instances."""

    @abc.abstractmethod
    def record_heartbeat(
        self, session_id: str, instance_id: str, at: str, heartbeat: dict[str, Any]
    ) -> bool:
        """Save a heartbeat if the session is READY on ``instance_id``; False otherwise."""

    @abc.abstractmethod
    def accept_agent_event(self, session_id: str, sent_at_ms: int) -> bool:
        """Record ``sent_at_ms`` (epoch milliseconds) as the newest event accepted from the
        session's agent if it is newer than every one accepted before; False, and nothing
        written, when it is not (a replay, or an event older than one already accepted)."""

    @abc.abstractmethod
    def _write(self, old: Session, new: Session, max_active: int | None) -> None:
        """Replace ``old`` with ``new`` if the stored status and version still equal ``old``'s.

        When the write makes the session active again and ``max_active`` is given, it also fails
        (SessionLimitExceededError) if the owner already has that many active sessions.
        """

    def require(self, session_id: str) -> Session:
        session = self.get(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id} not found")
        return session

    def update(self, current: Session, max_active: int | None = None, **changes: Any) -> Session:
        """A conditional, versioned write of ``changes`` (may include ``status``)."""
        unknown = set(changes) - (_FIELDS - HEARTBEAT_FIELDS)
        if unknown:
            raise ValueError(f"unknown or heartbeat-only session fields: {sorted(unknown)}")
        new_status = changes.get("status", current.status)
        if new_status != current.status and not can_transition(current.status, new_status):
            raise SessionConflictError(
                f"session {current.session_id}: {current.status} -> {new_status} is not allowed"
            )
        new = replace(current, **changes, version=current.version + 1, updated_at=now_iso())
        self._write(current, new, max_active)
        return new


class DynamoSessionStore(SessionStore):
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    # -- serialisation -------------------------------------------------------------------
    @staticmethod
    def _to_item(session: Session) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for name, attr in _ATTRS.items():
            value = getattr(session, name)
            if value is None or (name == "extra" and not value):
                continue
            if name == "status":
                item[attr] = {"S": value.value}
                item[LISTED_ATTR] = {"S": LISTED}
            elif name in _JSON_FIELDS:
                item[attr] = {"S": json.dumps(value, separators=(",", ":"), sort_keys=True)}
            elif name == "version":
                item[attr] = {"N": str(value)}
            elif name == "extra":
                item[attr] = {"M": {k: {"S": str(v)} for k, v in value.items()}}
            else:
                item[attr] = {"S": str(value)}
        return item

    @staticmethod
    def _from_item(item: dict[str, Any]) -> Session:
        kwargs: dict[str, Any] = {}
        for name, attr in _ATTRS.items():
            if attr not in item:
                continue
            raw = item[attr]
            if name == "version":
                kwargs[name] = int(raw["N"])
            elif name == "status":
                kwargs[name] = Status(raw["S"])
            elif name in _JSON_FIELDS:
                kwargs[name] = json.loads(raw["S"])
            elif name == "extra":
                kwargs[name] = {k: v["S"] for k, v in raw["M"].items()}
            else:
                kwargs[name] = raw["S"]
        return Session(**kwargs)

    # -- operations ----------------------------------------------------------------------
    def create(self, session: Session, max_active: int) -> None:
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._to_item(session),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": counter_key(session.owner)}},
                            "UpdateExpression": "SET active = if_not_exists(active, :zero) + :one",
                            "ConditionExpression": "attribute_not_exists(active) OR active < :max",
                            "ExpressionAttributeValues": {
                                ":zero": {"N": "0"},
                                ":one": {"N": "1"},
                                ":max": {"N": str(max_active)},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _cancelled(exc, index=1):
                raise SessionLimitExceededError(
                    f"at most {max_active} active session(s) per user"
                ) from exc
            if _cancelled(exc, index=0):
                raise SessionConflictError(f"session {session.session_id} exists") from exc
            raise

    def get(self, session_id: str) -> Session | None:
        resp = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": session_id}}, ConsistentRead=True
        )
        item = resp.get("Item")
        if item is None or "owner" not in item:
            return None
        return self._from_item(item)

    def list_by_owner(self, owner: str) -> list[Session]:
        sessions: list[Session] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#o = :o",
            "ExpressionAttributeNames": {"#o": "owner"},
            "ExpressionAttributeValues": {":o": {"S": owner}},
            "ScanIndexForward": False,
        }
        while True:
            resp = self._db.query(**kwargs)
            sessions.extend(self._from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return sessions
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def active_count(self, owner: str) -> int:
        resp = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": counter_key(owner)}}, ConsistentRead=True
        )
        return int(resp.get("Item", {}).get("active", {}).get("N", "0"))

    def notification_address(self, owner: str) -> NotificationAddress | None:
        resp = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": counter_key(owner)}},
            ProjectionExpression="notifyEmail, notifySubscription",
            ConsistentRead=True,
        )
        item = resp.get("Item", {})
        email = item.get("notifyEmail", {}).get("S")
        if not email:
            return None
        return NotificationAddress(str(email), str(item.get("notifySubscription", {}).get("S", "")))

    def record_notification_address(self, owner: str, email: str, subscription: str) -> None:
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": counter_key(owner)}},
            UpdateExpression="SET notifyEmail = :e, notifySubscription = :s",
            ExpressionAttributeValues={":e": {"S": email}, ":s": {"S": subscription}},
        )

    def scan_by_status(self, statuses: frozenset[Status]) -> list[Session]:
        names = {f":s{i}": {"S": status.value} for i, status in enumerate(sorted(statuses))}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": f"#s IN ({', '.join(names)})",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": names,
            "ConsistentRead": True,
        }
        found: list[Session] = []
        while True:
            resp = self._db.scan(**kwargs)
            found.extend(self._from_item(i) for i in resp.get("Items", []) if "owner" in i)
            if "LastEvaluatedKey" not in resp:
                return found
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def page(
        self, *, status: Status | None, user: str | None, limit: int, after: str | None
    ) -> tuple[list[Session], str | None]:
        # a Query of the creation-time index, newest first (ScanIndexForward=False: "in reverse
        # order by sort key value",
        # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Query.html); the
        # index is sparse, holding only items with its key attributes: the sessions
        # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html)
        conditions = ["attribute_exists(#owner)"]
        names = {"#owner": "owner", "#listed": LISTED_ATTR}
        values: dict[str, Any] = {":listed": {"S": LISTED}}
        if status is not None:
            conditions.append("#status = :status")
            names["#status"] = "status"
            values[":status"] = {"S": status.value}
        if user:
            conditions.append("(#owner = :user OR #extra.#username = :user OR #email = :user)")
            names.update({"#extra": "extra", "#username": "username", "#email": "ownerEmail"})
            values[":user"] = {"S": user}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CREATED_INDEX,
            "KeyConditionExpression": "#listed = :listed",
            "FilterExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if after:
            session_id, created_at = decode_cursor(after)
            kwargs["ExclusiveStartKey"] = {
                "pk": {"S": session_id},
                LISTED_ATTR: {"S": LISTED},
                "createdAt": {"S": created_at},
            }
        found: list[Session] = []
        while True:
            resp = self._db.query(**kwargs)
            for item in resp.get("Items", []):
                found.append(self._from_item(item))
                if len(found) == limit:
                    return found, encode_cursor(found[-1])
            if "LastEvaluatedKey" not in resp:
                return found, None
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def get_many(self, session_ids: list[str]) -> dict[str, Session]:
        # BatchGetItem: at most 100 keys a call, and keys it did not get to come back as
        # UnprocessedKeys (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html)
        wanted = list(dict.fromkeys(i for i in session_ids if i))
        found: dict[str, Session] = {}
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": [{"pk": {"S": i}} for i in wanted[start : start + 100]]}
            }
            for _ in range(CONFLICT_RETRIES * 2):
                resp = self._db.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    if "owner" in item:
                        session = self._from_item(item)
                        found[session.session_id] = session
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def requested_since(self, profile: str, since: str) -> list[str]:
        # a Query of the creation-time index from ``since`` on (a range condition on its sort
        # key, not a scan), keeping the profile's sessions: "A filter expression is applied after
        # a Query finishes, but before the results are returned"
        # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.KeyConditionExpressions.html,
        # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.FilterExpression.html);
        # only the attributes read are returned
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CREATED_INDEX,
            "KeyConditionExpression": "#listed = :listed AND #created >= :since",
            "FilterExpression": "#extra.#profile = :profile",
            "ProjectionExpression": "#created, #extra.#profile",
            "ExpressionAttributeNames": {
                "#listed": LISTED_ATTR,
                "#created": "createdAt",
                "#extra": "extra",
                "#profile": PROFILE_KEY,
            },
            "ExpressionAttributeValues": {
                ":listed": {"S": LISTED},
                ":since": {"S": since},
                ":profile": {"S": profile},
            },
        }
        found: list[str] = []
        while True:
            resp = self._db.query(**kwargs)
            found.extend(item["createdAt"]["S"] for item in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return found
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def index_earlier_sessions(self) -> int:
        """Put every session made before the creation-time index existed into it (an operator
        runs this once after the upgrade: tools/index_sessions.py); how many were added. Only
        the index attribute is written (never the version): a desktop's own writes go on."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "attribute_exists(#owner) AND attribute_not_exists(#listed)",
            "ExpressionAttributeNames": {"#owner": "owner", "#listed": LISTED_ATTR},
            "ProjectionExpression": "pk",
        }
        added = 0
        while True:
            resp = self._db.scan(**kwargs)
            for item in resp.get("Items", []):
                try:
                    self._db.update_item(
                        TableName=self._table,
                        Key={"pk": item["pk"]},
                        UpdateExpression="SET #listed = :listed",
                        ConditionExpression="attribute_exists(#owner)",
                        ExpressionAttributeNames={"#owner": "owner", "#listed": LISTED_ATTR},
                        ExpressionAttributeValues={":listed": {"S": LISTED}},
                    )
                    added += 1
                except ClientError as exc:  # deleted meanwhile
                    if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
            if "LastEvaluatedKey" not in resp:
                return added
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def recent_starts(self, profile: str, path: str, limit: int) -> list[Session]:
        # the creation-time index, newest first, filtered: a filter applies after the read, and
        # a Query's Limit counts the items read, not the items kept
        # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.FilterExpression.html),
        # so at most RECENT_READ_PAGES pages of RECENT_READ_LIMIT are read: what a profile
        # started long ago, behind many other desktops, is not worth reading at each start
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CREATED_INDEX,
            "KeyConditionExpression": "#listed = :listed",
            "FilterExpression": "#extra.#profile = :profile AND #extra.#path = :path "
            "AND attribute_exists(#ready)",
            "ExpressionAttributeNames": {
                "#listed": LISTED_ATTR,
                "#extra": "extra",
                "#profile": PROFILE_KEY,
                "#path": PATH_KEY,
                "#ready": "readyAt",
            },
            "ExpressionAttributeValues": {
                ":listed": {"S": LISTED},
                ":profile": {"S": profile},
                ":path": {"S": path},
            },
            "ScanIndexForward": False,
            "Limit": RECENT_READ_LIMIT,
        }
        found: list[Session] = []
        for _ in range(RECENT_READ_PAGES):
            resp = self._db.query(**kwargs)
            found.extend(self._from_item(item) for item in resp.get("Items", []))
            if len(found) >= limit or "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return found[:limit]

    def batch_desktops(self, instance_ids: list[str]) -> dict[str, list[Session]]:
        # the sessions, read from the creation-time index (sessions only), kept when active,
        # batch and on one of the instances (a handful: the containers of a page of instances)
        on: dict[str, list[Session]] = {i: [] for i in instance_ids}
        if not instance_ids:
            return on
        active = {f":a{i}": {"S": s.value} for i, s in enumerate(sorted(ACTIVE))}
        hosts = {f":h{i}": {"S": h} for i, h in enumerate(dict.fromkeys(instance_ids))}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CREATED_INDEX,
            "KeyConditionExpression": "#listed = :listed",
            "FilterExpression": f"#backend = :batch AND #status IN ({', '.join(active)}) "
            f"AND #instance IN ({', '.join(hosts)})",
            "ExpressionAttributeNames": {
                "#listed": LISTED_ATTR,
                "#backend": "backend",
                "#status": "status",
                "#instance": "instanceId",
            },
            "ExpressionAttributeValues": {
                ":listed": {"S": LISTED},
                ":batch": {"S": "batch"},
                **active,
                **hosts,
            },
            "ScanIndexForward": False,
        }
        while True:
            resp = self._db.query(**kwargs)
            for item in resp.get("Items", []):
                session = self._from_item(item)
                on[session.instance_id or ""].append(session)
            if "LastEvaluatedKey" not in resp:
                return on
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def record_heartbeat(
        self, session_id: str, instance_id: str, at: str, heartbeat: dict[str, Any]
    ) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": session_id}},
                UpdateExpression="SET lastHeartbeatAt = :at, heartbeat = :hb",
                ConditionExpression="#s = :ready AND instanceId = :iid",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":at": {"S": at},
                    ":hb": {"S": json.dumps(heartbeat, separators=(",", ":"), sort_keys=True)},
                    ":ready": {"S": Status.READY.value},
                    ":iid": {"S": instance_id},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def accept_agent_event(self, session_id: str, sent_at_ms: int) -> bool:
        # one conditional write: of two concurrent copies of one event, one wins
        # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": agent_mark_key(session_id)}},
                UpdateExpression="SET #t = :t",
                ConditionExpression="attribute_not_exists(#t) OR #t < :t",
                ExpressionAttributeNames={"#t": "sentAt"},
                ExpressionAttributeValues={":t": {"N": str(sent_at_ms)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _write(self, old: Session, new: Session, max_active: int | None) -> None:
        item = self._to_item(new)
        item.pop("pk")
        values: dict[str, Any] = {":s": {"S": old.status.value}, ":v": {"N": str(old.version)}}
        names: dict[str, str] = {}
        sets, removes = [], []
        for name, attr in _ATTRS.items():
            if name == "session_id" or name in HEARTBEAT_FIELDS:
                continue
            names[f"#{attr}"] = attr
            if attr in item:
                values[f":{attr}"] = item[attr]
                sets.append(f"#{attr} = :{attr}")
            else:
                removes.append(f"#{attr}")
        # every versioned write keeps the session in the creation-time index (a record written
        # before the index existed joins it on its next write)
        names["#listed"] = LISTED_ATTR
        values[":listed"] = {"S": LISTED}
        sets.append("#listed = :listed")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        update = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": old.session_id}},
                "UpdateExpression": expression,
                "ConditionExpression": "#status = :s AND #version = :v",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        items: list[dict[str, Any]] = [update]
        if old.status in ACTIVE and new.status not in ACTIVE:
            items.append(_counter_delta(self._table, old.owner, -1))
        elif old.status not in ACTIVE and new.status in ACTIVE:
            items.append(_counter_delta(self._table, old.owner, +1, max_active))
        try:
            if len(items) == 1:
                self._db.update_item(**update["Update"])
            else:
                self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if len(items) == 2 and max_active is not None and _cancelled(exc, index=1):
                raise SessionLimitExceededError(
                    f"at most {max_active} active session(s) per user"
                ) from exc
            code = exc.response["Error"]["Code"]
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise SessionConflictError(
                    f"session {old.session_id} changed (expected {old.status} v{old.version})"
                ) from exc
            raise


def _counter_delta(
    table: str, owner: str, delta: int, max_active: int | None = None
) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": counter_key(owner)}},
        "UpdateExpression": "SET active = if_not_exists(active, :zero) + :d",
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":d": {"N": str(delta)}},
    }
    if max_active is not None:
        update["ConditionExpression"] = "attribute_not_exists(active) OR active < :max"
        update["ExpressionAttributeValues"][":max"] = {"N": str(max_active)}
    return {"Update": update}


def _cancelled(exc: ClientError, index: int) -> bool:
    """Whether transaction item ``index`` failed its condition."""
    if exc.response["Error"]["Code"] != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if index < len(reasons):
        return bool(reasons[index].get("Code") == "ConditionalCheckFailed")
    message = exc.response["Error"].get("Message", "")
    codes = message.partition("[")[2].rstrip("]").split(", ")
    return index < len(codes) and codes[index].strip() == "ConditionalCheckFailed"


class InMemorySessionStore(SessionStore):
    """The same contract in memory, for unit tests of the domain."""

    def __init__(self) -> None:
        self._items: dict[str, Session] = {}
        self._active: dict[str, int] = {}
        self._agent_marks: dict[str, int] = {}
        self._notify: dict[str, NotificationAddress] = {}
        self._lock = threading.Lock()

    def create(self, session: Session, max_active: int) -> None:
        with self._lock:
            if self._active.get(session.owner, 0) >= max_active:
                raise SessionLimitExceededError(f"at most {max_active} active session(s) per user")
            if session.session_id in self._items:
                raise SessionConflictError(f"session {session.session_id} exists")
            self._items[session.session_id] = copy.deepcopy(session)
            self._active[session.owner] = self._active.get(session.owner, 0) + 1

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            found = self._items.get(session_id)
            return copy.deepcopy(found) if found else None

    def list_by_owner(self, owner: str) -> list[Session]:
        with self._lock:
            mine = [copy.deepcopy(s) for s in self._items.values() if s.owner == owner]
        return sorted(mine, key=lambda s: s.created_at, reverse=True)

    def active_count(self, owner: str) -> int:
        with self._lock:
            return self._active.get(owner, 0)

    def notification_address(self, owner: str) -> NotificationAddress | None:
        with self._lock:
            return self._notify.get(owner)

    def record_notification_address(self, owner: str, email: str, subscription: str) -> None:
        with self._lock:
            self._notify[owner] = NotificationAddress(email, subscription)

    def scan_by_status(self, statuses: frozenset[Status]) -> list[Session]:
        with self._lock:
            return [copy.deepcopy(s) for s in self._items.values() if s.status in statuses]

    def page(
        self, *, status: Status | None, user: str | None, limit: int, after: str | None
    ) -> tuple[list[Session], str | None]:
        with self._lock:
            ordered = sorted(
                self._items.values(), key=lambda s: (s.created_at, s.session_id), reverse=True
            )
        if after:
            session_id, created_at = decode_cursor(after)
            ordered = [
                s for s in ordered if (s.created_at, s.session_id) < (created_at, session_id)
            ]
        found = [
            copy.deepcopy(s)
            for s in ordered
            if (status is None or s.status == status)
            and (not user or user in (s.owner, s.owner_name, s.owner_email))
        ]
        if len(found) > limit:
            return found[:limit], encode_cursor(found[limit - 1])
        return found, None

    def get_many(self, session_ids: list[str]) -> dict[str, Session]:
        with self._lock:
            return {i: copy.deepcopy(self._items[i]) for i in session_ids if i in self._items}

    def recent_starts(self, profile: str, path: str, limit: int) -> list[Session]:
        with self._lock:
            newest = sorted(self._items.values(), key=lambda s: s.created_at, reverse=True)
            return [
                copy.deepcopy(s)
                for s in newest
                if s.ready_at
                and s.extra.get(PROFILE_KEY) == profile
                and s.extra.get(PATH_KEY) == path
            ][:limit]

    def requested_since(self, profile: str, since: str) -> list[str]:
        with self._lock:
            return [
                s.created_at
                for s in self._items.values()
                if s.created_at >= since and (s.extra or {}).get(PROFILE_KEY) == profile
            ]

    def batch_desktops(self, instance_ids: list[str]) -> dict[str, list[Session]]:
        with self._lock:
            ordered = sorted(self._items.values(), key=lambda s: s.created_at, reverse=True)
            return {
                i: [
                    copy.deepcopy(s)
                    for s in ordered
                    if s.backend == "batch" and s.status in ACTIVE and s.instance_id == i
                ]
                for i in instance_ids
            }

    def record_heartbeat(
        self, session_id: str, instance_id: str, at: str, heartbeat: dict[str, Any]
    ) -> bool:
        with self._lock:
            stored = self._items.get(session_id)
            if stored is None or stored.status != Status.READY or stored.instance_id != instance_id:
                return False
            stored.last_heartbeat_at = at
            stored.heartbeat = copy.deepcopy(heartbeat)
            return True

    def accept_agent_event(self, session_id: str, sent_at_ms: int) -> bool:
        with self._lock:
            last = self._agent_marks.get(session_id)
            if last is not None and last >= sent_at_ms:
                return False
            self._agent_marks[session_id] = sent_at_ms
            return True

    def _write(self, old: Session, new: Session, max_active: int | None) -> None:
        with self._lock:
            stored = self._items.get(old.session_id)
            if stored is None or (stored.status, stored.version) != (old.status, old.version):
                raise SessionConflictError(
                    f"session {old.session_id} changed (expected {old.status} v{old.version})"
                )
            delta = int(new.status in ACTIVE) - int(old.status in ACTIVE)
            active = self._active.get(old.owner, 0)
            if delta > 0 and max_active is not None and active >= max_active:
                raise SessionLimitExceededError(f"at most {max_active} active session(s) per user")
            self._items[old.session_id] = replace(
                copy.deepcopy(new),
                last_heartbeat_at=stored.last_heartbeat_at,
                heartbeat=copy.deepcopy(stored.heartbeat),
            )
            self._active[old.owner] = active + delta


CONFLICT_RETRIES = 5


def reached(session: Session, step: str) -> dict[str, str]:
    """``session.progress`` with ``step`` (one of PROGRESS_STEPS) finished now."""
    return {**(session.progress or {}), step: now_iso()}


def update_provisioning(
    store: SessionStore,
    session_id: str,
    *,
    step: str | None = None,
    extra: Callable[[dict[str, str]], dict[str, str]] | None = None,
    **changes: Any,
) -> Session:
    """Write ``changes`` onto a PROVISIONING session, re-reading when another writer won a race;
    ``step`` records that provisioning step as finished now; ``extra`` makes the session's new
    ``extra`` from the one just read (so a rename made meanwhile is kept)."""
    for _ in range(CONFLICT_RETRIES):
        session = store.require(session_id)
        if session.status != Status.PROVISIONING:
            raise SessionConflictError(
                f"session {session_id} is {session.status}, not provisioning"
            )
        if step is not None:
            changes["progress"] = reached(session, step)
        if extra is not None:
            changes["extra"] = extra(dict(session.extra))
        try:
            return store.update(session, **changes)
        except SessionConflictError:
            continue
    raise SessionConflictError(f"session {session_id}: too many concurrent writers")
