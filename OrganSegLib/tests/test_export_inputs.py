"""What the DICOM exports accept: flipped grids mapped exactly, a foreign label map only with its names,
never an empty structure set, and a series they cannot reference refused before any segmentation."""
import json
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.ct.dicom_series import find_series
from organseg.export.masks import load_masks

TS_JSON = "labels_totalsegmentator_v2.json"


def test_a_map_with_a_flipped_axis_is_mapped_exactly_and_named_by_its_labels(data_dir, ts_labels, tmp_path):
    """The TotalSegmentator map of the series stores y reversed: same voxel centres, so the same grid."""
    seg = data_dir / "example_seg_dicom.nii.gz"
    assert sitk.ReadImage(str(seg)).GetDirection()[4] == -1.0
    masks = load_masks(seg, find_series(data_dir / "example_ct_dicom"), labels=data_dir / TS_JSON)
    reference = sitk.GetArrayFromImage(ts_labels)
    assert np.array_equal(masks["liver"], reference == 5) and np.array_equal(masks["spleen"], reference == 1)
    out = tmp_path / "x.dcm"
    assert main(["export-rtstruct", "--ct", str(data_dir / "example_ct_dicom"), "--seg", str(seg),
                 "--labels", str(data_dir / TS_JSON), "--organs", "liver,spleen", "-o", str(out)]) == 0
    assert [r.ROIName for r in pydicom.dcmread(out).StructureSetROISequence] == ["Liver", "Spleen"]


def _two_label_map(ts_labels, folder):
    array = sitk.GetArrayFromImage(ts_labels)
    image = sitk.GetImageFromArray(np.where(np.isin(array, [1, 5]), array, 0).astype(np.uint8))
    image.CopyInformation(ts_labels)
    folder.mkdir()
    sitk.WriteImage(image, str(folder / "ts.nii.gz"))
    return folder / "ts.nii.gz"


def test_a_foreign_label_map_is_refused_without_its_names(data_dir, ts_labels, tmp_path, capsys):
    """Values 1 and 5 of TotalSegmentator are spleen and liver; read as OrganSeg values they were liver and
    kidneys."""
    seg = _two_label_map(ts_labels, tmp_path / "seg")
    args = ["export-rtstruct", "--ct", str(data_dir / "example_ct_dicom"), "--seg", str(seg), "-o",
            str(tmp_path / "x.dcm")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ts.nii.gz: a label map's values mean nothing without their names" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.dcm").exists()
    assert main(args + ["--labels", str(data_dir / TS_JSON)]) == 0
    assert [r.ROIName for r in pydicom.dcmread(tmp_path / "x.dcm").StructureSetROISequence] == ["Liver", "Spleen"]


def test_only_empty_masks_give_no_export(data_dir, dicom_ct, tmp_path, capsys):
    (tmp_path / "masks").mkdir()
    empty = sitk.Image(dicom_ct.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(dicom_ct)
    sitk.WriteImage(empty, str(tmp_path / "masks" / "liver.nii.gz"))
    for command in ("export-rtstruct", "export-dicom-seg"):
        assert main([command, "--ct", str(data_dir / "example_ct_dicom"), "--seg", str(tmp_path), "-o",
                     str(tmp_path / "x.dcm")]) == 2
        assert "every mask is empty (liver); there is nothing to export" in capsys.readouterr().err
    assert not (tmp_path / "x.dcm").exists()


def test_a_series_without_frame_of_reference_is_refused_before_segmenting(data_dir, tmp_path, capsys,
                                                                          monkeypatch):
    ct = tmp_path / "ct"
    ct.mkdir()
    for path in sorted((data_dir / "example_ct_dicom").iterdir()):
        ds = pydicom.dcmread(path)
        del ds.FrameOfReferenceUID
        ds.save_as(ct / path.name)
    monkeypatch.setattr("organseg.segmenter.Segmenter.segment", lambda *a, **k: pytest.fail("segmented first"))
    assert main(["segment", str(ct), "-o", str(tmp_path / "out"), "--organs", "liver",
                 "--output-type", "rtstruct"]) == 2
    assert "the CT slices have no Frame of Reference UID" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
