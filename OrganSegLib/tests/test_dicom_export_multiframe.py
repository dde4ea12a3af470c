"""RTSTRUCT and DICOM SEG of a real enhanced multi-frame CT (pydicom-data's eCT_Supplemental.dcm: one file, two
512 x 512 frames stored in the reverse of their slice order, rows running right to left), read back without
OrganSeg's reader: every contour and SEG frame references the CT's SOP Instance UID and a frame number, lies
where that frame's own functional groups put it, and restores the masks voxel for voxel; dciodvfy finds no error.

Masks (tissue bands of the CT, with holes and many components per slice) are on the grid ITK reads the file
with, whose slice axis runs opposite to the exports' slice order: the exports must map them exactly.
"""
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from matplotlib.path import Path as PolygonPath

from organseg.cli import main
from organseg.export.output_types import dicom_writers
from organseg.results.folder import write_result
import dciodvfy
from reference_result import reference_result

ORGANS = {"liver": 1, "spleen": 2}


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory, ect_supplemental):
    """(folder holding ct/ect.dcm and seg/<organ>.nii.gz, the CT dataset, the ITK image, organ -> mask)."""
    source = ect_supplemental
    folder = tmp_path_factory.mktemp("enhanced")
    (folder / "ct").mkdir()
    shutil.copy(source, folder / "ct" / "ect.dcm")
    image = sitk.ReadImage(str(folder / "ct" / "ect.dcm"))
    hu = sitk.GetArrayFromImage(image)
    labels = np.where((hu > 0) & (hu <= 60), ORGANS["liver"], np.where(hu > 60, ORGANS["spleen"], 0))
    (folder / "labels").mkdir()
    label_image = sitk.GetImageFromArray(labels.astype(np.uint8))
    label_image.CopyInformation(image)
    sitk.WriteImage(label_image, str(folder / "labels" / "labels.nii.gz"))
    (folder / "seg").mkdir()
    for key, value in ORGANS.items():
        sitk.WriteImage(label_image == value, str(folder / "seg" / f"{key}.nii.gz"))
    return folder, pydicom.dcmread(source, stop_before_pixels=True), image, {k: labels == v for k, v in ORGANS.items()}


@pytest.fixture(scope="module", params=["export commands", "segment result"])
def exported(request, enhanced):
    """rtstruct.dcm and seg.dcm written by the export commands (--ct the folder, then the file itself), or by
    `write_result` with the DICOM writers `organseg segment CT.dcm --output-type rtstruct,dicom-seg` uses."""
    folder, _, image, _ = enhanced
    out = folder / request.param.replace(" ", "_")
    if request.param == "export commands":
        out.mkdir()
        for command, ct, name in (("export-rtstruct", "ct", "rtstruct.dcm"),
                                  ("export-dicom-seg", "ct/ect.dcm", "seg.dcm")):
            assert main([command, "--ct", str(folder / ct), "--seg", str(folder / "seg"), "-o", str(out / name)]) == 0
    else:
        ct = folder / "ct" / "ect.dcm"
        result = reference_result(image, sitk.ReadImage(str(folder / "labels" / "labels.nii.gz")), ORGANS)
        write_result(result, out, extra_writers=dicom_writers(ct, out, None, ["rtstruct", "dicom-seg"]))
    return out


def _frames(ct):
    """Frame number -> (Image Position (Patient), row direction, column direction, (column, row) spacing)."""
    shared = ct.SharedFunctionalGroupsSequence[0]
    frames = {}
    for number, group in enumerate(ct.PerFrameFunctionalGroupsSequence, start=1):
        def item(name):
            return (group.get(name) or shared.get(name))[0]
        orientation = np.array(item("PlaneOrientationSequence").ImageOrientationPatient, dtype=float)
        row_spacing, col_spacing = (float(v) for v in item("PixelMeasuresSequence").PixelSpacing)
        frames[number] = (np.array(item("PlanePositionSequence").ImagePositionPatient, dtype=float),
                          orientation[:3], orientation[3:], (col_spacing, row_spacing))
    return frames


def _mask_of_frame(mask, image, frame):
    """A mask on the ITK grid sampled at the centres of one frame's pixels, (row, column) in the frame's order."""
    position, row_dir, col_dir, (sx, sy) = frame
    rows, cols = np.mgrid[: image.GetSize()[1], : image.GetSize()[0]]  # the file's Rows x Columns
    points = position + cols[..., None] * sx * row_dir + rows[..., None] * sy * col_dir
    to_index = np.linalg.inv(np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing()))
    index = (points - image.GetOrigin()) @ to_index.T
    voxel = np.rint(index).astype(int)
    assert np.allclose(index, voxel, atol=1e-3), "frame pixels are not voxel centres of the ITK grid"
    return mask[voxel[..., 2], voxel[..., 1], voxel[..., 0]]


def _fill(restored, xy):
    """XOR the pixel centres inside the polygon (even-odd rule: hole outlines cut holes), within its box."""
    lo = np.maximum(np.floor(xy.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(xy.max(axis=0)).astype(int) + 1, restored.shape[::-1])
    rows, cols = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]]
    inside = PolygonPath(xy).contains_points(np.column_stack([cols.ravel(), rows.ravel()])).reshape(rows.shape)
    restored[lo[1]:hi[1], lo[0]:hi[0]] ^= inside


@pytest.mark.parametrize("name", ["rtstruct.dcm", "seg.dcm"])
def test_dciodvfy_reports_no_errors(exported, name):
    dciodvfy.require()
    report, errors = dciodvfy.validate(exported / name)
    assert ("RTStructureSet" if name == "rtstruct.dcm" else "Segmentation") in report
    assert errors == []


def test_rtstruct_contours_reference_the_frames_and_restore_the_masks(exported, enhanced):
    _, ct, image, masks = enhanced
    frames = _frames(ct)
    rt = pydicom.dcmread(exported / "rtstruct.dcm")
    assert rt.FrameOfReferenceUID == ct.FrameOfReferenceUID
    for attr in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "StudyID"):
        assert rt.get(attr) == ct.get(attr), attr  # the patient and study of the CT, as a planning system files it
    referenced = rt.ReferencedFrameOfReferenceSequence[0]
    assert referenced.FrameOfReferenceUID == ct.FrameOfReferenceUID
    study = referenced.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == ct.StudyInstanceUID
    series = study.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct.SeriesInstanceUID
    assert sorted((i.ReferencedSOPInstanceUID, i.ReferencedSOPClassUID, int(i.ReferencedFrameNumber))
                  for i in series.ContourImageSequence) == [(ct.SOPInstanceUID, ct.SOPClassUID, n) for n in frames]
    names = {r.ROINumber: r.ROIName.lower() for r in rt.StructureSetROISequence}
    assert sorted(names.values()) == sorted(masks)
    for roi in rt.ROIContourSequence:
        restored = {n: np.zeros((int(ct.Rows), int(ct.Columns)), dtype=bool) for n in frames}
        for contour in roi.ContourSequence:
            (reference,) = contour.ContourImageSequence
            assert (reference.ReferencedSOPInstanceUID, reference.ReferencedSOPClassUID) == (ct.SOPInstanceUID,
                                                                                            ct.SOPClassUID)
            n = int(reference.ReferencedFrameNumber)
            position, row_dir, col_dir, (sx, sy) = frames[n]
            points = np.array(contour.ContourData, dtype=float).reshape(-1, 3) - position
            assert np.allclose(points @ np.cross(row_dir, col_dir), 0, atol=1e-3), "contour off its frame's plane"
            _fill(restored[n], np.column_stack([points @ row_dir / sx, points @ col_dir / sy]))
        mask = masks[names[roi.ReferencedROINumber]]
        assert all(np.array_equal(restored[n], _mask_of_frame(mask, image, frame)) for n, frame in frames.items())


def test_dicom_seg_frames_reference_the_ct_frames_at_their_positions(exported, enhanced):
    import highdicom as hd
    _, ct, image, masks = enhanced
    frames = _frames(ct)
    seg = hd.seg.segread(exported / "seg.dcm")
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID
    shared_orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    assert np.array_equal(np.array(shared_orientation, dtype=float), np.concatenate(frames[1][1:3]))
    for group in seg.PerFrameFunctionalGroupsSequence:
        (source,) = group.DerivationImageSequence[0].SourceImageSequence
        assert (source.ReferencedSOPInstanceUID, source.ReferencedSOPClassUID) == (ct.SOPInstanceUID, ct.SOPClassUID)
        position = np.array(group.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        assert np.array_equal(position, frames[int(source.ReferencedFrameNumber)][0])
    for description in seg.SegmentSequence:
        pixels = seg.get_pixels_by_source_frame(ct.SOPInstanceUID, list(frames),
                                                segment_numbers=[description.SegmentNumber])[..., 0] > 0
        for n, frame in frames.items():
            assert np.array_equal(pixels[n - 1], _mask_of_frame(masks[description.TrackingID], image, frame))
