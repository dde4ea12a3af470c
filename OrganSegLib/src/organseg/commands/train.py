"""`organseg train --organ ORGAN --data DATASET.csv --out MODELDIR`: a new model package from labelled CT."""
from __future__ import annotations

import argparse
from pathlib import Path

from organseg.commands.options import add_training_options, fit_config, trainer_function
from organseg.training.config import FitConfig

_DEFAULTS = FitConfig()


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
