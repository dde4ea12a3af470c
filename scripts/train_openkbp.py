"""Retrain a shipped model from the OpenKBP head-and-neck CTs and print its held-out table.

    python scripts/train_openkbp.py --organ spinal_cord --work .work/spinal_cord --minutes 100 [--resume]
    python scripts/train_openkbp.py --organ esophagus --work .work/esophagus --minutes 100 [--resume]
    ... --parent PACKAGE   continue a shipped model (how v2 was made from v1: scripts/TRAINING_OPENKBP.md)
    ... --device cuda --workers 7 --batch-size 64 --selection 16   train on a GPU (with SimpleITK installed)
    ... --pack PACK   write the data set as a pack and stop: `train_from_pack.py PACK` trains it on a machine with
                      PyTorch alone (a GPU without SimpleITK); then rerun this with --resume and the trained
                      package in WORK/models for steps 3-5

Steps (each resumable; kill it at any moment and rerun with --resume):
1. `WORK/dataset.csv` from ../shared/data: OpenKBP `train` patients contoured for the organ train the network,
   a seeded few of them select it (the CSV's `validation` split); OpenKBP's `validation` patients are the
   held-out test set, never seen in training or selection. The TotalSegmentator example series adds an
   abdominal spinal cord. A patient without the organ's contour is left out, never used as a negative.
2. `organseg train` on crops of the network input, with organ-centred crops and crops from anywhere else.
   OpenKBP's cord and esophagus contours stop short of the organs' lower ends, so no slice below them is a
   negative; the other organs are drawn whole and every slice below them is (`openkbp_recipe.margin_below`).
3. The probability threshold (0.3-0.7) with the best median Dice on the selection patients, segmented as a
   user would: clinical contours of a thin organ are often thinner than the network's 0.5 boundary.
4. Every held-out patient segmented as a user would (`Segmenter`, with post-processing, at that threshold)
   and compared with its manual contour on the CT grid: Dice, NSD at 3 mm, HD95, over the whole CT and within
   the contour's axial range (where the clinician drew it).
5. The model package, with its threshold and model card, written to --install (default: the bundled models)
   as the next version there, and the per-patient table to WORK/heldout.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from openkbp_recipe import (CONFIG, LABEL_IDS, MARGIN, OPENKBP, SELECTION_PATIENTS, THRESHOLDS, add_training_options,
                            contoured, fit_config, margin_below, openkbp_cases, write_dataset)
from organseg.catalogue import organ as find_organ
from organseg.ct.read import read_ct
from organseg.evaluation.metrics import organ_metrics
from organseg.method.model_package import ModelPackage, ModelStore, bundled_models_dir, write_package
from organseg.segmenter import Segmenter
from organseg.training.dataset import pack_dataset
from organseg.training.run import train_organ


def heldout_folders(organ_key: str) -> list[Path]:
    """The OpenKBP validation patients contoured for the organ: the held-out test set."""
    return [OPENKBP / "validation" / c["case"] for c in openkbp_cases()
            if c["split"] == "validation" and contoured(c, organ_key)]


def selection_folders(data: Path) -> list[Path]:
    """The OpenKBP patients of the dataset CSV that select the weights (its `validation` split)."""
    with open(data, newline="") as fh:
        return [Path(r["image"]).parent for r in csv.DictReader(fh) if r["split"] == "validation"]


def patient_metrics(package: ModelPackage, organ_key: str, folders: list[Path], verbose: bool = True) -> list[dict]:
    """Per patient metrics of the package, segmented as a user would, on the CT grid."""
    segmenter = Segmenter(models=package.path.parent, device="cpu")
    rows = []
    for folder in folders:
        ct = read_ct(folder / "ct.nii.gz")
        t0 = time.perf_counter()
        result = segmenter.segment(ct, [organ_key], source=str(folder))
        seconds = time.perf_counter() - t0
        pred = sitk.GetArrayFromImage(result.mask_image(organ_key)) > 0
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz"))) == LABEL_IDS[organ_key]
        row = patient_row(folder.name, pred, ref, tuple(reversed(ct.GetSpacing())))
        rows.append({**row, "seconds": seconds})
        if verbose:
            print(f"{folder.name}: Dice {row['dice']:.3f} (contoured range {row['dice_contoured_range']:.3f}), "
                  f"NSD {row['nsd_3mm']:.3f}, HD95 {row['hd95_mm']:.1f} mm", flush=True)
    return rows


def patient_row(case: str, pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict:
    """A patient's metrics on the CT grid: over the whole CT and within the contour's axial range."""
    whole = organ_metrics(pred, ref, spacing)
    zs = np.flatnonzero(ref.reshape(len(ref), -1).any(axis=1))
    drawn = slice(zs[0], zs[-1] + 1)
    within = organ_metrics(pred[drawn], ref[drawn], spacing)
    return {"case": case, "dice": whole.dice, "nsd_3mm": whole.nsd, "hd95_mm": whole.hd95_mm,
            "dice_contoured_range": within.dice, "volume_pred_ml": whole.volume_pred_ml,
            "volume_ref_ml": whole.volume_ref_ml}


def with_threshold(package: ModelPackage, threshold: float, folder: Path) -> ModelPackage:
    """The package's network with another probability threshold, written to `folder`."""
    return write_package(folder, package.organ.key, package.state_dict_arrays(), package.channels,
                         package.meta["training"], package.meta["metrics"], package.version, threshold,
                         context=package.context)


def choose_threshold(package: ModelPackage, organ_key: str, folders: list[Path]) -> tuple[float, dict[str, float]]:
    """The probability threshold with the best median Dice on the selection patients (ties: nearest 0.5), and
    each threshold's median. Clinical contours of a thin organ at 4 mm are often thinner than the network's 0.5
    boundary; the threshold is chosen on patients that neither train the network nor test it."""
    medians = {}
    for threshold in THRESHOLDS:
        with tempfile.TemporaryDirectory() as tmp:
            rows = patient_metrics(with_threshold(package, threshold, Path(tmp)), organ_key, folders, verbose=False)
        medians[threshold] = round(float(np.median([r["dice"] for r in rows])), 4)
        print(f"threshold {threshold}: selection Dice median {medians[threshold]:.4f} ({len(rows)} patients)")
    best = max(THRESHOLDS, key=lambda t: (medians[t], -abs(t - 0.5)))
    return best, {f"{t:g}": m for t, m in medians.items()}


def summary(rows: list[dict]) -> dict:
    """Per-patient median and range of each metric (NaN HD95 of empty predictions counted as worst, and written
    as null: a model card is strict JSON, which has no infinity)."""
    out = {"patients": len(rows)}
    for key in ("dice", "nsd_3mm", "hd95_mm", "dice_contoured_range"):
        values = np.array([r[key] for r in rows], float)
        if key == "hd95_mm":
            values = np.where(np.isnan(values), np.inf, values)
        out[key] = {name: round(v, 4) if math.isfinite(v) else None
                    for name, v in (("median", float(np.median(values))), ("min", float(values.min())),
                                    ("max", float(values.max())))}
    return out


def device_note(training: dict) -> str:
    """Where the package was trained, as its card says it."""
    if training.get("device", "cpu") == "cpu":
        return f"CPU, {training['torch_threads']} thread(s)"
    return (f"GPU, {training['device']}, float16 mixed precision, {training['loader_workers']} batch-making "
            "processes")


#: What a model card says a package cannot be trusted for, by organ.
LIMITS = {
    "default": "trained on head-and-neck CTs at ~4 mm in-plane (plus one abdominal series): neck and upper thorax "
               "covered best; OpenKBP contours stop short of the organ's lower end, so the whole-CT Dice counts "
               "correct findings below the drawn contour as errors",
    "head": "trained on head-and-neck planning CTs at ~4 mm in-plane (128^3 crops, OpenKBP): untested on diagnostic "
            "CTs at finer resolution, on CTs that do not hold the head and neck, and on other clinics' contouring "
            "conventions; a CPU-time training run (see the recipe and the held-out table), not a clinical model",
}


def model_card(organ_key: str, trained: ModelPackage, table: dict, parent: ModelPackage | None = None
               ) -> tuple[dict, dict]:
    """`training` and `metrics` of the shipped package: data by name, no machine paths."""
    t = trained.meta["training"]
    parent_name = None if parent is None else f"{parent.organ.key}-v{parent.version}"
    sources = t["split"]["sources"]
    split = sources["openkbp"]
    extra = sources.get("totalsegmentator_example", {}).get("train_cases", [])
    n_train = len(split["train_cases"]) + len(extra)
    training = {
        "patients": n_train + len(split["val_cases"]),
        "summary": f"trained on {n_train} patients ({len(split['train_cases'])} OpenKBP head-and-neck"
                   f"{f' + {len(extra)} TotalSegmentator abdominal' if extra else ''}), weights selected on "
                   f"{len(split['val_cases'])} other OpenKBP patients; held-out Dice median "
                   f"{table['dice']['median']:.3f} on {table['patients']} OpenKBP validation patients",
        "data": {"sets": {"openkbp_hn": "OpenKBP provided-data (Babier et al., Med Phys 2021), manual clinical "
                                        "contours, 128^3 CT at ~4 mm in-plane",
                          "totalseg_example": "TotalSegmentator test files: one 20-slice abdominal CT series, "
                                              "TotalSegmentator v2 labels (model-made)"},
                 "train_patients": n_train, "selection_patients": len(split["val_cases"]),
                 "slices": t["data"]["slices"], "case_names": t["data"]["case_names"]},
        "split": {"train": split["train_cases"] + extra, "selection": split["val_cases"],
                  "held_out": f"OpenKBP validation split ({table['patients']} patients contoured for this organ), "
                              "never used in training or selection"},
        "excluded": "patients without this organ's contour (an absent contour is not an absent organ); "
                    "OpenKBP validation patients (held out)",
        "recipe": recipe(organ_key, t, parent_name),
        "device": device_note(t),
        "steps": t["steps"], "best_step": t["best_step"], "minutes": round(t["seconds"] / 60, 1),
        "config": t["config"], "augmentation": t["augmentation"], "loss_curve": t["loss_curve"],
        "val_history": t["val_history"],
        "continued_from": None if parent is None else {
            "package": parent_name, "weights_sha256": parent.meta["files"]["weights.npz"]["sha256"],
            "steps": parent.meta["training"]["steps"], "minutes": parent.meta["training"]["minutes"],
            "heldout_dice_median": parent.meta["metrics"]["heldout"]["dice"]["median"]},
        "limits": LIMITS["head"] if find_organ(organ_key).region == "head" else LIMITS["default"],
    }
    metrics = {"val_dice": table["dice"]["median"],
               "val_dice_definition": "median per-patient 3D Dice on the held-out OpenKBP validation patients, "
                                      "post-processed, on the CT grid",
               "val_split": "patient split (held-out data set split)", "heldout": table}
    return training, metrics


def recipe(organ_key: str, training: dict, parent_name: str | None) -> str:
    """The command that retrains the package (settings that differ from the recipe's defaults named)."""
    config = training["config"]
    command = f"python scripts/train_openkbp.py --organ {organ_key}"
    if parent_name is not None:
        command += f" --parent {parent_name}"
    for option, key in (("--lr", "lr"), ("--batch-size", "batch_size"), ("--val-every", "val_every"),
                        ("--steps", "max_steps"), ("--patience", "patience")):
        if config[key] != CONFIG[key] or (option == "--lr" and parent_name is not None):
            command += f" {option} {config[key]:g}" if option == "--lr" else f" {option} {config[key]}"
    if config.get("context"):
        command += f" --context-slices {config['context']}"
    if config.get("seed"):
        command += f" --seed {config['seed']}"
    if config["max_seconds"] != 100 * 60:
        command += f" --minutes {config['max_seconds'] / 60:g}"
    selection = len(training["split"]["sources"]["openkbp"]["val_cases"])
    if selection != SELECTION_PATIENTS:
        command += f" --selection {selection}"
    if training.get("device", "cpu") != "cpu":
        command += f" --device cuda --workers {training['loader_workers']}"
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--organ", required=True, choices=sorted(LABEL_IDS))
    parser.add_argument("--work", type=Path, required=True, help="folder for the CSV, checkpoints and logs")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--selection", type=int, default=SELECTION_PATIENTS,
                        help="OpenKBP train patients that select the weights")
    parser.add_argument("--pack", type=Path, help="write the data set as a pack here and stop")
    parser.add_argument("--install", type=Path, default=bundled_models_dir(), help="models folder to ship into "
                        "(as the next version there)")
    parser.add_argument("--note", help="how the run went, for the model card (e.g. a resumed schedule)")
    add_training_options(parser)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    organ = find_organ(args.organ)
    parent = ModelPackage.load(args.parent) if args.parent else None
    data = args.work / "dataset.csv"
    if not args.resume or not data.exists():
        write_dataset(organ.key, data, selection=args.selection)
    if args.pack:
        pack_dataset(data, [organ], args.pack, MARGIN, margin_below(organ.key))
        return
    models = args.work / "models"
    trained = sorted(models.glob(f"{organ.key}-v*"))
    if trained:
        package = ModelPackage.load(trained[-1])
    else:
        package = train_organ(organ.key, data, models, fit_config(args, organ.key), args.work / "train", args.resume,
                              parent, margin=MARGIN, progress=False, device=args.device, workers=args.workers)
    threshold, by_threshold = choose_threshold(package, organ.key, selection_folders(data))
    with tempfile.TemporaryDirectory() as tmp:
        rows = patient_metrics(with_threshold(package, threshold, Path(tmp)), organ.key, heldout_folders(organ.key))
    table = summary(rows)
    (args.work / "heldout.json").write_text(json.dumps({"rows": rows, "summary": table}, indent=2) + "\n")
    training, metrics = model_card(organ.key, package, table, parent)
    training["threshold"] = {"chosen": threshold, "selection_dice_median": by_threshold,
                             "rule": "best median Dice of the selection patients, segmented as a user would"}
    if args.note:
        training["note"] = args.note
    installed = ModelStore([args.install]).available().get(organ.key, {}) if args.install.is_dir() else {}
    shipped = write_package(args.install, organ.key, package.state_dict_arrays(), package.channels, training,
                            metrics, max([package.version - 1, 0, *installed]) + 1, threshold, context=package.context)
    print(f"\n{organ.key}: held-out patients {table['patients']}, Dice median {table['dice']['median']:.3f} "
          f"[{table['dice']['min']:.3f}, {table['dice']['max']:.3f}], NSD 3 mm {table['nsd_3mm']['median']:.3f}, "
          f"HD95 {table['hd95_mm']['median']:.1f} mm, Dice within the contoured range "
          f"{table['dice_contoured_range']['median']:.3f}; shipped {shipped.path.name}")
    assert not math.isnan(table["dice"]["median"])


if __name__ == "__main__":
    main()
