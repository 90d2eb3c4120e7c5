"""The portal in headless Chromium on the local stack, as people use it.

Each test signs in through the page (Cognito SRP against the emulated user pool), clicks what a
person clicks and checks what the page shows against what the API says. A screenshot of every page
is saved under ``test-output/portal`` (see ``tests/support/browser.py``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from local.client import Client
from tests.support.browser import SCREENSHOTS
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
#: The pages poll (my desktops every 5 s); the local stack shares two cores with the tests.
expect.set_options(timeout=20_000)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: Provisioning on the local stack takes seconds; the page polls every 2 s.
READY_TIMEOUT_MS = 60_000
STEPS = ("credentials", "capacity", "booted", "ready")
BOOT_SECONDS = 5
#: Each step's states in the only order the waiting screen may show them.
STEP_ORDER = ("pending", "active", "done")

#: Records every change of the waiting screen's steps, as the person saw them.
RECORD_STEPS = """
window.stepHistory = [];
setInterval(() => {
  const steps = [...document.querySelectorAll('[data-testid^="step-"]')];
  if (!steps.length) return;
  const seen = Object.fromEntries(
    steps.map((step) => [step.dataset.testid.slice(5), step.dataset.state]));
  const last = window.stepHistory.at(-1);
  if (!last || JSON.stringify(last) !== JSON.stringify(seen)) window.stepHistory.push(seen);
}, 50);
"""


#: The stored tokens with an ID token that expired a minute ago (same claims; the API would
#: refuse it, its signature no longer matches).
EXPIRED_TOKENS = """() => {
  const tokens = JSON.parse(sessionStorage.getItem("dcvfleet.tokens"));
  const [header, payload, signature] = tokens.idToken.split(".");
  const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
  claims.exp = Math.floor(Date.now() / 1000) - 60;
  const expired = btoa(JSON.stringify(claims)).replace(/=+$/, "");
  tokens.idToken = `${header}.${expired.replace(/\\+/g, "-").replace(/\\//g, "_")}.${signature}`;
  return tokens;
}"""


def _reload_with_an_expired_id_token(page: Page) -> str:
    """Reloads the page as if its ID token had expired meanwhile; that token. (Stored by the new
    page's first script: a write just before a reload can land after the new page has read.)"""
    tokens = page.evaluate(EXPIRED_TOKENS)
    stored = json.dumps(json.dumps(tokens))
    page.add_init_script(f"sessionStorage.setItem('dcvfleet.tokens', {stored});")
    page.reload()
    return str(tokens["idToken"])


class Person:
    """Someone with an account, a browser tab on the portal and (to check the page) the API."""

    def __init__(self, stack: Stack, page: Page, groups: tuple[str, ...] = ()) -> None:
        self.stack = stack
        self.page = page
        self.username = f"pb{uuid.uuid4().hex[:10]}"
        self.password = stack.create_user(self.username, groups)
        self.api = Client(stack.info)
        self.api.sign_in(self.username, self.password)
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        # Shown with a failing test's output: what the page met on the way.
        page.on("console", lambda message: print(f"console {message.type}: {message.text}"))
        page.on("requestfailed", lambda r: print(f"failed: {r.method} {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and print(f"HTTP {r.status}: {r.url}"))

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    def open(self) -> None:
        self.page.goto(self.stack.info["portal_url"])
        expect(self.page.get_by_test_id("signin-form")).to_be_visible()

    def sign_in(self) -> None:
        self.open()
        self.page.get_by_test_id("signin-username").fill(self.username)
        self.page.get_by_test_id("signin-password").fill(self.password)
        self.page.get_by_test_id("signin-submit").click()
        expect(self.page.get_by_test_id("user-name")).to_have_text(self.username)

    def start_desktop(self, profile: str = "linux-workstation") -> str:
        """Chooses a profile on the New desktop form, presses Start; the new desktop's id."""
        # enabled once the choices came from GET /profiles and GET /options
        expect(self.page.get_by_test_id("new-submit")).to_be_enabled()
        self.page.get_by_test_id(f"profile-{profile}").click()
        self.page.get_by_test_id("new-submit").click()
        return self.session_id_from_url()

    def session_id_from_url(self) -> str:
        self.page.wait_for_url(re.compile(r"#/sessions/[^/]+$"))
        return self.page.url.rsplit("/", 1)[1]

    def session(self, session_id: str) -> dict[str, Any]:
        answer = self.api.call("GET", f"/sessions/{session_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def confirm(self, expected_title: str) -> None:
        dialog = self.page.get_by_test_id("confirm-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(expected_title)
        self.page.get_by_test_id("confirm-ok").click()
        expect(dialog).to_be_hidden()

    def outside_origins(self) -> set[str]:
        """Origins the page loaded anything from other than the portal, the API and Cognito."""
        info = self.stack.info
        allowed = {
            _origin(info["portal_url"]),
            _origin(info["api_url"]),
            _origin(info["aws_endpoint_url"]),  # the emulated Cognito endpoint
        }
        return {_origin(url) for url in self.requests if not url.startswith("data:")} - allowed

    def assert_fits_the_screen(self) -> None:
        """Nothing wider than the viewport: no sideways scrolling on a phone."""
        widths = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A tab in a context of its own (no cookies or storage from another test)."""
    context = browser.new_context(**context_options)
    context.add_init_script(RECORD_STEPS)
    page = context.new_page()
    page.set_default_timeout(30_000)
    thrown: list[str] = []
    page.on("pageerror", lambda error: thrown.append(str(error)))
    yield page
    context.close()
    assert not thrown, f"the page threw: {thrown}"


@pytest.fixture
def tab(chromium: Browser) -> Iterator[Page]:
    yield from _page(chromium, viewport=DESKTOP)


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    yield from _page(
        chromium, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )


@pytest.fixture
def slow_boot(stack: Stack) -> Iterator[None]:
    """Hosts that take a few seconds to boot, as real ones take minutes: long enough for the
    waiting screen (polling every 2 s) to show the steps done so far while the host boots, well
    within the test stack's HostReadyTimeoutSeconds (20 s)."""
    assert stack.control("POST", "/boot-delay", {"seconds": BOOT_SECONDS}).status_code == 200
    yield
    assert stack.control("POST", "/boot-delay", {"seconds": 0}).status_code == 200


def _check_step_history(history: list[dict[str, str]]) -> None:
    """Each step moved forward only (waiting, in progress, done), none failed, and the screen
    showed the steps one by one, not one jump from nothing to everything. (At READY the page
    turns into the ready banner, so the last step is never seen "done" on the waiting screen.)"""
    assert history, "the waiting screen never showed its steps"
    for step in STEPS:
        states = [seen[step] for seen in history]
        assert "failed" not in states, history
        ranks = [STEP_ORDER.index(state) for state in states]
        assert ranks == sorted(ranks), f"{step} went backwards: {states}"
    assert history[0]["ready"] == "pending", history
    done_counts = [list(seen.values()).count("done") for seen in history]
    assert done_counts == sorted(done_counts), history
    assert len({count for count in done_counts if count < len(STEPS)}) >= 2, (
        f"no step-by-step progress was shown: {history}"
    )
    assert all(list(seen.values()).count("active") <= 1 for seen in history), history


@pytest.mark.usefixtures("slow_boot")
def test_sign_in_start_watch_it_come_up_connect_and_stop(stack: Stack, tab: Page) -> None:
    person = Person(stack, tab)
    person.open()
    person.shot("01-sign-in")
    person.sign_in()
    expect(tab.get_by_test_id("admin-link")).to_be_hidden()  # not an administrator
    expect(tab.get_by_test_id("new-submit")).to_be_enabled()
    person.shot("02-my-desktops-empty")

    session_id = person.start_desktop()
    expect(tab.get_by_test_id("waiting-screen")).to_be_visible()
    expect(tab.get_by_test_id("waiting-screen")).to_contain_text("DCV Fleet")  # brand.json
    expect(tab.get_by_test_id("step-booted")).to_have_attribute("data-state", "active")
    expect(tab.get_by_test_id("step-capacity")).to_have_attribute("data-state", "done")
    person.shot("03-waiting-screen")

    expect(tab.get_by_test_id("ready-banner")).to_be_visible(timeout=READY_TIMEOUT_MS)
    person.shot("04-desktop-ready")
    _check_step_history(tab.evaluate("window.stepHistory"))

    ready = person.session(session_id)
    assert ready["status"] == "READY"
    link = tab.get_by_test_id("connect-link")
    expect(link).to_have_attribute("href", ready["connectionUrl"])
    expect(link).to_have_attribute("target", "_blank")

    # The credentials: the password is masked until the person reveals it.
    secret = person.api.call("GET", f"/sessions/{session_id}/credentials").json()
    tab.get_by_test_id("show-credentials").click()
    expect(tab.get_by_test_id("credential-username")).to_have_text(secret["username"])
    assert secret["password"] not in tab.get_by_test_id("credential-password").inner_text()
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab.get_by_test_id("copy-password").click()
    assert tab.evaluate("navigator.clipboard.readText()") == secret["password"]
    tab.get_by_test_id("copy-username").click()
    assert tab.evaluate("navigator.clipboard.readText()") == secret["username"]
    tab.get_by_test_id("reveal-password").click()
    expect(tab.get_by_test_id("credential-password")).to_have_text(secret["password"])
    person.shot("05-credentials-revealed")

    tab.get_by_test_id("stop").click()
    person.confirm("Stop")
    expect(tab.get_by_role("heading", level=1)).to_contain_text("stop", timeout=READY_TIMEOUT_MS)
    stack.wait_for(person.api, session_id, ("STOPPED",), timeout=60)

    # My desktops follows the desktop live, without a reload.
    tab.get_by_role("link", name="My desktops").first.click()
    row = tab.locator(f'[data-testid=desktop-row][data-session-id="{session_id}"]')
    expect(row).to_have_attribute("data-status", "STOPPED")
    person.shot("06-my-desktops-stopped")

    # Resume: the same instance (the same disk) comes back, followed live in the list.
    row.get_by_test_id("resume").click()
    expect(row).to_have_attribute("data-status", "PROVISIONING")
    expect(row).to_have_attribute("data-status", "READY", timeout=READY_TIMEOUT_MS)
    assert person.session(session_id)["instanceId"] == ready["instanceId"]
    person.shot("06b-my-desktops-resumed")

    assert not person.outside_origins(), person.outside_origins()


def test_my_desktops_follow_changes_live_and_delete_asks_first(stack: Stack, tab: Page) -> None:
    person = Person(stack, tab)
    person.sign_in()
    # A desktop started elsewhere (another tab, the CLI) appears without a reload.
    answer = person.api.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert answer.status_code == 202, answer.text
    session_id = answer.json()["sessionId"]
    row = tab.locator(f'[data-testid=desktop-row][data-session-id="{session_id}"]')
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-status", "READY", timeout=READY_TIMEOUT_MS)
    expect(row.get_by_test_id("connect")).to_be_visible()

    # Cancelling the confirmation changes nothing.
    row.get_by_test_id("delete").click()
    tab.get_by_test_id("confirm-cancel").click()
    expect(tab.get_by_test_id("confirm-dialog")).to_be_hidden()
    time.sleep(1)
    assert person.session(session_id)["status"] == "READY"

    row.get_by_test_id("delete").click()
    person.confirm("Delete")
    stack.wait_for(person.api, session_id, ("TERMINATED",), timeout=60)
    expect(row).to_have_attribute("data-status", "TERMINATED", timeout=15_000)
    expect(row.get_by_test_id("delete")).to_have_count(0)
    person.shot("07-my-desktops-deleted")


def test_a_failed_desktop_says_why_and_try_again_starts_it_anew(stack: Stack, tab: Page) -> None:
    person = Person(stack, tab)
    person.sign_in()
    stack.faults(noCapacity=["*"])
    try:
        failed_id = person.start_desktop()
        expect(tab.get_by_test_id("retry")).to_be_visible(timeout=READY_TIMEOUT_MS)
    finally:
        stack.faults()
    failed = person.session(failed_id)
    assert failed["status"] == "FAILED"
    expect(tab.get_by_test_id("step-capacity")).to_have_attribute("data-state", "failed")
    expect(tab.get_by_test_id("step-credentials")).to_have_attribute("data-state", "done")
    expect(tab.get_by_test_id("waiting-screen")).to_contain_text(failed["statusReason"])
    person.shot("08-waiting-screen-failed")

    tab.get_by_test_id("retry").click()
    tab.wait_for_url(lambda url: not url.endswith(failed_id))
    retried_id = person.session_id_from_url()
    expect(tab.get_by_test_id("ready-banner")).to_be_visible(timeout=READY_TIMEOUT_MS)
    assert person.session(retried_id)["instanceType"] == failed["instanceType"]


def test_an_administrator_sees_the_fleet_filters_it_and_stops_a_desktop(
    stack: Stack, tab: Page
) -> None:
    owner_name = f"owner{uuid.uuid4().hex[:8]}"
    owner = stack.new_user(owner_name)
    answer = owner.call("POST", "/sessions", {"backend": "ec2", "os": "linux"})
    assert answer.status_code == 202, answer.text
    session_id = answer.json()["sessionId"]
    ready = stack.wait_for(owner, session_id, ("READY",), timeout=60)

    admin = Person(stack, tab, groups=("admins",))
    admin.sign_in()
    tab.get_by_test_id("admin-link").click()
    sessions = tab.get_by_test_id("admin-sessions")
    expect(sessions).to_be_visible()
    tab.get_by_test_id("admin-status-filter").select_option("READY")
    tab.get_by_test_id("admin-user-filter").fill(owner_name)
    tab.get_by_test_id("admin-user-filter").press("Enter")
    row = tab.locator(f'[data-testid=admin-session-row][data-session-id="{session_id}"]')
    expect(row).to_have_attribute("data-status", "READY")
    expect(tab.get_by_test_id("admin-session-row")).to_have_count(1)

    tab.get_by_test_id("admin-state-filter").select_option("running")
    instance = tab.locator(
        f'[data-testid=admin-instance-row][data-instance-id="{ready["instanceId"]}"]'
    )
    expect(instance).to_have_attribute("data-state", "running")
    tab.get_by_test_id("admin-instance-user-filter").fill(owner_name)
    tab.get_by_test_id("admin-instance-user-filter").press("Enter")
    expect(tab.get_by_test_id("admin-instance-row")).to_have_count(1)
    expect(instance).to_have_attribute("data-state", "running")
    admin.shot("09-admin-fleet")

    row.get_by_test_id("admin-stop").click()
    admin.confirm("Stop")
    expect(row).to_have_attribute("data-status", "STOPPING")
    stopped = stack.wait_for(owner, session_id, ("STOPPED",), timeout=60)
    assert stopped["statusReason"] == "Stopped by an administrator."

    # Seen again: the reason from the admin's side, the owner by name, the stop in the audit trail.
    tab.reload()
    tab.get_by_test_id("admin-user-filter").fill(owner_name)
    tab.get_by_test_id("admin-user-filter").press("Enter")
    expect(row).to_have_attribute("data-status", "STOPPED")
    as_admin = admin.api.call("GET", f"/admin/sessions?user={owner_name}").json()["sessions"]
    seen = next(s for s in as_admin if s["sessionId"] == session_id)
    reason = seen["statusReason"]
    assert reason == f"Stopped by an administrator ({admin.username})", reason
    expect(row.get_by_test_id("admin-reason")).to_have_text(reason)
    assert seen["ownerName"] == owner_name, seen
    expect(row).to_contain_text(owner_name)
    expect(tab.get_by_test_id("admin-sessions")).not_to_contain_text(seen["owner"])  # no sub
    audit = tab.locator("[data-testid=admin-audit-row][data-action=stop]").filter(
        has_text=session_id
    )
    expect(audit).to_contain_text(admin.username)
    admin.shot("10-admin-stopped")


def test_the_admin_list_is_newest_first_as_the_api_pages_it(stack: Stack, tab: Page) -> None:
    admin = Person(stack, tab, groups=("admins",))
    for _ in range(2):  # at least two desktops, a moment apart
        owner = stack.new_user()
        answer = owner.call("POST", "/sessions", {"profile": "linux-workstation"})
        assert answer.status_code == 202, answer.text
        time.sleep(1.1)
    admin.sign_in()
    tab.get_by_test_id("admin-link").click()
    rows = tab.get_by_test_id("admin-session-row")
    expect(rows.first).to_be_visible()
    page = admin.api.call("GET", "/admin/sessions").json()["sessions"]
    created = [session["createdAt"] for session in page]
    assert created == sorted(created, reverse=True), created
    shown = rows.evaluate_all("rows => rows.map((row) => row.dataset.sessionId)")
    assert shown == [session["sessionId"] for session in page][: len(shown)]
    expect(tab.get_by_test_id("admin-session-name").first).to_have_text(page[0]["name"])


@pytest.mark.usefixtures("slow_boot")
def test_profiles_on_the_form_cancel_while_starting_and_the_limit(stack: Stack, tab: Page) -> None:
    person = Person(stack, tab)
    person.sign_in()
    profiles = person.api.call("GET", "/profiles").json()["items"]
    assert profiles
    for profile in profiles:
        card = tab.get_by_test_id(f"profile-{profile['id']}")
        expect(card).to_contain_text(profile["name"])
        expect(card).to_contain_text(profile["description"])
        expect(card.get_by_test_id("profile-when-stopped")).to_have_text(
            f"When you stop it: {profile['whenStopped']}"
        )
    person.shot("13-new-desktop-profiles")

    # Cancelled while its host boots: it ends, and says so.
    tab.get_by_test_id("new-name").fill("Cancel me")
    cancelled_id = person.start_desktop()
    waiting = tab.get_by_test_id("waiting-screen")
    expect(waiting).to_contain_text("Cancel me")
    expect(tab.get_by_test_id("step-booted")).to_have_attribute("data-state", "active")
    waiting.get_by_test_id("cancel").click()
    person.confirm("Cancel")
    ended = stack.wait_for(person.api, cancelled_id, ("TERMINATED",), timeout=60)
    assert ended["statusReason"] == "Cancelled by you.", ended
    expect(tab.get_by_test_id("status-panel")).to_contain_text("Cancelled by you.")
    person.shot("14-desktop-cancelled")

    # The slot is free: another one starts; then the form is closed at the limit and says why.
    tab.get_by_role("link", name="Start a new desktop").click()
    kept_id = person.start_desktop()
    tab.get_by_role("link", name="My desktops").first.click()
    limit = tab.get_by_test_id("limit-message")
    name = person.session(kept_id)["name"]
    expect(limit).to_contain_text(f'You already have 1 active desktop, the most allowed: "{name}".')
    expect(limit.get_by_role("link", name="Open it")).to_have_attribute(
        "href", f"#/sessions/{kept_id}"
    )
    expect(tab.get_by_test_id("new-submit")).to_be_disabled()
    person.shot("15-my-desktops-at-the-limit")
    refused = person.api.call("POST", "/sessions", {"profile": "linux-workstation"})
    assert refused.status_code == 409, refused.text
    assert [desktop["sessionId"] for desktop in refused.json()["active"]] == [kept_id]


def test_people_who_are_not_administrators_are_told_so(stack: Stack, tab: Page) -> None:
    person = Person(stack, tab)
    person.sign_in()
    tab.goto(f"{stack.info['portal_url']}#/admin")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Administrators only")
    expect(tab.get_by_test_id("admin-sessions")).to_have_count(0)


def test_sign_out_and_an_expired_session(stack: Stack, tab: Page) -> None:
    person = Person(stack, tab)
    person.sign_in()
    tab.get_by_test_id("signout").click()
    expect(tab.get_by_test_id("signin-form")).to_be_visible()
    assert tab.evaluate("sessionStorage.length") == 0
    tab.reload()
    expect(tab.get_by_test_id("signin-form")).to_be_visible()  # no way back without signing in

    # Signed in again; then the ID token runs out and Cognito refuses the refresh (signed out
    # everywhere): the portal asks to sign in again, and says why.
    person.sign_in()
    stack.client("cognito-idp").admin_user_global_sign_out(
        UserPoolId=stack.info["user_pool_id"], Username=person.username
    )
    _reload_with_an_expired_id_token(tab)
    expect(tab.get_by_test_id("session-expired")).to_be_visible()
    expect(tab.get_by_test_id("signin-form")).to_be_visible()
    person.shot("11-session-expired")


def test_an_expired_id_token_is_refreshed_without_the_person_noticing(
    stack: Stack, tab: Page
) -> None:
    person = Person(stack, tab)
    person.sign_in()
    expired = _reload_with_an_expired_id_token(tab)
    tab.wait_for_function(
        "expired => JSON.parse(sessionStorage.getItem('dcvfleet.tokens'))?.idToken !== expired",
        arg=expired,
    )
    stored = tab.evaluate("JSON.parse(sessionStorage.getItem('dcvfleet.tokens')).idToken")
    assert stored.count(".") == 2, "the expired token was replaced by something else"
    expect(tab.get_by_test_id("new-submit")).to_be_enabled()
    expect(tab.get_by_test_id("user-name")).to_have_text(person.username)
    expect(tab.get_by_test_id("session-expired")).to_have_count(0)


def test_keyboard_alone(stack: Stack, tab: Page) -> None:
    """Sign in, start a desktop, reach Connect and stop it with the keyboard only."""
    person = Person(stack, tab)
    person.open()
    keys = tab.keyboard
    # The sign-in view puts the focus in its first field.
    assert tab.evaluate("document.activeElement.dataset.testid") == "signin-username"
    keys.type(person.username)
    keys.press("Tab")
    keys.type(person.password)
    keys.press("Enter")
    expect(tab.get_by_test_id("user-name")).to_have_text(person.username)
    expect(tab.get_by_test_id("new-submit")).to_be_enabled()

    _tab_to(tab, "new-submit")
    keys.press("Enter")
    session_id = person.session_id_from_url()
    expect(tab.get_by_test_id("ready-banner")).to_be_visible(timeout=READY_TIMEOUT_MS)

    _tab_to(tab, "connect-link")
    outline = tab.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused link shows no focus ring"
    person.shot("12-keyboard-focus-on-connect")

    _tab_to(tab, "stop")
    keys.press("Enter")
    expect(tab.get_by_test_id("confirm-dialog")).to_be_visible()
    keys.press("Escape")  # Escape cancels
    expect(tab.get_by_test_id("confirm-dialog")).to_be_hidden()
    assert person.session(session_id)["status"] == "READY"

    _tab_to(tab, "stop")
    keys.press("Enter")
    expect(tab.get_by_test_id("confirm-dialog")).to_be_visible()
    _tab_to(tab, "confirm-ok")
    keys.press("Enter")
    stack.wait_for(person.api, session_id, ("STOPPING", "STOPPED"), timeout=30)


def _tab_to(page: Page, testid: str, limit: int = 40) -> None:
    """Presses Tab until the element with ``testid`` has the focus."""
    for _ in range(limit):
        if page.evaluate("document.activeElement?.dataset?.testid") == testid:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{limit} presses of Tab never reached {testid}")


def test_a_phone_sized_screen(stack: Stack, phone: Page) -> None:
    admin = Person(stack, phone, groups=("admins",))
    admin.open()
    admin.assert_fits_the_screen()
    admin.shot("phone-01-sign-in")
    admin.sign_in()
    admin.assert_fits_the_screen()
    admin.shot("phone-02-my-desktops")

    session_id = admin.start_desktop()
    expect(phone.get_by_test_id("waiting-screen")).to_be_visible()
    admin.assert_fits_the_screen()
    admin.shot("phone-03-waiting-screen")
    expect(phone.get_by_test_id("ready-banner")).to_be_visible(timeout=READY_TIMEOUT_MS)
    phone.get_by_test_id("show-credentials").tap()
    expect(phone.get_by_test_id("credential-username")).to_be_visible()
    admin.assert_fits_the_screen()
    admin.shot("phone-04-desktop-ready")

    phone.get_by_role("link", name="My desktops").first.tap()
    row = phone.locator(f'[data-testid=desktop-row][data-session-id="{session_id}"]')
    expect(row).to_have_attribute("data-status", "READY")
    admin.assert_fits_the_screen()
    admin.shot("phone-05-my-desktops-ready")

    phone.get_by_test_id("admin-link").tap()
    expect(phone.locator("[data-testid=admin-session-row]").first).to_be_visible()
    admin.assert_fits_the_screen()
    admin.shot("phone-06-admin")
