"""The agent's AWS calls, with the standard library only: EventBridge PutEvents, SSM GetParameter
and Secrets Manager GetSecretValue, all three JSON 1.1 protocol, signed with Signature Version 4
over http.client. Credentials come from the environment, the container credentials endpoint (the
Batch/ECS task role) or the instance role through IMDSv2, and are refreshed before they expire.
The same IMDSv2 client tells the host who it is (identity.py).

Why not botocore: importing it and building one client costs the agent about 22 MB, twice the rest
of its footprint (`make bench-agent`); these three calls are all the agent makes.
tests/unit/test_agent_aws.py checks every signature against botocore's own signer."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

CONTENT_TYPE = "application/x-amz-json-1.1"
#: service -> X-Amz-Target prefix (the signing name is the service name for all three).
TARGETS = {"events": "AWSEvents", "ssm": "AmazonSSM", "secretsmanager": "secretsmanager"}
CONTAINER_HOST = "http://169.254.170.2"
IMDS_URL = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 (a path)
TOKEN_TTL = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 (a header name)
REFRESH_BEFORE_SECONDS = 300.0
#: Error codes worth another attempt; transport errors (status None) and 5xx are retried too.
RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "InternalException",
        "ThrottledException",
    }
)


class AwsError(Exception):
    """A failed call: `code` is the service's error code, or "ConnectionError" when no answer
    came back (status None)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.code in RETRYABLE


def http_request(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP(S) request; (status, body). OSError (and http.client errors) become AwsError
    "ConnectionError" so that callers handle one exception type."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AwsError("InvalidEndpoint", f"not an http(s) URL: {url}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, path, body=body or None, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise AwsError("ConnectionError", f"{method} {url}: {exc}") from None
    finally:
        connection.close()


# --- instance metadata (IMDSv2) --------------------------------------------------------------


class IdentityError(Exception):
    """Instance metadata cannot tell who this host is (unreachable, no such path or tag)."""


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


# --- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds; None: does not expire


class MetadataSource(Protocol):
    def get(self, path: str) -> str: ...


def _from_json(text: str | bytes, where: str) -> AwsCredentials:
    try:
        data = json.loads(text)
        expiry = data.get("Expiration")
        expires_at = None
        if expiry:
            stamp = datetime.datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
            expires_at = stamp.timestamp()
        return AwsCredentials(
            str(data["AccessKeyId"]), str(data["SecretAccessKey"]), data.get("Token"), expires_at
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AwsError("CredentialsError", f"{where} returned no usable credentials") from None


class CredentialChain:
    """Environment, then the container endpoint, then the instance role; the first source that is
    configured is the only one used (as in the SDKs). Cached until REFRESH_BEFORE_SECONDS before
    expiry."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        imds: MetadataSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._env = os.environ if env is None else env
        self._imds = imds
        self._clock = clock
        self._cached: AwsCredentials | None = None
        self._lock = threading.Lock()

    def get(self) -> AwsCredentials:
        with self._lock:
            cached = self._cached
            fresh = cached is not None and (
                cached.expires_at is None
                or cached.expires_at - self._clock() > REFRESH_BEFORE_SECONDS
            )
            if cached is None or not fresh:
                self._cached = cached = self._resolve()
            return cached

    def _resolve(self) -> AwsCredentials:
        env = self._env
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            return AwsCredentials(
                env["AWS_ACCESS_KEY_ID"],
                env["AWS_SECRET_ACCESS_KEY"],
                env.get("AWS_SESSION_TOKEN") or None,
            )
        relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        if relative or full:
            return self._container(CONTAINER_HOST + relative if relative else str(full))
        return self._instance_role()

    def _container(self, url: str) -> AwsCredentials:
        headers = {}
        token = self._env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        token_file = self._env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            try:
                with open(token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
            except OSError as exc:
                raise AwsError("CredentialsError", f"cannot read {token_file}: {exc}") from None
        if token:
            headers["Authorization"] = token
        status, body = http_request(url, headers=headers, timeout=5.0)
        if status != 200:
            raise AwsError("CredentialsError", f"container credentials endpoint: HTTP {status}")
        return _from_json(body, "the container credentials endpoint")

    def _instance_role(self) -> AwsCredentials:
        imds = self._imds
        if imds is None:
            imds = self._imds = Imds()
        role = ""
        try:
            role = imds.get("iam/security-credentials/").splitlines()[0].strip()
            document = imds.get("iam/security-credentials/" + role)
        except (IndexError, IdentityError) as exc:  # no role attached, or no IMDS at all
            raise AwsError(
                "CredentialsError",
                f"no credentials in the environment, the container endpoint or the instance "
                f"role ({exc})",
            ) from None
        return _from_json(document, f"the instance role {role}")


# --- Signature Version 4 --------------------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign(  # noqa: PLR0917 (the parts of one request)
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    service: str,
    region: str,
    now: datetime.datetime,
) -> dict[str, str]:
    """The request's headers plus Host, X-Amz-Date, X-Amz-Security-Token and Authorization.
    Every header given is signed; the path must already be URI-encoded."""
    parts = urllib.parse.urlsplit(url)
    utc = datetime.timezone.utc  # noqa: UP017 (the agent runs on Python 3.9)
    stamp = now.astimezone(utc).strftime("%Y%m%dT%H%M%SZ")
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = stamp
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    query = "&".join(
        sorted(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
    )
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + credentials.secret_key).encode("utf-8")
    for part in (stamp[:8], region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    result = dict(headers)
    result["Host"] = parts.netloc
    result["X-Amz-Date"] = stamp
    if credentials.token:
        result["X-Amz-Security-Token"] = credentials.token
    result["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return result


# --- the client -----------------------------------------------------------------------------


def endpoint_for(service: str, region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{suffix}/"


class AwsClient:
    """JSON 1.1 calls to one service. `max_attempts` > 1 retries throttling, 5xx and transport
    errors with full-jitter back-off (the SDKs' standard mode); EventSender keeps its own."""

    def __init__(
        self,
        service: str,
        region: str,
        credentials: CredentialChain,
        endpoint_url: str | None = None,
        *,
        max_attempts: int = 1,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if service not in TARGETS:
            raise ValueError(f"unsupported service {service}")
        self.service = service
        self.region = region
        self.url = endpoint_url.rstrip("/") + "/" if endpoint_url else endpoint_for(service, region)
        self._credentials = credentials
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._sleep = sleep

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._call_once(operation, params)
            except AwsError as exc:
                if attempt == self.max_attempts or not exc.retryable:
                    raise
                self._sleep(random.random() * min(20.0, 0.5 * 2 ** (attempt - 1)))  # noqa: S311
        raise AssertionError("unreachable")

    def _call_once(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": f"{TARGETS[self.service]}.{operation}",
        }
        now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.9)
        credentials = self._credentials.get()
        headers = sign("POST", self.url, headers, body, credentials, self.service, self.region, now)
        status, reply = http_request(self.url, "POST", headers, body, self.timeout)
        try:
            data = json.loads(reply) if reply.strip() else {}
        except ValueError:
            data = None
        if status == 200 and isinstance(data, dict):
            return data
        if not isinstance(data, dict):
            raise AwsError("InvalidResponse", f"{operation}: HTTP {status}, not JSON", status)
        code = str(data.get("__type") or data.get("code") or f"HTTP{status}").rsplit("#", 1)[-1]
        message = str(data.get("message") or data.get("Message") or "")
        raise AwsError(code, message, status)

    def put_events(self, **params: Any) -> dict[str, Any]:
        return self.call("PutEvents", params)

    def get_parameter(self, **params: Any) -> dict[str, Any]:
        return self.call("GetParameter", params)

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        return self.call("GetSecretValue", params)


#: The EC2 API version the agent's one EC2 call names (EC2's Query protocol requires one).
EC2_API_VERSION = "2016-11-15"


class Ec2Client:
    """EC2's Query protocol (a form-encoded POST signed with Signature Version 4, an XML answer)
    for the one EC2 call the agent makes: CreateTags on its own instance
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-requests.html,
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateTags.html; an error's answer
    is <Response><Errors><Error><Code>, <Message>:
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)."""

    def __init__(
        self,
        region: str,
        credentials: CredentialChain,
        endpoint_url: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.region = region
        self.url = endpoint_url.rstrip("/") + "/" if endpoint_url else endpoint_for("ec2", region)
        self._credentials = credentials
        self.timeout = timeout

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        params = {"Action": "CreateTags", "Version": EC2_API_VERSION, "ResourceId.1": resource_id}
        for index, (key, value) in enumerate(tags.items(), start=1):
            params[f"Tag.{index}.Key"] = key
            params[f"Tag.{index}.Value"] = value
        body = urllib.parse.urlencode(params).encode("utf-8")
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.9)
        credentials = self._credentials.get()
        headers = sign("POST", self.url, headers, body, credentials, "ec2", self.region, now)
        status, reply = http_request(self.url, "POST", headers, body, self.timeout)
        if status == 200:
            return
        text = reply.decode("utf-8", "replace")
        code = re.search(r"<Code>([^<]*)</Code>", text)
        message = re.search(r"<Message>([^<]*)</Message>", text)
        raise AwsError(
            code.group(1) if code else f"HTTP{status}",
            message.group(1) if message else "",
            status,
        )
