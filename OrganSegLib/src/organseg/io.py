"""Reading CT images, checking that they can be segmented (a 3D CT in HU that fits in memory), and writing
images with SimpleITK, geometry kept exact.

SimpleITK images are in LPS patient coordinates (as DICOM and ITK); NIfTI's RAS convention is converted
by ITK's reader and writer, so nothing here flips signs by hand. Slicer works in RAS: see `ijk_to_ras`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.atomic import atomic_file
from organseg.errors import InputError, OutputError
from organseg.paths import itk_path
from organseg.preprocess import INPUT_HEIGHT, INPUT_WIDTH

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Diagonal that turns LPS coordinates into RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k) to RAS millimetres, as Slicer's volume nodes take it."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def read_ct(path: str | os.PathLike, series_uid: str | None = None, resample_irregular: bool = False) -> sitk.Image:
    """Read a CT from a NIfTI/NRRD/MHA file or a DICOM series folder and check it is a 3D CT in HU.

    `series_uid` and `resample_irregular` apply to DICOM folders (see `organseg.dicom_series.read_series`).
    """
    path = Path(path)
    itk_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        from organseg.dicom_series import read_series
        image = read_series(path, series_uid=series_uid, resample_irregular=resample_irregular)
    else:
        image = _read_file(path)
    check_ct(image, path)
    return image


def _read_file(path: Path) -> sitk.Image:
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


def check_ct(image: sitk.Image, source: str | os.PathLike) -> None:
    """Raise InputError unless the image is a scalar 3D volume whose intensities look like CT in HU."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{source}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                         "a CT has one (is this a colour or vector image?)")
    dim = image.GetDimension()
    if dim != 3:
        raise InputError(f"{source}: is a {dim}D image of size {image.GetSize()}; a 3D CT volume is needed")
    if min(image.GetSize()) < 2:
        raise InputError(f"{source}: has size {image.GetSize()}, a single slice; a 3D CT volume is needed")
    arr = sitk.GetArrayViewFromImage(image)
    sample = arr[:: max(1, arr.shape[0] // 16)]
    lo, hi = float(np.nanmin(sample)), float(np.nanmax(sample))
    air = float(np.mean(sample < -500))
    if lo >= -200 or air < 0.001:
        raise InputError(
            f"{source}: intensities range from {lo:g} to {hi:g} with {air:.1%} of voxels below -500; "
            "a CT in Hounsfield units has air near -1000 (is this an MR, or a CT without rescale slope/intercept?)")



#: Working memory per CT voxel besides the CT's canonical copy (masks, labels). Measured peak at 512x512x800
#: int16: 2.17 GB, 10.8 bytes per voxel with the image, its 2-byte copy and the process itself
#: (Testing/benchmarks/BENCHMARK.md).
WORK_BYTES_PER_VOXEL = 7


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_needed(size: tuple[int, ...], pixel_bytes: int) -> int:
    """Bytes segmenting a CT of this size and stored pixel type needs: a canonical copy, masks, labels and the
    network inputs. Also what a cluster task declares, from the CT's header."""
    voxels = int(np.prod(size, dtype=np.int64))
    return voxels * (pixel_bytes + WORK_BYTES_PER_VOXEL) + max(size) * INPUT_HEIGHT * INPUT_WIDTH * 4


def check_memory(image: sitk.Image, source: str | os.PathLike) -> None:
    """Refuse a CT whose working set would not fit."""
    needed = memory_needed(image.GetSize(), image.GetSizeOfPixelComponent())
    available = available_memory()
    if available is not None and needed > available:
        raise InputError(f"{source}: segmenting this {'x'.join(map(str, image.GetSize()))} CT needs about "
                         f"{needed / 2**30:.1f} GiB of memory but {available / 2**30:.1f} GiB are available; "
                         "crop or downsample the CT, or free memory")

def atomic_write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """Write an image through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    with atomic_file(path, suffix) as tmp:
        sitk.WriteImage(image, itk_path(tmp, OutputError), compress)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A (z, y, x) array as an image on exactly the reference's grid (origin, spacing, direction)."""
    if array.shape != reference.GetSize()[::-1]:
        raise ValueError(f"array shape {array.shape} does not match image size {reference.GetSize()[::-1]}")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def output_path(folder: Path, stem: str, fmt: str) -> Path:
    """`folder/stem.nii.gz` or `folder/stem.nrrd`."""
    if fmt not in ("nifti", "nrrd"):
        raise OutputError(f"unknown image format '{fmt}'; use nifti or nrrd")
    return folder / f"{stem}.{'nii.gz' if fmt == 'nifti' else 'nrrd'}"
