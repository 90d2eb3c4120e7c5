"""Task handler of the release workflow (statemachines/release_image.asl.json).

One function serves the workflow's steps (``step`` in the task input names it): releases are
rare, operator-driven events, and every step acts on the same few resources. Errors are never
swallowed, so the workflow's Retry and Catch see them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
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

logger = Logger()


def _text(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name}: required in the task input")
    return value


def _records(settings: ReleaseSettings) -> ReleaseRecords:
    return ReleaseRecords(client("dynamodb"), settings.releases_table)


def _images() -> ImageBuilds:
    return ImageBuilds(client("ecr"), client("batch"))


def _current(settings: ReleaseSettings) -> Releases:
    return Releases(client("ssm"), settings.release_parameter)


def _fail(event: dict[str, Any], settings: ReleaseSettings) -> dict[str, Any]:
    release = _text(event, "release")
    records = _records(settings)
    if records.get(release):  # a smoke-test desktop, if one was started, must not run on
        secrets = SessionSecrets(client("secretsmanager"))
        releases.end_smoke(session_store(), records, batch_jobs(), secrets, release)
    return releases.fail(records, _images(), release, _error(event))


def _error(event: dict[str, Any]) -> dict[str, Any] | None:
    """The workflow's caught error ({"Error", "Cause"}), when the task input carries one."""
    error = event.get("error")
    return error if isinstance(error, dict) else None


STEPS: dict[str, Callable[[dict[str, Any], ReleaseSettings], dict[str, Any]]] = {
    "begin": lambda e, s: releases.begin(
        _records(s), _text(e, "bucket"), _text(e, "key"), _text(e, "execution")
    ),
    "register": lambda e, s: releases.register(
        _records(s), _images(), _current(s), s, _text(e, "release")
    ),
    "start_smoke": lambda e, s: releases.start_smoke(
        session_store(), _records(s), Workflows(client("stepfunctions")), s, _text(e, "release")
    ),
    "check_smoke": lambda e, s: releases.check_smoke(
        session_store(),
        _records(s),
        _text(e, "release"),
        commands=HostCommands(client("ssm")),
        jobs=batch_jobs(),
        settings=s,
    ),
    "end_smoke": lambda e, s: releases.end_smoke(
        session_store(),
        _records(s),
        batch_jobs(),
        SessionSecrets(client("secretsmanager")),
        _text(e, "release"),
    ),
    "promote": lambda e, s: releases.promote(
        _records(s), _current(s), _images(), s, _text(e, "release")
    ),
    "fail": _fail,
    "reject": lambda e, s: releases.reject(
        e.get("error") if isinstance(e.get("error"), dict) else None
    ),
}


@entry_point("release")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = _text(event, "step")
    if step not in STEPS:
        raise InvalidRequestError(f"step: {step!r} is not one of {', '.join(STEPS)}")
    logger.append_keys(step=step)
    return STEPS[step](event, ReleaseSettings.from_env(os.environ))
