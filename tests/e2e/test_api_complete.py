"""The rest of the API contract through the local stack: credentials (owner only, audited),
options, Idempotency-Key, the admin calls, CORS for the portal's origin, the OpenAPI document."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from local.client import Client
from tests.support import cors
from tests.support.stack import BusObserver, Stack

LINUX = {"backend": "ec2", "os": "linux"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _ready(fleet: Stack) -> tuple[Client, str]:
    user = fleet.new_user()
    created = user.call("POST", "/sessions", LINUX)
    assert created.status_code == 202, created.text
    session_id = created.json()["sessionId"]
    assert fleet.wait_for(user, session_id)["status"] == "READY"
    return user, session_id


def test_credentials_go_to_the_owner_only_and_each_reveal_is_audited_without_the_password(
    fleet: Stack,
) -> None:
    audit = BusObserver(fleet, "dcvfleet")
    user, session_id = _ready(fleet)
    answer = user.call("GET", f"/sessions/{session_id}/credentials")
    assert answer.status_code == 200, answer.text
    credentials = answer.json()
    assert set(credentials) == {"username", "password"}
    assert len(credentials["password"]) >= 16
    event = audit.wait_for("Session Credentials Revealed", session_id)
    assert credentials["password"] not in json.dumps(event)
    assert event["detail"]["revealedTo"]
    assert event["detail"]["requestId"]
    stranger = fleet.new_user()
    assert stranger.call("GET", f"/sessions/{session_id}/credentials").status_code == 404
    user.call("DELETE", f"/sessions/{session_id}")
    fleet.wait_for(user, session_id, ("TERMINATED",))
    gone = user.call("GET", f"/sessions/{session_id}/credentials")
    assert gone.status_code == 409
    assert gone.json()["status"] == "TERMINATED"


def test_progress_records_each_provisioning_step_in_order(fleet: Stack) -> None:
    user, session_id = _ready(fleet)
    view = user.call("GET", f"/sessions/{session_id}").json()
    steps = view["progress"]
    assert list(steps) == ["credentials", "capacity", "booted", "ready"]
    assert sorted(steps.values()) == list(steps.values())


def test_options_list_what_the_fleet_offers(fleet: Stack) -> None:
    options = fleet.new_user().call("GET", "/options").json()
    assert options["backends"] == ["ec2", "batch"]
    assert options["os"] == {"ec2": ["linux", "windows"], "batch": ["linux"]}
    assert "g5.xlarge" in options["instanceTypes"]["ec2"]
    assert options["maxActiveSessions"] == 1


def test_a_retried_request_with_the_same_idempotency_key_makes_one_desktop(fleet: Stack) -> None:
    user = fleet.new_user()
    key = str(uuid.uuid4())
    headers = {"Authorization": user.token, "Idempotency-Key": key}
    url = fleet.info["api_url"] + "/sessions"
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: requests.post(url, json=LINUX, headers=headers, timeout=30), range(4)
            )
        )
    created = [a for a in answers if a.status_code == 202]
    assert created, [a.text for a in answers]
    assert {a.json()["sessionId"] for a in created} == {created[0].json()["sessionId"]}
    # one desktop: a request that found the first still in flight would be told to retry (409;
    # test_api_handler.py), though the local stack runs a function's invocations one at a time
    assert all(a.status_code == 409 for a in answers if a.status_code != 202)
    again = requests.post(url, json=LINUX, headers=headers, timeout=30)
    assert again.status_code == 202
    assert again.json() == created[0].json()
    assert len(user.call("GET", "/sessions").json()["sessions"]) == 1
    other_body = requests.post(url, json={**LINUX, "os": "windows"}, headers=headers, timeout=30)
    assert other_body.status_code == 422
    assert other_body.json()["message"].startswith("Idempotency-Key: ")
    # another user's identical key is another request
    stranger = fleet.new_user()
    theirs = requests.post(
        url,
        json=LINUX,
        headers={"Authorization": stranger.token, "Idempotency-Key": key},
        timeout=30,
    )
    assert theirs.status_code == 202
    assert theirs.json()["sessionId"] != created[0].json()["sessionId"]


def test_admin_calls_are_for_admins_only(fleet: Stack) -> None:
    user = fleet.new_user()
    for method, path in [
        ("GET", "/admin/sessions"),
        ("GET", "/admin/instances"),
        ("POST", f"/admin/sessions/{uuid.uuid4()}/stop"),
        ("DELETE", f"/admin/sessions/{uuid.uuid4()}"),
        ("GET", "/admin/releases"),
        ("GET", "/admin/host-images"),
        ("POST", "/admin/host-images/linux/rollback"),
    ]:
        answer = user.call(method, path)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "admins" in answer.json()["message"]


def test_an_admin_rolls_a_host_image_back_and_no_rollback_returns_to_a_withdrawn_one(
    fleet: Stack,
) -> None:
    admin = fleet.new_user(groups=("admins",))

    def linux_images() -> dict[str, Any]:
        listed = admin.call("GET", "/admin/host-images")
        assert listed.status_code == 200, listed.text
        (linux,) = [i for i in listed.json()["items"] if i["os"] == "linux"]
        return dict(linux)

    before = linux_images()["current"]["imageId"]
    # two simulated pipeline runs publish two host images
    built = [fleet.control("POST", "/host-images/linux/build").json()["imageId"] for _ in "ab"]
    linux = linux_images()
    assert linux["builds"] is False
    assert (linux["current"]["imageId"], linux["current"]["baked"]) == (built[1], True)
    assert [v["imageId"] for v in linux["history"][:2]] == [built[0], before]
    # a build on demand needs the pipelines the local stack does not deploy: it says so
    build = admin.call("POST", "/admin/host-images/linux/build")
    assert build.status_code == 409, build.text
    assert "AgentArtifactS3Uri" in build.json()["message"]
    # a rollback puts back the image before; the next goes further back, not to the withdrawn one
    back = admin.call("POST", "/admin/host-images/linux/rollback")
    assert back.status_code == 200, back.text
    assert back.json() == {"os": "linux", "imageId": built[0], "withdrawn": built[1]}
    again = admin.call("POST", "/admin/host-images/linux/rollback").json()
    assert again == {"os": "linux", "imageId": before, "withdrawn": built[0]}
    listed = linux_images()
    assert listed["current"]["imageId"] == before
    assert {v["imageId"] for v in listed["history"] if v["withdrawn"]} == set(built)
    audit = admin.call("GET", "/admin/audit").json()["items"]
    assert [a["action"] for a in audit[:2]] == ["roll-back-host-image"] * 2


def test_an_admin_sees_the_fleet_filters_it_and_stops_anyones_desktop(fleet: Stack) -> None:
    owner, session_id = _ready(fleet)
    admin = fleet.new_user(groups=("admins",))
    ready = admin.call("GET", "/admin/sessions?status=READY&limit=100").json()
    found = [s for s in ready["sessions"] if s["sessionId"] == session_id]
    assert found
    assert found[0]["status"] == "READY"
    assert found[0]["owner"]
    by_user = admin.call("GET", f"/admin/sessions?user={found[0]['ownerName']}").json()
    assert [s["sessionId"] for s in by_user["sessions"]] == [session_id]
    # And the fleet's desktops come newest first, page by page
    _, newer = fleet.request_desktop()
    first = admin.call("GET", "/admin/sessions?limit=1").json()
    assert [s["sessionId"] for s in first["sessions"]] == [newer]
    assert first["nextToken"]
    second = admin.call("GET", f"/admin/sessions?limit=1&nextToken={first['nextToken']}").json()
    assert [s["sessionId"] for s in second["sessions"]] == [session_id]
    assert admin.call("GET", "/admin/sessions?nextToken=garbage").status_code == 400
    assert admin.call("GET", "/admin/sessions?status=ASLEEP").status_code == 400
    running = admin.call("GET", "/admin/instances?state=running").json()["instances"]
    instance = next(i for i in running if i.get("sessionId") == session_id)
    assert instance["state"] == "running"
    assert instance["backend"] == "ec2"
    assert admin.call("GET", "/admin/instances?state=asleep").status_code == 400
    # the owner's instances by user name, e-mail or sub (instances carry the sub)
    emails = [found[0]["ownerEmail"]] if "ownerEmail" in found[0] else []
    for user in (found[0]["ownerName"], found[0]["owner"], *emails):
        theirs = admin.call("GET", f"/admin/instances?user={user}").json()["instances"]
        assert [i["instanceId"] for i in theirs] == [instance["instanceId"]], user
    assert admin.call("GET", "/admin/instances?user=nobody-at-all").json()["instances"] == []
    stopped = admin.call("POST", f"/admin/sessions/{session_id}/stop")
    assert stopped.status_code == 202, stopped.text
    view = fleet.wait_for(owner, session_id, ("STOPPED",))
    assert view["statusReason"] == "Stopped by an administrator."
    stopped_now = admin.call("GET", "/admin/instances?state=stopped").json()["instances"]
    assert instance["instanceId"] in [i["instanceId"] for i in stopped_now]
    terminated = admin.call("DELETE", f"/admin/sessions/{session_id}")
    assert terminated.status_code == 202
    fleet.wait_for(owner, session_id, ("TERMINATED",))
    assert admin.call("DELETE", f"/admin/sessions/{session_id}").status_code == 409
    # And the audit trail holds both actions, newest first, by this administrator
    trail = admin.call("GET", "/admin/audit?limit=2").json()["items"]
    assert [(i["action"], i["target"]) for i in trail] == [
        ("terminate", session_id),
        ("stop", session_id),
    ], trail
    assert {i["actor"] for i in trail} == {admin.username}
    assert admin.call("POST", f"/admin/sessions/{uuid.uuid4()}/stop").status_code == 404


def test_cors_lets_only_the_portals_origin_read_answers(fleet: Stack) -> None:
    portal = _origin(fleet.info["portal_url"])
    url = fleet.info["api_url"] + "/sessions"
    preflight = cors.preflight(url, portal, "POST", "authorization,content-type,idempotency-key")
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == portal
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    user = fleet.new_user()
    ours = requests.get(url, headers={"Authorization": user.token, "Origin": portal}, timeout=10)
    assert ours.headers.get("Access-Control-Allow-Origin") == portal
    theirs = requests.get(
        url, headers={"Authorization": user.token, "Origin": "https://evil.example"}, timeout=10
    )
    assert "Access-Control-Allow-Origin" not in theirs.headers
    # API Gateway's own 401 carries it too: the portal can tell an expired sign-in
    expired = requests.get(url, headers={"Authorization": "x", "Origin": portal}, timeout=10)
    assert expired.status_code == 401
    assert expired.headers.get("Access-Control-Allow-Origin") == portal


def test_the_openapi_document_is_published_without_a_token(fleet: Stack) -> None:
    answer = requests.get(fleet.info["api_url"] + "/openapi.json", timeout=10)
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    assert "/sessions/{id}/credentials" in document["paths"]


def test_the_portal_is_served_with_its_config_and_security_headers(fleet: Stack) -> None:
    page = requests.get(fleet.info["portal_url"], timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert _origin(fleet.info["api_url"]) in policy
    config = requests.get(fleet.info["portal_url"] + "config.json", timeout=10).json()
    assert config == {
        "apiUrl": fleet.info["api_url"],
        "region": fleet.info["region"],
        "userPoolId": fleet.info["user_pool_id"],
        "userPoolClientId": fleet.info["user_pool_client_id"],
        "cognitoEndpoint": fleet.info["aws_endpoint_url"] + "/",
    }
