"""Multi-patient training on the real OpenKBP head-and-neck CTs: the data set's split, per-case contour flags,
organ-centred crops and contours that stop short of the organ."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.errors import InputError
from organseg.method.model_package import ModelPackage
from organseg.training.cases import CaseSlices, decode
from organseg.training.dataset import read_dataset
from organseg.training.loop import SliceSet

#: three train patients with a spinal cord and an esophagus contour, one with the cord only
WITH_BOTH, CORD_ONLY = ("pt_2", "pt_4", "pt_7"), "pt_1"


def _csv(tmp_path: Path, openkbp_dir: Path, label: int, splits: dict[str, str]) -> Path:
    lines = ["image,mask,label,source,case,split,labelled"]
    for case, split in splits.items():
        labelled = "spinal_cord" if case == CORD_ONLY else "spinal_cord+esophagus"
        folder = openkbp_dir / "train" / case
        lines.append(f"{folder / 'ct.nii.gz'},{folder / 'labels.nii.gz'},{label},openkbp,{case},{split},{labelled}")
    path = tmp_path / "dataset.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_keeps_the_data_sets_split_and_leaves_out_uncontoured_patients(openkbp_dir: Path, tmp_path: Path,
                                                                                  capsys):
    splits = {"pt_2": "train", "pt_4": "validation", "pt_7": "test", CORD_ONLY: "train"}
    data = _csv(tmp_path, openkbp_dir, 2, splits)
    assert main(["train", "--organ", "esophagus", "--data", str(data), "--out", str(tmp_path / "m"), "--steps", "2",
                 "--val-every", "2", "--batch-size", "2", "--patch", "64x96", "--margin-below", "0", "--poly-lr",
                 "--threads", "2", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"{CORD_ONLY}: esophagus was not contoured" in err
    training = ModelPackage.load(tmp_path / "m" / "esophagus-v1").meta["training"]
    assert training["split"]["sources"]["openkbp"] == {"kind": "data set split", "train_cases": ["pt_2"],
                                                       "val_cases": ["pt_4"]}
    assert training["data"]["case_names"] == ["pt_2", "pt_4"]  # the test patient is never loaded
    assert training["config"]["patch"] == [64, 96] and training["config"]["margin_below"] == 0


def test_a_split_column_with_no_validation_case_is_refused(openkbp_dir: Path, tmp_path: Path, capsys):
    data = _csv(tmp_path, openkbp_dir, 1, {"pt_2": "train", "pt_4": "test"})
    assert main(["train", "--organ", "spinal_cord", "--data", str(data), "--out", str(tmp_path / "m"),
                 "--steps", "1", "--quiet"]) == 2
    assert "names no validation case" in capsys.readouterr().err


def test_dataset_columns_are_checked(openkbp_dir: Path, tmp_path: Path):
    data = _csv(tmp_path, openkbp_dir, 1, {"pt_2": "training"})
    with pytest.raises(InputError, match="split 'training' should be one of train, validation, test"):
        read_dataset(data)
    data.write_text(data.read_text().replace(",training,spinal_cord+esophagus", ",train,spinal_chord"))
    with pytest.raises(InputError, match="labelled: unknown organ name 'spinal_chord'"):
        read_dataset(data)


def test_margin_below_drops_the_slices_under_a_contour_that_stops_short(openkbp_dir: Path, organ_slices):
    folder = openkbp_dir / "train" / "pt_2"
    ct = sitk.ReadImage(str(folder / "ct.nii.gz"))
    cord = sitk.Cast(sitk.ReadImage(str(folder / "labels.nii.gz")) == 1, sitk.sitkUInt8)
    both = organ_slices(ct, cord, margin=5)
    above_only = organ_slices(ct, cord, margin=5, margin_below=0)
    with_cord = both.z[both.targets.reshape(len(both.z), -1).any(axis=1)]
    assert above_only.z.min() == with_cord.min() and both.z.min() == with_cord.min() - 5
    assert above_only.z.max() == both.z.max() == with_cord.max() + 5


def test_crops_centred_on_the_organ_hold_it_and_the_others_are_anywhere(openkbp_dir: Path, organ_slices):
    folder = openkbp_dir / "train" / "pt_4"
    pairs = organ_slices(sitk.ReadImage(str(folder / "ct.nii.gz")),
                         sitk.Cast(sitk.ReadImage(str(folder / "labels.nii.gz")) == 2, sitk.sitkUInt8), margin=0)
    codes = np.round(pairs.inputs * 239).astype(np.uint8)
    slices = SliceSet(codes, pairs.targets > 0.5, decode)
    idx = np.arange(len(slices))
    x, y = slices.patches(idx, (64, 96), np.random.default_rng(0), foreground_fraction=1.0)
    assert x.shape == (len(idx), 1, 64, 96) and bool((y.sum(dim=(1, 2, 3)) > 0).all())
    _, y0 = slices.patches(np.repeat(idx, 4), (64, 96), np.random.default_rng(0), foreground_fraction=0.0)
    assert 0 < int((y0.sum(dim=(1, 2, 3)) > 0).sum()) < len(y0)  # the esophagus is small: most random crops miss it



def test_crops_beyond_the_organs_end_are_centred_where_it_would_continue(openkbp_dir: Path, organ_slices):
    folder = openkbp_dir / "train" / "pt_2"
    pairs = organ_slices(sitk.ReadImage(str(folder / "ct.nii.gz")),
                         sitk.Cast(sitk.ReadImage(str(folder / "labels.nii.gz")) == 1, sitk.sitkUInt8), margin=8,
                         margin_below=0)
    case = CaseSlices(None, np.round(pairs.inputs * 239).astype(np.uint8), pairs.targets > 0.5, pairs.z)
    centres = case.centres()
    held = np.flatnonzero(case.targets.any(axis=(1, 2)))
    for i in held:  # on a slice with the cord: its centroid, inside its bounding box
        rows, cols = np.nonzero(case.targets[i])
        assert rows.min() <= centres[i][0] <= rows.max() and cols.min() <= centres[i][1] <= cols.max()
    above = np.flatnonzero(case.z > case.z[held].max())
    assert len(above) == 8 and (centres[above] == centres[held[np.argmax(case.z[held])]]).all()
    marked = case.codes.copy()
    marked[above, centres[above, 0], centres[above, 1]] = 255  # a code no CT value has
    slices = SliceSet(marked, case.targets, lambda codes: codes.astype(np.float32), centres)
    x, y = slices.patches(np.repeat(above, 5), (64, 96), np.random.default_rng(0), foreground_fraction=1.0)
    assert not y.any()  # hard negatives: nothing of the cord in them
    assert bool((x.amax(dim=(1, 2, 3)) == 255).all())  # each holds the spot where the cord would continue
    x, _ = slices.patches(np.repeat(above, 5), (64, 96), np.random.default_rng(0), foreground_fraction=0.0)
    assert int((x.amax(dim=(1, 2, 3)) == 255).sum()) < len(x)  # crops anywhere miss it at times
