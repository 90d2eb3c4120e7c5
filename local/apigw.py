"""The REST API on localhost, served from the template's own OpenAPI body, as API Gateway does.

Routes and their Lambda integrations come from the translated ``AWS::ApiGateway::RestApi`` body;
the Cognito authorizer checks the ID token against the emulated user pool's signing keys, issuer,
audience and expiry, then passes the claims to the handler in ``requestContext.authorizer``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import jwt

from local.http import LocalServer, Reply, json_reply


class Route:
    def __init__(self, path: str, method: str, function_arn: str, authorizer: str | None) -> None:
        self.path = path
        self.method = method.upper()
        self.function_arn = function_arn
        self.authorizer = authorizer
        pattern = re.sub(r"\{(\w+)\+?\}", r"(?P<\1>[^/]+)", path)
        self.regex = re.compile(f"^{pattern}$")


def routes_from_body(body: dict[str, Any]) -> list[Route]:
    default_security = body.get("security", [])
    routes = []
    for path, methods in body.get("paths", {}).items():
        for method, spec in methods.items():
            integration = spec.get("x-amazon-apigateway-integration", {})
            uri = integration.get("uri", "")
            match = re.search(r"functions/(arn:[^/]+)/invocations", uri)
            if not match:
                continue
            security = spec.get("security", default_security)
            authorizer = next(iter(security[0]), None) if security else None
            routes.append(Route(path, method, match.group(1), authorizer))
    return routes


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
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.routes = routes_from_body(body)
        self.stage = stage
        self.lambda_client = boto3.client("lambda", endpoint_url=endpoint_url, region_name=region)
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

    # -- request handling ----------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        prefix = f"/{self.stage}"
        if not parts.path.startswith(prefix):
            return json_reply(403, {"message": "Missing Authentication Token"})
        path = parts.path[len(prefix) :] or "/"
        candidates = [(r, r.regex.match(path)) for r in self.routes]
        matches = [(r, m) for r, m in candidates if m]
        route_match = next(
            ((r, m) for r, m in matches if r.method in (method, "X-AMAZON-APIGATEWAY-ANY-METHOD")),
            None,
        )
        if route_match is None:
            # API Gateway answers an unknown route or method like this.
            return json_reply(403, {"message": "Missing Authentication Token"})
        route, match = route_match
        claims: dict[str, Any] | None = None
        if route.authorizer:
            token = headers.get("authorization", "")
            if token.lower().startswith("bearer "):
                token = token[7:]
            if not token:
                return json_reply(401, {"message": "Unauthorized"})
            try:
                claims = self.verifiers[route.authorizer].claims(token)
            except jwt.PyJWTError:
                return json_reply(401, {"message": "Unauthorized"})
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
            return json_reply(502, {"message": "Internal server error"})
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
