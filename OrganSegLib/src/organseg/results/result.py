"""What a segmentation gives back: organ masks on the input grid, progress reports and the result.

Kept apart from the segmenter so that writers (outputs, Slicer segments) depend on the result, not on
the machinery that made it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import Organ, organ
from organseg.ct.grid import array_to_image
from organseg.masks import bounding_box


@dataclass
class OrganMask:
    """A boolean mask stored as its bounding box on the input grid, to bound memory on large CTs."""

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
        """The mask on the full (z, y, x) grid."""
        out = np.zeros(self.shape, dtype=bool)
        out[self.slices] = self.box
        return out


@dataclass
class Progress:
    """What the segmenter reports after each step, for progress bars and the Slicer module."""

    index: int  #: 1-based number of the organ
    total: int
    organ: Organ
    stage: str  #: "prepare", "inference" or "done"
    seconds: float = 0.0
    mask: OrganMask | None = None  #: final mask once stage == "done"


@dataclass
class Result:
    """Masks on the input grid, statistics and timings of one segmentation."""

    reference: sitk.Image  #: geometry of the input (origin, spacing, direction)
    masks: dict[str, OrganMask]
    stats: list[dict]
    seconds: dict[str, float]
    added_anchors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  #: organ -> "organ-vN (runtime)"

    def mask_image(self, key: str) -> sitk.Image:
        """One organ's mask as a UInt8 image on the input grid."""
        return array_to_image(self.masks[key].full().astype(np.uint8), self.reference)

    def label_map(self) -> np.ndarray:
        """Multi-label (z, y, x) uint8 array with catalogue label values.

        Where organs overlap (e.g. GI tract and colon) the smaller organ is painted last and wins; the
        per-organ masks keep every voxel.
        """
        labels = np.zeros(self.reference.GetSize()[::-1], dtype=np.uint8)
        for key in sorted(self.masks, key=lambda k: -int(self.masks[k].box.sum())):
            m = self.masks[key]
            labels[m.slices][m.box] = organ(key).label
        return labels

    def label_image(self) -> sitk.Image:
        return array_to_image(self.label_map(), self.reference)
