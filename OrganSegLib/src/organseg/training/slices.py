"""A CT and organ masks (SimpleITK images) as the canonical arrays that training works on."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from organseg.ct.grid import on_grid
from organseg.ct.orientation import Reorientation
from organseg.errors import InputError
from organseg.method.preprocess import HU_WINDOW, LEVELS
from organseg.training.canonical import SlicePairs, slice_pairs


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


def organ_slices(ct: sitk.Image, mask: sitk.Image, margin: int = 30, window: tuple[float, float] = HU_WINDOW,
                 levels: int = LEVELS, source: str = "case", margin_below: int | None = None) -> SlicePairs:
    """Slices of the organ's axial range +/- `margin` slices (`canonical.slice_pairs`) of a CT and its mask."""
    volume, (target,) = canonical_arrays(ct, [mask], source)
    return slice_pairs(volume, target, None, margin, window, levels, margin_below)
