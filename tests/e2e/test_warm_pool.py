"""The warm pools on the local stack with WarmPoolSize=1: the scheduled refill launches one pool
host from the Linux launch template, GET /admin/pool shows it to admins, the fleet sweep leaves
it running, and a second refill launches no more; a request takes the READY pool host (its
instanceId), and the pool is refilled at once. An admin's profile with a pool of its own keeps
one beside it, its desktops take its hosts, and once it is deleted its waiting hosts are
terminated."""

from __future__ import annotations

import time
from typing import Any

from tests.support.stack import Stack, module_stack

PARAMS = "HostReadyTimeoutSeconds=20 MaxActiveSessionsPerUser=1 WarmPoolSize=1"

pool = module_stack("pool", PARAMS)


def _pool_items(admin: Any) -> list[dict[str, Any]]:
    answer = admin.call("GET", "/admin/pool")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _sweeps_done(pool: Stack, count: int, timeout: float = 30) -> None:
    """Wait until ``count`` runs of the fleet sweep workflow have ended, each successfully."""
    sfn = pool.client("stepfunctions")
    machine = next(
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if m["name"].endswith("-sweep-fleet")
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sfn.list_executions(stateMachineArn=machine)["executions"]
        if len(runs) >= count and all(r["status"] != "RUNNING" for r in runs):
            assert {r["status"] for r in runs} == {"SUCCEEDED"}, runs
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} sweeps ended")


def test_the_refill_keeps_one_pool_host_that_admins_see_and_the_sweep_leaves_alone(
    pool: Stack,
) -> None:
    admin = pool.new_user(groups=("admins",))
    # When the schedules fire (the refill and the fleet sweep among them)
    fired = pool.run_schedules()
    assert any("RefillPool" in rule for rule in fired), fired
    deadline = time.monotonic() + 30
    while not (items := _pool_items(admin)) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Then the pool holds one host of the default Linux EC2 profile
    assert len(items) == 1, items
    host = items[0]
    assert host["profile"] == "linux-workstation"
    assert host["state"] in ("WARMING", "READY")
    # And what it has cost so far, at the pinned list prices of the stack's region for the
    # template's LinuxInstanceType and RootVolumeSizeGiB
    cost = admin.call("GET", "/admin/pool").json()["cost"]
    assert cost["volumeGiB"] == 100, cost
    assert cost["region"] == "us-east-1", cost  # the local stack's, which the table prices
    assert (host["instanceType"], host["onDemandPerHour"]) == ("g5.xlarge", 1.006), host
    assert isinstance(host["costUsd"], float | int), host
    assert host["costUsd"] >= 0
    assert host["runningSeconds"] >= 0
    # And it is a fleet instance tagged as a pool host, with no session
    ec2 = pool.client("ec2")
    described = ec2.describe_instances(InstanceIds=[host["instanceId"]])
    instance = described["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    assert tags["dcvfleet:pool"] == "linux-workstation"
    assert "dcvfleet:session-id" not in tags
    # When the schedules fire again (the sweep would stop a fleet instance with no session)
    pool.run_schedules()
    _sweeps_done(pool, 2)
    # Then the same one host is still the pool, still running
    assert [i["instanceId"] for i in _pool_items(admin)] == [host["instanceId"]]
    state = ec2.describe_instances(InstanceIds=[host["instanceId"]])["Reservations"][0][
        "Instances"
    ][0]["State"]["Name"]
    assert state in ("pending", "running")
    # And a user who is not an administrator is refused
    assert pool.new_user().call("GET", "/admin/pool").status_code == 403


def test_a_request_takes_the_ready_pool_host_and_the_refill_replaces_it(pool: Stack) -> None:
    admin = pool.new_user(groups=("admins",))
    if not _pool_items(admin):
        pool.run_schedules()
    # Given the pool host READY (EC2 said it runs: the instance state-change rule)
    deadline = time.monotonic() + 30
    items = _pool_items(admin)
    while [i["state"] for i in items] != ["READY"]:
        assert time.monotonic() < deadline, f"no READY pool host: {items}"
        time.sleep(0.2)
        items = _pool_items(admin)
    host = items[0]["instanceId"]
    # When a user asks for a desktop of the default Linux profile
    started = time.monotonic()
    user, session_id = pool.request_desktop()
    session = pool.wait_for(user, session_id, ("READY", "FAILED", "TERMINATED"), timeout=60)
    took = time.monotonic() - started
    print(f"warm pool: POST /sessions to {session['status']} in {took:.2f} s")
    # Then it is READY on the pool host
    assert session["status"] == "READY", session
    assert session["instanceId"] == host, f"{session} (POST to READY in {took:.2f} s)"
    # And the pool no longer lists it, and the refill launched another host in its place
    deadline = time.monotonic() + 30
    while (ids := [i["instanceId"] for i in _pool_items(admin)]) in ([], [host]):
        assert time.monotonic() < deadline, f"the pool was not refilled: {ids}"
        time.sleep(0.2)
    assert host not in ids
    assert len(ids) == 1, ids


def _instance(pool: Stack, instance_id: str) -> dict[str, Any]:
    found = pool.client("ec2").describe_instances(InstanceIds=[instance_id])
    instance: dict[str, Any] = found["Reservations"][0]["Instances"][0]
    return instance


def _until(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_an_admins_profile_keeps_its_own_pool_its_desktops_take_and_a_deleted_one_is_drained(
    pool: Stack,
) -> None:
    admin = pool.new_user(groups=("admins",))
    # Given an admin's profile with a pool of its own, of another type than the default's
    cad = {
        "name": "CAD workstation",
        "backend": "ec2",
        "os": "linux",
        "instanceTypes": ["g4dn.xlarge"],
        "idle": {"timeoutSeconds": 900, "action": "stop"},
        "pool": {"size": 1},
    }
    answer = admin.call("PUT", "/admin/profiles/cad", cad)
    assert answer.status_code == 200, answer.text
    # When the refill runs
    pool.run_schedules()

    def cad_hosts(state: str | None = None) -> list[dict[str, Any]]:
        return [
            i
            for i in _pool_items(admin)
            if i["profile"] == "cad" and (state is None or i["state"] == state)
        ]

    [host] = _until("no READY host in the cad pool", lambda: cad_hosts("READY"))
    # Then its pool holds a host of its type, tagged with it; GET /admin/pool shows each
    # pool's target
    instance = _instance(pool, host["instanceId"])
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert (instance["InstanceType"], tags["dcvfleet:pool"]) == ("g4dn.xlarge", "cad")
    targets = admin.call("GET", "/admin/pool").json()["targets"]
    assert targets["cad"]["size"] == 1, targets
    assert "linux-workstation" in targets
    # When a user asks for a desktop of that profile / Then it takes that pool's host
    user = pool.new_user()
    answer = user.call("POST", "/sessions", {"profile": "cad"})
    assert answer.status_code == 202, answer.text
    session = pool.wait_for(user, answer.json()["sessionId"], ("READY", "FAILED"), timeout=60)
    assert session["instanceId"] == host["instanceId"], session
    # When the profile is deleted (its pool refilled meanwhile) and the refill runs
    [refilled] = _until("the cad pool was not refilled", cad_hosts)
    assert admin.call("DELETE", "/admin/profiles/cad").status_code == 204
    pool.run_schedules()
    # Then its waiting host is terminated, never left running, and the desktop keeps its own
    _until("the cad pool was not drained", lambda: not cad_hosts())
    state = _instance(pool, refilled["instanceId"])["State"]["Name"]
    assert state in ("shutting-down", "terminated"), state
    kept = _instance(pool, host["instanceId"])["State"]["Name"]
    assert kept in ("pending", "running"), kept
