"""Where the stack is: its API URL and Cognito user pool.

In order: ``--stack-file`` or ``--stack-name``, then ``DCVFLEET_STACK_FILE`` or
``DCVFLEET_STACK_NAME``, then ``.local/stack.json`` (what ``make local`` writes) if it exists.
A stack file is the local stack's ``stack.json`` (snake_case keys) or a portal ``config.json``
(camelCase keys); a stack name is read from CloudFormation (outputs ``ApiUrl``, ``UserPoolId``
and ``UserPoolClientId``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcvfleet_cli.errors import USAGE, CliError

LOCAL_STACK_FILE = Path(".local") / "stack.json"

#: Each setting and the keys a stack file may hold it under (stack.json, then config.json).
_FILE_KEYS = {
    "api_url": ("api_url", "apiUrl"),
    "user_pool_id": ("user_pool_id", "userPoolId"),
    "user_pool_client_id": ("user_pool_client_id", "userPoolClientId"),
    "region": ("region",),
    "cognito_endpoint": ("aws_endpoint_url", "cognitoEndpoint"),
}
_OUTPUTS = {
    "api_url": "ApiUrl",
    "user_pool_id": "UserPoolId",
    "user_pool_client_id": "UserPoolClientId",
}

NOT_FOUND = (
    "no DCV Fleet stack found: pass --stack-name NAME (a deployed stack; with --region) or "
    "--stack-file PATH (a stack.json or the portal's config.json), set DCVFLEET_STACK_NAME or "
    "DCVFLEET_STACK_FILE, or run where make local wrote .local/stack.json"
)


@dataclass(frozen=True)
class Stack:
    """What the CLI needs to know about one DCV Fleet stack."""

    api_url: str
    user_pool_id: str
    user_pool_client_id: str
    region: str
    #: The Cognito endpoint (the local stack's emulator); None for AWS's own.
    cognito_endpoint: str | None
    #: Where it came from, for messages.
    source: str


def discover(
    stack_file: str | None,
    stack_name: str | None,
    region: str | None,
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    cloudformation: Callable[[str | None], Any] | None = None,
) -> Stack:
    """The stack the user means (see the module's docstring for the order)."""
    if stack_file and stack_name:
        raise CliError("pass either --stack-file or --stack-name, not both", USAGE)
    if stack_file:
        return from_file(Path(stack_file))
    if stack_name:
        return from_cloudformation(stack_name, region, cloudformation)
    if env.get("DCVFLEET_STACK_FILE"):
        return from_file(Path(env["DCVFLEET_STACK_FILE"]))
    if env.get("DCVFLEET_STACK_NAME"):
        return from_cloudformation(env["DCVFLEET_STACK_NAME"], region, cloudformation)
    local = (cwd or Path.cwd()) / LOCAL_STACK_FILE
    if local.is_file():
        return from_file(local)
    raise CliError(NOT_FOUND, USAGE)


def from_file(path: Path) -> Stack:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"stack file {path} does not exist", USAGE) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"stack file {path} is not readable JSON: {exc}", USAGE) from None
    if not isinstance(data, dict):
        raise CliError(f"stack file {path} is not a JSON object", USAGE)
    found: dict[str, str | None] = {}
    for setting, keys in _FILE_KEYS.items():
        value = next((data[k] for k in keys if isinstance(data.get(k), str) and data[k]), None)
        found[setting] = value
    region = found["region"] or _region_of_pool(found["user_pool_id"])
    missing = [_FILE_KEYS[s][0] for s in _OUTPUTS if not found[s]]
    if not region:
        missing.append("region")
    if missing:
        raise CliError(f"stack file {path} has no {', '.join(missing)}", USAGE)
    return Stack(
        api_url=str(found["api_url"]).rstrip("/"),
        user_pool_id=str(found["user_pool_id"]),
        user_pool_client_id=str(found["user_pool_client_id"]),
        region=str(region),
        cognito_endpoint=found["cognito_endpoint"],
        source=f"stack file {path}",
    )


def _region_of_pool(pool_id: str | None) -> str | None:
    """A user pool id starts with its region (``us-east-1_AbC123``)."""
    if pool_id and "_" in pool_id:
        return pool_id.split("_", 1)[0]
    return None


def _cloudformation_client(region: str | None) -> Any:
    import boto3

    return boto3.client("cloudformation", region_name=region)


def from_cloudformation(
    name: str, region: str | None, client: Callable[[str | None], Any] | None = None
) -> Stack:
    """A deployed stack's outputs (needs AWS credentials allowed DescribeStacks)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        cfn = (client or _cloudformation_client)(region)
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except NoRegionError:
        raise CliError(
            "no AWS region for the stack: pass --region or set AWS_REGION", USAGE
        ) from None
    except NoCredentialsError:
        raise CliError(
            f"no AWS credentials to read stack {name}'s outputs: configure them "
            "(aws configure) or use --stack-file with the portal's config.json"
        ) from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        raise CliError(f"cannot read stack {name}: {message}") from None
    except BotoCoreError as exc:
        raise CliError(f"cannot read stack {name}: {exc}") from None
    if not stacks:
        raise CliError(f"stack {name} does not exist")
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
    missing = [key for key in _OUTPUTS.values() if not outputs.get(key)]
    if missing:
        raise CliError(f"stack {name} is not a DCV Fleet stack: no output {', '.join(missing)}")
    used_region = region or cfn.meta.region_name or _region_of_pool(outputs["UserPoolId"])
    return Stack(
        api_url=outputs["ApiUrl"].rstrip("/"),
        user_pool_id=outputs["UserPoolId"],
        user_pool_client_id=outputs["UserPoolClientId"],
        region=str(used_region),
        cognito_endpoint=None,
        source=f"stack {name} ({used_region})",
    )
