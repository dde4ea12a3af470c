"""Atomic writes: a temporary file or folder beside the target, renamed into place when complete.

Temporary names are `.organseg-<kind>-<host>-<pid>-<token>-<random>`, the token random per process. While a
process has temporary files in a folder it holds a lock (fcntl, which network file systems pass between
machines) on `.organseg-live-<host>-<pid>-<token>` there. A later run removes what a process left behind
(killed with SIGKILL, out of memory, power cut) only when it can take that lock itself (`remove_stale`): host
name and process id alone would let two machines of one host name on a shared folder delete each other's
work in progress. Without a lock file, or where locks cannot be taken, nothing is removed.
Permissions follow the user's umask (mkstemp/mkdtemp alone give 0600/0700).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

import SimpleITK as sitk

from organseg.errors import OutputError, itk_path

try:
    import fcntl
except ImportError:  # Windows: no fcntl locks, so no leftovers are ever taken for abandoned
    fcntl = None

TEMP_PREFIX = ".organseg-"
LIVE = "live"  #: the kind of the lock file of a process's temporary files in a folder
_NAME = re.compile(rf"^{re.escape(TEMP_PREFIX)}(?P<kind>[a-z]+)-(?P<owner>.+-\d+-[0-9a-f]{{16}})(?:-|$)")

_tokens: dict[int, str] = {}  #: pid -> this process's token (a forked child makes its own)
_held: dict[Path, int] = {}  #: folder -> fd of the live lock file held there
_guard = threading.Lock()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner() -> str:
    """`<host>-<pid>-<token>`: this process, told apart from one with the same host name and pid elsewhere."""
    pid = os.getpid()
    return f"{socket.gethostname()}-{pid}-{_tokens.setdefault(pid, secrets.token_hex(8))}"


def _prefix(kind: str, parent: str | os.PathLike) -> str:
    """The name prefix of a new temporary file or folder in `parent`, its live lock taken there first."""
    folder = Path(parent).absolute()
    with _guard:
        if folder not in _held:
            fd = os.open(folder / f"{TEMP_PREFIX}{LIVE}-{_owner()}", os.O_RDWR | os.O_CREAT, 0o666)
            _try_lock(fd)  # where locks are not available, nobody else can take it either
            _held[folder] = fd
    return f"{TEMP_PREFIX}{kind}-{_owner()}-"


def _try_lock(fd: int) -> bool:
    """Take the lock of an open file without waiting; False where another process holds it (EAGAIN, EACCES)
    or the file system or platform has no locks (ENOLCK)."""
    if fcntl is None:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def release(parent: str | os.PathLike) -> None:
    """Give up the live lock in `parent` once this process has no temporary file or folder left there."""
    folder = Path(parent).absolute()
    mine = f"-{_owner()}-"
    with _guard:
        if folder not in _held:
            return
        try:
            if any(mine in name for name in os.listdir(folder)):
                return
        except OSError:
            pass  # the folder went away: nothing of ours is left in it
        fd = _held.pop(folder)
        with suppress(OSError):
            os.unlink(folder / f"{TEMP_PREFIX}{LIVE}-{_owner()}")
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix("tmp", path.parent), suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        release(path.parent)


def temp_dir(parent: str | os.PathLike, kind: str) -> Path:
    """A new hidden folder `.organseg-<kind>-...` in `parent` with umask permissions; the caller renames or
    removes it, then calls `release(parent)`."""
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(kind, parent), dir=parent))
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
    finally:
        release(Path(path).parent)


def temp_kind(path: Path) -> str | None:
    """The kind of an OrganSeg temporary name whose process is gone, else None.

    Gone means: its live lock file is there and this process can take the lock (the holder exited or was
    killed). A process of this host name and pid elsewhere holds its lock, so its work is never taken for
    abandoned; a file system without locks, or a name of another form, leaves the entry alone.
    """
    match = _NAME.match(path.name)
    if match is None or match["owner"] == _owner():
        return None
    try:
        fd = os.open(path.parent / f"{TEMP_PREFIX}{LIVE}-{match['owner']}", os.O_RDWR)
    except OSError:
        return None
    try:
        gone = _try_lock(fd)  # not where a live process holds it, nor where there are no locks to tell by
    finally:
        os.close(fd)
    return match["kind"] if gone else None


def remove_stale(folder: str | os.PathLike) -> None:
    """Remove the temporary files and folders that dead OrganSeg processes left in `folder`, and then their
    live lock files."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    stale = sorted((p for p in folder.iterdir() if temp_kind(p) is not None),
                   key=lambda p: p.name.startswith(f"{TEMP_PREFIX}{LIVE}-"))  # lock files last
    for path in stale:
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
        sitk.WriteImage(image, itk_path(tmp, OutputError), compress)
