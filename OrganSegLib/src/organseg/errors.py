"""Errors a user can act on. The CLI prints them as one line and exits non-zero; no traceback.

Also what makes a file name from outside safe to print and to hand to SimpleITK. On POSIX a name is any
bytes; Python carries the bytes that are not UTF-8 as lone surrogates, which SimpleITK's string conversion
cannot take: it aborts the whole process (exit 134, no cleanup). Every path handed to SimpleITK goes through
`itk_path` first, so such a name is one error about that file instead.
"""
from __future__ import annotations

import os


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


def printable(text: str) -> str:
    """`text` with bytes that are not UTF-8 shown as \\xNN (as they are on disk), so it can be printed and
    written to a UTF-8 file."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def itk_path(path: str | os.PathLike, error: type[OrganSegError] = InputError) -> str:
    """The path as SimpleITK takes it, or `error` naming it when it is not valid UTF-8."""
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{printable(name)}: the name is not valid UTF-8, which the image library cannot open; "
                    "rename it (e.g. with convmv)") from None
    return name
