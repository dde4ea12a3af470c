"""Right and left parts of a paired organ (lungs, kidneys, femur heads, eyes, adrenal glands).

A planning system wants `Lung_R` and `Lung_L`, not one `Lungs`. The side is the patient's side of the body
midline: per axial slice, the mean LPS x of the body contour (+x is the patient's left), measured in physical
millimetres from the image's origin, spacing and direction, so a CT stored with flipped or permuted axes splits
the same. Each connected piece of the mask goes whole to the side that holds most of it, so a stray voxel
across the midline does not make a ROI of its own; only a piece with more than STRADDLE of itself on each side
(two lungs touching at the anterior junction) is cut at the midline.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from organseg.method.body import body_mask
from organseg.masks import bounding_box
from organseg.ct.orientation import Reorientation

STRADDLE = 0.10  #: a piece with more than this share of its voxels on each side is cut at the midline
#: 26-connected pieces: a thin organ drawn slice by slice stays one piece
_PIECES = np.ones((3, 3, 3), dtype=bool)


class SideSplitter:
    """Splits canonical (S, P, L) masks of one CT into the patient's right and left parts.

    `body(lo, hi)` gives the canonical body contour of slices lo..hi-1 (computed once per CT by the caller).
    """

    def __init__(self, reference: sitk.Image, body: Callable[[int, int], np.ndarray]) -> None:
        self.orient = Reorientation.of(reference)
        self._body = body
        shape = self.orient.to_canonical(np.empty(reference.GetSize()[::-1], dtype=bool)).shape
        start, steps = [0, 0, 0], []
        for k, (axis, flip) in enumerate(zip(self.orient.permutation, self.orient.flips)):
            itk = 2 - axis  # image axis of canonical axis k
            start[itk] = reference.GetSize()[itk] - 1 if flip else 0
            direction = np.array(reference.GetDirection(), dtype=float).reshape(3, 3)[:, itk]
            steps.append(direction[0] * reference.GetSpacing()[itk] * (-1.0 if flip else 1.0))
        self.x0 = reference.TransformContinuousIndexToPhysicalPoint([float(v) for v in start])[0]
        self.x_steps = np.array(steps)  #: LPS x mm per canonical (S, P, L) index step
        self.centre_x = self.x0 + float(self.x_steps @ (np.array(shape) - 1)) / 2.0  #: used without a body contour

    @classmethod
    def of_ct(cls, reference: sitk.Image, ct: np.ndarray) -> "SideSplitter":
        """The splitter of a CT's (z, y, x) HU array on the reference grid (its body contour computed here)."""
        return cls(reference, body_getter(body_mask(Reorientation.of(reference).to_canonical(ct))))

    def midline(self, lo: int, hi: int) -> np.ndarray:
        """LPS x (mm) of the body midline on canonical slices lo..hi-1; slices without a body contour take the mean
        of the others (the image centre where none has one)."""
        body = np.asarray(self._body(lo, hi), dtype=bool)
        counts = body.sum(axis=(1, 2)).astype(float)
        rows = (body.sum(axis=2) * np.arange(body.shape[1])).sum(axis=1)
        cols = (body.sum(axis=1) * np.arange(body.shape[2])).sum(axis=1)
        found = counts > 0
        x = np.full(len(counts), np.nan)
        x[found] = (self.x0 + self.x_steps[0] * np.arange(lo, hi)[found]
                    + (self.x_steps[1] * rows[found] + self.x_steps[2] * cols[found]) / counts[found])
        return np.where(found, x, np.nanmean(x) if found.any() else self.centre_x)

    def split_canonical(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(right, left) canonical masks of a canonical mask."""
        right, left = np.zeros(mask.shape, dtype=bool), np.zeros(mask.shape, dtype=bool)
        if not mask.any():
            return right, left
        first, end = bounding_box(mask)
        box = tuple(slice(a, b) for a, b in zip(first, end))
        crop = np.asarray(mask[box], dtype=bool)
        p, l = np.ogrid[first[1]:end[1], first[2]:end[2]]
        in_plane = self.x_steps[1] * p + self.x_steps[2] * l  # one slice's LPS x offsets: bool per slice, not floats
        offset = self.x0 + self.x_steps[0] * np.arange(first[0], end[0]) - self.midline(first[0], end[0])
        leftward = np.stack([in_plane + d > 0 for d in offset])  # LPS +x: the patient's left
        pieces, count = ndimage.label(crop, structure=_PIECES)
        size = np.bincount(pieces.ravel(), minlength=count + 1)
        on_left = np.bincount(pieces.ravel(), weights=leftward.ravel(), minlength=count + 1)
        share = on_left / np.maximum(size, 1)
        straddles = np.minimum(share, 1 - share) > STRADDLE
        whole_left = np.where(straddles, False, share > 0.5)
        whole_left[0] = False
        goes_left = whole_left[pieces] | (straddles[pieces] & leftward & crop)
        right[box], left[box] = crop & ~goes_left, goes_left
        return right, left

    def split(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(right, left) masks of a (z, y, x) mask on the CT's grid, on the same grid."""
        right, left = self.split_canonical(self.orient.to_canonical(np.asarray(mask, dtype=bool)))
        return self.orient.from_canonical(right), self.orient.from_canonical(left)


def body_getter(body: np.ndarray) -> Callable[[int, int], np.ndarray]:
    """`SideSplitter`'s body argument for a canonical body contour computed in full."""
    return lambda lo, hi: body[lo:hi]
