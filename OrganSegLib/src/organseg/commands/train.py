"""`organseg train --organ ORGAN --data DATASET.csv --out MODELDIR`: a new model package from labelled CT."""
from __future__ import annotations

import argparse
from pathlib import Path

from organseg.errors import InputError
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
    return FitConfig(args.steps, args.batch_size, args.lr, args.val_every, args.patience, args.seed,
                     not args.no_augment, args.max_minutes * 60 if args.max_minutes else None)


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
