"""The portal tells a person, once, that their e-mail address was subscribed to their desktops'
notifications and must be confirmed (the ``notifications`` of POST /sessions' answer), through
``desktopRequester`` (portal/js/api.js, run in Node against a fake API)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

API_JS = Path(__file__).resolve().parents[2] / "portal" / "js" / "api.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

SCRIPT = """
globalThis.sessionStorage = { getItem: () => null, setItem() {}, removeItem() {} };
const { desktopRequester } = await import(process.env.API_JS);
const answers = [
  { sessionId: "s-1", status: "PROVISIONING",
    notifications: { email: "alice@example.com", message: "We sent a message to alice@example.com" } },
  { sessionId: "s-2", status: "PROVISIONING" },
];
const api = { post: async () => answers.shift() };
const requestDesktop = desktopRequester(api);
const seen = [];
seen.push(requestDesktop.takeNotice());
await requestDesktop({ backend: "ec2", os: "linux" });
seen.push(requestDesktop.takeNotice(), requestDesktop.takeNotice());
await requestDesktop({ backend: "ec2", os: "windows" });
seen.push(requestDesktop.takeNotice());
console.log(JSON.stringify(seen));
"""


def test_the_subscription_notice_is_shown_once_after_the_desktop_that_made_it() -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT],
        env={"API_JS": API_JS.as_uri(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [None, "We sent a message to alice@example.com", None, None]
