"""Whether a read image can be segmented at all (`check_ct`: a scalar 3D volume in HU, else refused), and what
in a readable CT would make its results silently wrong: voxels that are not numbers, and a voxel spacing no
human CT has (volumes scale with it). Both are warned about, never ignored.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from organseg.errors import InputError

#: Voxel value given to NaN/inf voxels: air, so they add no tissue.
NONFINITE_HU = -1024
#: Plausible spacing of a human CT in mm: in-plane (pixels) and between slices.
IN_PLANE_MM = (0.2, 6.0)
SLICE_MM = (0.2, 12.0)


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


def finite_hu(ct: np.ndarray, source: str) -> tuple[np.ndarray, list[str]]:
    """The array with NaN/inf voxels set to air, and a warning saying how many there were."""
    if ct.dtype.kind != "f":
        return ct, []
    bad = ~np.isfinite(ct)
    count = int(np.count_nonzero(bad))
    if not count:
        return ct, []
    fixed = np.where(bad, np.asarray(NONFINITE_HU, dtype=ct.dtype), ct)
    return fixed, [f"{source}: {count} voxels ({count / ct.size:.2%}) are not a number (NaN or inf); they were "
                   f"taken as air ({NONFINITE_HU} HU), so organs touching them may come out too small"]


def spacing_warnings(image: sitk.Image, slice_axis: int, source: str) -> list[str]:
    """A warning when the spacing is outside human CT ranges; `slice_axis` is the image axis (x=0) across slices."""
    spacing = image.GetSpacing()
    in_plane = [s for axis, s in enumerate(spacing) if axis != slice_axis]
    odd = (not all(IN_PLANE_MM[0] <= s <= IN_PLANE_MM[1] for s in in_plane)
           or not SLICE_MM[0] <= spacing[slice_axis] <= SLICE_MM[1])
    if not odd:
        return []
    shown = " x ".join(f"{s:g}" for s in spacing)
    return [f"{source}: voxel spacing {shown} mm is outside human CT ranges (pixels {IN_PLANE_MM[0]:g}-"
            f"{IN_PLANE_MM[1]:g} mm, slices {SLICE_MM[0]:g}-{SLICE_MM[1]:g} mm); volumes scale with it, check the "
            "file's header"]


def format_ml(volume: float) -> str:
    """A volume in mL with the precision it needs: 648.9, 0.0123, 0."""
    return "0" if volume == 0 else f"{volume:.1f}" if abs(volume) >= 10 else f"{volume:.3g}"
