"""Who this host is: config values first, EC2 instance metadata (IMDSv2) for what is missing."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .config import Config

IMDS_URL = "http://169.254.169.254"
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

    def _request(self, method: str, path: str, headers: dict[str, str]) -> str:
        request = urllib.request.Request(  # noqa: S310 (fixed http base URL)
            self.base_url + path, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return str(response.read().decode("utf-8")).strip()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise IdentityError(f"instance metadata has no {path}") from None
            raise IdentityError(f"instance metadata {method} {path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise IdentityError(f"instance metadata unreachable ({path}): {exc}") from None

    def get(self, path: str) -> str:
        if self._token is None:
            self._token = self._request(
                "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "300"}
            )
        return self._request(
            "GET", "/latest/meta-data/" + path, {"X-aws-ec2-metadata-token": self._token}
        )

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
