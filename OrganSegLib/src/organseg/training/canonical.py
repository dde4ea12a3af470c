"""A training case as canonical arrays, and its slice pairs of one organ, pre-processed as at inference.

A case is read and reoriented once (`training.dataset.canonical_case`, SimpleITK); from here on it is numpy
alone, so the slice pairs can be made again wherever training runs, from a pack of such cases
(`training.pack`) on a machine with PyTorch and no image I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from organseg.catalogue import Organ
from organseg.method.preprocess import HU_WINDOW, LEVELS, prepare
from organseg.training.cases import CaseSlices, CaseSpec


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
