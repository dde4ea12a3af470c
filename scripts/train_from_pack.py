"""Train an OpenKBP recipe model from a pack, on a machine with PyTorch and no SimpleITK (a rented GPU).

    python scripts/train_openkbp.py --organ spinal_cord --work W --selection 16 --pack PACK   (with SimpleITK)
    python scripts/train_from_pack.py --organ spinal_cord --pack PACK --work W --device cuda --workers 7 ...
    python scripts/train_openkbp.py --organ spinal_cord --work W --selection 16 --resume   (held-out table, ship)

The pack holds the recipe's training and selection patients only (never the held-out ones); its slice pairs
are those the recipe makes from the original files. The package goes to WORK/models, checkpoints to WORK/train
(--resume continues them), as `train_openkbp.py` lays them out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from openkbp_recipe import LABEL_IDS, MARGIN, add_training_options, fit_config, margin_below
from organseg.catalogue import organ as find_organ
from organseg.method.model_package import ModelPackage
from organseg.training.fit import fit_organ
from organseg.training.pack import load_pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--organ", required=True, choices=sorted(LABEL_IDS))
    parser.add_argument("--pack", type=Path, required=True, help="the pack (`train_openkbp.py --pack`)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the checkpoints and the package")
    parser.add_argument("--resume", action="store_true")
    add_training_options(parser)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    organ = find_organ(args.organ)
    cases, data = load_pack(args.pack, organ, MARGIN, margin_below(organ.key))
    fit_organ(organ.key, cases, data, args.work / "models", fit_config(args, organ.key), args.work / "train",
              args.resume, ModelPackage.load(args.parent) if args.parent else None, MARGIN, progress=False,
              device=args.device, workers=args.workers)


if __name__ == "__main__":
    main()
