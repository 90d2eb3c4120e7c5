"""The one error hierarchy. Class names are exactly the ``ErrorEquals`` names used in the ASL."""

from __future__ import annotations


class DcvFleetError(Exception):
    """Base of every error the control plane raises on purpose."""

    #: What a user may read about this failure (shown on the session as statusReason).
    user_message = "The desktop could not be prepared."
    #: Whether the error's own message is fit for the user too (no internals in it).
    detail_for_user = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(DcvFleetError):
    """A request body or parameter is malformed; the message names the field."""


class SessionNotFoundError(DcvFleetError):
    """No such session for this caller."""


class SessionLimitExceededError(DcvFleetError):
    """The caller already has the maximum number of active sessions."""


class SessionConflictError(DcvFleetError):
    """A conditional write lost: the record's status or version changed underneath."""


class StatusConflictError(SessionConflictError):
    """The call is not valid from the session's current status (an API 409 naming it)."""

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class InsufficientCapacityError(DcvFleetError):
    """No GPU capacity for any instance type in any subnet."""

    user_message = (
        "No GPU capacity is available right now for the requested desktop. Try again later."
    )


class GpuQuotaError(DcvFleetError):
    """EC2 refused every instance type for the account's vCPU quota (VcpuLimitExceeded): a new
    account's quota for GPU instances is 0 until an operator asks for more. Its message, for
    operators, names the quota; the user is told only that GPU desktops are not enabled."""

    user_message = (
        "GPU desktops are not enabled in this AWS account yet. Your administrator has been told."
    )


class JobFailedError(DcvFleetError):
    """A desktop container's Batch job ended (or vanished) before its desktop was ready. Its
    message's first line says why in a user's words; what Batch said follows, for operators."""

    user_message = "The desktop's container stopped before it was ready."
    detail_for_user = True


class LaunchError(DcvFleetError):
    """EC2 refused the launch for a reason other than capacity."""

    user_message = "The desktop's host could not be launched."


class InstanceBusyError(DcvFleetError):
    """The instance is between states (still stopping); the step is retried."""


class InstanceGoneError(DcvFleetError):
    """The desktop's instance was terminated or lost its tag: it cannot be started again."""

    user_message = "The desktop's host no longer exists."


class HostNotReadyError(DcvFleetError):
    """The host's agent never reported DCV ready in time."""

    user_message = "The desktop did not become ready in time."


class ClaimRejectedError(DcvFleetError):
    """An agent event's claim does not match the session record or the instance."""


class HostCommandError(DcvFleetError):
    """A command run on a host through SSM did not run or did not answer as expected."""


class ReleaseConflictError(DcvFleetError):
    """A release exists already, or is not in a status that allows the change."""


class ReleaseNotFoundError(DcvFleetError):
    """No such release."""


class ProfileNotFoundError(DcvFleetError):
    """No profile with this id (GET/DELETE /admin/profiles/{id})."""


class ProfileConflictError(DcvFleetError):
    """The profile cannot be changed this way (a template profile cannot be deleted)."""


class HostImageNotFoundError(DcvFleetError):
    """This fleet has no host image for that OS."""


class HostImageConflictError(DcvFleetError):
    """The host image cannot be built or rolled back now (no pipeline, a build under way, nothing
    earlier to go back to)."""


class ImageNotBuiltError(DcvFleetError):
    """The build finished but its image is not in the repository."""


class SmokeTestFailedError(DcvFleetError):
    """The smoke-test desktop on a new release did not reach READY."""


class ConfigurationError(DcvFleetError):
    """A Lambda's environment is missing or malformed."""


class HostDidNotStopError(DcvFleetError):
    """A desktop's instance did not stop (or end) within the idle workflow's checks."""


class BuildFailedError(DcvFleetError):
    """A release's image build ended other than SUCCEEDED."""


class ReleaseFailedError(DcvFleetError):
    """A build did not become a release; the current release is unchanged."""


class SweepFailedError(DcvFleetError):
    """The fleet sweep could not find its work; the next sweep tries again."""


class RecoveryFailedError(DcvFleetError):
    """After a failed idle step, leaving the records true failed as well."""


class WorkflowStepError(DcvFleetError):
    """A workflow step failed with an error no DCV Fleet code raised on purpose: a Lambda
    runtime error, an AWS service error or one of Step Functions' own (``States.*``), which
    the cause names."""


#: ASL error names of the service (States.*) that map to a user-readable reason.
STATES_ERRORS: dict[str, str] = {
    "States.Timeout": HostNotReadyError.user_message,
    "States.TaskFailed": DcvFleetError.user_message,
}


def user_message_for(error_name: str, detail: str = "") -> str:
    """The reason shown to a user for a workflow error name (a class here or a States.* name).

    ``detail`` (the error's own message) is added only for errors whose messages are meant
    for users, and only its first line (such as why a desktop's container stopped); the rest,
    and every other error's message, is the operator's ``statusDetail``.
    """
    cls = next((c for c in all_error_classes() if c.__name__ == error_name), None)
    if cls is None:
        return STATES_ERRORS.get(error_name, DcvFleetError.user_message)
    plain = detail.split("\n", 1)[0].strip()
    if cls.detail_for_user and plain:
        return f"{cls.user_message} ({plain})"
    return cls.user_message


def operator_detail(error_name: str | None, detail: str = "") -> str:
    """What operators read behind a user's reason (``statusDetail``): the error and its message."""
    name = error_name or "States.TaskFailed"
    text = " ".join(detail.split())
    return f"{name}: {text}"[:2000] if text else name


#: The longest cause Step Functions keeps for a failed execution
#: (https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionFailedEventDetails.html).
MAX_CAUSE_CHARACTERS = 32_768


def workflow_error(name: str | None, cause: str = "") -> dict[str, str]:
    """The error a workflow reports (a Fail state's Error and Cause) for an error it caught.

    A Fail state may name no error of Step Functions' own: names beginning ``States.`` are
    reserved (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
    So the name is always a class here: the caught one when it is, else ``WorkflowStepError``,
    whose cause starts with the caught name, so operators read exactly what failed.
    """
    caught = name or "States.TaskFailed"
    known = {c.__name__ for c in all_error_classes()}
    reported = caught if caught in known else WorkflowStepError.__name__
    text = cause if reported == caught else f"{caught}: {cause}" if cause else caught
    return {"error": reported, "cause": text[:MAX_CAUSE_CHARACTERS]}


def all_error_classes() -> list[type[DcvFleetError]]:
    """Every custom error class, for the ASL ``ErrorEquals`` check."""
    found: list[type[DcvFleetError]] = []
    stack: list[type[DcvFleetError]] = [DcvFleetError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found
