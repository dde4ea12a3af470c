"""RTSTRUCT and DICOM SEG written from the real DICOM series and TotalSegmentator masks, checked independently:
dciodvfy (dicom3tools) reports no errors, dicompyler-core reads the contours back and two rasterisers
restore the masks, highdicom reads the SEG back voxel for voxel."""
import json
import shutil

import numpy as np
import pydicom
import pydicom.dicomio
import pytest
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath
from scipy import ndimage
from skimage.draw import polygon2mask

from organseg.catalogue import CATEGORY, ORGANS, organ
from organseg.cli import main
from organseg.ct.dicom_series import find_series
import dciodvfy

#: dicompyler-core 0.5.6 imports pydicom's `read_file`, which pydicom 3 renamed `dcmread`.
pydicom.dicomio.read_file = pydicom.dcmread
from dicompylercore import dicomparser  # noqa: E402

EXPECTED = {"liver", "spleen", "stomach", "pancreas", "aorta", "colon", "bones"}


@pytest.fixture(scope="module")
def organ_masks(data_dir, ts_labels):
    """Catalogue organ -> (z, y, x) mask from TotalSegmentator's labels of the DICOM series."""
    names = json.loads((data_dir / "labels_totalsegmentator_v2.json").read_text())
    ids = {name: int(value) for value, name in names.items()}
    labels = sitk.GetArrayFromImage(ts_labels)
    masks = {o.key: np.isin(labels, [ids[n] for n in o.totalsegmentator_names if n in ids]) for o in ORGANS}
    masks = {key: mask for key, mask in masks.items() if mask.any()}
    assert EXPECTED <= set(masks)
    return masks


@pytest.fixture(scope="module")
def exports(tmp_path_factory, data_dir, organ_masks, dicom_ct):
    """Masks folder -> `organseg export-rtstruct` and `organseg export-dicom-seg`."""
    folder = tmp_path_factory.mktemp("export")
    (folder / "masks").mkdir()
    for key, mask in organ_masks.items():
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(dicom_ct)
        sitk.WriteImage(image, str(folder / "masks" / f"{key}.nii.gz"))
    ct = str(data_dir / "example_ct_dicom")
    for command, name in (("export-rtstruct", "rtstruct.dcm"), ("export-dicom-seg", "seg.dcm")):
        assert main([command, "--ct", ct, "--seg", str(folder), "-o", str(folder / name)]) == 0
    return folder


@pytest.mark.parametrize("name", ["rtstruct.dcm", "seg.dcm"])
def test_dciodvfy_reports_no_errors(exports, name):
    dciodvfy.require()
    report, errors = dciodvfy.validate(exports / name)
    assert ("RTStructureSet" if name == "rtstruct.dcm" else "Segmentation") in report
    assert errors == []


def _rasterise(coordinates, dicom_ct, fill):
    """Even-odd fill of dicompyler's contour planes on the CT grid; `fill(polygon_xy, shape)` -> bool.

    Patient mm -> continuous (x, y, z) voxel index from the CT image's origin, spacing and direction.
    """
    mask = np.zeros(dicom_ct.GetSize()[::-1], dtype=bool)
    to_index = np.linalg.inv(np.array(dicom_ct.GetDirection()).reshape(3, 3) @ np.diag(dicom_ct.GetSpacing()))
    for plane in coordinates.values():
        for contour in plane:
            index = (np.array(contour["data"], dtype=float) - dicom_ct.GetOrigin()) @ to_index.T
            k = int(round(index[0, 2]))
            assert np.allclose(index[:, 2], k, atol=1e-3), "contour points off the slice plane"
            lo = np.maximum(np.floor(index[:, :2].min(axis=0)).astype(int), 0)
            hi = np.minimum(np.ceil(index[:, :2].max(axis=0)).astype(int) + 1, mask.shape[:0:-1])
            box = mask[k, lo[1]:hi[1], lo[0]:hi[0]]
            box ^= fill(index[:, :2] - lo, box.shape)
    return mask


def _fill_matplotlib(xy, shape):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return PolygonPath(xy).contains_points(np.column_stack([cols.ravel(), rows.ravel()])).reshape(shape)


def _fill_skimage(xy, shape):
    return polygon2mask(shape, xy[:, ::-1])


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_rtstruct_read_by_dicompyler_restores_every_organ(exports, organ_masks, dicom_ct):
    # The real masks have holes (vertebrae round the spinal canal) and several components per slice.
    slices = [m[k] for m in organ_masks.values() for k in np.flatnonzero(m.any(axis=(1, 2)))]
    assert any((ndimage.binary_fill_holes(s) != s).any() for s in slices)
    assert any(ndimage.label(s)[1] > 1 for s in slices)
    parser = dicomparser.DicomParser(str(exports / "rtstruct.dcm"))
    structures = {s["name"]: number for number, s in parser.GetStructures().items()}
    assert set(structures) == {organ(k).display_name for k in organ_masks}
    dice = {}
    for key, mask in organ_masks.items():
        coordinates = parser.GetStructureCoordinates(structures[organ(key).display_name])
        restored = _rasterise(coordinates, dicom_ct, _fill_matplotlib)
        cross_check = _rasterise(coordinates, dicom_ct, _fill_skimage)
        assert _dice(restored, cross_check) >= 0.999, key
        dice[key] = _dice(restored, mask)
    print("RTSTRUCT round-trip Dice:", {k: round(v, 4) for k, v in dice.items()})
    assert min(dice.values()) >= 0.95, dice


def test_rtstruct_names_colours_codes_and_references(exports, organ_masks, data_dir):
    ds = pydicom.dcmread(exports / "rtstruct.dcm")
    series = find_series(data_dir / "example_ct_dicom")
    frame = series.headers[0].FrameOfReferenceUID
    uid_z = {h.file_meta.MediaStorageSOPInstanceUID: float(h.ImagePositionPatient[2]) for h in series.headers}
    assert ds.Modality == "RTSTRUCT" and ds.FrameOfReferenceUID == frame
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == frame
    referenced = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert {i.ReferencedSOPInstanceUID for i in referenced.ContourImageSequence} == set(uid_z)
    rois = {r.ROINumber: r for r in ds.StructureSetROISequence}
    for roi, observation in zip(ds.ROIContourSequence, ds.RTROIObservationsSequence):
        o = organ(rois[roi.ReferencedROINumber].ROIName.lower().replace(" ", "_"))
        assert rois[roi.ReferencedROINumber].ReferencedFrameOfReferenceUID == frame
        assert list(roi.ROIDisplayColor) == list(o.colour)
        assert observation.RTROIInterpretedType == "ORGAN"
        assert observation.RTROIIdentificationCodeSequence[0].CodeValue == o.snomed_code
        for contour in roi.ContourSequence:
            z = float(contour.ContourData[2])
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            assert uid_z[contour.ContourImageSequence[0].ReferencedSOPInstanceUID] == pytest.approx(z)


def test_dicom_seg_read_by_highdicom_matches_every_voxel(exports, organ_masks, data_dir):
    import highdicom as hd
    seg = hd.seg.segread(exports / "seg.dcm")
    series = find_series(data_dir / "example_ct_dicom")
    uids = [h.file_meta.MediaStorageSOPInstanceUID for h in series.headers]
    assert seg.FrameOfReferenceUID == series.headers[0].FrameOfReferenceUID
    found = set()
    for description in seg.SegmentSequence:
        o = organ(description.TrackingID)
        assert description.SegmentLabel == o.display_name
        category, kind = description.SegmentedPropertyCategoryCodeSequence[0], description.SegmentedPropertyTypeCodeSequence[0]
        assert (category.CodingSchemeDesignator, category.CodeValue, category.CodeMeaning) == CATEGORY
        assert (kind.CodingSchemeDesignator, kind.CodeValue, kind.CodeMeaning) == o.snomed_type
        pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[description.SegmentNumber])
        assert np.array_equal(pixels[..., 0] > 0, organ_masks[o.key]), o.key
        found.add(o.key)
    assert found == set(organ_masks)


def test_label_map_input_gives_one_mask_per_label(tmp_path, data_dir, organ_masks, dicom_ct):
    from organseg.export.masks import load_masks
    labels = np.zeros(dicom_ct.GetSize()[::-1], dtype=np.uint8)
    for key in ("liver", "spleen", "aorta"):
        labels[organ_masks[key]] = organ(key).label
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(dicom_ct)
    sitk.WriteImage(image, str(tmp_path / "segmentation.nii.gz"))
    (tmp_path / "labels.json").write_text(json.dumps([{"label": organ(k).label, "organ": k}
                                                      for k in ("liver", "spleen", "aorta")]))
    masks = load_masks(tmp_path / "segmentation.nii.gz", find_series(data_dir / "example_ct_dicom"))
    assert sorted(masks) == ["aorta", "liver", "spleen"]
    assert all(np.array_equal(masks[k], labels == organ(k).label) for k in masks)


def test_existing_output_needs_overwrite(exports, data_dir, capsys):
    target = exports / "again.dcm"
    target.write_text("keep me")
    args = ["export-rtstruct", "--ct", str(data_dir / "example_ct_dicom"), "--seg", str(exports),
            "--organs", "pancreas", "-o", str(target)]
    assert main(args) == 4
    assert "again.dcm: exists; choose another name or pass --overwrite" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert main(args + ["--overwrite"]) == 0
    assert pydicom.dcmread(target).StructureSetROISequence[0].ROIName == "Pancreas"


def test_writing_into_the_input_dicom_folder_is_refused(tmp_path, data_dir, exports, capsys):
    ct = tmp_path / "ct"
    shutil.copytree(data_dir / "example_ct_dicom", ct)
    before = sorted(p.name for p in ct.iterdir())
    for command in ("export-rtstruct", "export-dicom-seg"):
        assert main([command, "--ct", str(ct), "--seg", str(exports), "-o", str(ct / "out.dcm")]) == 4
        assert "inside the input DICOM folder" in capsys.readouterr().err
    assert main(["segment", str(ct), "-o", str(ct / "results"), "--organs", "liver"]) == 4
    assert "inside the input DICOM folder" in capsys.readouterr().err
    assert sorted(p.name for p in ct.iterdir()) == before


def test_masks_off_the_series_grid_are_refused(tmp_path, data_dir, capsys):
    mask = sitk.Image(64, 64, 20, sitk.sitkUInt8)
    sitk.WriteImage(mask, str(tmp_path / "liver.nii.gz"))
    assert main(["export-dicom-seg", "--ct", str(data_dir / "example_ct_dicom"), "--seg", str(tmp_path),
                 "-o", str(tmp_path / "seg.dcm")]) == 2
    assert "liver.nii.gz: not on the voxel grid of the DICOM series" in capsys.readouterr().err
    assert not (tmp_path / "seg.dcm").exists()


def test_dicom_output_types_need_a_dicom_input(tmp_path, data_dir, capsys):
    assert main(["segment", str(data_dir / "example_ct.nii.gz"), "-o", str(tmp_path / "out"),
                 "--output-type", "nifti,rtstruct"]) == 2
    assert "needs the CT as a DICOM series folder" in capsys.readouterr().err
    assert main(["segment", str(data_dir / "example_ct.nii.gz"), "-o", str(tmp_path / "out"),
                 "--output-type", "nifti", "--output-type", "png"]) == 2
    assert "unknown type png" in capsys.readouterr().err


def test_segment_writes_valid_rtstruct_and_seg_into_the_result_folder(tmp_path, data_dir, tiny_models):
    import highdicom as hd
    out = tmp_path / "out"
    assert main(["segment", str(data_dir / "example_ct_dicom"), "-o", str(out), "--organs", "liver",
                 "--models", str(tiny_models), "--device", "cpu", "--output-type", "rtstruct,dicom-seg"]) == 0
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "masks" / "liver.nii.gz"))) > 0
    assert liver.any(), "the fixture model found no liver; nothing to compare"
    seg = hd.seg.segread(out / "seg.dcm")
    uids = [h.file_meta.MediaStorageSOPInstanceUID for h in find_series(data_dir / "example_ct_dicom").headers]
    number = next(d.SegmentNumber for d in seg.SegmentSequence if d.TrackingID == "liver")
    assert np.array_equal(seg.get_pixels_by_source_instance(uids, segment_numbers=[number])[..., 0] > 0, liver)
    assert [r.ROIName for r in pydicom.dcmread(out / "rtstruct.dcm").StructureSetROISequence][:1] == ["Liver"]
    if dciodvfy.AVAILABLE:
        for name in ("rtstruct.dcm", "seg.dcm"):
            assert not dciodvfy.validate(out / name)[1]
