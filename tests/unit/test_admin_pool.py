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
    for key, value in {**HANDLER_ENV, "POOL_TABLE": "pool", "ROOT_VOLUME_SIZE_GIB": "100"}.items():
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
    contract = ("instanceId", "profile", "state", "since")
    items = [{k: i[k] for k in contract} for i in body["items"]]
    assert sorted(items, key=lambda i: i["state"]) == expected
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
    assert (status, body["items"], body["target"]) == (
        200,
        [],
        {"size": 5, "state": "running", "reason": "weekdays 08:00-18:00 Europe/Paris"},
    )
    assert body["targets"] == {"linux-workstation": body["target"]}
    assert body["cost"]["totalUsd"] == 0


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


def _host_through(store: DynamoPoolStore, instance_id: str, moves: list[tuple[str, str]]) -> None:
    """Record ``instance_id`` WARMING at T0, then move it through ``moves`` (state, at)."""
    host = PoolHost("linux-workstation", instance_id, PoolState.WARMING, T0)
    store.add(host)
    for state, at in moves:
        assert store.mark(host, PoolState(state), at)
        host = PoolHost("linux-workstation", instance_id, PoolState(state), at)


def test_each_pool_host_shows_what_it_has_cost_so_far_and_the_pool_its_total(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a host that warmed 2 min, waited READY 28 min, was stopped (1 min) and has waited
    # stopped for an hour, and one READY since 10:02; it is 11:31
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    stopped = [("READY", T1), ("STOPPING", "2026-12-07T10:30:00.000Z")]
    stopped.append(("STOPPED", "2026-12-07T10:31:00.000Z"))
    _host_through(store, "i-0000000000000000a", stopped)
    _host_through(store, "i-0000000000000000b", [("READY", T1)])
    monkeypatch.setattr(api, "now_iso", lambda: "2026-12-07T11:31:00.000Z")
    # When an administrator asks
    status, body = _get_pool(api, admin=True)
    # Then each host's seconds per way of waiting, and its cost at the pinned list prices:
    # g5.xlarge $1.006/h while running, and 100 GiB of gp3 at $0.08/GB-month (730 h) always
    assert status == 200, body
    volume_hour = 100 * 0.08 / 730
    by_id = {i["instanceId"]: i for i in body["items"]}
    a, b = by_id["i-0000000000000000a"], by_id["i-0000000000000000b"]
    assert (a["runningSeconds"], a["stoppedSeconds"]) == (31 * 60, 3600)
    assert a["costUsd"] == pytest.approx(1.006 * 31 / 60 + volume_hour * 91 / 60, abs=1e-6)
    assert (b["runningSeconds"], b["stoppedSeconds"]) == (91 * 60, 0)
    assert b["costUsd"] == pytest.approx((1.006 + volume_hour) * 91 / 60, abs=1e-6)
    cost = body["cost"]
    assert cost["totalUsd"] == pytest.approx(a["costUsd"] + b["costUsd"], abs=1e-5)
    assert (cost["region"], cost["volumeGiB"]) == ("us-east-1", 100)
    assert cost["volumePerHour"] == pytest.approx(volume_hour, abs=1e-6)
    assert cost["pricesTakenAt"] == "2026-12-07"
    # (hosts recorded without their type are the default profile's LinuxInstanceType)
    assert {(i["instanceType"], i["onDemandPerHour"]) for i in body["items"]} == {
        ("g5.xlarge", 1.006)
    }


def test_a_type_missing_from_the_price_table_shows_price_unknown_never_zero(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pool of a type the pinned price table has no price for
    monkeypatch.setenv("LINUX_INSTANCE_TYPE", "g6e.xlarge")
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    _host_through(store, "i-0000000000000000a", [("READY", T1)])
    # When an administrator asks
    status, body = _get_pool(api, admin=True)
    # Then its cost, and the pool's, are unknown (null), not 0
    assert status == 200, body
    assert [i["costUsd"] for i in body["items"]] == [None]
    assert body["items"][0]["runningSeconds"] > 0
    assert body["cost"]["totalUsd"] is None
    assert body["items"][0]["onDemandPerHour"] is None


def test_each_pool_host_is_priced_as_its_own_type_and_os(api: ModuleType) -> None:
    # Given a Linux g5.xlarge host and a Windows one of a profile's own pool (the pinned table
    # has the Linux hour, not the Windows one)
    store = DynamoPoolStore(aws.client("dynamodb"), "pool")
    store.add(
        PoolHost(
            "linux-workstation",
            "i-0000000000000000a",
            PoolState.READY,
            T1,
            None,
            "g5.xlarge",
            "linux",
        )
    )
    store.add(
        PoolHost(
            "windows-cad", "i-0000000000000000b", PoolState.READY, T1, None, "g5.xlarge", "windows"
        )
    )
    # When an administrator asks
    status, body = _get_pool(api, admin=True)
    # Then the Linux host is priced, the Windows one says its price is unknown, never a Linux one
    assert status == 200, body
    by_id = {i["instanceId"]: i for i in body["items"]}
    assert by_id["i-0000000000000000a"]["onDemandPerHour"] == 1.006
    assert by_id["i-0000000000000000a"]["costUsd"] > 0
    assert by_id["i-0000000000000000b"]["onDemandPerHour"] is None
    assert by_id["i-0000000000000000b"]["costUsd"] is None
    assert body["cost"]["totalUsd"] is None
