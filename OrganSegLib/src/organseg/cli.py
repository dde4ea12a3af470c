"""The `organseg` command: one sub-command per module in `organseg.commands`."""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from organseg import __version__
from organseg.errors import OrganSegError

#: Sub-command modules; each has `register(subparsers)` that sets `func(args) -> int` on its parser.
COMMANDS = ("segment", "batch", "organs", "models", "dataset", "train", "fine-tune", "evaluate", "export-rtstruct",
            "export-dicom-seg", "review")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="organseg", description="Per-organ CT segmentation (OrganSeg).")
    parser.add_argument("--version", action="version", version=f"organseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"organseg.commands.{name.replace('-', '_')}").register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, Slurm, `docker stop`): cleaned up like Ctrl-C, then exit 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


class _Once(logging.Filter):
    """Let each message through once (a DICOM note concerns every export of the run, not each one)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        fresh = message not in self.seen
        self.seen.add(message)
        return fresh


def _log_warnings_to_stderr() -> logging.Handler:
    """The library's logged warnings on stderr as `warning: ...`, each once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.addFilter(_Once())
    logger = logging.getLogger("organseg")
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; user errors print one line on stderr and give a non-zero exit code."""
    args = build_parser().parse_args(argv)
    handler = _log_warnings_to_stderr()
    try:
        return _guarded(args)
    finally:
        logging.getLogger("organseg").removeHandler(handler)
        logging.getLogger("organseg").propagate = True


def _guarded(args: argparse.Namespace) -> int:
    """Run with SIGTERM cleaned up like Ctrl-C (where signal handlers can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return _run(args)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except OrganSegError as err:
        print(f"organseg {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt as interrupt:
        print(f"organseg {args.command}: interrupted; no partial output was kept (each result folder or file "
              "holds its earlier or its complete new content)", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    except MemoryError:
        print(f"organseg {args.command}: error: out of memory; use a smaller --batch-size or crop the CT",
              file=sys.stderr)
        return 5


if __name__ == "__main__":
    sys.exit(main())
