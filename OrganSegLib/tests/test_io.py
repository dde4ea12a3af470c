"""Reading CTs: real fixtures with exact geometry, and one clear error per kind of bad input."""
import gzip
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.ct.grid import ijk_to_ras
from organseg.ct.read import read_ct
from organseg.errors import InputError


def test_reads_the_real_dicom_series_with_its_geometry(dicom_ct):
    assert dicom_ct.GetSize() == (512, 512, 20)
    assert dicom_ct.GetSpacing() == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert dicom_ct.GetOrigin() == pytest.approx((-249.51171875, -437.51171875, -804.5))


def test_reads_the_real_nifti_and_keeps_its_ras_stored_direction(data_dir):
    image = read_ct(data_dir / "example_ct.nii.gz")
    assert image.GetSize() == (122, 101, 112)
    assert image.GetDirection() == pytest.approx((-1, 0, 0, 0, -1, 0, 0, 0, 1))


def test_ijk_to_ras_flips_the_first_two_axes_of_lps(data_dir):
    image = read_ct(data_dir / "example_ct.nii.gz")
    m = ijk_to_ras(image)
    ijk = np.array([10, 20, 30])
    lps = np.array(image.TransformIndexToPhysicalPoint(ijk.tolist()))
    ras = m[:3, :3] @ ijk + m[:3, 3]
    assert ras == pytest.approx(lps * [-1, -1, 1])


def _write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def test_2d_image_is_refused(tmp_path):
    path = _write(sitk.Image(64, 64, sitk.sitkInt16) - 1000, tmp_path / "slice.nii.gz")
    with pytest.raises(InputError, match=r"slice.nii.gz: is a 2D image .* a 3D CT volume is needed"):
        read_ct(path)


def test_4d_image_is_refused(tmp_path):
    path = _write(sitk.GetImageFromArray(np.full((3, 8, 8, 8), -1000, np.int16), isVector=False),
                  tmp_path / "dynamic.nii.gz")
    with pytest.raises(InputError, match=r"dynamic.nii.gz: is a 4D image"):
        read_ct(path)


def test_mr_like_intensities_are_refused(tmp_path):
    mr = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 1500, (16, 32, 32)).astype(np.int16))
    path = _write(mr, tmp_path / "t1.nii.gz")
    with pytest.raises(InputError, match=r"t1.nii.gz: intensities range from 0 .* not a CT|is this an MR"):
        read_ct(path)


def test_missing_file_and_empty_dicom_folder_are_refused(tmp_path):
    with pytest.raises(InputError, match="nothere.nii.gz: no such file or folder"):
        read_ct(tmp_path / "nothere.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no DICOM image series found"):
        read_ct(tmp_path / "empty")


def test_corrupt_nifti_is_refused(tmp_path, data_dir):
    raw = gzip.decompress((data_dir / "example_ct.nii.gz").read_bytes())
    path = tmp_path / "truncated.nii.gz"
    path.write_bytes(gzip.compress(raw[: len(raw) // 3]))
    with pytest.raises(InputError, match="truncated.nii.gz: cannot read the image"):
        read_ct(path)


def test_unsupported_file_type_is_refused(tmp_path, data_dir):
    path = tmp_path / "ct.png"
    shutil.copy(data_dir / "example_ct.nii.gz", path)
    with pytest.raises(InputError, match="ct.png: unsupported file type"):
        read_ct(path)
