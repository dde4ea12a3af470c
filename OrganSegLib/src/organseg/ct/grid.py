"""Voxel grids: whether two images share one, putting an array or image onto a grid, and the LPS/RAS
conversion Slicer needs (`ijk_to_ras`).

One tolerance for every comparison of grids in the library (`same_grid` here for label maps against a CT,
`orientation.array_on_grid` for masks against a DICOM series): equal sizes, spacing within SPACING_RTOL
relative, origin within ORIGIN_VOXELS of the largest voxel side, direction cosines within DIRECTION_ATOL.
That absorbs the rounding of float32 NIfTI headers and DICOM decimal strings, never a real shift.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

SPACING_RTOL = 1e-4
ORIGIN_VOXELS = 1e-3
DIRECTION_ATOL = 1e-4

#: Diagonal that turns LPS coordinates into RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def same_grid(image: sitk.Image, reference: sitk.Image) -> bool:
    """Whether `image` lies on the reference's voxel grid (size, spacing, origin, direction), up to rounding."""
    return (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), rtol=SPACING_RTOL)
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=ORIGIN_VOXELS * max(reference.GetSpacing()))
            and np.allclose(image.GetDirection(), reference.GetDirection(), atol=DIRECTION_ATOL))


def on_grid(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """`image` on the reference's voxel grid: itself when the grids match, else nearest-neighbour resampled
    in physical space (e.g. a label map whose y axis is flipped relative to the CT)."""
    if same_grid(image, reference):
        return image
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())


def extent(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest physical coordinates (LPS mm) the image's voxels cover, edges included."""
    size = np.array(image.GetSize())
    corners = np.array([[c * (s - 1) for c, s in zip(bits, size)] for bits in np.ndindex(2, 2, 2)], dtype=float)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    points = np.array(image.GetOrigin()) + corners * np.array(image.GetSpacing()) @ direction.T
    half = np.abs(direction * np.array(image.GetSpacing())).sum(axis=1) / 2
    return points.min(axis=0) - half, points.max(axis=0) + half


def overlap(image: sitk.Image, reference: sitk.Image) -> bool:
    """Whether the two images cover any common space (e.g. a reference and a prediction of the same CT)."""
    (lo_a, hi_a), (lo_b, hi_b) = extent(image), extent(reference)
    return bool(np.all(lo_a < hi_b) and np.all(lo_b < hi_a))


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k) to RAS millimetres, as Slicer's volume nodes take it."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A (z, y, x) array as an image on exactly the reference's grid (origin, spacing, direction)."""
    if array.shape != reference.GetSize()[::-1]:
        raise ValueError(f"array shape {array.shape} does not match image size {reference.GetSize()[::-1]}")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
