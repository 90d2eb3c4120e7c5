"""Where the stack is: its API URL and Cognito user pool.

In order: ``--stack-file`` or ``--stack-name``, then ``DCVFLEET_STACK_FILE`` or
``DCVFLEET_STACK_NAME``, then the current checkout's ``.local/stack.json`` (what ``make local``
writes; looked for in this folder and the ones above it, up to the checkout's root), then the
stack remembered in the user's settings (``config.json`` in ``$XDG_CONFIG_HOME/dcvfleet``, by
default ``~/.config/dcvfleet``; ``%APPDATA%\\dcvfleet`` on Windows), which is written when the
user signs in and when a command is pointed at a stack with ``--stack-file`` or
``--stack-name``. A stack file is the local stack's ``stack.json`` (snake_case keys) or a portal
``config.json`` (camelCase keys); a stack name is read from CloudFormation (outputs ``ApiUrl``,
``UserPoolId`` and ``UserPoolClientId``). What is remembered of a stack file is its path (the
local stack rewrites it at each start, and removes it when it stops); of a deployed stack, its
name, region and outputs (so that no AWS credentials are needed afterwards).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dcvfleet_cli.errors import USAGE, CliError

LOCAL_STACK_FILE = Path(".local") / "stack.json"
CONFIG_FILE = "config.json"

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

POINT_AT = (
    "point the CLI at a deployed stack with `dcvfleet login --stack-name NAME --region REGION` "
    "(or `--stack-file PATH` with the portal's config.json)"
)
NOT_FOUND = (
    "No DCV Fleet stack found. Start one with `make local` in the dcv-fleet folder, or "
    + POINT_AT
    + "."
)

#: Where a stack was found: a command-line option, the environment, the current checkout's
#: .local/stack.json, or the user's settings.
OPTION, ENVIRONMENT, CHECKOUT, SETTINGS = "option", "environment", "checkout", "settings"


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
    #: How it was found (OPTION, ENVIRONMENT, CHECKOUT or SETTINGS).
    origin: str = field(default=OPTION, compare=False)
    #: What the user's settings keep to find it again (see ``remember``).
    ref: dict[str, str] = field(default_factory=dict, compare=False)


def config_dir(env: Mapping[str, str], platform: str = sys.platform) -> Path:
    """The user's settings folder for dcvfleet: ``%APPDATA%\\dcvfleet`` on Windows, else
    ``$XDG_CONFIG_HOME/dcvfleet`` (an absolute XDG_CONFIG_HOME only, as the XDG Base Directory
    Specification asks) or ``~/.config/dcvfleet``."""
    if platform == "win32":
        appdata = env.get("APPDATA", "")
        root = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return root / "dcvfleet"
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "dcvfleet"


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
        return from_file(Path(stack_file), OPTION)
    if stack_name:
        return from_cloudformation(stack_name, region, cloudformation, OPTION)
    if env.get("DCVFLEET_STACK_FILE"):
        return from_file(Path(env["DCVFLEET_STACK_FILE"]), ENVIRONMENT)
    if env.get("DCVFLEET_STACK_NAME"):
        return from_cloudformation(env["DCVFLEET_STACK_NAME"], region, cloudformation, ENVIRONMENT)
    local = checkout_stack_file(cwd or Path.cwd())
    if local is not None:
        return from_file(local, CHECKOUT)
    return remembered(env)


def checkout_stack_file(cwd: Path) -> Path | None:
    """``.local/stack.json`` in ``cwd`` or a folder above it, up to the checkout's root (the
    folder holding ``.git``); None when there is none."""
    for folder in (cwd, *cwd.parents):
        candidate = folder / LOCAL_STACK_FILE
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def _settings(env: Mapping[str, str]) -> tuple[Path, dict[str, Any]]:
    path = config_dir(env) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return path, {}
    except (OSError, ValueError) as exc:
        raise CliError(
            f"the dcvfleet settings file {path} is not readable JSON ({exc}): delete it, then "
            "sign in again",
            USAGE,
        ) from None
    return path, data if isinstance(data, dict) else {}


def remembered(env: Mapping[str, str]) -> Stack:
    """The stack kept in the user's settings; NOT_FOUND when there is none, or when it was a
    local stack that is no longer running."""
    path, data = _settings(env)
    ref = data.get("stack")
    if not isinstance(ref, dict):
        raise CliError(NOT_FOUND, USAGE)
    ref = {str(k): str(v) for k, v in ref.items() if isinstance(v, str)}
    if "file" in ref:
        stack_file = Path(ref["file"])
        if not stack_file.is_file():
            checkout = _checkout_of(stack_file)
            where = f"in {checkout}" if checkout else "in the dcv-fleet folder"
            raise CliError(
                f"No DCV Fleet stack found: the stack last used ({stack_file}) is not running. "
                f"Start it with `make local` {where}, or {POINT_AT}.",
                USAGE,
            )
        found = from_file(stack_file, SETTINGS)
        return replace(found, source=f"{found.source} (remembered in {path})")
    missing = [key for key in ("name", *_OUTPUTS) if not ref.get(key)]
    region = ref.get("region") or _region_of_pool(ref.get("user_pool_id"))
    if missing or not region:
        raise CliError(f"the dcvfleet settings file {path} names no usable stack: " + POINT_AT)
    return Stack(
        api_url=ref["api_url"],
        user_pool_id=ref["user_pool_id"],
        user_pool_client_id=ref["user_pool_client_id"],
        region=region,
        cognito_endpoint=None,
        source=f"stack {ref['name']} ({region}) (remembered in {path})",
        origin=SETTINGS,
        ref=ref,
    )


def _checkout_of(stack_file: Path) -> Path | None:
    """The checkout a ``.local/stack.json`` belongs to, if that is what it is."""
    if stack_file.parent.name == LOCAL_STACK_FILE.parent.name:
        return stack_file.parent.parent
    return None


def remember(stack: Stack, env: Mapping[str, str]) -> Path | None:
    """Keep ``stack`` in the user's settings as the one to use from any folder; the settings
    file, or None when there was nothing to keep (it came from there, or says nothing)."""
    if stack.origin == SETTINGS or not stack.ref:
        return None
    path, data = _settings(env)
    if data.get("stack") == stack.ref:
        return path
    data["stack"] = stack.ref
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def from_file(path: Path, origin: str = OPTION) -> Stack:
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
        origin=origin,
        ref={"file": str(path.resolve())},
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
    name: str,
    region: str | None,
    client: Callable[[str | None], Any] | None = None,
    origin: str = OPTION,
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
    api_url = outputs["ApiUrl"].rstrip("/")
    return Stack(
        api_url=api_url,
        user_pool_id=outputs["UserPoolId"],
        user_pool_client_id=outputs["UserPoolClientId"],
        region=str(used_region),
        cognito_endpoint=None,
        source=f"stack {name} ({used_region})",
        origin=origin,
        ref={
            "name": name,
            "region": str(used_region),
            "api_url": api_url,
            "user_pool_id": outputs["UserPoolId"],
            "user_pool_client_id": outputs["UserPoolClientId"],
        },
    )
