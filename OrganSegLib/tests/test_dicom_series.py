"""Choosing and checking a CT series in a DICOM folder: other series, non-DICOM files, missing slices, tilt."""
import logging
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from organseg.ct.dicom_series import find_series, read_series
from organseg.errors import InputError


@pytest.fixture(scope="module")
def slices(data_dir):
    return sorted((data_dir / "example_ct_dicom").iterdir())


def _copy(files, folder, **changes):
    """Copy slices into folder; `changes` sets attributes, a callable value gets (index, dataset)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        if not changes:
            shutil.copy(path, folder / path.name)
            continue
        ds = pydicom.dcmread(path)
        for name, value in changes.items():
            setattr(ds, name, value(i, ds) if callable(value) else value)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{path.name}.other")


def test_empty_folder_and_folder_without_dicom_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no DICOM image series found"):
        read_series(tmp_path / "empty")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    (tmp_path / "notes" / "scan.dcm").write_bytes(b"\0" * 300)
    with pytest.raises(InputError, match="notes: no DICOM image series found"):
        read_series(tmp_path / "notes")


def test_non_dicom_files_beside_the_series_are_ignored(tmp_path, slices, dicom_ct):
    _copy(slices, tmp_path / "ct")
    (tmp_path / "ct" / "DICOMDIR.txt").write_text("index")
    (tmp_path / "ct" / "sub").mkdir()
    (tmp_path / "ct" / "sub" / "thumb.png").write_bytes(b"\x89PNG\r\n")
    image = read_series(tmp_path / "ct")
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(dicom_ct))
    assert image.GetOrigin() == dicom_ct.GetOrigin()


def test_largest_series_is_chosen_unless_a_uid_is_given(tmp_path, slices, caplog):
    uid = generate_uid()
    _copy(slices, tmp_path / "ct")
    _copy(slices[:8], tmp_path / "ct" / "other", SeriesInstanceUID=uid)
    with caplog.at_level(logging.WARNING):
        assert read_series(tmp_path / "ct").GetSize()[2] == 20
    assert "holds 2 image series" in caplog.text and "--series-uid" in caplog.text
    assert read_series(tmp_path / "ct", series_uid=uid).GetSize()[2] == 8
    with pytest.raises(InputError, match="no series with UID 1.2.3"):
        read_series(tmp_path / "ct", series_uid="1.2.3")


def test_ct_is_preferred_over_a_larger_series_of_another_modality(tmp_path, slices):
    _copy(slices[:12], tmp_path / "ct")
    _copy(slices, tmp_path / "ct" / "pet", SeriesInstanceUID=generate_uid(), Modality="PT")
    series = find_series(tmp_path / "ct")
    assert len(series.files) == 12 and all(h.Modality == "CT" for h in series.headers)


def test_missing_slice_is_refused_or_resampled_when_asked(tmp_path, slices, dicom_ct, caplog):
    _copy(slices[:9] + slices[10:], tmp_path / "ct")
    with pytest.raises(InputError, match=r"4 mm between slices .* instead of 2 mm \(a missing slice\).*"
                                         r"--resample-irregular"):
        read_series(tmp_path / "ct")
    with caplog.at_level(logging.WARNING):
        image = read_series(tmp_path / "ct", resample_irregular=True)
    assert "resampling onto a regular grid" in caplog.text
    assert image.GetSize() == dicom_ct.GetSize() and image.GetSpacing() == pytest.approx(dicom_ct.GetSpacing())
    assert image.GetOrigin() == pytest.approx(dicom_ct.GetOrigin())
    got, full = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(dicom_ct).astype(np.float32)
    # slices[9] (the highest z first) is index 10 on the ascending grid: interpolated from its neighbours.
    kept = [k for k in range(20) if k != 10]
    assert np.allclose(got[kept], full[kept], atol=1e-3)
    assert np.allclose(got[10], (full[9] + full[11]) / 2)


def test_gantry_tilt_is_refused_or_resampled_when_asked(tmp_path, slices, dicom_ct):
    def tilted(i, ds):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        return [x, y + 0.5 * (z + 766.5), z]

    _copy(slices, tmp_path / "ct", ImagePositionPatient=tilted)
    with pytest.raises(InputError, match=r"shift sideways by up to 19 mm .*\(gantry tilt\)"):
        read_series(tmp_path / "ct")
    image = read_series(tmp_path / "ct", resample_irregular=True)
    assert image.GetSize() == (512, 512, 20) and image.GetDirection() == pytest.approx(np.eye(3).ravel())
    # Each slice now claims to lie 1 mm further along y per slice up the stack: on the orthogonal grid the
    # body's top row must move down by that much (in rows of 0.977 mm) relative to the untilted series.
    def top_rows(image):
        return np.array([np.flatnonzero((s > -500).any(axis=1))[0] for s in sitk.GetArrayFromImage(image)])
    expected = top_rows(dicom_ct) + np.arange(20) * 1.0 / dicom_ct.GetSpacing()[1]
    assert np.max(np.abs(top_rows(image) - expected)) <= 1


def test_a_duplicated_file_is_read_once(tmp_path, slices, dicom_ct, caplog):
    _copy(slices, tmp_path / "ct")
    shutil.copy(slices[5], tmp_path / "ct" / "copy of slice.dcm")
    with caplog.at_level(logging.WARNING):
        image = read_series(tmp_path / "ct")
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(dicom_ct))
    assert "skipped 1 duplicate files" in caplog.text


def test_two_anonymised_series_with_blank_uids_and_other_frames_of_reference_are_refused(tmp_path, slices):
    """Interleaved scans without Series Instance UID would merge into one volume of half the slice step."""
    _copy(slices, tmp_path / "ct", SeriesInstanceUID="")
    frame = generate_uid()
    _copy(slices, tmp_path / "ct" / "second", SeriesInstanceUID="", FrameOfReferenceUID=frame,
          ImagePositionPatient=lambda i, ds: [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 1])
    with pytest.raises(InputError, match=r"ct: the series \(no Series Instance UID\) mixes 2 frames of reference"):
        read_series(tmp_path / "ct")


def test_an_enhanced_multi_frame_ct_in_a_folder_is_read_with_its_frame_positions(tmp_path, ect_supplemental):
    source = ect_supplemental
    (tmp_path / "ct").mkdir()
    shutil.copy(source, tmp_path / "ct" / "ect.dcm")
    image = read_series(tmp_path / "ct")
    assert image.GetSize() == (512, 512, 2) and image.GetSpacing()[2] == pytest.approx(10.0)
    ds = pydicom.dcmread(source)
    hu = sitk.GetArrayFromImage(image)
    for k, group in enumerate(ds.PerFrameFunctionalGroupsSequence):  # each frame where its position says
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        i, j, z = image.TransformPhysicalPointToIndex(position)
        assert (i, j) == (0, 0)
        rescale = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
        expected = ds.pixel_array[k] * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept)
        assert np.array_equal(hu[z], expected)
