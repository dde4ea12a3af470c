"""The three commands on an imported nnU-Net-layout data set of real head-and-neck CT: `organseg dataset`,
`organseg train --organs all` (a few steps per organ), `organseg evaluate --data` (Table 1 of the test split)."""
from __future__ import annotations

import csv as csvlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_fixtures import KBP_TEST, KBP_TRAIN, kbp_case, nnunet_folder
from organseg.cli import main
from organseg.method.model_package import ModelStore


def test_dataset_train_all_evaluate(openkbp_dir: Path, tmp_path: Path, capsys):
    csv = tmp_path / "dataset.csv"
    assert main(["dataset", str(nnunet_folder(tmp_path, openkbp_dir)), "-o", str(csv), "--quiet"]) == 0
    models = tmp_path / "models"
    args = ["train", "--organs", "all", "--data", str(csv), "--out", str(models), "--steps", "2", "--val-every",
            "2", "--batch-size", "2", "--margin", "0", "--threads", "1", "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert sorted(ModelStore([models]).available()) == ["esophagus", "spinal_cord"]
    assert "liver: skipped, 0 labelled training case(s)" in err and "skipped 26" in err
    package = ModelStore([models]).get("spinal_cord")
    assert package.meta["training"]["data"]["case_names"] == list(KBP_TRAIN)  # the test case is held out

    shutil.rmtree(models / "spinal_cord-v1")  # as if interrupted after its last checkpoint
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "esophagus: skipped, done" in err and "spinal_cord: resuming" in err
    assert sorted(ModelStore([models]).available()) == ["esophagus", "spinal_cord"]

    out = tmp_path / "table1"
    assert main(["evaluate", "--data", str(csv), "--models", str(models), "--device", "cpu", "-o", str(out)]) == 0
    rows = list(csvlib.DictReader(open(out / "metrics.csv")))
    assert {(r["case"], r["organ"], r["variant"]) for r in rows} == {
        (KBP_TEST, o, v) for o in ("esophagus", "spinal_cord") for v in ("raw", "post")}
    ct, labels = kbp_case(openkbp_dir, KBP_TEST)
    cord_ml = np.count_nonzero(sitk.GetArrayFromImage(labels) == 1) * np.prod(ct.GetSpacing()) / 1000
    assert all(float(r["volume_ref_ml"]) == pytest.approx(cord_ml) for r in rows if r["organ"] == "spinal_cord")
    md = (out / "evaluation.md").read_text()
    assert md.startswith("# Table 1: OrganSeg on the test split") and "Jaccard PP" in md and "HD95 mm no PP" in md


def test_train_needs_one_of_organ_or_organs(tmp_path: Path, capsys):
    args = ["train", "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "m")]
    assert main(args) == 2 and main([*args, "--organ", "liver", "--organs", "all"]) == 2
    assert "--organs all|LIST" in capsys.readouterr().err
