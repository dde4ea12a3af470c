"""`organseg batch`: many CTs, one result folder each, a summary table; failures reported, runs resumable."""
import csv
import os
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
    (tmp_path / "list.txt").write_bytes(b"# cohort\ns0001/ct.nii.gz\n\n/abs/ct.nrrd\ncaf\xe9.nii.gz\n")
    assert read_list(tmp_path / "list.txt") == [tmp_path / "s0001" / "ct.nii.gz", Path("/abs/ct.nrrd"),
                                                tmp_path / os.fsdecode(b"caf\xe9.nii.gz")]


def test_batch_without_cts_or_with_an_unknown_organ_stops_before_any_work(tmp_path, cohort, capsys):
    assert main(["batch", "-o", str(tmp_path / "out")]) == 2
    assert main(["batch", str(cohort[0]), "-o", str(tmp_path / "out"), "--organs", "livr"]) == 2
    err = capsys.readouterr().err
    assert "give CTs, folders of CTs, or --list FILE" in err and "livr" in err
    assert not (tmp_path / "out").exists()


def hostile_cohort(folder: Path, data_dir: Path) -> dict[str, Path]:
    """The same three slices of the real CT under names a batch must not trust, and one plain name."""
    import socket

    folder.mkdir(parents=True)
    sitk.WriteImage(sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))[:, :, 95:98], str(folder / "good.nii.gz"))
    names = {"dots": "...nii.gz", "dot": "..nii.gz",
             "temp_like": f".organseg-new-{socket.gethostname()}-999999999-0123456789abcdef-x.nii.gz",
             "long": "x" * 240 + ".nii.gz", "not_utf8": os.fsdecode(b"caf\xe9.nii.gz"),
             "summary": "batch_summary.csv.nii.gz"}
    for name in names.values():
        shutil.copy(folder / "good.nii.gz", folder / name)
    return {"good": folder / "good.nii.gz", **{kind: folder / name for kind, name in names.items()}}


def test_case_names_from_hostile_file_names_are_plain_distinct_folders_inside_the_output(tmp_path, data_dir):
    cts = hostile_cohort(tmp_path / "cts", data_dir)
    names = case_names(list(cts.values()))
    assert len(set(n.casefold() for n in names.values())) == len(cts)
    for name in names.values():
        assert name and not name.startswith(".") and "/" not in name and name != "batch_summary.csv"
        assert len(name.encode()) <= 120 and name.encode("utf-8")  # a folder name the file system and ITK take
        assert (tmp_path / "out" / name).resolve().parent == (tmp_path / "out").resolve()
    # names alike but for case or for bytes that are not UTF-8 still get folders of their own
    alike = [tmp_path / "A.nii.gz", tmp_path / "a.nii.gz", tmp_path / os.fsdecode(b"b\xe9.nii"),
             tmp_path / os.fsdecode(b"b\xe8.nii")]
    assert len({n.casefold() for n in case_names(alike).values()}) == 4


def test_a_batch_of_hostile_names_writes_each_inside_the_output_and_the_non_utf8_one_fails_alone(tmp_path, data_dir):
    cts = hostile_cohort(tmp_path / "data" / "cts", data_dir)
    out = tmp_path / "data" / "out"
    (tmp_path / "data" / "stats.json").write_text("the user's own file beside the output")
    argv = ["batch", str(cts["good"].parent), "-o", str(out), "--organs", "liver", "--overwrite"]
    assert main(argv) == 1  # the CT whose name is not UTF-8 failed, alone
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cts", "out", "stats.json"]
    assert (tmp_path / "data" / "stats.json").read_text() == "the user's own file beside the output"
    rows = {r["source"]: r for r in _summary(out)}
    assert len(rows) == len(cts)
    failed = rows[str(cts["not_utf8"]).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")]
    assert failed["status"] == "failed" and "caf\\xe9.nii.gz: the name is not valid UTF-8" in failed["message"]
    good = rows[str(cts["good"])]
    for kind, ct in cts.items():
        if kind == "not_utf8":
            continue
        row = rows[str(ct)]
        assert row["status"] == "segmented" and row["liver_ml"] == good["liver_ml"], kind
        assert json.loads((out / row["case"] / "stats.json").read_text())["source"] == str(ct)
    assert {p.name for p in out.iterdir()} == {r["case"] for r in rows.values() if r["status"] != "failed"} | {
        "batch_summary.csv"}

    # a rerun finds every folder again (none taken for a dead run's leftovers) and segments nothing again
    assert main(argv[:-1]) == 1
    assert [r["status"] for r in _summary(out)].count("done before") == len(cts) - 1
