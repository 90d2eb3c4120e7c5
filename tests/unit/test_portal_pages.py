"""The portal's pages in headless Chromium against a fake API (tests/support/portal.py): what a
person sees on each page for a given state of their desktops, in seconds and without a stack.

The pages poll; a test that changes the fake's state makes the page poll again at once by firing
``visibilitychange`` (portal/js/poll.js runs its task when the page is shown)."""

from __future__ import annotations

from collections.abc import Iterator
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


def _open(tab: Page, hash_: str = "#/") -> None:
    tab.goto(f"{ORIGIN}/{hash_}")
    expect(tab.get_by_test_id("user-name")).to_have_text("alice")


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
