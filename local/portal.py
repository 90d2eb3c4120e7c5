"""The portal on the local stack, standing in for its CloudFront distribution (gap CLOUDFRONT).

Serves ``portal/`` at ``portal_url`` with the ``config.json`` that ``dcvfleet.portal`` publishes
on AWS (here: the local API, the emulated user pool) and the distribution's security headers,
its Content-Security-Policy's ``connect-src`` naming the local API and emulator instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dcvfleet import portal
from local.http import LocalServer, Reply, json_reply

ASSETS = Path(__file__).resolve().parent.parent / "portal"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def local_policy(template_policy: str, connect: list[str]) -> str:
    """The template's Content-Security-Policy with ``connect-src`` allowing ``connect``."""
    directive = "connect-src 'self' " + " ".join(connect)
    return re.sub(r"connect-src [^;]*", directive, template_policy)


def template_policy(template: dict[str, Any]) -> str:
    """The Content-Security-Policy the template's PortalHeadersPolicy sends (unresolved)."""
    config = template["Resources"]["PortalHeadersPolicy"]["Properties"]
    value = config["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    policy = value["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    text = policy["Fn::Sub"] if isinstance(policy, dict) else policy
    return str(text)


class PortalServer(LocalServer):
    def __init__(
        self, config: dict[str, str], policy: str, assets: Path = ASSETS, port: int = 0
    ) -> None:
        self.assets = assets
        self.config_body = portal.config_document(config)
        self.files = portal.site_files(assets)
        self.headers = {
            "Content-Security-Policy": local_policy(
                policy, [_origin(config["apiUrl"]), _origin(config["cognitoEndpoint"])]
            ),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        }
        super().__init__(port=port)

    @property
    def url(self) -> str:
        return f"{self.address}/"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method not in ("GET", "HEAD"):
            return json_reply(405, {"message": "the portal is static"})
        key = urlsplit(path).path.lstrip("/") or "index.html"
        if key == portal.CONFIG_KEY:
            content = self.config_body
        elif key in self.files:
            content = self.files[key].read_bytes()  # read each time: edits show on reload
        else:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        return 200, {**self.headers, "Content-Type": portal.content_type(key)}, content
