"""The REST API through the local stack, as a signed-in user (or a stranger) calls it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.stack import Stack

LINUX = {"backend": "ec2", "os": "linux"}


def test_no_token_is_401(fleet: Stack) -> None:
    resp = requests.post(fleet.info["api_url"] + "/sessions", json=LINUX, timeout=10)
    assert resp.status_code == 401


def test_a_forged_token_is_401(fleet: Stack) -> None:
    user = fleet.new_user()
    header, payload, _sig = user.token.split(".")
    forged = f"{header}.{payload}.{'A' * 43}"
    resp = requests.get(
        fleet.info["api_url"] + "/sessions", headers={"Authorization": forged}, timeout=10
    )
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"os": "linux"}, "backend"),
        ({"backend": "ec2"}, "os"),
        ({"backend": "ec2", "os": "mac"}, "os"),
        ({"backend": "ec2", "os": "linux", "colour": "blue"}, "colour"),
        ({"backend": "ec2", "os": "linux", "instanceType": "p5.48xlarge"}, "instanceType"),
        ({"backend": "ec2", "os": "linux", "instanceType": "../x"}, "instanceType"),
        ({"backend": "batch", "os": "windows"}, "os"),  # a container desktop runs Linux
        ({"backend": "batch", "os": "linux", "instanceType": "g6.xlarge"}, "instanceType"),
        ({"backend": "gpu", "os": "linux"}, "backend"),
        ([], "body"),
    ],
)
def test_a_bad_body_is_400_naming_the_field(fleet: Stack, body: object, field: str) -> None:
    user = fleet.new_user()
    resp = user.call("POST", "/sessions", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()
    assert user.call("GET", "/sessions").json()["sessions"] == []


def test_a_body_that_is_not_json_is_400(fleet: Stack) -> None:
    user = fleet.new_user()
    resp = requests.post(
        fleet.info["api_url"] + "/sessions",
        data="{not json",
        headers={"Authorization": user.token, "Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("body:")


def test_another_users_session_is_404_and_not_listed(fleet: Stack) -> None:
    alice, mallory = fleet.new_user(), fleet.new_user()
    session_id = alice.call("POST", "/sessions", LINUX).json()["sessionId"]
    assert mallory.call("GET", f"/sessions/{session_id}").status_code == 404
    assert mallory.call("GET", "/sessions").json() == {"sessions": []}
    mine = alice.call("GET", "/sessions").json()["sessions"]
    assert [s["sessionId"] for s in mine] == [session_id]


def test_an_unknown_session_is_404(fleet: Stack) -> None:
    user = fleet.new_user()
    assert user.call("GET", "/sessions/00000000-0000-0000-0000-000000000000").status_code == 404


def test_session_view_has_the_contract_fields_and_no_internals(fleet: Stack) -> None:
    # Given a user who picks a profile offered to them, and names the desktop
    user = fleet.new_user()
    offered = {p["id"]: p for p in user.call("GET", "/profiles").json()["items"]}
    linux = offered["linux-workstation"]
    body = {"profile": "linux-workstation", "name": "My desktop"}
    session_id = user.call("POST", "/sessions", body).json()["sessionId"]
    session = fleet.wait_for(user, session_id)
    assert session["status"] == "READY"
    assert (session["profile"], session["profileName"], session["name"]) == (
        "linux-workstation",
        linux["name"],
        "My desktop",
    )
    assert session["instanceType"] == linux["instanceTypes"][0]
    required = {
        "sessionId",
        "status",
        "backend",
        "os",
        "instanceType",
        "createdAt",
        "updatedAt",
        "progress",
        "profile",
        "profileName",
        "name",
    }
    assert required <= set(session)
    optional = {"instanceId", "jobId", "connectionUrl", "statusReason", "hidden"}
    assert set(session) <= required | optional
    assert "arn:" not in json.dumps(session)


def test_the_active_session_limit_holds_under_concurrent_requests(fleet: Stack) -> None:
    # Given a user with the default limit of one active session
    user = fleet.new_user()
    # When they fire eight requests at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: user.call("POST", "/sessions", LINUX), range(8)))
    # Then exactly one is accepted and the rest are refused with 409
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 7, [r.text for r in responses]
    assert len(user.call("GET", "/sessions").json()["sessions"]) == 1
