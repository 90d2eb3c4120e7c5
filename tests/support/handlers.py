"""What the handler modules read from the environment when they are imported, as the unit tests
set it (each test module overrides what it looks at)."""

from __future__ import annotations

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
