"""Slice-batched inference of one organ on a prepared CT, mapped back onto the canonical grid.

Two strategies. Full: every slice that has body. Coarse-to-fine: every k-th slice first, then, organs being
contiguous along the body axis, the slices around each slice where the organ was found, until m empty
slices border every run of found slices (m: the fine margin, FINE_MARGIN_MM). A run of k or more slices is
therefore always found and kept whole; only a run shorter than k that lies more than m slices from any other
finding can be missed.

The coarse step is half of the organ's smallest plausible cranio-caudal extent (`Organ.min_extent_mm`),
rounded down to whole slices and at least one slice: k = max(1, floor(min_extent_mm / 2 / slice_mm)). An
organ of its smallest plausible extent spans at least two steps (2k slices), so it is always hit and kept
whole as long as the network finds at least half of it in one piece; the result equals full inference there.
The fine margin stays 10 mm: a larger one only adds slices around stray findings (measured in
Testing/BENCHMARK.md).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from organseg.preprocess import Prepared
from organseg.runtime import Runtime

STRATEGIES = ("coarse-to-fine", "full")
#: Distance around each finding searched by the fine pass, in mm (whole slices, at least one).
FINE_MARGIN_MM = 10.0


class Cancelled(Exception):
    """Raised when the caller's cancel check answers True between two batches."""


def coarse_stride(slice_mm: float, min_extent_mm: float) -> int:
    """Slices between two slices of the coarse pass: half the organ's smallest extent, at least one slice."""
    return slices_within(min_extent_mm / 2, slice_mm)


def slices_within(mm: float, slice_mm: float) -> int:
    """Whole slices of `slice_mm` within `mm`, at least one."""
    return max(1, int(mm // slice_mm)) if slice_mm > 0 else 1


class _RowPredictor:
    """Runs rows of a prepared CT through a runtime once each and pastes them into a canonical mask."""

    def __init__(self, prepared: Prepared, runtime: Runtime, threshold: float, batch_size: int,
                 cancel: Callable[[], bool] | None) -> None:
        self.prepared, self.runtime, self.threshold = prepared, runtime, threshold
        self.batch_size, self.cancel = batch_size, cancel
        n = len(prepared.record.slices_with_body)
        self.done = np.zeros(n, dtype=bool)
        self.found = np.zeros(n, dtype=bool)  #: the network gave the organ somewhere on the row
        self.mask = np.zeros(prepared.record.shape, dtype=bool)

    def run(self, rows: np.ndarray) -> None:
        """Predict the rows not yet done, batch by batch."""
        rows = rows[~self.done[rows]]
        zs = self.prepared.record.slices_with_body
        for start in range(0, len(rows), self.batch_size):
            if self.cancel is not None and self.cancel():
                raise Cancelled()
            batch = rows[start:start + self.batch_size]
            for row, prob in zip(batch, self.runtime.predict(self.prepared.batch(batch))):
                organ = prob >= self.threshold
                self.found[row] = organ.any()
                if self.found[row]:
                    index, values = self.prepared.record.inverse(prob, zs[row])
                    self.mask[zs[row]][index] = values >= self.threshold
            self.done[batch] = True


def predict_organ(prepared: Prepared, runtime: Runtime, threshold: float, batch_size: int = 16,
                  cancel: Callable[[], bool] | None = None, stride: int = 1,
                  window: tuple[int, int] | None = None, margin: int | None = None) -> np.ndarray:
    """Canonical (S, P, L) boolean mask of one organ.

    stride 1 runs every slice that has body; stride k > 1 runs coarse-to-fine with a coarse pass over every
    k-th slice, then the slices within `margin` (default: k) of each finding. `window` (lowest, highest
    canonical slice, inclusive) limits the search, e.g. to where the anchor organs allow the organ; slices
    outside it stay empty.
    """
    predictor = _RowPredictor(prepared, runtime, threshold, batch_size, cancel)
    zs = prepared.record.slices_with_body
    lo, hi = (0, len(zs)) if window is None else np.searchsorted(zs, [window[0], window[1] + 1])
    if hi <= lo:
        return predictor.mask
    if stride <= 1:
        predictor.run(np.arange(lo, hi))
        return predictor.mask
    margin = stride if margin is None else max(1, margin)
    predictor.run(np.unique(np.r_[np.arange(lo, hi, stride), hi - 1]))
    while True:
        near = np.zeros(len(zs) + 1, dtype=np.int64)  # +1 at each found row - margin, -1 past its + margin
        found = np.flatnonzero(predictor.found)
        np.add.at(near, np.clip(found - margin, lo, hi), 1)
        np.add.at(near, np.clip(found + margin + 1, lo, hi), -1)
        todo = np.flatnonzero((np.cumsum(near)[:-1] > 0) & ~predictor.done)
        if todo.size == 0:
            return predictor.mask
        predictor.run(todo)
