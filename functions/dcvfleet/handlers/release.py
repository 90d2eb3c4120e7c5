"""Task handlers of the release workflow (statemachines/release_image.asl.json), one a state.

Errors are never swallowed, so the workflow's Retry and Catch see them.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import releases
from dcvfleet.adapters import (
    HostCommands,
    ImageBuilds,
    ReleaseRecords,
    Releases,
    SessionSecrets,
    Workflows,
)
from dcvfleet.aws import client
from dcvfleet.config import ReleaseSettings
from dcvfleet.errors import InvalidRequestError
from dcvfleet.handlers import batch_jobs, entry_point, session_store


def _text(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name}: required in the task input")
    return value


def _error(event: dict[str, Any]) -> dict[str, Any] | None:
    """The workflow's caught error ({"Error", "Cause"}), when the task input carries one."""
    error = event.get("error")
    return error if isinstance(error, dict) else None


def _settings() -> ReleaseSettings:
    return ReleaseSettings.from_env(os.environ)


def _records() -> ReleaseRecords:
    return ReleaseRecords(client("dynamodb"), _settings().releases_table)


def _images() -> ImageBuilds:
    return ImageBuilds(client("ecr"), client("batch"))


def _current(settings: ReleaseSettings) -> Releases:
    return Releases(client("ssm"), settings.release_parameter)


@entry_point("release")
def begin(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return releases.begin(
        _records(), _text(event, "bucket"), _text(event, "key"), _text(event, "execution")
    )


@entry_point("release")
def register(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = _settings()
    return releases.register(
        _records(), _images(), _current(settings), settings, _text(event, "release")
    )


@entry_point("release")
def start_smoke(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return releases.start_smoke(
        session_store(),
        _records(),
        Workflows(client("stepfunctions")),
        _settings(),
        _text(event, "release"),
    )


@entry_point("release")
def check_smoke(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return releases.check_smoke(
        session_store(),
        _records(),
        _text(event, "release"),
        commands=HostCommands(client("ssm")),
        jobs=batch_jobs(),
        settings=_settings(),
    )


@entry_point("release")
def end_smoke(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    return releases.end_smoke(
        session_store(),
        _records(),
        batch_jobs(),
        SessionSecrets(client("secretsmanager")),
        _text(event, "release"),
    )


@entry_point("release")
def promote(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = _settings()
    return releases.promote(
        _records(), _current(settings), _images(), settings, _text(event, "release")
    )


@entry_point("release")
def fail(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    release = _text(event, "release")
    records = _records()
    if records.get(release):  # a smoke-test desktop, if one was started, must not run on
        secrets = SessionSecrets(client("secretsmanager"))
        releases.end_smoke(session_store(), records, batch_jobs(), secrets, release)
    return releases.fail(records, _images(), release, _error(event))


@entry_point("release")
def reject(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return releases.reject(_error(event))
