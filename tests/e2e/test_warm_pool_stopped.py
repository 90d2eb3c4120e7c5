"""A warm pool that waits stopped, on the local stack (WarmPoolSize=1, WarmPoolState=stopped):
the refill launches a pool host, leaves it running until it is made (its agent's
dcvfleet:pool-ready tag; the simulator puts it once the host booted), then stops it; GET
/admin/pool shows it STOPPED; a request claims it, the claim starts it, and the desktop is
READY on that instance. A profile whose pool would wait hibernated, of a type that cannot
hibernate, waits stopped and says why."""

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
    # When an administrator asks the profile's pool to wait hibernated, and the refill runs
    profile = {
        "name": "Linux workstation",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": ["g5.xlarge"],
        "idle": {"timeoutSeconds": 900, "action": "stop"},
        "pool": {"size": 1, "state": "hibernated"},
    }
    answer = admin.call("PUT", "/admin/profiles/linux-workstation", profile)
    assert answer.status_code == 200, answer.text
    stopped_pool.run_schedules()
    # Then, g5.xlarge not supporting hibernation (EC2's DescribeInstanceTypes, as the emulator
    # answers it from AWS's data), the pool waits stopped, and its target says why
    deadline = time.monotonic() + 30
    while (
        "hibernate" not in (target := admin.call("GET", "/admin/pool").json()["target"])["reason"]
    ):
        assert time.monotonic() < deadline, f"the refill did not read the plan: {target}"
        time.sleep(0.2)
    assert target["state"] == "stopped", target
    assert "g5.xlarge cannot hibernate" in target["reason"], target
