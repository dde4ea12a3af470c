"""Reading CT images from a file or a DICOM series folder, refused with a one-line error when they cannot be
segmented (`checks.check_ct`).

SimpleITK images are in LPS patient coordinates (as DICOM and ITK); NIfTI's RAS convention is converted
by ITK's reader, so nothing here flips signs by hand. Slicer works in RAS: see `grid.ijk_to_ras`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from organseg.ct.checks import check_ct, check_perpendicular
from organseg.ct.grid import array_to_image
from organseg.errors import InputError, itk_path

if TYPE_CHECKING:
    from organseg.ct.dicom_series import Series

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_ct(path: str | os.PathLike, series_uid: str | None = None, resample_irregular: bool = False,
            series: Series | None = None) -> sitk.Image:
    """Read a CT from a NIfTI/NRRD/MHA file or a DICOM series folder and check it is a 3D CT in HU.

    `series_uid`, `resample_irregular` and `series` (found already) apply to DICOM folders (see
    `organseg.ct.dicom_series.read_series`).
    """
    path = Path(path)
    itk_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        from organseg.ct.dicom_series import read_series
        image = read_series(path, series_uid=series_uid, resample_irregular=resample_irregular, series=series)
    else:
        image = read_image_file(path)
    check_ct(image, path)
    return image


def image_stem(path: Path) -> str:
    """The file's name without its image suffix (`ct.nii.gz` -> `ct`, `slice.dcm` -> `slice`): a case's name."""
    name = path.name
    return next((name[:-len(s)] for s in IMAGE_SUFFIXES + (".dcm",) if name.lower().endswith(s)), name)


def read_image_file(path: Path) -> sitk.Image:
    """An image file as it is, any modality (a CT or a mask), with the checks ITK skips: unsupported or truncated
    files and lying NIfTI geometry are refused, NaN voxels kept."""
    if not path.name.lower().endswith(IMAGE_SUFFIXES + (".dcm",)):
        raise InputError(f"{path}: unsupported file type; give a NIfTI, NRRD or MHA file or a DICOM folder")
    nonfinite = _check_nifti(path) if path.name.lower().endswith((".nii", ".nii.gz")) else None
    try:
        image = sitk.ReadImage(itk_path(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
        raise InputError(f"{path}: cannot read the image, the file is corrupt or truncated ({reason[:160]})") from None
    if nonfinite is not None and nonfinite.size and image.GetNumberOfComponentsPerPixel() == 1:
        array = sitk.GetArrayFromImage(image)  # ITK reads NIfTI NaN as 0: put them back for the segmenter to see
        array.reshape(-1)[nonfinite[nonfinite < array.size]] = np.nan
        image = array_to_image(array, image)
    return image


def _check_nifti_geometry(path: Path, header: bytes, order: str, ndim: int) -> None:
    """Refuse voxel sizes ITK would silently replace (0, negative or NaN pixdim is read as 1 mm, or flips the axis)
    and a sheared sform (ITK coerces it to perpendicular axes, moving every voxel)."""
    pixdim = np.frombuffer(header[76:108], f"{order}f4").astype(float)
    for axis in range(1, min(ndim, 3) + 1):
        size = pixdim[axis]
        if not np.isfinite(size) or size <= 0:
            where = "between slices" if axis == 3 else f"along {'xyz'[axis - 1]}"
            raise InputError(f"{path}: the header gives a voxel size of {size:g} mm {where} (pixdim[{axis}]); the "
                             "real spacing is unknown, so every volume would be off: fix the header with the "
                             "scanner's spacing (e.g. nibabel or SimpleITK SetSpacing) and save the CT again")
    if np.frombuffer(header[254:256], f"{order}i2")[0] > 0:  # sform_code: the sform is in use
        sform = np.frombuffer(header[280:328], f"{order}f4").astype(float).reshape(3, 4)[:, :3]
        check_perpendicular(sform, path, "the header's sform")


def _check_nifti(path: Path) -> np.ndarray | None:
    """Refuse a truncated NIfTI (ITK's reader silently pads missing voxel data); return the flat indices of
    NaN/inf voxels of a float NIfTI (ITK reads them as 0), None for other types."""
    import gzip
    import zlib

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(348)
            if len(header) < 348:
                raise InputError(f"{path}: too short for a NIfTI header; the file is corrupt or truncated")
            order = "<" if np.frombuffer(header[:4], "<i4")[0] == 348 else ">"
            dims = np.frombuffer(header[40:56], f"{order}i2")
            datatype = int(np.frombuffer(header[70:72], f"{order}i2")[0])
            bitpix = int(np.frombuffer(header[72:74], f"{order}i2")[0])
            vox_offset = int(np.frombuffer(header[108:112], f"{order}f4")[0])
            ndim = int(dims[0])
            if not 1 <= ndim <= 7 or bitpix <= 0:
                raise InputError(f"{path}: invalid NIfTI header; the file is corrupt")
            _check_nifti_geometry(path, header, order, ndim)
            expected = vox_offset + int(np.prod(dims[1:ndim + 1].astype(np.int64))) * bitpix // 8
            dtype = {16: f"{order}f4", 64: f"{order}f8"}.get(datatype)
            size, found, carry, index = 348 + len(fh.read(max(vox_offset - 348, 0))), [], b"", 0
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                size += len(chunk)
                if dtype is not None:
                    data = carry + chunk
                    usable = len(data) - len(data) % (bitpix // 8)
                    values = np.frombuffer(data[:usable], dtype)
                    found.append(np.flatnonzero(~np.isfinite(values)) + index)
                    index, carry = index + values.size, data[usable:]
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read the image, the file is corrupt or truncated ({err})") from None
    if size < expected:
        raise InputError(f"{path}: cannot read the image, the file is corrupt or truncated "
                         f"({size} of {expected} bytes of voxel data)")
    return np.concatenate(found) if dtype is not None and found else (np.zeros(0, int) if dtype else None)
