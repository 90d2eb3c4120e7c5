"""The REST API on localhost, served from the template's own OpenAPI body, as API Gateway does.

Routes and their Lambda integrations come from the translated ``AWS::ApiGateway::RestApi`` body;
the Cognito authorizer checks the ID token against the emulated user pool's signing keys, issuer,
audience and expiry, then passes the claims to the handler in ``requestContext.authorizer``.
A route whose security is ``NONE`` takes no token. Mock integrations (the CORS preflight
``OPTIONS`` methods SAM adds) answer with their response parameters' headers; API Gateway's own
answers (401, 403, 429, 502) carry the body's gateway response headers (DEFAULT_4XX/5XX); the
stage's ``MethodSettings`` throttle requests (a token bucket: rate per second, burst), 429 past it.

Each request invokes its function once: API Gateway does not retry an integration.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import jwt
from botocore.config import Config

from local.http import LocalServer, Reply, json_reply


class Route:
    def __init__(
        self,
        path: str,
        method: str,
        function_arn: str | None,
        authorizer: str | None,
        mock_headers: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.method = method.upper()
        self.function_arn = function_arn
        self.authorizer = authorizer
        self.mock_headers = mock_headers or {}
        pattern = re.sub(r"\{(\w+)\+?\}", r"(?P<\1>[^/]+)", path)
        self.regex = re.compile(f"^{pattern}$")


def _header_values(parameters: dict[str, Any], prefix: str) -> dict[str, str]:
    """Static header mappings (``'value'``) of an integration or gateway response."""
    return {
        name[len(prefix) :]: str(value).strip("'")
        for name, value in parameters.items()
        if name.startswith(prefix)
    }


def routes_from_body(body: dict[str, Any]) -> list[Route]:
    default_security = body.get("security", [])
    routes = []
    for path, methods in body.get("paths", {}).items():
        for method, spec in methods.items():
            integration = spec.get("x-amazon-apigateway-integration", {})
            security = spec.get("security", default_security)
            authorizer = next(iter(security[0]), None) if security else None
            if authorizer == "NONE":
                authorizer = None
            if integration.get("type") == "mock":
                default = integration.get("responses", {}).get("default", {})
                headers = _header_values(
                    default.get("responseParameters", {}), "method.response.header."
                )
                routes.append(Route(path, method, None, authorizer, headers))
                continue
            uri = integration.get("uri", "")
            match = re.search(r"functions/(arn:[^/]+)/invocations", uri)
            if match:
                routes.append(Route(path, method, match.group(1), authorizer))
    return routes


class Throttle:
    """API Gateway's stage throttling: a token bucket of ``burst`` tokens refilled at ``rate``
    per second; a request that finds it empty is refused."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    @classmethod
    def from_settings(cls, settings: list[dict[str, Any]]) -> Throttle | None:
        for setting in settings:
            if setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*":
                rate = setting.get("ThrottlingRateLimit")
                burst = setting.get("ThrottlingBurstLimit")
                if rate is not None and burst is not None:
                    return cls(float(rate), int(burst))
        return None


class TokenVerifier:
    """Verifies Cognito ID tokens with the pool's published JWKS."""

    def __init__(self, endpoint_url: str, pool_arn: str, client_ids: list[str]) -> None:
        pool_id = pool_arn.rsplit("/", 1)[-1]
        self.jwks = jwt.PyJWKClient(f"{endpoint_url}/{pool_id}/.well-known/jwks.json")
        self.issuer_suffix = f"/{pool_id}"
        self.client_ids = client_ids

    def claims(self, token: str) -> dict[str, Any]:
        key = self.jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=self.client_ids,
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
        if not str(claims.get("iss", "")).endswith(self.issuer_suffix):
            raise jwt.InvalidIssuerError("token is from another user pool")
        if claims.get("token_use") != "id":
            raise jwt.InvalidTokenError("not an ID token")
        return claims


class ApiServer(LocalServer):
    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        body: dict[str, Any],
        stage: str,
        client_ids: list[str],
        method_settings: list[dict[str, Any]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.routes = routes_from_body(body)
        self.stage = stage
        self.throttle = Throttle.from_settings(method_settings or [])
        responses = body.get("x-amazon-apigateway-gateway-responses", {})
        self.gateway_headers = {
            kind: _header_values(spec.get("responseParameters", {}), "gatewayresponse.header.")
            for kind, spec in responses.items()
        }
        self.lambda_client = boto3.client(
            "lambda",
            endpoint_url=endpoint_url,
            region_name=region,
            # one function's invocations wait for each other here (one execution environment),
            # where Lambda would run them at once: a burst queues rather than fails (bench.load)
            config=Config(retries={"total_max_attempts": 1}, read_timeout=900),
        )
        authorizers = body.get("securityDefinitions", {})
        self.verifiers: dict[str, TokenVerifier] = {}
        for name, spec in authorizers.items():
            conf = spec.get("x-amazon-apigateway-authorizer", {})
            if conf.get("type") == "cognito_user_pools":
                self.verifiers[name] = TokenVerifier(
                    endpoint_url, conf["providerARNs"][0], client_ids
                )
        super().__init__(host, port)

    @property
    def url(self) -> str:
        return f"{self.address}/{self.stage}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Every method reaches ``handle`` (API Gateway answers one a resource does not have 403),
        not only those ``http.server`` has a ``do_`` method for (it answers the others 501)."""
        base: Any = super()._handler_class()

        class AnyMethod(base):  # type: ignore[misc]
            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

        return AnyMethod

    # -- request handling ----------------------------------------------------------------
    def _gateway(self, status: int, message: str) -> Reply:
        """One of API Gateway's own answers, with its gateway response headers."""
        code, headers, body = json_reply(status, {"message": message})
        kind = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        return code, {**headers, **self.gateway_headers.get(kind, {})}, body

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.throttle is not None and not self.throttle.allow():
            return self._gateway(429, "Too Many Requests")
        return self._route(method, raw_path, headers, body)

    def _route(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        prefix = f"/{self.stage}"
        if not parts.path.startswith(prefix):
            return self._gateway(403, "Missing Authentication Token")
        path = parts.path[len(prefix) :] or "/"
        candidates = [(r, r.regex.match(path)) for r in self.routes]
        matches = [(r, m) for r, m in candidates if m]
        route_match = next(
            ((r, m) for r, m in matches if r.method in (method, "X-AMAZON-APIGATEWAY-ANY-METHOD")),
            None,
        )
        if route_match is None:
            # API Gateway answers an unknown route or method like this.
            return self._gateway(403, "Missing Authentication Token")
        route, match = route_match
        claims: dict[str, Any] | None = None
        if route.authorizer:
            token = headers.get("authorization", "")
            if token.lower().startswith("bearer "):
                token = token[7:]
            if not token:
                return self._gateway(401, "Unauthorized")
            try:
                claims = self.verifiers[route.authorizer].claims(token)
            except jwt.PyJWTError:
                return self._gateway(401, "Unauthorized")
        if route.function_arn is None:
            return 200, {"Content-Type": "application/json", **route.mock_headers}, b"{}"
        event = self._event(
            route, match.groupdict(), method, path, parts.query, headers, body, claims
        )
        resp = self.lambda_client.invoke(FunctionName=route.function_arn, Payload=json.dumps(event))
        payload = json.loads(resp["Payload"].read() or b"null")
        if (
            resp.get("FunctionError")
            or not isinstance(payload, dict)
            or "statusCode" not in payload
        ):
            return self._gateway(502, "Internal server error")
        out_headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
        for key, values in (payload.get("multiValueHeaders") or {}).items():
            out_headers[key] = ", ".join(str(v) for v in values)
        return int(payload["statusCode"]), out_headers, str(payload.get("body") or "").encode()

    def _event(  # noqa: PLR0917
        self,
        route: Route,
        path_params: dict[str, str],
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        claims: dict[str, Any] | None,
    ) -> dict[str, Any]:
        qs = parse_qsl(query, keep_blank_values=True)
        request_id = str(uuid.uuid4())
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": dict(qs) or None,
            "multiValueQueryStringParameters": {k: [v for kk, v in qs if kk == k] for k, _ in qs}
            or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "body": body.decode("utf-8", errors="replace") if body else None,
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "requestId": request_id,
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {"sourceIp": "127.0.0.1"},
                "authorizer": {"claims": {k: _claim(v) for k, v in (claims or {}).items()}}
                if claims is not None
                else None,
            },
        }


def _claim(value: Any) -> str:
    """API Gateway passes every Cognito claim to the handler as a string."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value)
