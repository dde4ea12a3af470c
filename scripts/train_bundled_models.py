#!/usr/bin/env python
"""Train the model packages shipped in organseg/bundled/models from the one labelled real CT we have.

Data: the 20-slice DICOM CT series of the TotalSegmentator test files with TotalSegmentator v2's label map
as the reference (one patient). Each organ's validation slices are the most superior 20% of the series: a
within-patient split, so the validation Dice overstates generalisation. These are demonstration models,
never clinical ones.

    python scripts/train_bundled_models.py --organs liver,spleen --minutes 17
    python scripts/train_bundled_models.py --report-only      # rewrite TRAINING.md and the evaluation

Writes the packages into OrganSegLib/src/organseg/bundled/models (a new version per run), scripts/TRAINING.md
and scripts/evaluation/ (`organseg evaluate` of the bundled models on the series).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ORGANSEG_TEST_DATA", REPO.parent / "shared" / "data" / "totalseg_example"))
SCRIPTS = REPO / "scripts"


def dataset_csv(folder: Path) -> Path:
    """The dataset CSV of the fixture: DICOM series + TotalSegmentator label map + its labels JSON."""
    csv = folder / "dataset.csv"
    csv.write_text("case,image,mask,labels,source\n"
                   f"totalseg_dicom_example,{DATA / 'example_ct_dicom'},{DATA / 'example_seg_dicom.nii.gz'},"
                   f"{DATA / 'labels_totalsegmentator_v2.json'},totalsegmentator_test_files\n")
    return csv


def train(organs: list[str], minutes: float, steps: int, threads: int, work: Path) -> None:
    import torch

    from organseg.method.model_package import bundled_models_dir
    from organseg.training.config import FitConfig
    from organseg.training.run import train_organ

    torch.set_num_threads(threads)
    csv = dataset_csv(work)
    config = FitConfig(max_steps=steps, batch_size=4, lr=1e-3, val_every=25, patience=10, seed=0, augment=True,
                       max_seconds=minutes * 60)
    for key in organs:
        train_organ(key, csv, bundled_models_dir(), config, work_dir=work / key, progress=sys.stderr.isatty())


def newest_packages() -> list:
    from organseg.method.model_package import ModelStore, bundled_models_dir
    store = ModelStore([bundled_models_dir()])
    return [store.get(key) for key in sorted(store.available())]


def evaluate(packages: list) -> str:
    """Run `organseg evaluate` of the bundled models on the DICOM series; returns its markdown."""
    from organseg.cli import main
    from organseg.method.model_package import bundled_models_dir

    out = SCRIPTS / "evaluation"
    code = main(["evaluate", "--ct", str(DATA / "example_ct_dicom"), "--models", str(bundled_models_dir()),
                 "--organs", ",".join(p.organ.key for p in packages),
                 "--ref", str(DATA / "example_seg_dicom.nii.gz"),
                 "--ref-labels", str(DATA / "labels_totalsegmentator_v2.json"), "--case", "totalseg_dicom_example",
                 "-o", str(out), "--overwrite"])
    if code:
        raise SystemExit(f"organseg evaluate failed ({code})")
    return (out / "evaluation.md").read_text()


def validation_block(packages: list) -> list[str]:
    """Markdown rows: metrics on each organ's validation slices only, on the CT grid (post-processed)."""
    import SimpleITK as sitk

    from organseg.ct.grid import on_grid
    from organseg.ct.labelmaps import organ_label_ids, read_label_names, select_labels
    from organseg.ct.orientation import Reorientation
    from organseg.ct.read import read_ct
    from organseg.evaluation.metrics import organ_metrics
    from organseg.method.model_package import bundled_models_dir
    from organseg.segmenter import Segmenter

    ct = read_ct(DATA / "example_ct_dicom")
    labels = on_grid(sitk.ReadImage(str(DATA / "example_seg_dicom.nii.gz")), ct)
    names = read_label_names(DATA / "labels_totalsegmentator_v2.json")
    result = Segmenter(models=bundled_models_dir()).segment(ct, [p.organ.key for p in packages])
    orient = Reorientation.of(ct)
    spacing = orient.spacing(ct)
    rows = []
    for p in packages:
        val_z = [z for s in p.meta["training"]["split"]["sources"].values() for z in s.get("val_z", [])]
        ref = sitk.GetArrayFromImage(select_labels(labels, organ_label_ids(p.organ, names)))
        pred = result.masks[p.organ.key].full()
        m = organ_metrics(orient.to_canonical(pred)[val_z], orient.to_canonical(ref > 0)[val_z], spacing)
        rows.append(f"| {p.organ.display_name} | {min(val_z)}-{max(val_z)} | {m.dice:.3f} | {m.nsd:.3f} | "
                    f"{m.hd95_mm:.1f} | {m.volume_diff_pct:+.1f} |")
    return rows


def report(packages: list, evaluation_md: str) -> None:
    """scripts/TRAINING.md: what was trained on what, measured numbers, and what they do not mean."""
    rows = []
    for p in packages:
        t = p.meta["training"]
        val_z = [z for s in t["split"]["sources"].values() for z in s.get("val_z", [])]
        rows.append(f"| {p.organ.display_name} | v{p.version} | {p.dice:.3f} | {t['best_step']} | {t['steps']} | "
                    f"{t['seconds'] / 60:.1f} | {t.get('torch_threads', '-')} | "
                    f"{t['data']['slices']['train']} / {t['data']['slices']['validation']} | "
                    f"{min(val_z)}-{max(val_z)} |")
    text = f"""# Bundled models: how they were trained and what their numbers mean

Made by `python scripts/train_bundled_models.py` (this file and `evaluation/` are rewritten by it).

**These are demonstration models, not clinical models.** They show that the whole path (training, model
packages, ONNX inference, post-processing, evaluation) works on real CT; they are not validated for any use.

## Data

- One patient: the 20-slice real CT DICOM series (512 x 512, 0.98 mm pixels, 2 mm slices) of the
  TotalSegmentator test files.
- Reference: TotalSegmentator v2's label map of that series (model output, not manual contours), mapped to
  the catalogue organs through `Organ.totalsegmentator_names`.
- Split: with one case there is no patient split. The most superior 20% of the organ's slices (the
  organ's axial range +/- 30 slices; liver, spleen and stomach span all 20 slices here, so slices 16-19 in
  inferior-to-superior order) are the validation set, the rest the training set: a **within-patient**
  split; neighbouring slices are 2 mm apart and strongly correlated. Early stopping picks the weights
  with the best validation Dice, and the same validation Dice is reported: there is no separate test set.
- Therefore the Dice values below **overstate** how these models do on other patients, scanners or
  anatomy. Expect them to fail on CTs unlike this one; train on real data with `organseg train`.

## Training

Adam (lr 1e-3), Dice + BCE loss, batches of 4 slices, augmentation (intensity scale/shift, rotations up
to 10 degrees, scaling 0.9-1.1, no left-right flip), validation every 25 steps, early stopping after 10
validations without improvement or a time budget of wall-clock training time, on a 2-core CPU shared with
other jobs (so the step counts say more about the machine's load than about convergence).

| organ | version | val Dice | best step | steps | minutes | threads | train / val slices | val slices (z) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Validation Dice: thresholded predictions pooled over the 4 validation slices, at network input size
(224 x 304), as recorded in each package's `model.json` (with the split, loss curve and validation history).

## Validation slices only, on the CT grid

The post-processed segmentation of the series restricted to each organ's validation slices (canonical
inferior-to-superior slice indices), 3D metrics against the TotalSegmentator labels on those slices:

| organ | slices | Dice | NSD 3 mm | HD95 mm | ΔV % |
|---|---|---|---|---|---|
{chr(10).join(validation_block(packages))}

## Evaluation on the series (`organseg evaluate`)

The whole 20-slice series (training **and** validation slices) against the TotalSegmentator labels, on
the CT's voxel grid, with and without post-processing. With one case no statistical test is possible
(the Wilcoxon column is n/a). The models were trained on 16 of these 20 slices, so these numbers say the
pipeline reproduces what it was trained on, not that it generalises. Files: `evaluation/` (CSV, markdown,
box plot).

{evaluation_md.replace("# OrganSeg evaluation", "### organseg evaluate", 1).replace("## Per case", "#### Per case")}
"""
    (SCRIPTS / "TRAINING.md").write_text(text)
    summary = [{"organ": p.organ.key, "version": p.version, "val_dice": p.dice} for p in packages]
    print(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--organs", default="liver,spleen,stomach", help="comma-separated organs to train")
    parser.add_argument("--minutes", type=float, default=17.0, help="training time budget per organ")
    parser.add_argument("--steps", type=int, default=1500, help="maximum steps per organ")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--report-only", action="store_true", help="only rewrite TRAINING.md and the evaluation")
    args = parser.parse_args()
    if not (DATA / "example_ct_dicom").is_dir():
        raise SystemExit(f"fixture data not found in {DATA} (set ORGANSEG_TEST_DATA)")
    if not args.report_only:
        with tempfile.TemporaryDirectory(prefix="organseg-bundled-") as work:
            train([o for o in args.organs.split(",") if o], args.minutes, args.steps, args.threads, Path(work))
    packages = newest_packages()
    report(packages, evaluate(packages))


if __name__ == "__main__":
    main()
