"""Task handlers of the release workflow (statemachines/release_image.asl.json), one a state.

Errors are never swallowed, so the workflow's Retry and Catch see them.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from dcvfleet import adapters, releases
from dcvfleet.aws import client
from dcvfleet.config import ReleaseSettings
from dcvfleet.handlers import batch_jobs, caught_error, entry_point, session_store, task_text


def _settings() -> ReleaseSettings:
    return ReleaseSettings.from_env(os.environ)


def _records() -> adapters.ReleaseRecords:
    return adapters.ReleaseRecords(client("dynamodb"), _settings().releases_table)


def _images() -> adapters.ImageBuilds:
    return adapters.ImageBuilds(client("ecr"), client("batch"))


def _current(settings: ReleaseSettings) -> adapters.Releases:
    return adapters.Releases(client("ssm"), settings.release_parameter)


@entry_point("release")
def begin(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return releases.begin(
        _records(),
        task_text(event, "bucket"),
        task_text(event, "key"),
        task_text(event, "execution"),
    )


@entry_point("release")
def register(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = _settings()
    return releases.register(
        _records(), _images(), _current(settings), settings, task_text(event, "release")
    )


@entry_point("release")
def start_smoke(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return releases.start_smoke(
        session_store(),
        _records(),
        adapters.Workflows(client("stepfunctions")),
        _settings(),
        task_text(event, "release"),
    )


@entry_point("release")
def check_smoke(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return releases.check_smoke(
        session_store(),
        _records(),
        task_text(event, "release"),
        commands=adapters.HostCommands(client("ssm")),
        jobs=batch_jobs(),
        settings=_settings(),
    )


@entry_point("release")
def end_smoke(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    return releases.end_smoke(
        session_store(),
        _records(),
        batch_jobs(),
        adapters.SessionSecrets(client("secretsmanager")),
        task_text(event, "release"),
    )


@entry_point("release")
def promote(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = _settings()
    return releases.promote(
        _records(), _current(settings), _images(), settings, task_text(event, "release")
    )


@entry_point("release")
def fail(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    release = task_text(event, "release")
    records = _records()
    if records.get(release):  # a smoke-test desktop, if one was started, must not run on
        secrets = adapters.SessionSecrets(client("secretsmanager"))
        releases.end_smoke(session_store(), records, batch_jobs(), secrets, release)
    return releases.fail(records, _images(), release, caught_error(event))


@entry_point("release")
def reject(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return releases.reject(caught_error(event))
