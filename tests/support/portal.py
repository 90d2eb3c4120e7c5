"""The portal in headless Chromium against a fake of its API, for tests that take seconds.

The portal's files are served from ``portal/`` by ``page.route`` (never by the network) at
``ORIGIN``, with a ``config.json`` whose API is ``ORIGIN/api`` (same origin: no CORS), and the
person is "signed in" with tokens the page reads from ``sessionStorage`` (an unsigned ID token:
the portal only reads its claims; the API, here ``FakeApi``, is what checks them). ``FakeApi``
answers as the API contract says and records every call; ``reachable = False`` makes every call
fail as if the network were down.
"""

from __future__ import annotations

import base64
import copy
import json
import mimetypes
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PORTAL = Path(__file__).resolve().parents[2] / "portal"
#: https, for the secure context WebCrypto and crypto.randomUUID() need.
ORIGIN = "https://portal.test"
CONFIG = {
    "apiUrl": f"{ORIGIN}/api",
    "region": "eu-west-1",
    "userPoolId": "eu-west-1_Fake12345",
    "userPoolClientId": "fakeclient",
    "cognitoEndpoint": "https://cognito.test/",
}
ACTIVE = frozenset({"PROVISIONING", "READY", "STOPPING", "TERMINATING"})

LINUX_WORKSTATION: dict[str, Any] = {
    "id": "linux-workstation",
    "name": "Linux workstation",
    "description": "A GPU desktop of your own for 3D work. Stopping it keeps your files.",
    "backend": "ec2",
    "os": "linux",
    "instanceTypes": ["g4dn.xlarge", "g5.xlarge"],
    "idle": {"timeoutSeconds": 3600, "action": "stop"},
    "maxSessionHours": 12,
    "groups": [],
    "keepsFiles": True,
    "whenStopped": "Your files are kept: start it again and carry on where you left off.",
    "source": "template",
}
LINUX_SESSION: dict[str, Any] = {
    "id": "linux-session",
    "name": "Linux session",
    "description": "A desktop in a container, for a quick job.",
    "backend": "batch",
    "os": "linux",
    "instanceTypes": ["g4dn.xlarge"],
    "idle": {"timeoutSeconds": 1800, "action": "terminate"},
    "maxSessionHours": None,
    "groups": [],
    "keepsFiles": False,
    "whenStopped": "It ends when you stop it; nothing is kept.",
    "source": "admin",
}


def fake_tokens(username: str, groups: tuple[str, ...] = ()) -> dict[str, str]:
    """Tokens as auth.js stores them, with an ID token that lasts an hour."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {
        "cognito:username": username,
        "cognito:groups": list(groups),
        "exp": int(time.time()) + 3600,
    }
    id_token = f"{part({'alg': 'none'})}.{part(claims)}.signature"
    return {"idToken": id_token, "accessToken": "access", "refreshToken": "refresh"}


def session_view(session_id: str, status: str, **extra: Any) -> dict[str, Any]:
    """A session as GET /sessions/{id} answers (a Linux workstation unless ``extra`` says)."""
    view: dict[str, Any] = {
        "sessionId": session_id,
        "status": status,
        "backend": "ec2",
        "os": "linux",
        "instanceType": "g4dn.xlarge",
        "createdAt": "2026-12-07T09:00:00Z",
        "updatedAt": "2026-12-07T09:00:00Z",
        "progress": {},
        "profile": "linux-workstation",
        "profileName": "Linux workstation",
        "name": "Linux workstation",
    }
    if status == "READY":
        view["connectionUrl"] = f"https://10.0.0.9:8443/#{session_id}"
        view["progress"] = {
            "credentials": "2026-12-07T09:00:02Z",
            "capacity": "2026-12-07T09:00:20Z",
            "booted": "2026-12-07T09:01:10Z",
            "ready": "2026-12-07T09:01:35Z",
        }
    view.update(extra)
    return view


Handler = Callable[[dict[str, Any] | None, dict[str, list[str]]], tuple[int, Any]]


@dataclass
class FakeApi:
    """The DCV Fleet API as the portal sees it; tests set its state and read ``calls``."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(
        default_factory=lambda: {
            "backends": ["ec2"],
            "os": {"ec2": ["linux"]},
            "instanceTypes": {"ec2": ["g4dn.xlarge", "g5.xlarge"]},
            "defaultInstanceTypes": {"linux": "g4dn.xlarge"},
            "maxActiveSessions": 1,
        }
    )
    profiles: list[dict[str, Any]] = field(
        default_factory=lambda: [copy.deepcopy(LINUX_WORKSTATION), copy.deepcopy(LINUX_SESSION)]
    )
    admin_sessions: list[dict[str, Any]] = field(default_factory=list)
    admin_instances: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: GET /admin/pool's answer, and GET /admin/host-images' items.
    pool: dict[str, Any] = field(default_factory=lambda: {"items": []})
    host_images: list[dict[str, Any]] = field(default_factory=list)
    reachable: bool = True
    #: (method, path) → handler(body, query) → (status, answer): overrides the defaults.
    answers: dict[tuple[str, str], Handler] = field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def find(self, session_id: str) -> dict[str, Any] | None:
        return next((s for s in self.sessions if s["sessionId"] == session_id), None)

    def handle(self, route: Any) -> None:
        request = route.request
        if not self.reachable:
            route.abort("internetdisconnected")
            return
        parts = urlsplit(request.url)
        path = parts.path.removeprefix("/api")
        query = parse_qs(parts.query)
        body = json.loads(request.post_data) if request.post_data else None
        self.calls.append((request.method, path, body))
        handler = self.answers.get((request.method, path))
        status, answer = (
            handler(body, query) if handler else self._default(request.method, path, body, query)
        )
        route.fulfill(
            status=status,
            content_type="application/json",
            body="" if answer is None else json.dumps(answer),
        )

    def _default(
        self, method: str, path: str, body: Any, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        if (method, path) == ("GET", "/options"):
            return 200, self.options
        if (method, path) == ("GET", "/profiles"):
            return 200, {"items": self.profiles}
        if (method, path) == ("POST", "/sessions"):
            return self._create(body)
        if (method, path) == ("GET", "/sessions"):
            hidden = query.get("hidden") == ["true"]
            return 200, {"sessions": [s for s in self.sessions if hidden or not s.get("hidden")]}
        if (method, path) == ("GET", "/admin/sessions"):
            return 200, {"sessions": self.admin_sessions}
        if (method, path) == ("GET", "/admin/instances"):
            return 200, {"instances": self.admin_instances}
        if (method, path) == ("GET", "/admin/audit"):
            return 200, {"items": self.audit}
        if (method, path) == ("GET", "/admin/profiles"):
            return 200, {"items": self.profiles}
        if (method, path) == ("GET", "/admin/pool"):
            return 200, self.pool
        if (method, path) == ("GET", "/admin/host-images"):
            return 200, {"items": self.host_images}
        if path.startswith("/admin/profiles/"):
            return self._profile(method, path.split("/")[3], body)
        if path.startswith("/sessions/"):
            session = self.find(path.split("/")[2])
            if session is None:
                return 404, {"message": "Not found"}
            if method == "GET":
                return 200, session
            if method == "PATCH":
                session.update(body)
                return 200, session
            if method == "DELETE" and session["status"] == "PROVISIONING":
                session.update(status="TERMINATING")
                return 202, {"sessionId": session["sessionId"], "status": "TERMINATING"}
        return 404, {"message": f"no fake answer for {method} {path}"}

    def _profile(self, method: str, profile_id: str, body: Any) -> tuple[int, Any]:
        """PUT / DELETE /admin/profiles/{id}, as the contract says (template ones stay)."""
        old = next((p for p in self.profiles if p["id"] == profile_id), None)
        if method == "PUT":
            profile = {**(old or {}), **body, "id": profile_id, "source": "admin"}
            self.profiles = [p for p in self.profiles if p["id"] != profile_id] + [profile]
            return 200, profile
        if old is None:
            return 404, {"message": "Not found"}
        if old["source"] == "template":
            return 409, {"message": "defined in the template's DesktopProfiles parameter"}
        self.profiles.remove(old)
        return 204, None

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        """POST /sessions {profile, instanceType?, name?}: a PROVISIONING desktop."""
        profile = next((p for p in self.profiles if p["id"] == body.get("profile")), None)
        if profile is None:
            return 400, {"message": f"profile: no profile '{body.get('profile')}' is open to you"}
        session_id = f"s-{len(self.sessions) + 1}"
        self.sessions.insert(
            0,
            session_view(
                session_id,
                "PROVISIONING",
                backend=profile["backend"],
                os=profile["os"],
                instanceType=body.get("instanceType") or profile["instanceTypes"][0],
                profile=profile["id"],
                profileName=profile["name"],
                name=body.get("name") or profile["name"],
            ),
        )
        return 202, {"sessionId": session_id, "status": "PROVISIONING"}


def serve(page: Any, api: FakeApi) -> None:
    """Routes the page's requests: the API to ``api``, config.json, the portal's files."""

    def portal(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path == "/config.json":
            route.fulfill(body=json.dumps(CONFIG), content_type="application/json")
            return
        file = (PORTAL / (path.lstrip("/") or "index.html")).resolve()
        if not file.is_relative_to(PORTAL) or not file.is_file():
            route.fulfill(status=404)
            return
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        route.fulfill(body=file.read_bytes(), content_type=content_type)

    page.route(f"{ORIGIN}/**", portal)
    page.route(f"{ORIGIN}/api/**", api.handle)  # the last route added is tried first


def signed_in_page(
    browser: Any, api: FakeApi, username: str = "alice", groups: tuple[str, ...] = ()
) -> Iterator[Any]:
    """A tab of its own, signed in as ``username``, serving the portal against ``api``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    stored = json.dumps(json.dumps(fake_tokens(username, groups)))
    context.add_init_script(f"sessionStorage.setItem('dcvfleet.tokens', {stored});")
    page = context.new_page()
    page.set_default_timeout(10_000)
    thrown: list[str] = []
    page.on("pageerror", lambda error: thrown.append(str(error)))
    serve(page, api)
    yield page
    context.close()
    assert not thrown, f"the page threw: {thrown}"
