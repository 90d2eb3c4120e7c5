"""GET /admin/pool: every profile's warm pool, for admins only; a claimed host is no longer in
it; the default Linux EC2 profile's target as ``target``, every pool's in ``targets``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from dcvfleet import aws
from dcvfleet.pool import DynamoPoolStore, PoolHost, PoolState
from dcvfleet.pool_targets import Target
from tests.support.handlers import HANDLER_ENV, admin_request
from tests.support.tables import create_table

T0 = "2026-12-07T10:00:00.000Z"
T1 = "2026-12-07T10:02:00.000Z"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for key, value in {**HANDLER_ENV, "POOL_TABLE": "pool"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table(aws.client("dynamodb"), "WarmPoolTable", "pool")
        sys.modules.pop("dcvfleet.handlers.api", None)
        yield importlib.import_module("dcvfleet.handlers.api")
        sys.modules.pop("dcvfleet.handlers.api", None)


def _get_pool(api: ModuleType, *, admin: bool) -> tuple[int, Any]:
    return admin_request(api, "GET", "/admin/pool", admin=admin)


def test_an_admin_sees_the_pools_hosts_and_their_states_and_nobody_else_does(
    api: ModuleType,
) -> None:
    # Given a pool with a READY host, a WARMING one, and one claimed by a desktop
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    for iid in ("i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c"):
        store.add(PoolHost("linux-workstation", iid, PoolState.WARMING, T0))
    for iid in ("i-0000000000000000a", "i-0000000000000000c"):
        store.mark(PoolHost("linux-workstation", iid, PoolState.WARMING, T0), PoolState.READY, T1)
    claimed = store.claim("linux-workstation", "session-1", T1)
    assert claimed is not None
    # When an administrator asks
    status, body = _get_pool(api, admin=True)
    # Then they see the two hosts still in the pool, each with its state and since when
    assert status == 200
    left = {"i-0000000000000000a", "i-0000000000000000c"} - {claimed.instance_id}
    expected = [
        {"instanceId": i, "profile": "linux-workstation", "state": "READY", "since": T1}
        for i in sorted(left)
    ] + [
        {
            "instanceId": "i-0000000000000000b",
            "profile": "linux-workstation",
            "state": "WARMING",
            "since": T0,
        }
    ]
    assert sorted(body["items"], key=lambda i: i["state"]) == expected
    # And no target before the first refill recorded one
    assert "target" not in body
    # And a user who is not an administrator is refused
    status, body = _get_pool(api, admin=False)
    assert status == 403
    assert "admins" in body["message"]


def test_an_admin_sees_the_last_refills_target_and_its_reason(api: ModuleType) -> None:
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    store.record_target(
        "linux-workstation", Target(5, "running", "weekdays 08:00-18:00 Europe/Paris"), T0
    )
    status, body = _get_pool(api, admin=True)
    assert (status, body) == (
        200,
        {
            "items": [],
            "target": {
                "size": 5,
                "state": "running",
                "reason": "weekdays 08:00-18:00 Europe/Paris",
            },
            "targets": {
                "linux-workstation": {
                    "size": 5,
                    "state": "running",
                    "reason": "weekdays 08:00-18:00 Europe/Paris",
                }
            },
        },
    )


def test_an_admin_sees_every_profiles_pool_and_target(api: ModuleType) -> None:
    # Given a Windows profile's pool beside the default Linux one's
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    store.add(PoolHost("linux-workstation", "i-0000000000000000a", PoolState.WARMING, T0))
    store.add(PoolHost("windows-cad", "i-0000000000000000b", PoolState.WARMING, T0))
    store.record_target("linux-workstation", Target(1, "running", "WarmPoolSize 1"), T0)
    store.record_target("windows-cad", Target(2, "stopped", "base plan"), T0)
    # When an administrator asks / Then both pools' hosts and both targets are listed
    status, body = _get_pool(api, admin=True)
    assert status == 200, body
    assert [(i["profile"], i["instanceId"]) for i in body["items"]] == [
        ("linux-workstation", "i-0000000000000000a"),
        ("windows-cad", "i-0000000000000000b"),
    ]
    assert body["target"] == {"size": 1, "state": "running", "reason": "WarmPoolSize 1"}
    assert body["targets"] == {
        "linux-workstation": {"size": 1, "state": "running", "reason": "WarmPoolSize 1"},
        "windows-cad": {"size": 2, "state": "stopped", "reason": "base plan"},
    }


def test_a_host_being_stopped_to_wait_is_listed_as_stopping(api: ModuleType) -> None:
    # Given a made host the refill is stopping (WarmPoolState stopped)
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    host = PoolHost("linux-workstation", "i-0000000000000000a", PoolState.WARMING, T0)
    store.add(host)
    assert store.mark(host, PoolState.READY, T1)
    ready = PoolHost("linux-workstation", "i-0000000000000000a", PoolState.READY, T1)
    assert store.mark(ready, PoolState.STOPPING, T1)
    # When an administrator asks / Then the answer lists it, STOPPING (not a server error)
    status, body = _get_pool(api, admin=True)
    assert status == 200, body
    assert [i["state"] for i in body["items"]] == ["STOPPING"]
