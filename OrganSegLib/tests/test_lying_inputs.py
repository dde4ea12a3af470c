"""Inputs that lie, built from the real CTs: NIfTI headers with impossible voxel sizes or sheared axes, two slices
at one position in a series, stored values that were never rescaled to HU, and masks of air."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from organseg.catalogue import organ
from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.errors import InputError
from organseg.method.body import body_mask
from organseg.results.plausibility import check_masks


def _nifti(data_dir: Path, path: Path, *edits: tuple[int, float]) -> Path:
    """Three slices of the real example CT as an uncompressed NIfTI, with float32 header fields changed."""
    sitk.WriteImage(sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))[:, :, 95:98], str(path))
    data = bytearray(path.read_bytes())
    for offset, value in edits:
        data[offset:offset + 4] = struct.pack("<f", value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("axis, size, where", [(3, 0.0, "0 mm between slices"), (3, -3.0, "-3 mm between slices"),
                                               (3, float("nan"), "nan mm between slices"), (1, 0.0, "0 mm along x")])
def test_impossible_nifti_voxel_sizes_are_refused_not_read_as_1_mm(data_dir, tmp_path, axis, size, where):
    path = _nifti(data_dir, tmp_path / "ct.nii", (76 + 4 * axis, size))
    with pytest.raises(InputError, match=f"ct.nii: the header gives a voxel size of {where} \\(pixdim\\[{axis}\\]\\)"):
        read_ct(path)


def test_a_sheared_nifti_is_called_sheared(data_dir, tmp_path):
    a = np.radians(10)
    path = _nifti(data_dir, tmp_path / "ct.nii", (280 + 24, 3 * np.sin(a)), (280 + 40, 3 * np.cos(a)))
    with pytest.raises(InputError, match="ct.nii: the image axes are sheared: the header's sform has the y and z "
                                         "axes meeting at 80.00 degrees, not 90"):
        read_ct(path)
    straight = _nifti(data_dir, tmp_path / "straight.nii")
    assert read_ct(straight).GetSpacing() == (3.0, 3.0, 3.0)


def test_a_sheared_direction_is_called_sheared_not_oblique(data_dir, tmp_path):
    image = sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))[:, :, 95:98]
    image.SetDirection((-1, 0, 0, 0, -1, 0.3, 0, 0, 0.95))  # columns of unit length, y and z not perpendicular
    sitk.WriteImage(image, str(tmp_path / "ct.mha"))
    with pytest.raises(InputError, match="ct.mha: the image axes are sheared: the direction has the y and z axes"):
        read_ct(tmp_path / "ct.mha")


def test_two_slices_at_one_position_say_which_and_why(data_dir, tmp_path):
    files = sorted((data_dir / "example_ct_dicom").iterdir())[:4]
    (tmp_path / "ct").mkdir()
    for path in files:
        (tmp_path / "ct" / path.name).write_bytes(path.read_bytes())
    ds = pydicom.dcmread(files[2])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ConvolutionKernel, ds.InstanceNumber = "LUNG", 77
    ds.save_as(tmp_path / "ct" / "sharp.dcm")
    with pytest.raises(InputError) as err:
        read_ct(tmp_path / "ct")
    message = str(err.value)
    assert "lie at one position in 1 place(s)" in message and "sharp.dcm" in message and "77" in message
    assert "differ in ConvolutionKernel" in message and "--series-uid" not in message


def test_stored_values_never_rescaled_are_refused(data_dir, tmp_path):
    """The real series as a converter that dropped the rescale writes it: air reads as 0, tissue as 1064."""
    (tmp_path / "ct").mkdir()
    for path in sorted((data_dir / "example_ct_dicom").iterdir()):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.int16)
        rows, cols = np.ogrid[:ds.Rows, :ds.Columns]
        pixels[(rows - ds.Rows / 2) ** 2 + (cols - ds.Columns / 2) ** 2 > (ds.Rows / 2) ** 2] = -2000
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit, ds.RescaleIntercept = 1, 16, 15, 0
        ds.PixelData, ds.file_meta.TransferSyntaxUID = pixels.tobytes(), ExplicitVRLittleEndian
        ds.save_as(tmp_path / "ct" / path.name)
    with pytest.raises(InputError, match=r"ct: does not look like Hounsfield units: 0.0% of the scan is near -1000 "
                                         r"\(air\) and the tissue's median is \d+"):
        read_ct(tmp_path / "ct")
    assert read_ct(data_dir / "example_ct_dicom").GetSize() == (512, 512, 20)  # the same series rescaled is read


def test_a_mask_of_air_is_flagged_in_hu_and_outside_the_body(data_dir):
    image = read_ct(data_dir / "example_ct.nii.gz")
    ct = sitk.GetArrayFromImage(image)
    orient = Reorientation.of(image)
    body = orient.from_canonical(body_mask(orient.to_canonical(ct)))
    air_inside = body & (ct < -900)  # lung bases and bowel gas, inside the body contour
    z = int(np.argmax(air_inside.sum(axis=(1, 2))))
    mask = np.zeros_like(air_inside)
    mask[z - 3:z + 4] = air_inside[z - 3:z + 4]
    assert 1000 < mask.sum() and not mask[:, 0].any() and not mask[:, :, 0].any()
    flags = check_masks(image, ct, {"spleen": lambda: mask, "stomach": lambda: mask})
    spleen = {f.code: f.reason for f in flags["spleen"]}
    assert "outside_body" in spleen and "hu_out_of_range" in spleen, flags
    assert spleen["outside_body"].startswith("100% of the mask")
    assert "outside_body" not in {f.code for f in flags["stomach"]}  # gas belongs in a stomach
    from organseg.results.plausibility import holds_gas
    assert [o for o in ("lungs", "stomach", "colon", "esophagus", "larynx") if not holds_gas(organ(o))] == []
    assert [o for o in ("liver", "spleen", "spinal_cord", "parotid_left") if holds_gas(organ(o))] == []
