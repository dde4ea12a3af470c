"""A training case in the canonical (S, P, L) layout: a CT and organ masks (SimpleITK images) as canonical arrays,
read and reoriented once (`training.dataset.canonical_case`); from here on it is numpy alone (`slices`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import Organ
from organseg.ct.grid import on_grid
from organseg.ct.orientation import Reorientation
from organseg.errors import InputError
from organseg.method.preprocess import LEVELS
from organseg.training.cases import CaseSlices, CaseSpec
from organseg.training.slices import kept_slices, slice_pairs


def canonical_arrays(ct: sitk.Image, masks: list[sitk.Image], source: str = "case"
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The CT as a canonical (S, P, L) float32 HU volume and each mask as a canonical bool volume on its grid."""
    for mask in masks:
        if ct.GetSize() != mask.GetSize():
            raise InputError(f"{source}: mask size {mask.GetSize()} differs from CT size {ct.GetSize()}")
    orient = Reorientation.of(ct, source)
    volume = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(ct)), dtype=np.float32)
    targets = [np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(on_grid(m, ct))) > 0)
               for m in masks]
    return volume, targets


@dataclass
class CanonicalCase:
    """A case's CT as a canonical (S, P, L) HU volume with its body boxes, and the masks of its organs.

    Only the slices with a box are meaningful: a case trimmed to what training uses (`trimmed`) has boxes on
    those slices alone, and gives the same slice pairs as the whole case.
    """

    spec: CaseSpec
    volume: np.ndarray  #: (S, P, L) HU
    boxes: np.ndarray  #: (S, 4) body boxes (`body.body_boxes`), -1 rows for slices without body (or dropped)
    masks: dict[str, np.ndarray]  #: organ key -> (S, P, L) bool, for the organs contoured in the case

    def slices(self, organ: Organ, margin: int = 30, margin_below: int | None = None) -> CaseSlices:
        """The organ's slice pairs as compact codes (`training.dataset.load_case` of the case)."""
        pairs = slice_pairs(self.volume, self.masks[organ.key], self.boxes, margin, margin_below=margin_below)
        codes = np.round(pairs.inputs * (LEVELS - 1)).astype(np.uint8)
        return CaseSlices(self.spec, codes, pairs.targets > 0.5, pairs.z)

    def trimmed(self, margin: int = 30, margin_below: int | None = None) -> "CanonicalCase":
        """The case with boxes only on the slices some organ's pairs use (what a pack stores)."""
        used = np.zeros(len(self.boxes), dtype=bool)
        for mask in self.masks.values():
            used[kept_slices(self.boxes, mask, margin, margin_below)] = True
        boxes = self.boxes.copy()
        boxes[~used] = -1
        return replace(self, boxes=boxes)
