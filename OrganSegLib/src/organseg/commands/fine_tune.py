"""`organseg fine-tune --organ ORGAN --model M --data corrected.csv`: a new package version from corrections."""
from __future__ import annotations

import argparse
from pathlib import Path

from organseg.catalogue import organ
from organseg.commands.options import add_training_options, fit_config, trainer_function
from organseg.errors import ModelError
from organseg.method.model_package import ModelPackage, ModelStore, bundled_models_dir
from organseg.training.config import FitConfig

#: A few minutes on a CPU: fewer, gentler steps than training from scratch.
_DEFAULTS = FitConfig(max_steps=150, lr=3e-4, val_every=25, patience=4)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fine-tune", help="continue training a model package on corrected masks "
                                                "(writes a new version, needs PyTorch)")
    add_training_options(p, _DEFAULTS)
    p.add_argument("--model", type=Path, required=True,
                   help="the package folder (ORGAN-vN) or a models folder (its newest ORGAN version)")
    p.add_argument("--out", type=Path, help="models folder for the new version (default: the package's "
                                            "folder; ~/.organseg/models for bundled packages)")
    p.set_defaults(func=run)


def parent_package(model: Path, organ_key: str) -> ModelPackage:
    """The package to start from: a package folder or the newest version of the organ in a models folder."""
    if not model.exists():
        raise ModelError(f"{model}: no such model package or models folder")
    key = organ(organ_key).key
    package = ModelPackage.load(model) if (model / "model.json").is_file() else ModelStore([model]).get(key)
    if package.organ.key != key:
        raise ModelError(f"{package.path}: is a {package.organ.key} model, not {key}")
    return package


def run(args: argparse.Namespace) -> int:
    config = fit_config(args)
    parent = parent_package(args.model, args.organ)
    out = args.out
    if out is None:
        out = parent.path.parent
        if out.resolve() == bundled_models_dir().resolve():
            out = Path.home() / ".organseg" / "models"
    train_organ = trainer_function(args.threads, args.device, args.loader_workers)
    train_organ(parent.organ.key, args.data, out, config, args.work, args.resume, parent, args.margin,
                progress=not args.quiet)
    return 0
