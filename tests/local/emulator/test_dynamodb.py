"""DDB_ATOMIC_WRITES: DynamoDB's conditional writes and transactions race in moto."""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.emulator.dynamodb import atomic_dynamodb_writes
from tests.support.emulator import (
    REGION,
)


# -- DDB_ATOMIC_WRITES -------------------------------------------------------------------------
def _race_two_limited_creates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two transactions that each add a session under a limit of one, made to check the limit at
    the same moment (a barrier after moto evaluates the condition); returns each outcome."""
    import threading

    from moto.dynamodb import models as dynamodb_models

    from dcvfleet.errors import SessionLimitExceededError
    from dcvfleet.model import Session, Status
    from dcvfleet.store import DynamoSessionStore

    barrier = threading.Barrier(2, timeout=1.0)
    original_filter = dynamodb_models.get_filter_expression
    original_parser = dynamodb_models.create_condition_expression_parser

    def checked_together(condition: Any) -> Any:
        evaluate = condition.expr

        def expr(item: Any) -> Any:
            passed = evaluate(item)
            if threading.current_thread().name.startswith("create-"):
                # both transactions have checked the limit before either writes, unless
                # something serialises them (then the other one is held back: go on alone)
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return passed

        condition.expr = expr
        return condition

    def filter_expression(expression: Any, *args: Any, **kwargs: Any) -> Any:
        condition = original_filter(expression, *args, **kwargs)
        return checked_together(condition) if "active <" in str(expression) else condition

    def condition_parser(expression: Any, *args: Any, **kwargs: Any) -> Any:
        parser = original_parser(expression, *args, **kwargs)
        if "active <" in str(expression):
            parse = parser.parse
            parser.parse = lambda: checked_together(parse())
        return parser

    monkeypatch.setattr(dynamodb_models, "get_filter_expression", filter_expression)
    monkeypatch.setattr(dynamodb_models, "create_condition_expression_parser", condition_parser)
    db = boto3.client("dynamodb", region_name=REGION)
    db.create_table(
        TableName="sessions",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoSessionStore(db, "sessions")
    outcomes: list[str] = []

    def create(n: int) -> None:
        session = Session(
            session_id=f"s{n}",
            owner="alice",
            backend="ec2",
            os="linux",
            instance_type="g5.xlarge",
            status=Status.PROVISIONING,
            created_at="2026-01-01T00:00:00.000Z",
            updated_at="2026-01-01T00:00:00.000Z",
        )
        try:
            store.create(session, max_active=1)
            outcomes.append("created")
        except SessionLimitExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(n,), name=f"create-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


@mock_aws
def test_gap_ddb_atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP DDB_ATOMIC_WRITES: two transactions both pass the limit's condition, because moto
    checks, then writes, without a lock. When this fails, moto has changed: drop the workaround
    in local/emulator/dynamodb.py."""

    assert _race_two_limited_creates(monkeypatch) == ["created", "created"]


@mock_aws
def test_workaround_ddb_atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the emulator's lock, the same race lets exactly one transaction through."""
    from moto.dynamodb.models import DynamoDBBackend

    for name, replacement in atomic_dynamodb_writes().items():
        monkeypatch.setattr(DynamoDBBackend, name, replacement)
    assert _race_two_limited_creates(monkeypatch) == ["created", "refused"]
