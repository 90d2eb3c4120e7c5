"""Who this host is: config values first, EC2 instance metadata (IMDSv2) for what is missing."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from .aws import AwsError, http_request
from .config import Config

IMDS_URL = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 (a path)
TOKEN_TTL = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 (a header name)
SESSION_TAG = "dcvfleet:session-id"
SECRET_TAG = "dcvfleet:secret-arn"  # noqa: S105 (a tag key, not a secret)


class IdentityError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    instance_id: str
    session_id: str
    secret_arn: str | None


class Imds:
    """Minimal IMDSv2 client: one session token, then GETs with short timeouts."""

    def __init__(self, base_url: str | None = None, timeout: float = 2.0) -> None:
        self.base_url = (base_url or IMDS_URL).rstrip("/")
        self.timeout = timeout
        self._token: str | None = None

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        try:
            status, body = http_request(self.base_url + path, method, headers, b"", self.timeout)
        except AwsError as exc:
            raise IdentityError(f"instance metadata unreachable ({path}): {exc}") from None
        if status == 404:
            raise IdentityError(f"instance metadata has no {path}")
        return status, body.decode("utf-8", "replace").strip()

    def _ok(self, method: str, path: str, status: int, text: str) -> str:
        if status != 200:
            raise IdentityError(f"instance metadata {method} {path}: HTTP {status}")
        return text

    def get(self, path: str) -> str:
        """GET a metadata path; a token that has expired (401) is renewed once."""
        for renew in (False, True):
            if self._token is None or renew:
                status, text = self._request("PUT", TOKEN_PATH, {TOKEN_TTL: "21600"})
                self._token = self._ok("PUT", TOKEN_PATH, status, text)
            status, text = self._request(
                "GET", "/latest/meta-data/" + path, {"X-aws-ec2-metadata-token": self._token}
            )
            if status != 401:
                break
        return self._ok("GET", "/latest/meta-data/" + path, status, text)

    def tag(self, key: str) -> str:
        try:
            return self.get("tags/instance/" + urllib.parse.quote(key, safe=":"))
        except IdentityError as exc:
            raise IdentityError(
                f"{exc}; tag '{key}' is missing or instance metadata tags are disabled"
            ) from None


def resolve_identity(config: Config, imds: Imds | None = None) -> Identity:
    """Config values win; IMDS is only contacted for values the config leaves out."""
    client = imds or Imds()
    instance_id = config.instance_id or client.get("instance-id")
    session_id = config.session_id or client.tag(SESSION_TAG)
    secret_arn = config.secret_arn
    if secret_arn is None and config.manage_user:
        secret_arn = client.tag(SECRET_TAG)
    for name, value in (("instance id", instance_id), ("session id", session_id)):
        if not value:
            raise IdentityError(f"instance metadata returned an empty {name}")
    return Identity(instance_id=instance_id, session_id=session_id, secret_arn=secret_arn)
