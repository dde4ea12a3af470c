"""File and folder names from outside: shown readably, and checked before SimpleITK sees them.

On POSIX a name is any bytes; Python carries the bytes that are not UTF-8 as lone surrogates, which
SimpleITK's string conversion cannot take: it aborts the whole process (exit 134, no cleanup). Every path
handed to SimpleITK goes through `itk_path` first, so such a name is one error about that file instead.
"""
from __future__ import annotations

import os

from organseg.errors import InputError, OrganSegError


def printable(text: str) -> str:
    """`text` with bytes that are not UTF-8 shown as \\xNN (as they are on disk), so it can be printed and
    written to a UTF-8 file."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(path: str | os.PathLike) -> bool:
    """Whether the path's name is valid UTF-8 all through."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def itk_path(path: str | os.PathLike, error: type[OrganSegError] = InputError) -> str:
    """The path as SimpleITK takes it, or `error` naming it when it is not valid UTF-8."""
    if not is_utf8(path):
        raise error(f"{printable(os.fspath(path))}: the name is not valid UTF-8, which the image library cannot "
                    "open; rename it (e.g. with convmv)")
    return os.fspath(path)
