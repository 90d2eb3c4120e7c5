"""Each user's notifications reach that user only, end to end on the local stack: the API
subscribes each user's address (their ID token's ``email``) with a filter policy on their sub,
and the workflows publish with the owner's sub as the ``owner`` attribute. The local stack keeps
what SNS would e-mail (SNS_EMAIL in local/emulator/sns.py; ``GET /mail`` on control_url)."""

from __future__ import annotations

import time
from typing import Any

from tests.support.stack import Stack


def _mail(fleet: Stack, address: str) -> list[dict[str, Any]]:
    resp = fleet.control("GET", "/mail")
    assert resp.status_code == 200, resp.text
    return [m for m in resp.json()["messages"] if m["to"] == address]


def _wait_for_mail(fleet: Stack, address: str, subject: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [m for m in _mail(fleet, address) if m["subject"] == subject]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {subject!r} e-mail to {address}: {_mail(fleet, address)}")


def test_each_user_is_told_of_their_own_desktops_only(fleet: Stack) -> None:
    # Given two users, alice and bob (each with an e-mail address, as create_user makes them)
    alice, bob = fleet.new_user(), fleet.new_user()
    alice_address = f"{alice.username}@example.com"
    bob_address = f"{bob.username}@example.com"
    # When alice asks for a desktop, which becomes READY
    resp = alice.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    alices = answer["sessionId"]
    # Then she is told her address was subscribed and must be confirmed once
    assert answer["notifications"]["email"] == alice_address
    assert "confirmation link" in answer["notifications"]["message"]
    assert fleet.wait_for(alice, alices)["status"] == "READY"
    # And when bob asks for one that cannot start (no capacity for any type)
    fleet.faults(noCapacity=["*"])
    try:
        resp = bob.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
        assert resp.status_code == 202, resp.text
        assert resp.json()["notifications"]["email"] == bob_address
        bobs = resp.json()["sessionId"]
        assert fleet.wait_for(bob, bobs)["status"] == "FAILED"
    finally:
        fleet.faults()
    # Then alice's address received her desktop's "ready" and nothing of bob's
    (ready,) = _wait_for_mail(fleet, alice_address, "Your desktop is ready")
    assert alices in ready["message"]
    # and bob's received his "could not be started", and nothing of alice's
    (failed,) = _wait_for_mail(fleet, bob_address, "Your desktop could not be started")
    assert bobs in failed["message"]
    assert all(bobs not in m["message"] for m in _mail(fleet, alice_address))
    assert all(alices not in m["message"] for m in _mail(fleet, bob_address))
    assert {m["attributes"]["owner"] for m in _mail(fleet, alice_address)} == {
        ready["attributes"]["owner"]
    }
    assert ready["attributes"]["owner"] != failed["attributes"]["owner"]


def test_a_second_desktop_does_not_subscribe_the_address_again(fleet: Stack) -> None:
    user = fleet.new_user()
    first = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert first.status_code == 202, first.text
    assert "notifications" in first.json()
    session_id = first.json()["sessionId"]
    fleet.wait_for(user, session_id)
    assert user.call("DELETE", f"/sessions/{session_id}").status_code == 202
    fleet.wait_for(user, session_id, statuses=("TERMINATED",))
    second = user.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert second.status_code == 202, second.text
    assert "notifications" not in second.json()
    sns = fleet.client("sns")
    topic = fleet.info["resources"]["NotificationTopic"]
    endpoints = [
        s["Endpoint"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        for s in page["Subscriptions"]
    ]
    assert endpoints.count(f"{user.username}@example.com") == 1
