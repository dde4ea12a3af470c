"""Exact axis permutation/flip between an image's voxel array and the canonical axial LPS layout.

The networks see axial slices with rows running anterior->posterior and columns right->left (patient's
right on the image's left, the radiological view). Any image whose axes are (close to) the patient axes is
brought there by permuting and flipping array axes only: no interpolation, so the inverse is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from organseg.ct.grid import DIRECTION_ATOL, ORIGIN_VOXELS, SPACING_RTOL
from organseg.errors import InputError


@dataclass(frozen=True)
class Reorientation:
    """How to go from the image's (z, y, x) array to the canonical (S, P, L) array and back."""

    permutation: tuple[int, int, int]  #: canonical array axis k takes source array axis permutation[k]
    flips: tuple[bool, bool, bool]  #: canonical array axis k is reversed

    @classmethod
    def of(cls, image: sitk.Image, source: str = "image") -> "Reorientation":
        """The reorientation of an image from its direction cosines (LPS)."""
        direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
        # Column i of `direction` is image axis i (x, y, z) in LPS; find its dominant patient axis.
        world_of_axis = np.argmax(np.abs(direction), axis=0)
        if sorted(world_of_axis) != [0, 1, 2]:
            raise InputError(f"{source}: image axes are too oblique to tell axial slices apart "
                             f"(direction {np.round(direction, 3).tolist()}); resample it to the patient axes")
        cos = np.max(np.abs(direction), axis=0)
        if np.any(cos < 0.9):
            raise InputError(f"{source}: image axes are oblique by more than 25 degrees "
                             f"(direction {np.round(direction, 3).tolist()}); resample it to the patient axes")
        perm, flips = [], []
        for world in (2, 1, 0):  # canonical array axes: S (z), P (y), L (x)
            axis = int(np.where(world_of_axis == world)[0][0])  # image axis (x=0, y=1, z=2)
            perm.append(2 - axis)  # its array axis
            flips.append(bool(direction[world, axis] < 0))
        return cls(tuple(perm), tuple(flips))  # type: ignore[arg-type]

    def spacing(self, image: sitk.Image) -> tuple[float, float, float]:
        """The image's voxel spacing along the canonical axes (S, P, L), in mm."""
        return tuple(float(image.GetSpacing()[2 - axis]) for axis in self.permutation)  # type: ignore[return-value]

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Source (z, y, x) array -> canonical (S, P, L) view (no copy where possible)."""
        out = np.transpose(array, self.permutation)
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis=axis)
        return out

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Canonical (S, P, L) array -> source (z, y, x) array, the exact inverse of `to_canonical`."""
        out = array
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis=axis)
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.permutation)))


def array_on_grid(image: sitk.Image, reference: sitk.Image) -> np.ndarray | None:
    """The image's (z, y, x) array laid out on the reference's grid, when both have the same voxel centres up to
    axis flips and permutations (e.g. a label map stored with its y axis reversed); None otherwise.

    Exact: arrays are transposed and flipped, never interpolated.
    """
    if image.GetDimension() != 3 or reference.GetDimension() != 3:
        return None
    own = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    ref = np.array(reference.GetDirection(), dtype=float).reshape(3, 3)
    cosines = own.T @ ref  # [i, j]: image axis i against reference axis j
    target = np.argmax(np.abs(cosines), axis=1)
    if sorted(target) != [0, 1, 2] or np.any(np.abs(cosines[range(3), target]) < 1 - DIRECTION_ATOL):
        return None
    signs = np.sign(cosines[range(3), target])
    for i, j in enumerate(target):
        if (image.GetSize()[i] != reference.GetSize()[j]
                or not np.isclose(image.GetSpacing()[i], reference.GetSpacing()[j], rtol=SPACING_RTOL)):
            return None
    corner = [0, 0, 0]
    for i, j in enumerate(target):
        corner[j] = 0 if signs[i] > 0 else reference.GetSize()[j] - 1
    start = reference.TransformIndexToPhysicalPoint([int(c) for c in corner])
    if not np.allclose(start, image.GetOrigin(), atol=ORIGIN_VOXELS * max(reference.GetSpacing())):
        return None
    array = sitk.GetArrayFromImage(image)  # array axis 2 - i is image axis i
    out = np.transpose(array, [2 - int(np.where(target == 2 - b)[0][0]) for b in range(3)])
    for i, j in enumerate(target):
        if signs[i] < 0:
            out = np.flip(out, axis=2 - int(j))
    return np.ascontiguousarray(out)
