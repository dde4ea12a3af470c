"""Calibrate and choose the brainstem's rule against the spinal cord (postprocess.RULES["brainstem"]), and measure it.

    python scripts/brainstem_reach.py [--masks CACHE] [--report JSON]

1. The box: on the manual contours of every OpenKBP training patient with both organs, the brainstem's lowest slice
   against the cord's top (mm; the rule keeps the brainstem above the top minus a margin).
2. The reach: the shipped brainstem and spinal cord models segment (as a user would, the brainstem's box off) the
   selection patients of both packages' cards, then the held-out patients; `postprocess.reach_down` is applied to
   the brainstem with each reach of REACHES_MM, and the best selection median (ties: the smaller) is chosen without
   looking at the held-out patients, whose tables with and without it are then printed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mask_cache import cached_patients
from openkbp_recipe import LABEL_IDS, OPENKBP
from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.masks import axial_extent
from organseg.method.model_package import ModelStore, bundled_models_dir
from organseg.method.postprocess import reach_down
from organseg.segmenter import Segmenter
from train_openkbp import heldout_folders, patient_row, summary

REACHES_MM = (0.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0)
ORGANS = ("brainstem", "spinal_cord")


def gaps_mm() -> dict[str, float]:
    """Per training patient with both contoured: the brainstem's lowest slice minus the cord's top, in mm (LPS z)."""
    gaps = {}
    for folder in sorted((OPENKBP / "train").glob("pt_*"), key=lambda p: int(p.name[3:])):
        labels = sitk.ReadImage(str(folder / "labels.nii.gz"))
        orient = Reorientation.of(labels)
        brainstem, cord = (axial_extent(orient.to_canonical(sitk.GetArrayViewFromImage(labels) == LABEL_IDS[k]))
                           for k in ORGANS)
        if brainstem and cord:
            gaps[folder.name] = (brainstem[0] - cord[1]) * orient.spacing(labels)[0]
    return gaps


def segmented(folders: list[Path], cache: Path | None) -> list[dict]:
    """Per patient: canonical predicted and manual masks of both organs, and the canonical spacing."""
    segmenter = Segmenter(models=bundled_models_dir(), device="cpu", anchor_rules={"brainstem": False})

    def compute(folder: Path) -> dict[str, np.ndarray]:
        ct = read_ct(folder / "ct.nii.gz")
        orient = Reorientation.of(ct)
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
        result = segmenter.segment(ct, list(ORGANS), source=str(folder))
        return {**{f"pred_{k}": orient.to_canonical(sitk.GetArrayFromImage(result.mask_image(k)) > 0)
                   for k in ORGANS},
                **{f"ref_{k}": orient.to_canonical(labels == LABEL_IDS[k]) for k in ORGANS},
                "spacing": np.array(orient.spacing(ct))}

    return cached_patients(folders, lambda f: cache / f"{f.parent.name}_{f.name}.npz" if cache else None, compute)


def rows(patients: list[dict], reach_mm: float) -> list[dict]:
    """Per-patient brainstem metrics with the reach down to the predicted cord's top."""
    out = []
    for p in patients:
        spacing = tuple(float(s) for s in p["spacing"])
        cord = axial_extent(p["pred_spinal_cord"])
        brainstem = reach_down(p["pred_brainstem"], cord[1] if cord else None, reach_mm, spacing[0])
        out.append(patient_row(p["case"], brainstem, p["ref_brainstem"], spacing))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--masks", type=Path, help="keep the segmented masks here")
    parser.add_argument("--report", type=Path, help="write the choice and per-patient tables here (JSON)")
    args = parser.parse_args()
    if args.masks:
        args.masks.mkdir(parents=True, exist_ok=True)
    gaps = np.array(list(gaps_mm().values()))
    print(f"brainstem's lowest slice - cord's top on {gaps.size} training patients: one slice above in "
          f"{int((gaps > 1.5).sum())}, same slice {int((np.abs(gaps) < 0.5).sum())}, below: "
          f"{sorted(float(g) for g in gaps[gaps < -0.5])} mm")
    store = ModelStore([bundled_models_dir()])
    cases = dict.fromkeys(c for k in ORGANS for c in store.get(k).meta["training"]["split"]["selection"])
    selection = [p for p in segmented([OPENKBP / "train" / c for c in cases], args.masks) if p["ref_brainstem"].any()]
    medians = {r: float(np.median([row["dice"] for row in rows(selection, r)])) for r in REACHES_MM}
    best = max(REACHES_MM, key=lambda r: (round(medians[r], 4), -r))
    print(f"selection ({len(selection)} patients) Dice medians by reach: "
          + ", ".join(f"{r:g} mm {m:.4f}" for r, m in medians.items()) + f"; chosen {best:g} mm")
    held = segmented(heldout_folders("brainstem"), args.masks)
    without, reached = rows(held, 0.0), rows(held, best)
    print(f"held out ({len(held)} patients): Dice median {summary(without)['dice']['median']:.3f} -> "
          f"{summary(reached)['dice']['median']:.3f}")
    if args.report:
        args.report.write_text(json.dumps({"selection_medians": medians, "chosen_mm": best, "without": without,
                                           "with": reached, "summary_without": summary(without),
                                           "summary_with": summary(reached)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
