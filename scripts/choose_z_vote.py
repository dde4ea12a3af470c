"""Choose the post-processing vote along the body axis of shipped OpenKBP models on their own selection patients,
measure it on the held-out patients, and ship the model again with it where it wins on the selection patients.

    python scripts/choose_z_vote.py --organs brainstem,larynx [--masks CACHE] [--install MODELS] [--after DIR]
        [--report JSON]

Each patient is segmented once as a user would (the package's threshold and post-processing, no vote yet), and
each window of VOTES_MM is applied to those masks (`postprocess.vote_along_z`, as the Segmenter applies a
package's `z_vote_mm` last): the window with the best median Dice on the selection patients listed in the
package's card (ties: the smaller window) is chosen without looking at the held-out patients. Where it is not
"no vote", the same network, threshold and card ship as the next version with `z_vote_mm`, the vote's
selection medians and the held-out table with the vote (the table without it kept beside).
--masks keeps the segmented masks (one folder per package, checked against its weights and threshold), so a
rerun only measures.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mask_cache import cached_patients
from openkbp_recipe import LABEL_IDS, OPENKBP
from organseg.ct.read import read_ct
from organseg.method.model_package import ModelPackage, ModelStore, bundled_models_dir, write_package
from organseg.method.postprocess import vote_along_z, vote_slices
from organseg.segmenter import Segmenter
from train_openkbp import heldout_folders, patient_row, summary

VOTES_MM = (0.0, 7.5, 12.5)  #: windows tried: none, and 3 and 5 slices of OpenKBP's 2.5-3 mm


def segmented(package: ModelPackage, folders: list[Path], cache: Path | None) -> list[dict]:
    """Per patient: the package's mask (no vote) and the manual contour on the CT grid, and its slice spacing."""
    if package.z_vote_mm:
        raise SystemExit(f"{package.path}: already votes along z ({package.z_vote_mm:g} mm)")
    identity = {"weights_sha256": package.meta["files"]["weights.npz"]["sha256"], "threshold": package.threshold}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        stamp = cache / "package.json"
        if stamp.exists() and json.loads(stamp.read_text()) != identity:
            raise SystemExit(f"{cache}: holds masks of another network or threshold; use another --masks folder")
        stamp.write_text(json.dumps(identity) + "\n")
    segmenter = Segmenter(models=package.path.parent, device="cpu")

    def compute(folder: Path) -> dict[str, np.ndarray]:
        ct = read_ct(folder / "ct.nii.gz")
        result = segmenter.segment(ct, [package.organ.key], source=str(folder))
        return {"pred": sitk.GetArrayFromImage(result.mask_image(package.organ.key)) > 0,
                "ref": sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
                == LABEL_IDS[package.organ.key],
                "spacing": np.array(tuple(reversed(ct.GetSpacing())))}

    return cached_patients(folders, lambda folder: None if cache is None else cache / f"{folder.name}.npz", compute)


def metrics_rows(patients: list[dict], vote_mm: float) -> list[dict]:
    """Per-patient metrics of the masks voted over `vote_mm` (the axial CTs' array axis 0 is the body axis)."""
    rows = []
    for p in patients:
        spacing = tuple(float(s) for s in p["spacing"])
        rows.append(patient_row(p["case"], vote_along_z(p["pred"], vote_slices(vote_mm, spacing[0])), p["ref"],
                                spacing))
    return rows


def choose(package: ModelPackage, cache: Path | None) -> dict:
    """The vote chosen on the package's selection patients and the held-out tables with and without it."""
    organ = package.organ.key
    selection = [OPENKBP / "train" / case for case in package.meta["training"]["split"]["selection"]]
    chosen = segmented(package, selection, cache / "selection" if cache else None)
    medians = {vote: round(float(np.median([r["dice"] for r in metrics_rows(chosen, vote)])), 4)
               for vote in VOTES_MM}
    best = max(VOTES_MM, key=lambda v: (medians[v], -v))
    held = segmented(package, heldout_folders(organ), cache / "heldout" if cache else None)
    without, voted = metrics_rows(held, 0.0), metrics_rows(held, best)
    print(f"{package.path.name}: selection medians {medians}; chosen {best:g} mm; held-out Dice "
          f"{summary(without)['dice']['median']:.3f} -> {summary(voted)['dice']['median']:.3f}", flush=True)
    return {"package": package.path.name, "selection_dice_median": {f"{v:g}": m for v, m in medians.items()},
            "chosen_mm": best, "rows_without": without, "rows": voted, "without": summary(without),
            "table": summary(voted)}


def ship(package: ModelPackage, choice: dict, install: Path, used: list[Path]) -> ModelPackage:
    """The package's network, threshold and card again as the next version, with the vote and its tables; the
    version also comes after those in the `used` folders (measured runs not shipped), so none names two networks."""
    training = json.loads(json.dumps(package.meta["training"]))
    table, sha = choice["table"], package.meta["files"]["weights.npz"]["sha256"]
    before = f"held-out Dice median {choice['without']['dice']['median']:.3f}"
    training["summary"] = training["summary"].replace(before, f"held-out Dice median {table['dice']['median']:.3f} "
                                                              f"with a vote along z of {choice['chosen_mm']:g} mm")
    training["z_vote"] = {"chosen_mm": choice["chosen_mm"], "selection_dice_median": choice["selection_dice_median"],
                          "rule": "best median Dice of the selection patients, segmented as a user would, of no "
                                  "vote and votes over 7.5 and 12.5 mm (3 and 5 OpenKBP slices)",
                          "heldout_without_vote": choice["without"]}
    training["note"] = (f"{package.path.name}'s network and threshold unchanged (weights sha256 {sha[:8]}...), "
                        "shipped again with the post-processing vote along z chosen on its own selection patients"
                        + (f". {package.path.name}: {training['note']}" if training.get("note") else ""))
    if "recipe" in training:
        training["recipe"] += f"; then python scripts/choose_z_vote.py --organs {package.organ.key}"
    metrics = {**package.meta["metrics"], "val_dice": table["dice"]["median"], "heldout": table}
    installed = ModelStore([install, *used]).available().get(package.organ.key, {})
    return write_package(install, package.organ.key, package.state_dict_arrays(), package.channels, training,
                         metrics, max([package.version, *installed]) + 1, package.threshold,
                         context=package.context, z_vote_mm=choice["chosen_mm"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--organs", required=True, help="comma list of OpenKBP organs with a shipped model")
    parser.add_argument("--models", type=Path, default=bundled_models_dir(), help="where the models are")
    parser.add_argument("--install", type=Path, default=bundled_models_dir(), help="models folder to ship into")
    parser.add_argument("--after", type=Path, action="append", default=[], metavar="DIR",
                        help="models folder of measured, unshipped runs whose versions the new one follows")
    parser.add_argument("--masks", type=Path, help="keep the segmented masks here (one folder per package)")
    parser.add_argument("--report", type=Path, help="write the choices and per-patient tables here (JSON)")
    args = parser.parse_args()
    store, report = ModelStore([args.models]), {}
    for organ in args.organs.split(","):
        package = store.get(organ)
        choice = choose(package, args.masks / package.path.name if args.masks else None)
        if choice["chosen_mm"]:
            choice["shipped"] = ship(package, choice, args.install, args.after).path.name
        report[organ] = choice
        if args.report:
            args.report.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
