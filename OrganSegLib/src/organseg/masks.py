"""Small operations on boolean masks that segmentation, training, export and evaluation all use.

Arrays are numpy booleans; 3D masks are (z, y, x) or canonical (S, P, L) arrays, axis 0 along the body.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); two empty masks agree perfectly (1.0)."""
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(pred & ref)) / total


def bounding_box(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """(first, end-exclusive) indices of a non-empty 3D mask along each array axis, one pass per axis."""
    lo, hi = [], []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        lo.append(int(present[0]))
        hi.append(int(present[-1]) + 1)
    return lo, hi


def axial_extent(mask: np.ndarray) -> tuple[int, int] | None:
    """(bottom, top) indices along axis 0 of the slices that hold foreground, inclusive; None if empty."""
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return (int(zs[0]), int(zs[-1])) if zs.size else None


@dataclass
class OrganMask:
    """A boolean 3D mask stored as its bounding box, to bound memory on large CTs (on the input grid in a
    `Result`, canonical inside the segmenter)."""

    shape: tuple[int, int, int]  #: full (z, y, x) shape
    offset: tuple[int, int, int]
    box: np.ndarray  #: bool array of the bounding box (empty shape when the organ was not found)

    @classmethod
    def from_full(cls, mask: np.ndarray) -> "OrganMask":
        if not mask.any():
            return cls(mask.shape, (0, 0, 0), np.zeros((0, 0, 0), dtype=bool))
        lo, hi = bounding_box(mask)
        return cls(mask.shape, tuple(lo), mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].copy())

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.box.shape))  # type: ignore[return-value]

    def full(self) -> np.ndarray:
        """The mask on its full grid."""
        out = np.zeros(self.shape, dtype=bool)
        out[self.slices] = self.box
        return out
