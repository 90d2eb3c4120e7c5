"""Every gap of the emulator, in the order it is installed, and what installs and removes them.

``apply_all`` installs every gap that has an install (the local stack does it once, after moto
starts); ``revert`` puts back what they replaced, latest first; ``installed`` does both around a
block (the tests). A gap without an install is closed where its ``we_do`` says (the deployer, the
stack's scheduler). ``tests/local/emulator/`` has, for every gap, a ``test_gap_*`` showing moto's
behaviour on plain moto (it fails when moto changes; then the gap can go) and a
``test_workaround_*`` showing ours; ``test_registry.py`` checks that each gap has both.

Checked, not gaps: moto's server answers an unsigned JSON call (no ``Authorization``, as a
browser's call to Cognito's user-pool API) by its ``X-Amz-Target``, and answers a browser's CORS
preflight to its root and its calls (errors too) with ``Access-Control-Allow-Origin``
(``test_no_gap_browser_calls``). A Fail state whose ``Error`` or ``ErrorPath`` yields a name
beginning ``States.`` (reserved: "these error names can't begin with the States. prefix",
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) fails the
execution with ``States.Runtime``, as on AWS (``test_no_gap_sfn_fail_reserved_error``).

Gaps listed for moto 5.2.x that no workflow here depends on yet (each lands with its first user):
PascalCase parameter normalisation for batch/ecs/startExecution, JSONata, executions started
without a name. Wait states and Retry back-off sleep in real time; their durations come from
template parameters, never from skipping them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from local.emulator import (
    batch,
    cloudformation,
    codebuild,
    cognito,
    dynamodb,
    ec2,
    ecr,
    eventbridge,
    imagebuilder,
    lambda_runtime,
    s3,
    scheduler,
    service_quotas,
    sns,
    ssm,
    stepfunctions,
)
from local.emulator.gap import Context, Gap, Patch, current, holds, put

#: Every gap, in the order the installs run (an install that wraps another's replacement comes
#: after it: COGNITO_AUTH_FLOWS wraps COGNITO_SRP's InitiateAuth).
GAPS: tuple[Gap, ...] = (
    lambda_runtime.LAMBDA_RUNTIME,
    cognito.COGNITO_TOTP,
    eventbridge.EVENTS_TARGETS,
    eventbridge.EVENTS_SCHEDULE_PATTERN,
    scheduler.EVENTS_SCHEDULES,
    eventbridge.EVENTBUS_REF,
    dynamodb.DDB_ATOMIC_WRITES,
    ec2.EC2_STATE_CHANGES,
    ec2.EC2_LAUNCH_TIME,
    ssm.SSM_RUN_COMMAND,
    ssm.SSM_DOCUMENT_FROM_CLOUDFORMATION,
    ssm.PUBLIC_PARAMETERS,
    ecr.ECR_FROM_CLOUDFORMATION,
    batch.BATCH_FROM_CLOUDFORMATION,
    batch.BATCH_JOBS,
    batch.BATCH_SCALING_UPDATES,
    codebuild.CODEBUILD_FROM_CLOUDFORMATION,
    codebuild.CODEBUILD_BUILDS,
    lambda_runtime.LAMBDA_VERSIONS_FROM_CLOUDFORMATION,  # wraps CODEBUILD_FROM_CLOUDFORMATION's
    stepfunctions.SFN_AWS_SDK_CASING,
    stepfunctions.SFN_JSONPATH_INDEX,
    stepfunctions.SFN_COST,
    stepfunctions.SFN_STOP_EXECUTION,
    s3.S3_FROM_CLOUDFORMATION,
    cognito.COGNITO_SRP,
    cognito.COGNITO_AUTH_FLOWS,
    sns.SNS_EMAIL,
    sns.SNS_SUBSCRIBE_ATTRIBUTES,
    cognito.COGNITO_READ_ATTRIBUTES,
    ec2.EC2_PAGE_TOKEN,
    service_quotas.SERVICE_QUOTAS_EC2,
    ec2.DEFAULT_VPC_INTERNET,
    ec2.LAUNCH_TEMPLATE_SSM_IMAGE,
    imagebuilder.IMAGEBUILDER,
    cloudformation.CFN_STACK_LIST_PARAMETERS,
    cloudformation.CFN_LIST_PARAMETERS,
    cloudformation.CFN_PLACEHOLDERS,
    cloudformation.CFN_DYNAMIC_REFERENCES,
    cloudformation.CLOUDFRONT,
    cloudformation.CLOUDWATCH_ALARMS,
    cloudformation.APIGW_ACCOUNT,
    cloudformation.CUSTOM_RESOURCES,
    stepfunctions.SFN_FROM_CLOUDFORMATION,
    stepfunctions.SFN_TASK_FAILURE_CAUSE,
    stepfunctions.SFN_EXECUTION,
)

_lock = threading.RLock()
#: The gaps installed in this process, in order, each with what its patches replaced.
_applied: list[tuple[str, list[tuple[Patch, Any]]]] = []


def gap(name: str) -> Gap:
    """The gap of that name; KeyError when there is none."""
    for declared in GAPS:
        if declared.name == name:
            return declared
    raise KeyError(name)


def applied() -> list[str]:
    """The names of the gaps installed in this process, in the order they were."""
    with _lock:
        return [name for name, _ in _applied]


def apply(gaps: Iterable[Gap], context: Context) -> None:
    """Install each gap not installed yet (those without an install are closed elsewhere)."""
    with _lock:
        for declared in gaps:
            if declared.install is None or declared.name in applied():
                continue
            replaced: list[tuple[Patch, Any]] = []
            for patch in declared.install(context):
                replaced.append((patch, current(patch)))
                put(patch.owner, patch.name, patch.value)
            _applied.append((declared.name, replaced))


def apply_all(context: Context) -> None:
    """Install every gap, in ``GAPS``' order."""
    apply(GAPS, context)


def revert(names: Iterable[str] | None = None) -> None:
    """Put back what the named gaps (all, when None) replaced, the latest installed first.

    A value another gap installed since over the same name raises RuntimeError, changing
    nothing more (revert that gap first). A value something else set since (pytest swaps
    ``sys.stdout`` between a test's phases) is left as it is: it is no longer ours to undo."""
    with _lock:
        wanted = set(applied() if names is None else names)
        for index in range(len(_applied) - 1, -1, -1):
            name, replaced = _applied[index]
            if name not in wanted:
                continue
            later = [p for _, r in _applied[index + 1 :] for p, _ in r]
            for patch, _ in replaced:
                for other in later:
                    if other.owner is patch.owner and other.name == patch.name and holds(other):
                        raise RuntimeError(
                            f"{name}: {other.name} was replaced again since by a later gap;"
                            " revert that gap first"
                        )
            for patch, original in reversed(replaced):
                if holds(patch):
                    put(patch.owner, patch.name, original)
            del _applied[index]


@contextlib.contextmanager
def installed(names: Iterable[str], context: Context) -> Iterator[None]:
    """The named gaps installed for the block, and removed after it."""
    chosen = [gap(name) for name in names]
    before = set(applied())
    apply(chosen, context)
    try:
        yield
    finally:
        revert([g.name for g in chosen if g.name not in before])
