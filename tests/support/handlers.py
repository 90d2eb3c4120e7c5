"""What the handler modules read from the environment when they are imported, as the unit tests
set it (each test module overrides what it looks at)."""

from __future__ import annotations

import json
from typing import Any

HANDLER_ENV = {
    "SESSIONS_TABLE": "sessions",
    "EVENT_BUS_NAME": "bus",
    "FLEET_TAG_VALUE": "default",
    "PROVISION_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:p",
    "IDLE_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:i",
    "ALLOWED_INSTANCE_TYPES": "g5.xlarge",
    "LINUX_INSTANCE_TYPE": "g5.xlarge",
    "WINDOWS_INSTANCE_TYPE": "g5.xlarge",
    "LIST_CONNECTIONS_DOCUMENT": "d",
    "NOTIFY_DOCUMENT": "d",
    "LIST_CONTAINER_CONNECTIONS_DOCUMENT": "d",
    "NOTIFY_CONTAINER_DOCUMENT": "d",
}


def admin_request(
    api: Any,
    method: str,
    path: str,
    *,
    admin: bool = True,
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """``method path`` (with its ``query`` string) through the API handler's resolver, as API
    Gateway passes it, from boss: an administrator (the admins group) or, with ``admin=False``,
    a user; its status and body."""
    claims = {"sub": "sub-boss", "cognito:username": "boss"}
    if admin:
        claims["cognito:groups"] = "admins"
    event = {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {
            "stage": "v1",
            "requestId": "r-1",
            "resourcePath": path,
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7"},
            "authorizer": {"claims": claims},
        },
    }
    answer = api.app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"])
