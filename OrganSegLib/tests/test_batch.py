"""`organseg batch`: many CTs, one result folder each, a summary table; failures reported, runs resumable."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.cohort.batch import case_names, find_cts, read_list
from organseg.errors import InputError
from organseg.segmenter import Segmenter


def _summary(out):
    with open(out / "batch_summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, data_dir):
    """Three CTs as a cohort lays them out: two 'ct.nii.gz' in case folders (one truncated) and a DICOM series."""
    root = tmp_path_factory.mktemp("cohort")
    for case in ("s0001", "s0002"):
        (root / case).mkdir()
    shutil.copy(data_dir / "example_ct.nii.gz", root / "s0001" / "ct.nii.gz")
    data = (data_dir / "example_ct.nii.gz").read_bytes()
    (root / "s0002" / "ct.nii.gz").write_bytes(data[:len(data) // 3])
    return [root / "s0001" / "ct.nii.gz", root / "s0002" / "ct.nii.gz", data_dir / "example_ct_dicom"]


def test_batch_segments_each_ct_reports_the_broken_one_and_resumes(tmp_path, cohort, tiny_models, dicom_ct):
    out = tmp_path / "out"
    argv = ["batch", *map(str, cohort), "-o", str(out), "--organs", "liver", "--models", str(tiny_models)]
    assert main(argv) == 1  # one CT failed

    rows = _summary(out)
    assert [(r["case"], r["status"]) for r in rows] == [
        ("s0001_ct", "segmented"), ("s0002_ct", "failed"), ("example_ct_dicom", "segmented")]
    assert str(cohort[1]) in rows[1]["message"] and "corrupt or truncated" in rows[1]["message"]
    assert sorted(p.name for p in out.iterdir()) == ["batch_summary.csv", "example_ct_dicom", "s0001_ct"]
    for row in (rows[0], rows[2]):
        stats = json.loads((out / row["case"] / "stats.json").read_text())
        assert float(row["liver_ml"]) == pytest.approx(stats["organs"][0]["volume_ml"], abs=1e-3)
        assert float(row["liver_ml"]) > 0
        flags = [f["code"] for f in stats["organs"][0]["flags"]]
        assert (row["flagged"], row["flagged_organs"]) == (("1", f"liver ({', '.join(flags)})") if flags else ("0", ""))

    # the batch's result is the single-CT result
    alone = Segmenter(models=tiny_models, device="cpu").segment(dicom_ct, ["liver"])
    batch_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "example_ct_dicom" / "masks" / "liver.nii.gz")))
    assert np.array_equal(batch_mask > 0, alone.masks["liver"].full())

    # a second run segments only what is missing and keeps the finished folders untouched
    stamp = (out / "s0001_ct" / "stats.json").stat().st_mtime_ns
    assert main(argv) == 1
    again = _summary(out)
    assert [r["status"] for r in again] == ["done before", "failed", "done before"]
    assert [(r["liver_ml"], r["flagged_organs"]) for r in again] == [(r["liver_ml"], r["flagged_organs"]) for r in rows]
    assert (out / "s0001_ct" / "stats.json").stat().st_mtime_ns == stamp


def test_case_names_add_parent_folders_only_where_names_collide(tmp_path):
    paths = [tmp_path / "s0001" / "ct.nii.gz", tmp_path / "s0002" / "ct.nii.gz", tmp_path / "other" / "b.mha",
             tmp_path / "x" / "dicom", tmp_path / "y" / "dicom"]
    assert list(case_names(paths).values()) == ["s0001_ct", "s0002_ct", "b", "x_dicom", "y_dicom"]


def test_a_folder_stands_for_its_ct_files_and_dicom_series_one_level_deep(tmp_path, data_dir):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a CT")
    (tmp_path / "series").mkdir()
    shutil.copy(next((data_dir / "example_ct_dicom").iterdir()), tmp_path / "series" / "slice.dcm")
    (tmp_path / "deeper" / "case").mkdir(parents=True)
    (tmp_path / "deeper" / "case" / "mask.nii.gz").write_bytes(b"")
    assert find_cts([tmp_path]) == [tmp_path / "a.nii.gz", tmp_path / "series"]
    assert find_cts([tmp_path / "series", tmp_path, tmp_path / "a.nii.gz"]) == [tmp_path / "series",
                                                                                tmp_path / "a.nii.gz"]
    with pytest.raises(InputError, match="deeper: holds no CT image file"):
        find_cts([tmp_path / "deeper"])
    with pytest.raises(InputError, match="missing: no such file or folder"):
        find_cts([tmp_path / "missing"])


def test_a_list_file_names_cts_relative_to_itself(tmp_path):
    (tmp_path / "list.txt").write_text("# cohort\ns0001/ct.nii.gz\n\n/abs/ct.nrrd\n")
    assert read_list(tmp_path / "list.txt") == [tmp_path / "s0001" / "ct.nii.gz", Path("/abs/ct.nrrd")]


def test_batch_without_cts_or_with_an_unknown_organ_stops_before_any_work(tmp_path, cohort, capsys):
    assert main(["batch", "-o", str(tmp_path / "out")]) == 2
    assert main(["batch", str(cohort[0]), "-o", str(tmp_path / "out"), "--organs", "livr"]) == 2
    err = capsys.readouterr().err
    assert "give CTs, folders of CTs, or --list FILE" in err and "livr" in err
    assert not (tmp_path / "out").exists()
