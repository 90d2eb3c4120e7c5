"""The error hierarchy: messages, chaining, and the reason a user reads for a workflow error."""

from __future__ import annotations

import inspect
import pickle

import pytest

from dcvfleet import errors
from dcvfleet.errors import (
    STATES_ERRORS,
    DcvFleetError,
    HostNotReadyError,
    InsufficientCapacityError,
    JobFailedError,
    all_error_classes,
    user_message_for,
)

GENERIC = DcvFleetError.user_message
ERROR_CLASSES = all_error_classes()


def by_name(cls: type[DcvFleetError]) -> str:
    return cls.__name__


def test_all_error_classes_lists_every_error_of_the_module_once() -> None:
    # Given the classes the errors module defines
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, DcvFleetError) and cls.__module__ == errors.__name__
    }
    # Then the list the ASL check uses has each of them, once
    assert set(ERROR_CLASSES) == defined
    assert len(ERROR_CLASSES) == len(defined)
    assert all(cls.__name__.endswith("Error") for cls in ERROR_CLASSES)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=by_name)
def test_every_error_keeps_its_message(cls: type[DcvFleetError]) -> None:
    # When an error is made with a message naming a field
    error = cls("instanceType: 'p5.48xlarge' is not allowed")
    # Then the message is what str() and Lambda's errorMessage show, and is kept as an attribute
    assert str(error) == "instanceType: 'p5.48xlarge' is not allowed"
    assert error.message == str(error)
    assert error.args == ("instanceType: 'p5.48xlarge' is not allowed",)
    assert isinstance(error, DcvFleetError)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=by_name)
def test_every_error_chains_the_error_it_was_raised_from(cls: type[DcvFleetError]) -> None:
    # Given a low-level failure
    original = KeyError("Reservations")

    def describe() -> None:
        try:
            raise original
        except KeyError as exc:
            raise cls("describe failed") from exc

    # When an error of the hierarchy is raised from it
    with pytest.raises(cls) as raised:
        describe()
    # Then the original is its explicit cause, and the message is its own
    assert raised.value.__cause__ is original
    assert raised.value.__suppress_context__ is True
    assert raised.value.message == "describe failed"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=by_name)
def test_every_error_survives_pickling_with_its_message(cls: type[DcvFleetError]) -> None:
    # When an error crosses a process boundary (pickled and restored)
    restored = pickle.loads(pickle.dumps(cls("backend: 'batch' is not enabled")))  # noqa: S301
    # Then it is the same class with the same message
    assert type(restored) is cls
    assert restored.message == "backend: 'batch' is not enabled"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=by_name)
def test_user_message_for_each_class_name_is_its_user_message(cls: type[DcvFleetError]) -> None:
    # When the workflow reports an error by class name / Then the user reads that class's message
    assert user_message_for(cls.__name__) == cls.user_message
    assert cls.user_message.strip()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("States.Timeout", HostNotReadyError.user_message),
        ("States.TaskFailed", GENERIC),
        ("InsufficientCapacityError", InsufficientCapacityError.user_message),
    ],
)
def test_user_message_for_the_names_the_workflow_reports(name: str, expected: str) -> None:
    assert user_message_for(name) == expected


def test_a_timeout_reads_as_not_ready_in_time() -> None:
    assert "did not become ready in time" in user_message_for("States.Timeout")
    assert STATES_ERRORS["States.Timeout"] == HostNotReadyError.user_message


@pytest.mark.parametrize(
    "name",
    ["", "KeyError", "Lambda.Unknown", "States.Runtime", "States.ALL", "dcvfleeterror"],
)
def test_user_message_for_an_unknown_name_is_the_generic_message(name: str) -> None:
    # When the workflow reports a name the fleet does not know / Then the user reads the generic one
    assert user_message_for(name) == GENERIC
    assert user_message_for(name, "Traceback: internal detail") == GENERIC


def test_only_errors_meant_for_users_show_their_own_message() -> None:
    # Given the detail of a failure (the error's own message)
    detail = "no capacity for g5.xlarge, g4dn.xlarge in subnet-a, subnet-b"
    # Then a capacity error keeps it out of the user's reason (it is the operator's detail)
    assert user_message_for("InsufficientCapacityError", detail) == (
        InsufficientCapacityError.user_message
    )
    # And a job's end adds the first line of its message (a user's words), not Batch's detail
    assert user_message_for("JobFailedError", "its image could not be pulled\njob j-1 FAILED") == (
        f"{JobFailedError.user_message} (its image could not be pulled)"
    )
    # And every other error keeps internals out of the user's reason
    for cls in ERROR_CLASSES:
        if not cls.detail_for_user:
            assert user_message_for(cls.__name__, "arn:aws:internal") == cls.user_message


@pytest.mark.parametrize(
    ("caught", "cause", "reported"),
    [
        ("JobFailedError", "exit code 1", {"error": "JobFailedError", "cause": "exit code 1"}),
        ("States.Timeout", "", {"error": "WorkflowStepError", "cause": "States.Timeout"}),
        ("States.TaskFailed", "boom", {"error": "WorkflowStepError", "cause": "States.TaskFailed: boom"}),
        ("Lambda.ServiceException", "503", {"error": "WorkflowStepError", "cause": "Lambda.ServiceException: 503"}),
        (None, "", {"error": "WorkflowStepError", "cause": "States.TaskFailed"}),
    ],
)  # fmt: skip
def test_the_error_a_workflow_reports_is_a_class_here_and_its_cause_names_what_was_caught(
    caught: str | None, cause: str, reported: dict[str, str]
) -> None:
    # Names beginning "States." are Step Functions' own: a Fail state may not report one
    # (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)
    assert errors.workflow_error(caught, cause) == reported
    assert reported["error"] in {c.__name__ for c in ERROR_CLASSES}


def test_the_cause_a_workflow_reports_fits_step_functions_limit() -> None:
    long = errors.workflow_error("States.TaskFailed", "x" * 100_000)["cause"]
    assert len(long) == errors.MAX_CAUSE_CHARACTERS
