"""Headless Chromium for the portal's tests: Debian's ``chromium`` driven by Playwright.

``make browser`` installs it (``make test`` does too, and sets ``DCVFLEET_BROWSER_TESTS=required``,
so that a missing browser fails the run instead of skipping the tests). Playwright's own browser
download is never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Where the browser tests leave a screenshot of each page they see.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "portal"
#: The machine's network is closed: no background connections, no first-run, no GPU.
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium() -> None:
    """Skips the test without Debian's chromium, unless the run requires browser tests."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is not installed (make browser)"
    if os.environ.get("DCVFLEET_BROWSER_TESTS") == "required":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per test module; each test opens its own context (cookies, storage)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(ARGS))
        yield browser
        browser.close()
