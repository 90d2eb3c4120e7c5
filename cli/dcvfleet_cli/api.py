"""The DCV Fleet REST API over HTTPS, with the signed-in user's ID token.

Retries, with exponential back-off, only what is safe to send twice: an idempotent call (GET) or
one carrying an ``Idempotency-Key`` (the same key on every attempt), on a connection error, 429,
502, 503 or 504, and on a 409 saying the first request with that key is still in flight; any
other call only on 429 (API Gateway throttled it before it did anything).
A 401 refreshes the sign-in once and tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import requests

from dcvfleet_cli import __version__
from dcvfleet_cli.errors import EXPIRED, ApiError, CliError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: (connect, read) seconds.
TIMEOUT = (10.0, 30.0)


class TokenSource(Protocol):
    def id_token(self) -> str: ...

    def refresh(self) -> str: ...


class Api:
    def __init__(
        self,
        base_url: str,
        auth: TokenSource,
        *,
        session: requests.Session | None = None,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = f"dcvfleet-cli/{__version__}"
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The answer's JSON body; an ApiError for an error status."""
        idempotent = method in ("GET", "HEAD") or idempotency_key is not None
        headers = {"Authorization": self.auth.id_token(), "Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.attempts
            try:
                resp = self.http.request(
                    method,
                    self.base_url + path,
                    headers=headers,
                    json=body,
                    params=params,
                    timeout=TIMEOUT,
                )
            except requests.RequestException as exc:
                if idempotent and not last:
                    self.sleep(self._delay(attempt, None))
                    continue
                raise CliError(
                    f"cannot reach the DCV Fleet API at {self.base_url}: {_why(exc)}"
                ) from None
            if resp.status_code == 401 and not refreshed:
                refreshed = True
                headers["Authorization"] = self.auth.refresh()
                attempt -= 1
                continue
            if not last and _worth_retrying(resp, idempotent, idempotency_key is not None):
                self.sleep(self._delay(attempt, resp.headers.get("Retry-After")))
                continue
            return _result(resp)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 30.0)
            except ValueError:
                pass
        return float(min(self.backoff * 2 ** (attempt - 1), 8.0))

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.call("GET", path, params=params)

    def pages(self, path: str, key: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``nextToken``."""
        params = dict(params)
        seen: set[str] = set()
        while True:
            page = self.get(path, params)
            yield from page.get(key, [])
            token = page.get("nextToken")
            if not token or token in seen:
                return
            seen.add(token)
            params["nextToken"] = token


def _worth_retrying(resp: requests.Response, idempotent: bool, keyed: bool) -> bool:
    if resp.status_code in RETRY_STATUSES:
        return idempotent or resp.status_code == 429
    return keyed and _in_flight(resp)


def _in_flight(resp: requests.Response) -> bool:
    """A 409 for an Idempotency-Key whose first request is still being answered."""
    if resp.status_code != 409:
        return False
    try:
        message = resp.json().get("message", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(message, str) and message.startswith("Idempotency-Key:")


def _why(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _result(resp: requests.Response) -> Any:
    try:
        data: Any = resp.json() if resp.content else None
    except ValueError:
        data = None
    if 200 <= resp.status_code < 300:
        if resp.content and data is None:
            raise CliError(f"the API answered HTTP {resp.status_code} with something not JSON")
        return data
    if resp.status_code == 401:
        raise CliError(EXPIRED)
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str) or not message:
        message = f"the API answered HTTP {resp.status_code}"
    raise ApiError(resp.status_code, message, data)
