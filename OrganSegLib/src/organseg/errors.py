"""Errors a user can act on. The CLI prints them as one line and exits non-zero; no traceback."""
from __future__ import annotations


class OrganSegError(Exception):
    """Base of all user-facing errors; the message names the file and the problem."""

    exit_code = 1


class InputError(OrganSegError):
    """The input image, DICOM folder or argument is unusable."""

    exit_code = 2


class ModelError(OrganSegError):
    """A model package is missing, corrupt, or of an unsupported version."""

    exit_code = 3


class OutputError(OrganSegError):
    """The output cannot be written without losing existing results."""

    exit_code = 4


def brief(err: BaseException) -> str:
    """The first line of a third-party error, for a one-line message that names the file."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
