"""Training pairs: network-size input slices and target masks of one organ, pre-processed as at inference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from organseg.errors import InputError
from organseg.grid import on_grid
from organseg.orientation import Reorientation
from organseg.preprocess import HU_WINDOW, LEVELS, prepare


@dataclass
class SlicePairs:
    """(n, H, W) float32 inputs in [0, 1] and (n, H, W) float32 targets in {0, 1}, with their slice indices."""

    inputs: np.ndarray
    targets: np.ndarray
    z: np.ndarray  #: canonical slice index of each pair


def organ_slices(ct: sitk.Image, mask: sitk.Image, margin: int = 30, window: tuple[float, float] = HU_WINDOW,
                 levels: int = LEVELS, source: str = "case", margin_below: int | None = None) -> SlicePairs:
    """Slices of the organ's axial range +/- `margin` slices (the paper's 30), as network inputs and targets.

    `margin_below` (default `margin`) sets the slices below the organ on their own: clinical contours often
    stop short of the organ's lower end, and those slices are not true negatives.
    """
    if ct.GetSize() != mask.GetSize():
        raise InputError(f"{source}: mask size {mask.GetSize()} differs from CT size {ct.GetSize()}")
    mask = on_grid(mask, ct)
    orient = Reorientation.of(ct, source)
    volume = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(ct)), dtype=np.float32)
    target = orient.to_canonical(sitk.GetArrayViewFromImage(mask)) > 0
    prepared = prepare(volume, window, levels)
    zs = prepared.record.slices_with_body
    present = np.flatnonzero(target.reshape(target.shape[0], -1).any(axis=1))
    if present.size == 0:
        keep = np.zeros(len(zs), dtype=bool)
    else:
        below = margin if margin_below is None else margin_below
        keep = (zs >= present[0] - below) & (zs <= present[-1] + margin)
    rows = np.flatnonzero(keep)
    targets = np.stack([prepared.record.forward(target.astype(np.float32), z) >= 0.5 for z in zs[rows]]) \
        if rows.size else np.zeros((0, *prepared.inputs.shape[1:]), dtype=bool)
    return SlicePairs(prepared.inputs[rows], targets.astype(np.float32), zs[rows])
