"""Voxel grids: whether two images share one, and putting an image onto another's grid.

`same_grid` is the one comparison of grids in the library (label maps against a CT, masks against a DICOM
series), with one tolerance: equal sizes, spacing within 1e-4 relative, origin within a thousandth of the
largest voxel side, direction cosines within 1e-4. That absorbs the rounding of float32 NIfTI headers and
DICOM decimal strings, never a real shift.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def same_grid(image: sitk.Image, reference: sitk.Image) -> bool:
    """Whether `image` lies on the reference's voxel grid (size, spacing, origin, direction), up to rounding."""
    return (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), rtol=1e-4)
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3 * max(reference.GetSpacing()))
            and np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-4))


def on_grid(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """`image` on the reference's voxel grid: itself when the grids match, else nearest-neighbour resampled
    in physical space (e.g. a label map whose y axis is flipped relative to the CT)."""
    if same_grid(image, reference):
        return image
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())
