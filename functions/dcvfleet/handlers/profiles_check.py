"""The DesktopProfilesCheck custom resource: the template's DesktopProfiles parameter, checked
when the stack is created or updated (through ``dcvfleet.custom_resource``, which always answers
CloudFormation)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import profiles
from dcvfleet.handlers import entry_point


@entry_point()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return profiles.check_parameter(event)
