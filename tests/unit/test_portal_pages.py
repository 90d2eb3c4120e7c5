"""The portal's pages in headless Chromium against a fake API (tests/support/portal.py): what a
person sees on each page for a given state of their desktops, in seconds and without a stack.

The pages poll; a test that changes the fake's state makes the page poll again at once by firing
``visibilitychange`` (portal/js/poll.js runs its task when the page is shown)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.portal import ORIGIN, FakeApi, session_view, signed_in_page

POLL_NOW = "document.dispatchEvent(new Event('visibilitychange'))"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def tab(chromium: Any, api: FakeApi) -> Iterator[Page]:
    yield from signed_in_page(chromium, api)


def _open(tab: Page, hash_: str = "#/", user: str = "alice") -> None:
    tab.goto(f"{ORIGIN}/{hash_}")
    expect(tab.get_by_test_id("user-name")).to_have_text(user)


def test_the_ready_page_keeps_the_step_timeline_and_how_long_it_took(
    tab: Page, api: FakeApi
) -> None:
    api.sessions = [session_view("s-1", "READY")]
    _open(tab, "#/sessions/s-1")
    ready = tab.get_by_test_id("ready-banner")
    expect(ready).to_be_visible()
    for step in ("credentials", "capacity", "booted", "ready"):
        expect(ready.get_by_test_id(f"step-{step}")).to_have_attribute("data-state", "done")
    # capacity 09:00:20 → booted 09:01:10; asked at 09:00:00, ready at 09:01:35
    expect(ready.get_by_test_id("step-booted")).to_contain_text("50 s")
    expect(ready.get_by_test_id("ready-took")).to_have_text("Ready in 1 min 35 s.")


def test_a_resumed_desktop_counts_from_the_resume_not_from_its_creation(
    tab: Page, api: FakeApi
) -> None:
    resumed = session_view("s-1", "READY", createdAt="2026-12-01T08:00:00Z")
    api.sessions = [resumed]  # its credentials step is the resume request itself
    _open(tab, "#/sessions/s-1")
    expect(tab.get_by_test_id("ready-took")).to_have_text("Ready in 1 min 33 s.")


def test_on_the_stopped_page_resume_is_the_primary_action(tab: Page, api: FakeApi) -> None:
    api.sessions = [session_view("s-1", "STOPPED")]
    _open(tab, "#/sessions/s-1")
    expect(tab.get_by_test_id("resume")).to_have_class("button button--primary")
    expect(tab.get_by_test_id("delete")).not_to_have_class("button--primary")


def test_the_live_region_does_not_keep_an_announcement_across_pages(
    tab: Page, api: FakeApi
) -> None:
    api.sessions = [session_view("s-1", "STOPPED")]

    def resume(_body: Any, _query: Any) -> tuple[int, Any]:
        api.sessions[0]["status"] = "PROVISIONING"
        return 202, {"sessionId": "s-1", "status": "PROVISIONING"}

    api.answers[("POST", "/sessions/s-1/start")] = resume
    _open(tab)
    tab.get_by_test_id("resume").click()
    announcer = tab.locator("#announcer")
    expect(announcer).to_have_text("Your desktop is starting again.")
    desktop_link = tab.get_by_test_id("desktop-row").locator("a").first
    desktop_link.click()
    expect(tab.get_by_test_id("waiting-screen")).to_be_visible()
    expect(announcer).to_have_text("")

    # An announcement still on its way when the person leaves is not read on the next page.
    api.sessions[0]["status"] = "STOPPED"
    tab.get_by_role("link", name="My desktops").first.click()
    tab.get_by_test_id("resume").click()
    desktop_link.click()
    expect(tab.get_by_test_id("waiting-screen")).to_be_visible()
    tab.wait_for_timeout(300)  # longer than the announcer's delay
    expect(announcer).to_have_text("")


def test_an_unreachable_api_shows_one_banner_and_the_card_offers_no_connect(
    tab: Page, api: FakeApi
) -> None:
    api.sessions = [session_view("s-1", "READY")]
    _open(tab, "#/sessions/s-1")
    expect(tab.get_by_test_id("connect-link")).to_be_visible()
    expect(tab.get_by_test_id("connect-unavailable")).to_be_hidden()

    api.reachable = False
    tab.evaluate(POLL_NOW)
    banners = tab.get_by_role("alert").filter(has_text="Cannot reach")
    expect(banners).to_have_count(1)
    expect(tab.get_by_test_id("connect-link")).to_be_hidden()
    expect(tab.get_by_test_id("connect-unavailable")).to_be_visible()

    api.reachable = True
    tab.evaluate(POLL_NOW)
    expect(banners).to_have_count(0)
    expect(tab.get_by_test_id("connect-link")).to_be_visible()
    expect(tab.get_by_test_id("connect-unavailable")).to_be_hidden()


def test_my_desktops_unreachable_from_the_start_shows_one_banner(tab: Page, api: FakeApi) -> None:
    api.sessions = [session_view("s-1", "READY")]
    api.options["maxActiveSessions"] = 2  # room for another: the form opens once it can
    api.reachable = False
    _open(tab)
    banners = tab.get_by_role("alert").filter(has_text="Cannot reach")
    expect(banners).to_have_count(1)
    tab.wait_for_timeout(500)  # both the form and the list have given up by now
    expect(banners).to_have_count(1)

    api.reachable = True
    tab.evaluate(POLL_NOW)
    row = tab.get_by_test_id("desktop-row")
    expect(row.get_by_test_id("connect")).to_be_visible()
    expect(banners).to_have_count(0)
    # the form retries by itself once the API answers again
    expect(tab.get_by_test_id("new-submit")).to_be_enabled(timeout=15_000)

    api.reachable = False
    tab.evaluate(POLL_NOW)
    expect(banners).to_have_count(1)
    expect(row.get_by_test_id("connect")).to_be_hidden()


def test_at_the_limit_the_start_form_is_disabled_names_the_desktop_and_offers_it(
    tab: Page, api: FakeApi
) -> None:
    api.sessions = [session_view("s-1", "READY", name="My render box")]
    _open(tab)
    limit = tab.get_by_test_id("limit-message")
    expect(limit).to_contain_text(
        'You already have 1 active desktop, the most allowed: "My render box".'
    )
    expect(tab.get_by_test_id("new-submit")).to_be_disabled()
    expect(limit.get_by_role("link", name="Open it")).to_have_attribute("href", "#/sessions/s-1")

    # Once it is stopped, the form is open again.
    api.sessions[0]["status"] = "STOPPED"
    tab.evaluate(POLL_NOW)
    expect(limit).to_be_hidden()
    expect(tab.get_by_test_id("new-submit")).to_be_enabled()


def test_a_409_at_the_limit_is_said_in_the_portals_words_never_the_apis(
    tab: Page, api: FakeApi
) -> None:
    def refuse(_body: Any, _query: Any) -> tuple[int, Any]:
        return 409, {
            "message": "at most 1 active session(s) per user",
            "limit": 1,
            "active": [{"sessionId": "s-9", "name": "Started elsewhere", "status": "PROVISIONING"}],
        }

    api.answers[("POST", "/sessions")] = refuse
    _open(tab)
    expect(tab.get_by_test_id("new-submit")).to_be_enabled()
    tab.get_by_test_id("new-submit").click()
    limit = tab.get_by_test_id("limit-message")
    expect(limit).to_contain_text('the most allowed: "Started elsewhere"')
    expect(limit.get_by_role("link", name="Open it")).to_have_attribute("href", "#/sessions/s-9")
    expect(tab.locator("main")).not_to_contain_text("session(s)")


# ---------------------------------------------------------------- profiles, names, cancel, hide


def test_new_desktop_offers_the_callers_profiles_and_says_what_stopping_does(
    tab: Page, api: FakeApi
) -> None:
    _open(tab)
    workstation = tab.get_by_test_id("profile-linux-workstation")
    session = tab.get_by_test_id("profile-linux-session")
    expect(workstation).to_contain_text("Linux workstation")
    expect(workstation).to_contain_text("A GPU desktop of your own for 3D work.")
    expect(workstation.get_by_test_id("profile-when-stopped")).to_have_text(
        "When you stop it: Your files are kept: start it again and carry on where you left off."
    )
    expect(session.get_by_test_id("profile-when-stopped")).to_have_text(
        "When you stop it: It ends when you stop it; nothing is kept."
    )
    types = tab.get_by_test_id("new-instance-type").locator("option")
    expect(types).to_have_text(["g4dn.xlarge", "g5.xlarge"])  # the first profile's

    session.click()
    expect(types).to_have_text(["g4dn.xlarge"])
    tab.get_by_test_id("new-name").fill("  Quick job ")
    tab.get_by_test_id("new-submit").click()
    tab.wait_for_url(f"{ORIGIN}/#/sessions/s-1")
    posted = [body for method, path, body in api.calls if (method, path) == ("POST", "/sessions")]
    assert posted == [
        {"profile": "linux-session", "instanceType": "g4dn.xlarge", "name": "Quick job"}
    ]
    expect(tab.get_by_test_id("desktop-name")).to_have_text("Quick job")


def test_desktops_show_their_names_and_the_owner_can_rename_one(tab: Page, api: FakeApi) -> None:
    api.sessions = [
        session_view("0a1b2c3d-4e5f-6789-abcd-ef0123456789", "STOPPED", name="Render box")
    ]
    _open(tab)
    row = tab.get_by_test_id("desktop-row")
    expect(row.get_by_test_id("desktop-name")).to_have_text("Render box")
    expect(tab.locator("main")).not_to_contain_text("0a1b2c3d")  # no id in place of the name
    expect(row.get_by_test_id("resume")).to_have_attribute("aria-label", 'Resume "Render box"')

    row.get_by_test_id("desktop-name").click()
    expect(tab).to_have_title("Render box · DCV Fleet")
    tab.get_by_test_id("rename").click()
    tab.get_by_test_id("rename-input").fill("   ")
    tab.get_by_test_id("rename-save").click()
    expect(tab.get_by_role("alert")).to_contain_text("Give the desktop a name")
    tab.get_by_test_id("rename-input").fill(" Physics sim ")
    tab.get_by_test_id("rename-save").click()
    expect(tab.get_by_test_id("desktop-name")).to_have_text("Physics sim")
    patched = [body for method, _path, body in api.calls if method == "PATCH"]
    assert patched == [{"name": "Physics sim"}]
    expect(tab.locator("nav.breadcrumb")).to_contain_text("Physics sim")


def test_a_desktop_still_starting_can_be_cancelled_after_a_confirmation(
    tab: Page, api: FakeApi
) -> None:
    api.sessions = [
        session_view("s-1", "PROVISIONING", progress={"credentials": "2026-12-07T09:00:02Z"})
    ]
    _open(tab, "#/sessions/s-1")
    waiting = tab.get_by_test_id("waiting-screen")
    expect(waiting).to_be_visible()

    waiting.get_by_test_id("cancel").click()
    dialog = tab.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text('Cancel "Linux workstation"?')
    expect(dialog).to_contain_text("nothing is kept")
    tab.get_by_test_id("confirm-cancel").click()  # "Keep starting"
    expect(dialog).to_be_hidden()
    assert not [call for call in api.calls if call[0] == "DELETE"]

    waiting.get_by_test_id("cancel").click()
    expect(tab.get_by_test_id("confirm-cancel")).to_have_text("Keep starting")
    tab.get_by_test_id("confirm-ok").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Your desktop is being cancelled")
    assert ("DELETE", "/sessions/s-1", None) in api.calls

    api.sessions[0].update(status="TERMINATED", statusReason="Cancelled by you.")
    tab.evaluate(POLL_NOW)
    expect(tab.get_by_test_id("status-panel")).to_contain_text("Cancelled by you.")
    # the slot is free: the form on My desktops is open
    tab.get_by_role("link", name="Start a new desktop").click()
    expect(tab.get_by_test_id("new-submit")).to_be_enabled()
    expect(tab.get_by_test_id("limit-message")).to_be_hidden()


def test_ended_and_failed_desktops_can_be_hidden_and_shown_again(tab: Page, api: FakeApi) -> None:
    api.sessions = [
        session_view("s-3", "READY"),
        session_view("s-2", "FAILED", name="Failed one"),
        session_view("s-1", "TERMINATED", name="Old one"),
    ]
    _open(tab)
    rows = tab.get_by_test_id("desktop-row")
    expect(rows).to_have_count(3)
    expect(tab.locator('[data-session-id="s-3"]').get_by_test_id("hide")).to_have_count(0)
    expect(tab.locator('[data-session-id="s-2"]').get_by_test_id("hide")).to_be_visible()

    tab.locator('[data-session-id="s-1"]').get_by_test_id("hide").click()
    expect(rows).to_have_count(2)
    assert ("PATCH", "/sessions/s-1", {"hidden": True}) in api.calls

    tab.get_by_test_id("show-hidden").check()
    hidden = tab.locator('[data-session-id="s-1"]')
    expect(hidden).to_contain_text("Hidden")
    hidden.get_by_test_id("unhide").click()
    expect(hidden).not_to_contain_text("Hidden")
    assert ("PATCH", "/sessions/s-1", {"hidden": False}) in api.calls


# ---------------------------------------------------------------- administrators


@pytest.fixture
def admin_tab(chromium: Any, api: FakeApi) -> Iterator[Page]:
    yield from signed_in_page(chromium, api, "boss", groups=("admins",))


def test_the_admin_view_keeps_the_apis_order_and_words_and_names_people(
    admin_tab: Page, api: FakeApi
) -> None:
    sub = "5f2c9a1e-0b7d-4c3e-9a8f-1d2e3f4a5b6c"
    owner = {"owner": sub, "ownerName": "demo"}
    api.admin_sessions = [  # newest first, as the API pages them
        session_view(
            "s-3", "PROVISIONING", name="Newest", createdAt="2026-12-07T10:00:00Z", **owner
        ),
        session_view(
            "s-2",
            "FAILED",
            name="Middle",
            createdAt="2026-12-07T09:30:00Z",
            statusReason="There was no GPU free to start it. Try again in a few minutes.",
            statusDetail="InsufficientInstanceCapacity in subnet-0abc (g5.xlarge)",
            **owner,
        ),
        session_view(
            "s-1",
            "TERMINATED",
            name="Oldest",
            createdAt="2026-12-07T11:00:00Z",  # out of order on purpose: the API's order wins
            statusReason="Deleted by demo",
            hidden=True,
            **owner,
        ),
    ]
    api.admin_instances = [
        {
            "instanceId": "i-0123456789abcdef0",
            "state": "running",
            "instanceType": "g5.12xlarge",
            "backend": "batch",
            "desktops": [
                {
                    "sessionId": "s-7",
                    "name": "Game test A",
                    "owner": sub,
                    "ownerName": "demo",
                    "status": "READY",
                },
                {
                    "sessionId": "s-8",
                    "name": "Game test B",
                    "owner": "x",
                    "ownerName": "ana",
                    "status": "PROVISIONING",
                },
            ],
        }
    ]
    api.audit = [
        {"at": "2026-12-07T10:05:00Z", "actor": "boss", "action": "terminate", "target": "s-1"},
        {
            "at": "2026-12-07T10:00:00Z",
            "actor": "boss",
            "action": "put-profile",
            "target": "linux-session",
        },
    ]
    _open(admin_tab, "#/admin", user="boss")
    admin_tab.wait_for_selector("[data-testid=admin-session-row]")
    names = admin_tab.get_by_test_id("admin-session-name")
    expect(names).to_have_text(["Newest", "Middle", "Oldest"])
    middle = admin_tab.locator('[data-testid=admin-session-row][data-session-id="s-2"]')
    expect(middle.get_by_test_id("admin-reason")).to_have_text(
        "There was no GPU free to start it. Try again in a few minutes."
    )
    expect(middle.get_by_test_id("admin-detail")).to_have_text(
        "InsufficientInstanceCapacity in subnet-0abc (g5.xlarge)"
    )
    expect(admin_tab.locator('[data-session-id="s-1"]')).to_contain_text("Deleted by demo")
    expect(admin_tab.locator('[data-session-id="s-1"]')).to_contain_text("Hidden by its owner")
    expect(admin_tab.get_by_test_id("admin-sessions")).to_contain_text("demo")
    expect(admin_tab.locator("main")).not_to_contain_text(sub)  # names, never subs

    desktops = admin_tab.get_by_test_id("instance-desktops").locator("li")
    expect(desktops).to_have_count(2)
    expect(desktops.first).to_contain_text("Game test A")
    expect(desktops.nth(1)).to_contain_text("ana")

    audit = admin_tab.get_by_test_id("admin-audit-row")
    expect(audit).to_have_count(2)
    expect(audit.first).to_contain_text("boss")
    expect(audit.first).to_contain_text("Deleted a desktop")
    expect(audit.nth(1)).to_contain_text("Saved a profile")

    profiles = admin_tab.get_by_test_id("admin-profile-row")
    expect(profiles).to_have_count(2)
    expect(profiles.first).to_contain_text("Linux workstation")
    expect(profiles.first).to_contain_text("Stopped after 60 min unused")
    expect(profiles.nth(1)).to_contain_text("Administrators")


def test_an_admin_edits_a_profile_and_deletes_one_administrators_defined(
    admin_tab: Page, api: FakeApi
) -> None:
    _open(admin_tab, "#/admin", user="boss")
    rows = admin_tab.get_by_test_id("admin-profile-row")
    expect(rows).to_have_count(2)
    template = admin_tab.locator('[data-profile-id="linux-workstation"]')
    expect(template.get_by_test_id("admin-profile-delete")).to_have_count(0)  # the template's

    template.get_by_test_id("admin-profile-edit").click()
    expect(admin_tab.get_by_test_id("profile-form-id")).to_have_value("linux-workstation")
    expect(admin_tab.get_by_test_id("profile-form-idleMinutes")).to_have_value("60")
    admin_tab.get_by_test_id("profile-form-name").fill("Big workstation")
    admin_tab.get_by_test_id("profile-form-instanceTypes").fill("g5.xlarge, g5.2xlarge")
    admin_tab.get_by_test_id("profile-form-maxSessionHours").fill("")
    admin_tab.get_by_test_id("profile-form-save").click()
    expect(template).to_contain_text("Big workstation")
    put = [body for method, path, body in api.calls if method == "PUT"]
    assert put == [
        {
            "name": "Big workstation",
            "description": "A GPU desktop of your own for 3D work. Stopping it keeps your files.",
            "backend": "ec2",
            "os": "linux",
            "instanceTypes": ["g5.xlarge", "g5.2xlarge"],
            "idle": {"timeoutSeconds": 3600, "action": "stop"},
            "maxSessionHours": None,
            "groups": [],
        }
    ]

    admin_tab.locator('[data-profile-id="linux-session"]').get_by_test_id(
        "admin-profile-delete"
    ).click()
    dialog = admin_tab.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text('Delete the profile "Linux session"?')
    admin_tab.get_by_test_id("confirm-ok").click()
    expect(admin_tab.locator('[data-profile-id="linux-session"]')).to_have_count(0)
    assert ("DELETE", "/admin/profiles/linux-session", None) in api.calls


def test_cancelling_a_resume_warns_that_the_disk_is_deleted(tab: Page, api: FakeApi) -> None:
    api.sessions = [
        session_view(
            "s-1",
            "PROVISIONING",
            createdAt="2026-12-01T08:00:00Z",
            progress={"credentials": "2026-12-07T09:00:02Z"},  # resumed today
        )
    ]
    _open(tab, "#/sessions/s-1")
    tab.get_by_test_id("waiting-screen").get_by_test_id("cancel").click()
    expect(tab.get_by_test_id("confirm-dialog")).to_contain_text("its disk is deleted")
    tab.keyboard.press("Escape")
    expect(tab.get_by_test_id("confirm-dialog")).to_be_hidden()
    assert not [call for call in api.calls if call[0] == "DELETE"]


def test_the_waiting_screen_says_how_it_starts_and_how_long_that_usually_takes(
    tab: Page, api: FakeApi
) -> None:
    asked = datetime.now(UTC) - timedelta(seconds=10)
    estimate = {"path": "launch", "seconds": 100, "upToSeconds": 150, "samples": 12}
    api.sessions = [
        session_view(
            "s-1",
            "PROVISIONING",
            createdAt=asked.isoformat().replace("+00:00", "Z"),
            progress={"credentials": asked.isoformat().replace("+00:00", "Z")},
            estimate=estimate,
        )
    ]
    _open(tab, "#/sessions/s-1")
    words = tab.get_by_test_id("waiting-estimate")
    expect(words).to_contain_text(
        "A new GPU machine is starting for you. This usually takes about 1 min 40 s"
        " (9 in 10 within 2 min 30 s, from the last 12 like it)."
    )
    expect(words).to_contain_text(re.compile(r"About 1 min [23]\d s left\.$"))
    # past the 90th percentile, it says so rather than counting below zero
    api.sessions[0]["createdAt"] = "2026-12-07T09:00:00Z"
    api.sessions[0]["progress"] = {"credentials": "2026-12-07T09:00:00Z"}
    tab.evaluate(POLL_NOW)
    expect(words).to_contain_text("It is taking longer than usual.")
    # a first desktop of its kind: how it starts, and no invented figure
    api.sessions[0]["estimate"] = {"path": "pool"}
    tab.evaluate(POLL_NOW)
    expect(words).to_have_text("A desktop was ready and waiting for you.")


def test_an_admin_sees_the_warm_pool_and_rolls_a_host_image_back(
    admin_tab: Page, api: FakeApi
) -> None:
    api.pool = {
        "items": [
            {
                "instanceId": "i-0000000000000000a",
                "profile": "linux-workstation",
                "state": "READY",
                "since": "2026-12-07T09:00:00Z",
                "instanceType": "g5.xlarge",
                "onDemandPerHour": 1.006,
                "runningSeconds": 3720.0,
                "stoppedSeconds": 0.0,
                "costUsd": 1.0508,
            },
            {
                "instanceId": "i-0000000000000000b",
                "profile": "linux-workstation",
                "state": "STOPPED",
                "since": "2026-12-07T09:01:00Z",
                "instanceType": "g5.xlarge",
                "onDemandPerHour": 1.006,
                "runningSeconds": 120.0,
                "stoppedSeconds": 3600.0,
                "costUsd": None,
            },
            {
                "instanceId": "i-0000000000000000c",
                "profile": "windows-cad",
                "state": "STOPPED",
                "since": "2026-12-07T09:02:00Z",
                "instanceType": "g4dn.xlarge",
                "onDemandPerHour": None,
                "runningSeconds": 600.0,
                "stoppedSeconds": 60.0,
                "costUsd": None,
            },
        ],
        "target": {"size": 2, "state": "running", "reason": "weekdays 08:00-18:00 Europe/Paris"},
        "targets": {
            "windows-cad": {"size": 1, "state": "hibernated", "reason": "base plan"},
            "linux-workstation": {
                "size": 2,
                "state": "running",
                "reason": "weekdays 08:00-18:00 Europe/Paris",
            },
        },
        "cost": {
            "totalUsd": None,
            "region": "us-east-1",
            "volumeGiB": 100,
            "volumePerHour": 0.010959,
            "pricesTakenAt": "2026-12-07",
        },
    }
    current = {
        "imageId": "ami-00000000000000002",
        "version": 3,
        "since": "2026-12-07T03:00:00Z",
        "baked": True,
        "withdrawn": False,
        "gone": False,
    }
    earlier = {**current, "imageId": "ami-00000000000000001", "version": 2}
    api.host_images = [{"os": "linux", "current": current, "builds": False, "history": [earlier]}]

    def roll_back(body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        api.host_images[0]["current"] = {**earlier, "version": 4}
        return 200, {"os": "linux", "imageId": earlier["imageId"], "withdrawn": current["imageId"]}

    def build(body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        return 409, {"message": "this fleet builds no linux host image: set AgentArtifactS3Uri"}

    api.answers[("POST", "/admin/host-images/linux/rollback")] = roll_back
    api.answers[("POST", "/admin/host-images/linux/build")] = build
    _open(admin_tab, "#/admin", user="boss")
    # each profile's pool, with what it aims at
    expect(admin_tab.get_by_test_id("admin-pool-target")).to_have_text(
        [
            "linux-workstation keeps 2 hosts running now (weekdays 08:00-18:00 Europe/Paris).",
            "windows-cad keeps 1 host waiting hibernated now (base plan).",
        ]
    )
    rows = admin_tab.get_by_test_id("admin-pool-row")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Ready: the next request takes it")
    expect(rows.nth(1)).to_contain_text("Waiting stopped: a request starts it")
    expect(rows.nth(2)).to_contain_text("windows-cad")
    # each host's cost so far; one the price table cannot price says so, never $0.00
    expect(rows.first).to_contain_text("$1.05")
    expect(rows.nth(1)).to_contain_text("price unknown")
    expect(admin_tab.get_by_test_id("admin-pool-cost")).to_have_text(
        "Cost so far, together: price unknown (each host at its type's list price in us-east-1,"
        " taken 2026-12-07)."
    )

    image = admin_tab.get_by_test_id("admin-host-image-row")
    expect(image).to_contain_text("ami-00000000000000002")
    expect(image).to_contain_text("baked host image")
    image.get_by_test_id("host-image-build").click()
    expect(admin_tab.get_by_test_id("admin-host-images")).to_be_visible()
    expect(admin_tab.get_by_text("this fleet builds no linux host image")).to_be_visible()
    image.get_by_test_id("host-image-rollback").click()
    expect(admin_tab.get_by_test_id("confirm-dialog")).to_contain_text(
        "Roll the Linux host image back?"
    )
    admin_tab.get_by_test_id("confirm-ok").click()
    expect(image).to_contain_text("ami-00000000000000001")
    assert ("POST", "/admin/host-images/linux/rollback", None) in api.calls
