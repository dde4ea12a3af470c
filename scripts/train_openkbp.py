"""Retrain a shipped model from the OpenKBP head-and-neck CTs and print its held-out table.

    python scripts/train_openkbp.py --organ spinal_cord --work .work/spinal_cord --minutes 100 [--resume]
    python scripts/train_openkbp.py --organ esophagus --work .work/esophagus --minutes 100 [--resume]
    ... --parent PACKAGE   continue a shipped model (how v2 was made from v1: scripts/TRAINING_OPENKBP.md)

Steps (each resumable; kill it at any moment and rerun with --resume):
1. `WORK/dataset.csv` from ../shared/data: OpenKBP `train` patients contoured for the organ train the network,
   a seeded few of them select it (the CSV's `validation` split); OpenKBP's `validation` patients are the
   held-out test set, never seen in training or selection. The TotalSegmentator example series adds an
   abdominal spinal cord. A patient without the organ's contour is left out, never used as a negative.
2. `organseg train` on crops of the network input, with organ-centred crops and crops from anywhere else.
   OpenKBP contours stop short of the organs' lower ends, so no slices below a contour are negatives.
3. Every held-out patient segmented as a user would (`Segmenter`, with post-processing) and compared with
   its manual contour on the CT grid: Dice, NSD at 3 mm, HD95, over the whole CT and within the contour's
   axial range (where the clinician drew it).
4. The model package, with its model card, written to --install (default: the bundled models), and the
   per-patient table to WORK/heldout.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import organ as find_organ
from organseg.evaluation.metrics import organ_metrics
from organseg.io import read_ct
from organseg.model_package import ModelPackage, bundled_models_dir, write_package
from organseg.segmenter import Segmenter
from organseg.training.config import FitConfig
from organseg.training.run import train_organ

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ORGANSEG_DATA", REPO.parent / "shared" / "data"))  #: the shared/data folder
OPENKBP = DATA / "openkbp_hn"
TOTALSEG = DATA / "totalseg_example"
#: OpenKBP structure names -> catalogue organs (the others are not in the catalogue)
STRUCTURES = {"SpinalCord": "spinal_cord", "Esophagus": "esophagus"}
LABEL_IDS = {"spinal_cord": 1, "esophagus": 2}
SELECTION_PATIENTS = 3  #: OpenKBP train patients that select the weights (few: validation runs whole slices)
CONFIG = dict(max_steps=6000, batch_size=8, lr=1e-3, val_every=300, patience=10, patch=(96, 128),
              foreground_fraction=0.6, margin_below=0, poly_lr=True)


def openkbp_cases() -> list[dict[str, str]]:
    with open(OPENKBP / "cases.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def write_dataset(organ_key: str, path: Path, seed: int = 0) -> None:
    """The dataset CSV of the recipe (see the module docstring)."""
    rows = []
    contoured = [c for c in openkbp_cases() if c["split"] == "train"
                 and organ_key in {STRUCTURES.get(s) for s in c["labelled"].split(";")}]
    rng = np.random.default_rng(seed)
    selection = {c["case"] for c in rng.choice(contoured, SELECTION_PATIENTS, replace=False)}
    for c in openkbp_cases():
        labelled = "+".join(sorted({STRUCTURES[s] for s in c["labelled"].split(";") if s in STRUCTURES}))
        folder = OPENKBP / c["split"] / c["case"]
        split = "test" if c["split"] == "validation" else ("validation" if c["case"] in selection else "train")
        rows.append({"image": folder / "ct.nii.gz", "mask": folder / "labels.nii.gz",
                     "label": LABEL_IDS[organ_key], "labels": "", "source": "openkbp", "case": c["case"],
                     "split": split, "labelled": labelled})
    rows.append({"image": TOTALSEG / "example_ct_dicom", "mask": TOTALSEG / "example_seg_dicom.nii.gz",
                 "label": "", "labels": TOTALSEG / "labels_totalsegmentator_v2.json",
                 "source": "totalsegmentator_example", "case": "totalseg_dicom_example", "split": "train",
                 "labelled": ""})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def heldout(package: ModelPackage, organ_key: str) -> list[dict]:
    """Per held-out patient metrics of the package, segmented as a user would, on the CT grid."""
    segmenter = Segmenter([package.path.parent], device="cpu")
    rows = []
    for c in openkbp_cases():
        if c["split"] != "validation" or organ_key not in {STRUCTURES.get(s) for s in c["labelled"].split(";")}:
            continue
        folder = OPENKBP / "validation" / c["case"]
        ct = read_ct(folder / "ct.nii.gz")
        t0 = time.perf_counter()
        result = segmenter.segment(ct, [organ_key], source=str(folder))
        seconds = time.perf_counter() - t0
        pred = sitk.GetArrayFromImage(result.mask_image(organ_key)) > 0
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz"))) == LABEL_IDS[organ_key]
        spacing = tuple(reversed(ct.GetSpacing()))
        whole = organ_metrics(pred, ref, spacing)
        zs = np.flatnonzero(ref.reshape(len(ref), -1).any(axis=1))
        drawn = slice(zs[0], zs[-1] + 1)
        within = organ_metrics(pred[drawn], ref[drawn], spacing)
        rows.append({"case": c["case"], "dice": whole.dice, "nsd_3mm": whole.nsd, "hd95_mm": whole.hd95_mm,
                     "dice_contoured_range": within.dice, "volume_pred_ml": whole.volume_pred_ml,
                     "volume_ref_ml": whole.volume_ref_ml, "seconds": seconds})
        print(f"{c['case']}: Dice {whole.dice:.3f} (contoured range {within.dice:.3f}), NSD {whole.nsd:.3f}, "
              f"HD95 {whole.hd95_mm:.1f} mm", flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    """Per-patient median and range of each metric (NaN HD95 of empty predictions counted as worst)."""
    out = {"patients": len(rows)}
    for key in ("dice", "nsd_3mm", "hd95_mm", "dice_contoured_range"):
        values = np.array([r[key] for r in rows], float)
        if key == "hd95_mm":
            values = np.where(np.isnan(values), np.inf, values)
        out[key] = {"median": round(float(np.median(values)), 4), "min": round(float(values.min()), 4),
                    "max": round(float(values.max()), 4)}
    return out


def model_card(organ_key: str, trained: ModelPackage, table: dict, device: str,
               parent: ModelPackage | None = None) -> tuple[dict, dict]:
    """`training` and `metrics` of the shipped package: data by name, no machine paths."""
    t = trained.meta["training"]
    parent_name = None if parent is None else f"{parent.organ.key}-v{parent.version}"
    sources = t["split"]["sources"]
    split = sources["openkbp"]
    extra = sources.get("totalsegmentator_example", {}).get("train_cases", [])
    n_train = len(split["train_cases"]) + len(extra)
    training = {
        "patients": n_train + len(split["val_cases"]),
        "summary": f"trained on {n_train} patients ({len(split['train_cases'])} OpenKBP head-and-neck + "
                   f"{len(extra)} TotalSegmentator abdominal), weights selected on "
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
        "recipe": f"python scripts/train_openkbp.py --organ {organ_key}" + (
            "" if parent is None else f" --parent {parent_name} --lr {t['config']['lr']:g}"),
        "device": device,
        "steps": t["steps"], "best_step": t["best_step"], "minutes": round(t["seconds"] / 60, 1),
        "config": t["config"], "augmentation": t["augmentation"], "loss_curve": t["loss_curve"],
        "val_history": t["val_history"],
        "continued_from": None if parent is None else {
            "package": parent_name, "weights_sha256": parent.meta["files"]["weights.npz"]["sha256"],
            "steps": parent.meta["training"]["steps"], "minutes": parent.meta["training"]["minutes"],
            "heldout_dice_median": parent.meta["metrics"]["heldout"]["dice"]["median"]},
        "limits": "trained on head-and-neck CTs at ~4 mm in-plane (plus one abdominal series): neck and upper "
                  "thorax covered best; OpenKBP contours stop short of the organ's lower end, so the "
                  "whole-CT Dice counts correct findings below the drawn contour as errors",
    }
    metrics = {"val_dice": table["dice"]["median"],
               "val_dice_definition": "median per-patient 3D Dice on the held-out OpenKBP validation patients, "
                                      "post-processed, on the CT grid",
               "val_split": "patient split (held-out data set split)", "heldout": table}
    return training, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--organ", required=True, choices=sorted(LABEL_IDS))
    parser.add_argument("--work", type=Path, required=True, help="folder for the CSV, checkpoints and logs")
    parser.add_argument("--minutes", type=float, default=100.0, help="training time budget")
    parser.add_argument("--steps", type=int, default=CONFIG["max_steps"])
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=CONFIG["lr"], help="peak learning rate (lower to fine-tune a "
                        "--parent without first unlearning it)")
    parser.add_argument("--parent", type=Path, help="continue from this model package's weights (a fresh "
                        "learning-rate schedule over --minutes), e.g. the bundled spinal_cord-v1")
    parser.add_argument("--install", type=Path, default=bundled_models_dir(), help="models folder to ship into")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    organ_key = find_organ(args.organ).key
    parent = ModelPackage.load(args.parent) if args.parent else None
    data = args.work / "dataset.csv"
    if not args.resume or not data.exists():
        write_dataset(organ_key, data)
    models = args.work / "models"
    trained = sorted(models.glob(f"{organ_key}-v*"))
    if trained:
        package = ModelPackage.load(trained[-1])
    else:
        config = FitConfig(**{**CONFIG, "max_steps": args.steps, "max_seconds": args.minutes * 60, "lr": args.lr})
        package = train_organ(organ_key, data, models, config, args.work / "train", args.resume, parent,
                              margin=30, progress=False)
    rows = heldout(package, organ_key)
    table = summary(rows)
    (args.work / "heldout.json").write_text(json.dumps({"rows": rows, "summary": table}, indent=2) + "\n")
    training, metrics = model_card(organ_key, package, table, f"CPU, {args.threads} thread(s)", parent)
    shipped = write_package(args.install, organ_key, package.state_dict_arrays(), package.channels, training,
                            metrics, package.version)
    print(f"\n{organ_key}: held-out patients {table['patients']}, Dice median {table['dice']['median']:.3f} "
          f"[{table['dice']['min']:.3f}, {table['dice']['max']:.3f}], NSD 3 mm {table['nsd_3mm']['median']:.3f}, "
          f"HD95 {table['hd95_mm']['median']:.1f} mm, Dice within the contoured range "
          f"{table['dice_contoured_range']['median']:.3f}; shipped {shipped.path.name}")
    assert not math.isnan(table["dice"]["median"])


if __name__ == "__main__":
    main()
