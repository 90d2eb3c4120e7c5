"""The errors the CLI expects: each is printed as one sentence, never as a traceback."""

from __future__ import annotations

#: Exit code of a failure (the API refused, the desktop failed, the network is down).
FAILURE = 1
#: Exit code of a usage error or bad input (a bad argument, a body the API rejected as invalid).
USAGE = 2
#: Exit code after Ctrl-C.
INTERRUPTED = 130

EXPIRED = "Your sign-in has expired: run dcvfleet login"
NOT_SIGNED_IN = "You are not signed in: run dcvfleet login"


class CliError(Exception):
    """An expected failure: ``message`` is shown to the user, ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    """The API answered with an error status; ``message`` is the API's own."""

    def __init__(self, status: int, message: str, body: object = None) -> None:
        super().__init__(message, USAGE if status in (400, 422) else FAILURE)
        self.status = status
        self.body = body
