"""Sub-commands of the `organseg` command line, and the options several of them share."""
from __future__ import annotations

import argparse
from pathlib import Path

from organseg.model_package import ModelStore


def add_models_option(parser: argparse.ArgumentParser, what: str = "model folder") -> None:
    """--models DIR (repeatable); without it the standard places are searched."""
    parser.add_argument("--models", action="append", type=Path,
                        help=f"{what} (repeatable; default: $ORGANSEG_MODELS, ~/.organseg/models, bundled)")


def model_store(args: argparse.Namespace) -> ModelStore:
    """The model store that --models names, or the standard one."""
    return ModelStore(args.models) if args.models else ModelStore()
