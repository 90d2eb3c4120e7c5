"""A warm pool that waits stopped, on the local stack (WarmPoolSize=1, WarmPoolState=stopped):
the refill launches a pool host, leaves it running until it is made (its agent's
dcvfleet:pool-ready tag; the simulator puts it once the host booted), then stops it; GET
/admin/pool shows it STOPPED; a request claims it, the claim starts it, and the desktop is
READY on that instance."""

from __future__ import annotations

import time
from typing import Any

from tests.support.stack import Stack, module_stack

PARAMS = (
    "HostReadyTimeoutSeconds=20 MaxActiveSessionsPerUser=1 WarmPoolSize=1 WarmPoolState=stopped"
)

stopped_pool = module_stack("stopped-pool", PARAMS)


def _pool_items(admin: Any) -> list[dict[str, Any]]:
    answer = admin.call("GET", "/admin/pool")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _instance(stack: Stack, instance_id: str) -> dict[str, Any]:
    described = stack.client("ec2").describe_instances(InstanceIds=[instance_id])
    instance: dict[str, Any] = described["Reservations"][0]["Instances"][0]
    return instance


def test_a_stopped_pool_host_is_started_by_its_claim_and_becomes_the_desktop(
    stopped_pool: Stack,
) -> None:
    admin = stopped_pool.new_user(groups=("admins",))
    # Given the refill launched one pool host, and it is made (tagged by its agent)
    stopped_pool.run_schedules()
    deadline = time.monotonic() + 30
    while True:
        items = _pool_items(admin)
        if items:
            tags = {
                t["Key"]: t["Value"]
                for t in _instance(stopped_pool, items[0]["instanceId"]).get("Tags", [])
            }
            if items[0]["state"] == "READY" and tags.get("dcvfleet:pool-ready") == "true":
                break
        assert time.monotonic() < deadline, f"no made pool host: {items}"
        time.sleep(0.2)
    host = items[0]["instanceId"]
    # When the refill runs again / Then it stops the host, and the pool shows it STOPPED
    stopped_pool.run_schedules()
    deadline = time.monotonic() + 30
    while (items := _pool_items(admin)) != [] and items[0]["state"] != "STOPPED":
        assert time.monotonic() < deadline, f"the pool host was not stopped: {items}"
        time.sleep(0.2)
    assert [(i["instanceId"], i["state"]) for i in items] == [(host, "STOPPED")]
    assert _instance(stopped_pool, host)["State"]["Name"] == "stopped"
    # When a user asks for a desktop of the default Linux profile
    started = time.monotonic()
    user, session_id = stopped_pool.request_desktop()
    session = stopped_pool.wait_for(user, session_id, ("READY", "FAILED", "TERMINATED"), timeout=60)
    took = time.monotonic() - started
    print(f"stopped warm pool: POST /sessions to {session['status']} in {took:.2f} s")
    # Then the claim started the stopped host, and the desktop is READY on it
    assert session["status"] == "READY", session
    assert session["instanceId"] == host, session
    assert _instance(stopped_pool, host)["State"]["Name"] == "running"
