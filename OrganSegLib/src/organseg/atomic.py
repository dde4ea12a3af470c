"""Atomic writes: a temporary file or folder beside the target, renamed into place when complete.

Temporary names are `.organseg-<kind>-<host>-<pid>-<random>`, so a later run can tell the leftovers of a
process that no longer runs (killed with SIGKILL, out of memory, power cut) and remove them
(`remove_stale`). Permissions follow the user's umask (mkstemp/mkdtemp alone give 0600/0700).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import SimpleITK as sitk

TEMP_PREFIX = ".organseg-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(kind: str) -> str:
    return f"{TEMP_PREFIX}{kind}-{socket.gethostname()}-{os.getpid()}-"


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix("tmp"), suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temp_dir(parent: str | os.PathLike, kind: str) -> Path:
    """A new hidden folder `.organseg-<kind>-...` in `parent` with umask permissions; the caller renames or
    removes it."""
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(kind), dir=parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


@contextmanager
def atomic_dir(path: str | os.PathLike, kind: str) -> Iterator[Path]:
    """Yield a new temporary folder beside `path`; on success it is renamed to `path` (which must not exist),
    on error it is removed."""
    tmp = temp_dir(Path(path).parent, kind)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def temp_kind(path: Path) -> str | None:
    """The kind of an OrganSeg temporary name whose process is gone (same host, pid not running), else None."""
    if not path.name.startswith(TEMP_PREFIX):
        return None
    kind, _, rest = path.name[len(TEMP_PREFIX):].partition("-")
    host_pid = rest.rsplit("-", 1)[0]
    host, _, pid = host_pid.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return kind
    except OSError:  # exists, owned by someone else
        return None
    return None


def remove_stale(folder: str | os.PathLike) -> None:
    """Remove the temporary files and folders that dead OrganSeg processes left in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if temp_kind(path) is not None:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, so a sequence of renames is never cut half-way.

    A signal that arrived meanwhile is raised again when the block is done. Outside the main thread
    (where handlers cannot be set) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda number, frame: caught.append(number))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])


def atomic_write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write an image through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    with atomic_file(path, suffix) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
