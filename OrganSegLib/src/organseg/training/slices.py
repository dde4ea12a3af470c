"""The slice pairs of one organ in a canonical case, pre-processed as at inference: numpy alone, so they can
be made again wherever training runs (`canonical.CanonicalCase.slices`, from a pack on a machine with PyTorch
and no image I/O).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from organseg.method.preprocess import HU_WINDOW, LEVELS, prepare


@dataclass
class SlicePairs:
    """(n, H, W) float32 inputs in [0, 1] and (n, H, W) float32 targets in {0, 1}, with their slice indices."""

    inputs: np.ndarray
    targets: np.ndarray
    z: np.ndarray  #: canonical slice index of each pair


def kept_slices(boxes: np.ndarray, target: np.ndarray, margin: int, margin_below: int | None) -> np.ndarray:
    """Canonical indices of the slices with body within the organ's axial range, `margin` slices above and
    `margin_below` (default `margin`) below it: clinical contours often stop short of the organ's lower end,
    and those slices are not true negatives."""
    zs = np.flatnonzero(boxes[:, 0] >= 0)
    present = np.flatnonzero(target.reshape(target.shape[0], -1).any(axis=1))
    if present.size == 0:
        return zs[:0]
    below = margin if margin_below is None else margin_below
    return zs[(zs >= present[0] - below) & (zs <= present[-1] + margin)]


def slice_pairs(volume: np.ndarray, target: np.ndarray, boxes: np.ndarray | None = None, margin: int = 30,
                window: tuple[float, float] = HU_WINDOW, levels: int = LEVELS,
                margin_below: int | None = None) -> SlicePairs:
    """Slices of the organ's axial range +/- `margin` slices (the paper's 30) of a canonical (S, P, L) HU
    volume and its bool target, as network inputs and targets. `boxes`: the body boxes, if known."""
    prepared = prepare(volume, window, levels, boxes)
    zs = prepared.record.slices_with_body
    kept = kept_slices(prepared.record.boxes, target, margin, margin_below)
    rows = np.searchsorted(zs, kept)
    target = target.astype(np.float32)  # once, not per slice
    targets = np.stack([prepared.record.forward(target, z) >= 0.5 for z in kept]) \
        if kept.size else np.zeros((0, *prepared.inputs.shape[1:]), dtype=bool)
    return SlicePairs(prepared.inputs[rows], targets.astype(np.float32), kept)
