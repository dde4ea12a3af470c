"""`organseg train --organ ORGAN --data DATASET.csv --out MODELDIR`: a new model package from labelled CT."""
from __future__ import annotations

import argparse
from pathlib import Path

from organseg.errors import InputError
from organseg.preprocess import INPUT_HEIGHT, INPUT_WIDTH
from organseg.training.config import FitConfig

_DEFAULTS = FitConfig()


def add_training_options(p: argparse.ArgumentParser, defaults: FitConfig) -> None:
    """Options shared by `train` and `fine-tune`."""
    p.add_argument("--organ", required=True, help="catalogue organ name (see `organseg organs`)")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset CSV with columns image, mask, source (+ optional label, labels, case)")
    p.add_argument("--steps", type=int, default=defaults.max_steps,
                   help=f"maximum optimisation steps (default {defaults.max_steps})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"slices per step (default {defaults.batch_size})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam learning rate (default {defaults.lr})")
    p.add_argument("--val-every", type=int, default=defaults.val_every,
                   help=f"steps between validations and checkpoints (default {defaults.val_every})")
    p.add_argument("--patience", type=int, default=defaults.patience,
                   help=f"validations without improvement before stopping early (default {defaults.patience})")
    p.add_argument("--max-minutes", type=float, help="stop after this much training time (after a validation)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the split, sampling and augmentation")
    p.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    p.add_argument("--margin", type=int, default=30, help="slices above/below the organ to train on (default 30)")
    p.add_argument("--margin-below", type=int, metavar="N",
                   help="slices below the organ to train on, where contours stop short of it (default: --margin)")
    p.add_argument("--patch", metavar="ROWSxCOLS",
                   help="train on crops of the 224x304 input, e.g. 128x160 (faster; default: whole slices)")
    p.add_argument("--foreground-fraction", type=float, default=defaults.foreground_fraction,
                   help=f"share of crops centred on the organ (default {defaults.foreground_fraction})")
    p.add_argument("--poly-lr", action="store_true", help="decay the learning rate to 0 over --steps or --max-minutes")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--work", type=Path, help="folder for checkpoints and the log (default OUT/.train-ORGAN)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in the work folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def fit_config(args: argparse.Namespace) -> FitConfig:
    """The FitConfig of the command-line options (checked)."""
    for name in ("steps", "batch_size", "val_every", "patience", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise InputError(f"--max-minutes must be positive (got {args.max_minutes})")
    if args.margin_below is not None and args.margin_below < 0:
        raise InputError(f"--margin-below must be 0 or more (got {args.margin_below})")
    if not 0 <= args.foreground_fraction <= 1:
        raise InputError(f"--foreground-fraction must be between 0 and 1 (got {args.foreground_fraction})")
    return FitConfig(args.steps, args.batch_size, args.lr, args.val_every, args.patience, args.seed,
                     not args.no_augment, args.max_minutes * 60 if args.max_minutes else None,
                     _patch(args.patch), args.foreground_fraction, args.margin_below, args.poly_lr)


def _patch(value: str | None) -> tuple[int, int] | None:
    """--patch ROWSxCOLS, checked against the network input (multiples of 8 that fit in 224x304)."""
    if value is None:
        return None
    try:
        rows, cols = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise InputError(f"--patch '{value}' should be ROWSxCOLS, e.g. 128x160") from None
    if not (8 <= rows <= INPUT_HEIGHT and 8 <= cols <= INPUT_WIDTH and rows % 8 == 0 and cols % 8 == 0):
        raise InputError(f"--patch {value}: rows and columns must be multiples of 8 within "
                         f"{INPUT_HEIGHT}x{INPUT_WIDTH}")
    return rows, cols


def trainer_function(threads: int | None):
    """`organseg.training.run.train_organ` (PyTorch on `threads` CPU threads), or a one-line error when
    PyTorch is missing."""
    try:
        import torch

        from organseg.training.run import train_organ
    except ImportError as err:
        raise InputError(f"training needs PyTorch ({err}): pip install 'organseg[torch]'") from None
    if threads:
        torch.set_num_threads(threads)
    return train_organ


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train an organ's model package from labelled CT (needs PyTorch)")
    add_training_options(p, _DEFAULTS)
    p.add_argument("--out", type=Path, required=True, help="models folder to write ORGAN-vN into")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = fit_config(args)
    train_organ = trainer_function(args.threads)
    train_organ(args.organ, args.data, args.out, config, args.work, args.resume, margin=args.margin,
                progress=not args.quiet)
    return 0
