"""NaN voxels and implausible spacing are warned about, never silently folded into the volumes (real CT,
bundled liver model on 12 slices through the liver)."""
import numpy as np
import pytest
import SimpleITK as sitk

from organseg.ct.checks import format_ml
from organseg.ct.read import read_ct
from organseg.segmenter import Segmenter


@pytest.fixture(scope="module")
def liver_slices(data_dir):
    return read_ct(data_dir / "example_ct.nii.gz")[:, :, 90:102]


def _with_block(ct, value, spacing):
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    array[4:8, 40:50, 30:40] = value  # inside the liver
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct)
    image.SetSpacing(spacing)
    return image


def test_nan_voxels_are_air_with_a_warning_and_odd_spacing_is_questioned(liver_slices):
    segment = Segmenter(device="cpu").segment
    nan = segment(_with_block(liver_slices, np.nan, (10.0, 10.0, 10.0)), ["liver"], source="ct.nrrd")
    air = segment(_with_block(liver_slices, -1024, (10.0, 10.0, 10.0)), ["liver"], source="ct.nrrd")
    assert nan.stats[0]["voxels"] == air.stats[0]["voxels"] > 1000
    assert np.array_equal(nan.masks["liver"].full(), air.masks["liver"].full())
    notes = " ".join(nan.warnings)
    assert "ct.nrrd: 400 voxels (0.27%) are not a number (NaN or inf); they were taken as air" in notes
    assert "ct.nrrd: voxel spacing 10 x 10 x 10 mm is outside human CT ranges" in notes
    assert not any("not a number" in w for w in air.warnings)
    assert format_ml(nan.stats[0]["voxels"] * 1e-6) != "0.0"  # what 0.1 mm voxels would give, printed


def test_nan_in_a_nifti_reaches_the_segmenter_as_nan_not_zero(tmp_path, liver_slices):
    """ITK's NIfTI reader turns NaN into 0 HU (soft tissue); read_ct puts them back."""
    image = _with_block(liver_slices, np.nan, liver_slices.GetSpacing())
    sitk.WriteImage(image, str(tmp_path / "nan.nii.gz"))
    back = sitk.GetArrayFromImage(read_ct(tmp_path / "nan.nii.gz"))
    assert np.array_equal(np.isnan(back), np.isnan(sitk.GetArrayFromImage(image))) and np.isnan(back).sum() == 400


@pytest.mark.parametrize("volume,shown", [(648.918, "648.9"), (0.0064891, "0.00649"), (0.0, "0"), (3.14159, "3.14")])
def test_volumes_are_printed_with_the_precision_they_need(volume, shown):
    assert format_ml(volume) == shown
