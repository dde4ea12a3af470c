"""`organseg dataset` on real CT in both layouts: cases, splits, unions, coverage, cache reuse and bad input."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_fixtures import (KBP_TEST, KBP_TRAIN, TS_SUBJECTS, kbp_case, nnunet_folder, snapshot,
                              totalsegmentator_folder)
from organseg.catalogue import organ
from organseg.cli import main
from organseg.training.dataset import organ_mask, read_dataset


@pytest.fixture(scope="module")
def ts_names(data_dir: Path) -> dict[int, str]:
    return {int(k): v for k, v in json.loads((data_dir / "labels_totalsegmentator_v2.json").read_text()).items()}


@pytest.fixture(scope="module")
def ts_dir(tmp_path_factory: pytest.TempPathFactory, dicom_ct, ts_labels, ts_names) -> Path:
    """Every second row and column of the real series (exact subsampling, as fast as the tests need)."""
    shrink = [2, 2, 1]
    return totalsegmentator_folder(tmp_path_factory.mktemp("data"), sitk.Shrink(dicom_ct, shrink),
                                   sitk.Shrink(ts_labels, shrink), ts_names)


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def _line(text: str, start: str) -> str:
    return next((line for line in text.splitlines() if line.startswith(start)), "")


def _dataset(folder: Path, out: Path, *extra: str) -> int:
    return main(["dataset", str(folder), "-o", str(out), "--quiet", *extra])


def test_totalsegmentator_cases_splits_skips_and_coverage(ts_dir: Path, tmp_path: Path, capsys):
    before = snapshot(ts_dir)
    out = tmp_path / "dataset.csv"
    assert _dataset(ts_dir, out) == 0
    rows = _rows(out)
    assert {c: r["split"] for c, r in rows.items()} == {"s01": "train", "s02": "validation", "s03": "test",
                                                         "s07": "train"}
    err = capsys.readouterr().err
    for case, reason in (("s01", "duplicate case id"), ("s04", "missing image"), ("s05", "not on the CT grid"),
                         ("s06", "split 'holdout'")):
        assert reason in _line(err, f"skipped {case}:")
    assert "lungs" in rows["s01"]["labelled"].split("+")
    assert "lungs" not in rows["s07"]["labelled"].split("+")  # a lobe file is missing: lungs incomplete
    coverage = _rows_by(out.with_name("dataset.coverage.csv"), "organ")
    assert coverage["lungs"]["cases_labelled"] == "3" and coverage["liver"]["cases_labelled"] == "4"
    assert coverage["rectum"]["cases_labelled"] == "0"  # TotalSegmentator has no rectum
    assert (coverage["liver"]["train"], coverage["liver"]["validation"], coverage["liver"]["test"]) == ("2", "1", "1")
    assert "| s05 |" in out.with_name("dataset.coverage.md").read_text()
    assert snapshot(ts_dir) == before


def _rows_by(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r[key]: r for r in csv.DictReader(fh)}


def test_union_masks_equal_the_structures_and_are_reused(ts_dir: Path, ts_labels, ts_names, tmp_path: Path):
    out = tmp_path / "dataset.csv"
    assert _dataset(ts_dir, out) == 0
    specs = {s.name: s for s in read_dataset(out)}
    full = sitk.GetArrayFromImage(sitk.Shrink(ts_labels, [2, 2, 1]))
    for subject, first, last, _ in TS_SUBJECTS:
        for key in ("bones", "adrenal_glands", "gi_tract", "liver"):
            ids = [i for i, n in ts_names.items() if n in organ(key).totalsegmentator_names]
            expected = np.isin(full[first:last], ids)
            got = sitk.GetArrayFromImage(organ_mask(specs[subject], organ(key))) > 0
            assert np.array_equal(got, expected), f"{subject} {key}"
    assert (sitk.GetArrayFromImage(organ_mask(specs["s01"], organ("bones"))) > 0).sum() > 100
    cache = tmp_path / "dataset.cache"
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert _dataset(ts_dir, out, "--overwrite") == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # reused, not rewritten
    liver = ts_dir / "s02" / "segmentations" / "liver.nii.gz"
    os.utime(liver, ns=(liver.stat().st_atime_ns, liver.stat().st_mtime_ns + 10**9))
    assert _dataset(ts_dir, out, "--overwrite") == 0
    assert (cache / "s02.nii.gz").stat().st_mtime_ns != stamps["s02.nii.gz"]
    assert (cache / "s01.nii.gz").stat().st_mtime_ns == stamps["s01.nii.gz"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]


def test_nnunet_v1_and_v2_labels_give_the_same_cases(openkbp_dir: Path, tmp_path: Path, capsys):
    v2, v1 = nnunet_folder(tmp_path, openkbp_dir), nnunet_folder(tmp_path, openkbp_dir, v1=True)
    assert _dataset(v2, tmp_path / "v2.csv") == 0 and _dataset(v1, tmp_path / "v1.csv") == 0
    a, b = _rows(tmp_path / "v2.csv"), _rows(tmp_path / "v1.csv")
    assert sorted(a) == sorted(b) == sorted([*KBP_TRAIN, KBP_TEST])
    assert {c: r["split"] for c, r in a.items()} == {**{c: "" for c in KBP_TRAIN}, KBP_TEST: "test"}
    assert {r["labelled"] for r in a.values()} == {r["labelled"] for r in b.values()} == {"esophagus+spinal_cord"}
    assert "--map Larynx=ORGAN" in capsys.readouterr().err  # unknown names reported with the flag, not guessed
    spec = next(s for s in read_dataset(tmp_path / "v2.csv") if s.name == "pt_2")
    cord = sitk.GetArrayFromImage(organ_mask(spec, organ("spinal_cord"))) > 0
    assert np.array_equal(cord, sitk.GetArrayFromImage(kbp_case(openkbp_dir, "pt_2")[1]) == 1) and cord.sum() > 10


def test_nnunet_bad_cases_are_skipped_with_reasons(openkbp_dir: Path, tmp_path: Path, capsys):
    folder = nnunet_folder(tmp_path, openkbp_dir, broken=True)
    before = snapshot(folder)
    out = tmp_path / "d.csv"
    assert _dataset(folder, out, "--map", "Mandible=bones") == 0
    err = capsys.readouterr().err
    for case, reason in (("pt_90", "missing image"), ("pt_91", "not on the CT grid"), ("pt_92", "empty"),
                         ("pt_93", "not a CT"), ("pt_2", "duplicate case id")):
        assert reason in _line(err, f"skipped {case}:")
    assert "Traceback" not in err
    assert set(_rows(out)) == {*KBP_TRAIN, KBP_TEST}
    assert _rows_by(out.with_name("d.coverage.csv"), "organ")["bones"]["cases_labelled"] == "4"  # via --map
    assert snapshot(folder) == before


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "the folder is empty"),
    (lambda d: (d / "notes.txt").write_text("x"), "looks like neither layout"),
    (lambda d: (d / "dataset.json").write_text("{not json"), "not an nnU-Net dataset.json"),
    (lambda d: (d / "dataset.json").write_text('{"labels": {"0": "background", "1": "tumour"}}'),
     "no usable case"),
    (lambda d: (d / "meta.csv").write_text("id,split\ns1,train\n"), "no image_id column"),
])
def test_bad_folders_give_one_line_errors(tmp_path: Path, capsys, make, message):
    folder = tmp_path / "in"
    folder.mkdir()
    make(folder)
    if (folder / "dataset.json").is_file():
        (folder / "labelsTr").mkdir()
        (folder / "labelsTr" / "x.nii.gz").write_bytes(b"")
    before = snapshot(folder)
    assert _dataset(folder, tmp_path / "d.csv") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("organseg dataset: error:")
    assert snapshot(folder) == before and not (tmp_path / "d.csv").exists()


def test_refuses_to_write_into_the_data_set_or_over_a_csv(openkbp_dir: Path, tmp_path: Path, capsys):
    folder = nnunet_folder(tmp_path, openkbp_dir)
    assert _dataset(folder, folder / "d.csv") == 2
    (tmp_path / "d.csv").write_text("mine\n")
    assert _dataset(folder, tmp_path / "d.csv") == 4
    assert (tmp_path / "d.csv").read_text() == "mine\n"
    assert "--overwrite" in capsys.readouterr().err
