"""A corpus of bad or unusual inputs, built at test time from the real CTs, over segment, batch, evaluate and
both DICOM exports. For each kind: the exit code, one line naming the file and the problem (no traceback),
nothing of the user's changed, and where a result is written, that it is right.

Inputs are cropped to a few slices and segmented with the bundled models, so the corpus stays fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from organseg.cli import main

TS_JSON = "labels_totalsegmentator_v2.json"


@dataclass
class Case:
    """One kind of input: the command line, and what must come of it."""

    argv: list[str]
    code: int
    problem: str = ""  #: part of the one-line message (with the file's name in it) on stderr
    names: str = ""  #: the file or folder the message must name
    written: Path | None = None  #: where the command may write; everything else stays as it was
    check: Callable[[], None] | None = None  #: that what was written is right
    signal: str = ""  #: run in a child process that sends itself this signal when segmentation starts
    cleanup: Callable[[], None] | None = None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, data_dir, dicom_ct, ts_labels, ect_supplemental) -> tuple[Path, dict[str, Callable[[Path], Case]]]:
    root = tmp_path_factory.mktemp("corpus")
    ct = sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))[:, :, 95:98]  # three slices through the liver
    sitk.WriteImage(ct, str(root / "ct.nii.gz"))
    dicom_slices = sorted((data_dir / "example_ct_dicom").iterdir())[8:12]
    _copy_dicom(dicom_slices, root / "dicom")
    labels = ts_labels[:, :, 8:12]
    return root, {**_segment_cases(root, ct, dicom_slices), **_dicom_cases(root, dicom_slices),
                  **_export_cases(root, data_dir, labels, ect_supplemental), **_batch_cases(root),
                  **_evaluate_cases(root, data_dir, labels)}


def _copy_dicom(files, folder, change=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        if change is None:
            shutil.copy(path, folder / path.name)
            continue
        ds = pydicom.dcmread(path)
        change(i, ds)
        ds.save_as(folder / path.name)


def _image(array, like=None, spacing=None):
    image = sitk.GetImageFromArray(array)
    if like is not None:
        image.CopyInformation(like)
    if spacing is not None:
        image.SetSpacing(spacing)
    return image


def _write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def _stats(out):
    return {r["organ"]: r for r in json.loads((out / "stats.json").read_text())["organs"]}


def _segment_cases(root, ct, dicom_slices):
    hu = sitk.GetArrayFromImage(ct)
    seg = ["segment"]

    def truncated(d):
        data = (root / "ct.nii.gz").read_bytes()
        (d / "cut.nii.gz").write_bytes(data[: len(data) // 2])
        return Case([*seg, str(d / "cut.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "corrupt or truncated", "cut.nii.gz")

    def empty(d):
        (d / "empty.nii.gz").write_bytes(b"")
        return Case([*seg, str(d / "empty.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "corrupt or truncated", "empty.nii.gz")

    def two_d(d):
        _write(ct[:, :, 1], d / "slice.nrrd")
        return Case([*seg, str(d / "slice.nrrd"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "is a 2D image", "slice.nrrd")

    def four_d(d):
        _write(sitk.JoinSeries([ct, ct]), d / "series.nrrd")
        return Case([*seg, str(d / "series.nrrd"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "is a 4D image", "series.nrrd")

    def rgb(d):
        _write(sitk.Compose([sitk.Cast(ct, sitk.sitkInt16)] * 3), d / "rgb.mha")
        return Case([*seg, str(d / "rgb.mha"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "has 3 components per voxel", "rgb.mha")

    def mr_like(d):
        _write(_image(np.clip(hu + 1024, 0, 4000).astype(np.int16), ct), d / "mr.nii.gz")
        return Case([*seg, str(d / "mr.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "is this an MR", "mr.nii.gz")

    def one_slice(d):
        _write(ct[:, :, 1:2], d / "one.nii.gz")
        return Case([*seg, str(d / "one.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "a single slice", "one.nii.gz")

    def oblique(d):
        image = sitk.Image(ct)
        a = np.radians(40)
        image.SetDirection((1, 0, 0, 0, np.cos(a), -np.sin(a), 0, np.sin(a), np.cos(a)))
        _write(image, d / "oblique.nii.gz")
        return Case([*seg, str(d / "oblique.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "oblique", "oblique.nii.gz")

    def unsupported(d):
        (d / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        return Case([*seg, str(d / "scan.png"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "unsupported file type", "scan.png")

    def missing(d):
        return Case([*seg, str(d / "nowhere.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 2, "no such file",
                    "nowhere.nii.gz")

    def unknown_organ(d):
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "livr"], 2,
                    "unknown organ name 'livr'", "livr")

    def output_is_a_file(d):
        (d / "out").write_text("my notes")
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 4,
                    "exists and is not a folder", "out")

    def results_without_overwrite(d):
        (d / "out" / "masks").mkdir(parents=True)
        (d / "out" / "stats.json").write_text("{}")
        (d / "out" / "masks" / "liver.nii.gz").write_bytes(b"corrected by hand")
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 4,
                    "already holds results", "out")

    def all_air(d):
        _write(_image(np.full(hu.shape, -1000, np.int16), ct), d / "air.nii.gz")

        def check():
            assert _stats(d / "out")["liver"]["voxels"] == 0
        return Case([*seg, str(d / "air.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 0,
                    "not found (empty mask): liver", "air.nii.gz", d / "out", check)

    def nan_block(d):
        array = hu.astype(np.float32)
        array[:, 40:60, 30:50] = np.nan
        _write(_image(array, ct), d / "nan.nrrd")

        def check():
            assert "are not a number" in " ".join(json.loads((d / "out" / "stats.json").read_text())["warnings"])
        return Case([*seg, str(d / "nan.nrrd"), "-o", str(d / "out"), "--organs", "liver"], 0,
                    "1200 voxels (3.25%) are not a number", "nan.nrrd", d / "out", check)

    def implausible_spacing(d):
        _write(_image(hu, ct, spacing=(10.0, 10.0, 10.0)), d / "big.nii.gz")
        return Case([*seg, str(d / "big.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 0,
                    "is outside human CT ranges", "big.nii.gz", d / "out")

    def overwrite_keeps_others(d):
        assert main([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "liver"]) == 0
        (d / "out" / "masks" / "liver_corrected.nii.gz").write_bytes(b"mine")

        def check():
            # the liver and spleen rules add the lungs anchor (the bundled labeller) to both runs
            assert sorted(p.name for p in (d / "out" / "masks").iterdir()) == [
                "liver.nii.gz", "liver_corrected.nii.gz", "lungs.nii.gz", "spleen.nii.gz"]
            assert (d / "out" / "masks" / "liver_corrected.nii.gz").read_bytes() == b"mine"
            assert sorted(_stats(d / "out")) == ["lungs", "spleen"]
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "spleen", "--overwrite"],
                    0, written=d / "out", check=check)

    def default_organs_some_without_model(d):
        from organseg.catalogue import ORGANS
        from organseg.method.model_package import ModelStore, bundled_models_dir
        bundled = set(ModelStore([bundled_models_dir()]).available())

        def check():
            assert set(_stats(d / "out")) == bundled
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--models", str(bundled_models_dir())], 0,
                    f"no model installed for {len(ORGANS) - len(bundled)} organs, left out: heart, pancreas,", "",
                    d / "out", check)

    def interrupted(d, name):
        assert main([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "liver"]) == 0
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "spleen", "--overwrite"],
                    {"SIGINT": 130, "SIGTERM": 143}[name], "interrupted; no partial output was kept", signal=name)

    def sigint(d):
        return interrupted(d, "SIGINT")

    def sigterm(d):
        return interrupted(d, "SIGTERM")

    def read_only_output(d):
        (d / "ro").mkdir()
        if os.geteuid() == 0:
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d / "ro")]).returncode:
                pytest.skip("cannot mount a read-only tmpfs")
            cleanup = lambda: subprocess.run(["umount", str(d / "ro")], check=True)  # noqa: E731
        else:
            (d / "ro").chmod(0o555)
            cleanup = lambda: (d / "ro").chmod(0o755)  # noqa: E731
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "ro" / "out"), "--organs", "liver"], 4,
                    "cannot write there", "out", cleanup=cleanup)

    def other_filesystem_output(d):
        other = Path("/dev/shm")
        if not other.is_dir() or other.stat().st_dev == d.stat().st_dev:
            pytest.skip("no second filesystem (/dev/shm) to link to")
        target = Path(os.path.realpath(other)) / f"organseg-corpus-{os.getpid()}"
        target.mkdir()
        (d / "out").symlink_to(target)

        def check():
            assert sorted(p.name for p in (target / "masks").iterdir()) == ["liver.nii.gz", "lungs.nii.gz"]
            assert not list(target.glob(".organseg-*"))
        return Case([*seg, str(root / "ct.nii.gz"), "-o", str(d / "out"), "--organs", "liver"], 0,
                    written=d / "out", check=check, cleanup=lambda: shutil.rmtree(target))

    return {f.__name__: f for f in (truncated, empty, two_d, four_d, rgb, mr_like, one_slice, oblique, unsupported,
                                    missing, unknown_organ, output_is_a_file, results_without_overwrite, all_air,
                                    nan_block, implausible_spacing, overwrite_keeps_others, sigint, sigterm,
                                    default_organs_some_without_model,
                                    read_only_output, other_filesystem_output)}


def _dicom_cases(root, slices):
    seg = ["segment"]

    def missing_slice(d):
        _copy_dicom(slices[:1] + slices[2:], d / "ct")
        return Case([*seg, str(d / "ct"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "slice spacing is not uniform", "ct")

    def gantry_tilt(d):
        def tilt(i, ds):
            ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]),
                                       float(ds.ImagePositionPatient[1]) + 3.0 * i, ds.ImagePositionPatient[2]]
        _copy_dicom(slices, d / "ct", tilt)
        return Case([*seg, str(d / "ct"), "-o", str(d / "out"), "--organs", "liver"], 2, "gantry tilt", "ct")

    def mixed_series(d):
        frame = generate_uid()

        def second(i, ds):
            ds.SeriesInstanceUID = ""
            ds.FrameOfReferenceUID = frame
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 1.0]
        _copy_dicom(slices, d / "ct", lambda i, ds: setattr(ds, "SeriesInstanceUID", ""))
        _copy_dicom(slices, d / "ct" / "b", second)
        return Case([*seg, str(d / "ct"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "mixes 2 frames of reference", "ct")

    def not_ct(d):
        def mr(i, ds):
            ds.Modality = "MR"
            ds.RescaleIntercept = 0
        _copy_dicom(slices, d / "mr", mr)
        return Case([*seg, str(d / "mr"), "-o", str(d / "out"), "--organs", "liver"], 2, "is this an MR", "mr")

    def no_dicom(d):
        (d / "ct").mkdir()
        (d / "ct" / "readme.txt").write_text("scans come later")
        return Case([*seg, str(d / "ct"), "-o", str(d / "out"), "--organs", "liver"], 2,
                    "no DICOM image series found", "ct")

    def output_inside_dicom(d):
        _copy_dicom(slices, d / "ct")
        return Case([*seg, str(d / "ct"), "-o", str(d / "ct" / "results"), "--organs", "liver"], 4,
                    "inside the input DICOM folder", "results")

    def no_study_uid_two_exports(d):
        """The note about the derived Study UID concerns both exports: said once, as a warning."""
        _copy_dicom(slices, d / "ct", lambda i, ds: setattr(ds, "StudyInstanceUID", ""))

        def check():
            assert (d / "out" / "rtstruct.dcm").is_file() and (d / "out" / "seg.dcm").is_file()
        return Case([*seg, str(d / "ct"), "-o", str(d / "out"), "--organs", "liver", "--output-type",
                     "rtstruct,dicom-seg"], 0, "ct: the CT has no StudyInstanceUID", "ct", d / "out", check)

    return {f.__name__: f for f in (missing_slice, gantry_tilt, mixed_series, not_ct, no_dicom, output_inside_dicom,
                                    no_study_uid_two_exports)}


def _export_cases(root, data_dir, labels, ect_supplemental):
    def masks_folder(d, organs=("liver",), empty=False):
        (d / "seg").mkdir(exist_ok=True)
        array = sitk.GetArrayFromImage(labels)
        for key, value in (("liver", 5), ("spleen", 1)):
            if key in organs:
                _write(_image(((array == value) & (not empty)).astype(np.uint8), labels), d / "seg" / f"{key}.nii.gz")
        return d / "seg"

    def export(command, d, seg, out=None, *extra):
        return [command, "--ct", str(root / "dicom"), "--seg", str(seg), "-o", str(out or d / "x.dcm"), *extra]

    def off_grid(d):
        _write(sitk.Image(64, 64, 4, sitk.sitkUInt8), d / "liver.nii.gz")
        return Case(export("export-rtstruct", d, d / "liver.nii.gz", None, "--labels", str(data_dir / TS_JSON)),
                    2, "not on the voxel grid of the DICOM series", "liver.nii.gz")

    def foreign_map(d):
        _write(labels, d / "ts.nii.gz")
        return Case(export("export-dicom-seg", d, d / "ts.nii.gz"), 2, "values mean nothing without their names",
                    "ts.nii.gz")

    def flipped_map_with_labels(d):
        """The same voxel centres stored with the y axis reversed (as TotalSegmentator's map of this series)."""
        flipped = _image(sitk.GetArrayFromImage(labels)[:, ::-1].copy(), labels)
        direction = np.array(labels.GetDirection()).reshape(3, 3)
        direction[:, 1] *= -1
        flipped.SetDirection(direction.ravel().tolist())
        flipped.SetOrigin(labels.TransformIndexToPhysicalPoint((0, labels.GetSize()[1] - 1, 0)))
        _write(flipped, d / "ts.nii.gz")

        def check():
            assert [r.ROIName for r in pydicom.dcmread(d / "x.dcm").StructureSetROISequence] == ["Liver", "Spleen"]
        return Case(export("export-rtstruct", d, d / "ts.nii.gz", None, "--labels", str(data_dir / TS_JSON),
                           "--organs", "liver,spleen"), 0, written=d / "x.dcm", check=check)

    def only_empty_masks(d):
        return Case(export("export-rtstruct", d, masks_folder(d, empty=True)), 2, "every mask is empty", "seg")

    def export_exists(d):
        (d / "x.dcm").write_text("an earlier export")
        return Case(export("export-dicom-seg", d, masks_folder(d)), 4, "exists; choose another name", "x.dcm")

    def export_into_dicom(d):
        return Case(export("export-rtstruct", d, masks_folder(d), root / "dicom" / "x.dcm"), 4,
                    "inside the input DICOM folder", "x.dcm")

    def corrupt_mask(d):
        (d / "seg").mkdir()
        (d / "seg" / "liver.nii.gz").write_bytes(b"\x1f\x8b garbage")
        return Case(export("export-dicom-seg", d, d / "seg"), 2, "cannot read the image", "liver.nii.gz")

    def duplicated_dicom_file(d):
        shutil.copytree(root / "dicom", d / "ct")
        first = sorted((d / "ct").iterdir())[0]
        shutil.copy(first, d / "ct" / "copy.dcm")
        args = export("export-rtstruct", d, masks_folder(d))
        args[2] = str(d / "ct")
        return Case(args, 0, written=d / "x.dcm", check=lambda: [
            r.ROIName for r in pydicom.dcmread(d / "x.dcm").StructureSetROISequence] == ["Liver"])

    def no_frame_of_reference(d):
        _copy_dicom(sorted((root / "dicom").iterdir()), d / "ct", lambda i, ds: delattr(ds, "FrameOfReferenceUID"))
        args = export("export-dicom-seg", d, masks_folder(d))
        args[2] = str(d / "ct")
        return Case(args, 2, "have no Frame of Reference UID", "ct")

    def enhanced_multiframe(d):
        from organseg.ct.dicom_series import read_series
        (d / "ct").mkdir()
        shutil.copy(ect_supplemental, d / "ct" / "ect.dcm")
        (d / "seg").mkdir()
        _write(sitk.Cast(read_series(d / "ct") > 0, sitk.sitkUInt8), d / "seg" / "liver.nii.gz")
        args = export("export-rtstruct", d, d / "seg")
        args[2] = str(d / "ct")

        def check():
            references = [c.ContourImageSequence[0] for c in
                          pydicom.dcmread(d / "x.dcm").ROIContourSequence[0].ContourSequence]
            assert {int(r.ReferencedFrameNumber) for r in references} == {1, 2}
        return Case(args, 0, written=d / "x.dcm", check=check)

    return {f.__name__: f for f in (off_grid, foreign_map, flipped_map_with_labels, only_empty_masks, export_exists,
                                    export_into_dicom, corrupt_mask, duplicated_dicom_file, no_frame_of_reference,
                                    enhanced_multiframe)}


def _batch_cases(root):
    def one_bad_among_good(d):
        (d / "cts").mkdir()
        shutil.copy(root / "ct.nii.gz", d / "cts" / "good.nii.gz")
        data = (root / "ct.nii.gz").read_bytes()
        (d / "cts" / "bad.nii.gz").write_bytes(data[: len(data) // 3])

        def check():
            rows = (d / "out" / "batch_summary.csv").read_text().splitlines()
            assert rows[1].startswith("bad,") and ",failed," in rows[1] and "corrupt or truncated" in rows[1]
            assert rows[2].startswith("good,") and ",segmented," in rows[2]
        return Case(["batch", str(d / "cts"), "-o", str(d / "out"), "--organs", "liver"], 1, written=d / "out",
                    check=check)

    def folder_without_cts(d):
        (d / "cts").mkdir()
        (d / "cts" / "notes.txt").write_text("none yet")
        return Case(["batch", str(d / "cts"), "-o", str(d / "out")], 2, "holds no CT image file", "cts")

    def output_is_the_input_dicom(d):
        shutil.copytree(root / "dicom", d / "ct")
        return Case(["batch", str(d / "ct"), "-o", str(d / "ct"), "--organs", "liver"], 4,
                    "inside the input DICOM folder", "ct")

    def rerun_with_other_organs(d):
        shutil.copy(root / "ct.nii.gz", d / "a.nii.gz")
        assert main(["batch", str(d / "a.nii.gz"), "-o", str(d / "out"), "--organs", "liver"]) == 0

        def check():
            row = (d / "out" / "batch_summary.csv").read_text().splitlines()[1]
            assert ",failed," in row and "not spleen" in row and "--overwrite" in row
        return Case(["batch", str(d / "a.nii.gz"), "-o", str(d / "out"), "--organs", "spleen"], 1,
                    written=d / "out" / "batch_summary.csv", check=check)

    return {f.__name__: f for f in (one_bad_among_good, folder_without_cts, output_is_the_input_dicom,
                                    rerun_with_other_organs)}


def _evaluate_cases(root, data_dir, labels):
    def missing_prediction(d):
        _write(labels, d / "ref.nii.gz")
        return Case(["evaluate", "--pred", str(d / "nothing"), "--ref", str(d / "ref.nii.gz"), "-o", str(d / "e")],
                    2, "no such", "nothing")

    def prediction(d):
        (d / "pred" / "masks").mkdir(parents=True)
        _write(sitk.Cast(labels == 5, sitk.sitkUInt8), d / "pred" / "masks" / "liver.nii.gz")
        return d / "pred"

    def two_label_map(d, shift=0.0):
        array = sitk.GetArrayFromImage(labels)
        image = _image(np.where(np.isin(array, [1, 5]), array, 0).astype(np.uint8), labels)
        image.SetOrigin([o + shift for o in labels.GetOrigin()])
        return _write(image, d / "ts.nii.gz")

    def foreign_reference(d):
        return Case(["evaluate", "--pred", str(prediction(d)), "--ref", str(two_label_map(d)), "-o", str(d / "e")],
                    2, "values mean nothing without their names", "ts.nii.gz")

    def foreign_reference_with_labels(d):
        def check():
            row = next(r for r in (d / "e" / "metrics.csv").read_text().splitlines() if ",liver," in r)
            assert ",1.0," in row or ",1," in row, row
        return Case(["evaluate", "--pred", str(prediction(d)), "--ref", str(two_label_map(d)), "--ref-labels",
                     str(data_dir / TS_JSON), "-o", str(d / "e")], 0, written=d / "e", check=check)

    def reference_elsewhere(d):
        return Case(["evaluate", "--pred", str(prediction(d)), "--ref", str(two_label_map(d, 5000.0)), "--ref-labels",
                     str(data_dir / TS_JSON), "-o", str(d / "e")], 2, "does not overlap", "ts.nii.gz")

    return {f.__name__: f for f in (missing_prediction, foreign_reference, foreign_reference_with_labels,
                                    reference_elsewhere)}


KINDS = ["truncated", "empty", "two_d", "four_d", "rgb", "mr_like", "one_slice", "oblique", "unsupported", "missing",
         "unknown_organ", "output_is_a_file", "results_without_overwrite", "all_air", "nan_block",
         "implausible_spacing", "overwrite_keeps_others", "default_organs_some_without_model", "sigint", "sigterm",
         "read_only_output", "other_filesystem_output", "missing_slice", "gantry_tilt", "mixed_series", "not_ct",
         "no_dicom", "output_inside_dicom", "no_study_uid_two_exports", "off_grid", "foreign_map",
         "flipped_map_with_labels", "only_empty_masks", "export_exists", "export_into_dicom", "corrupt_mask",
         "duplicated_dicom_file", "no_frame_of_reference", "enhanced_multiframe", "one_bad_among_good",
         "folder_without_cts", "output_is_the_input_dicom", "rerun_with_other_organs", "missing_prediction",
         "foreign_reference", "foreign_reference_with_labels", "reference_elsewhere"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input(kind, corpus, tmp_path, capsys, request):
    root, builders = corpus
    case = builders[kind](tmp_path)
    before, shared = _snapshot(tmp_path), _snapshot(root)
    if case.cleanup:
        request.addfinalizer(case.cleanup)
    capsys.readouterr()
    if case.signal:
        code, err = _run_interrupted(case)
    else:
        code = main(case.argv)
        err = capsys.readouterr().err
    assert code == case.code, err
    assert "Traceback" not in err
    if case.signal:
        assert [line for line in err.splitlines() if line.startswith("organseg ")] == [
            f"organseg {case.argv[0]}: {case.problem} (each result folder or file holds its earlier or its complete "
            "new content)"]
    elif case.code not in (0, 1):
        lines = [line for line in err.splitlines() if line.startswith(f"organseg {case.argv[0]}: error:")]
        assert len(lines) == 1 and case.problem in lines[0] and case.names in lines[0], err
    elif case.problem:
        notes = [line for line in err.splitlines() if case.problem in line]
        assert len(notes) == 1 and notes[0].startswith("warning: ") and case.names in notes[0], err
    after = _snapshot(tmp_path)
    kept = case.written and str(case.written.relative_to(tmp_path))
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)
               and not (kept and (p == kept or p.startswith(kept + os.sep)))}
    assert not changed, f"changed outside the output: {sorted(changed)}"
    assert _snapshot(root) == shared
    assert not list(tmp_path.rglob(".organseg-*")), "temporary files left behind"
    if case.check:
        case.check()


def _run_interrupted(case: Case) -> tuple[int, str]:
    """Run the command in a child that sends itself the signal as segmentation starts (a fixed point)."""
    child = ("import os, signal, sys, time\n"
             "import organseg.segmenter as s\n"
             f"def stop(*a, **k):\n    os.kill(os.getpid(), signal.{case.signal})\n    time.sleep(30)\n"
             "s.Segmenter.segment = stop\n"
             "from organseg.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", child, *case.argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return proc.returncode, proc.stderr
