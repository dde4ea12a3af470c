"""Slice-batched inference of one organ on a prepared CT, mapped back onto the canonical grid.

Three strategies. Full: every slice that has body. Coarse-to-fine: every k-th slice first, then, organs being
contiguous along the body axis, the slices around each slice where the organ was found, until m empty slices border
every run of found slices (m: the fine margin, FINE_MARGIN_MM). A run of k or more slices is therefore always found
and kept whole; only a run shorter than k that lies more than m slices from any other finding can be missed, and
`within_reach` empties every group of findings without one on a coarse slice after every strategy, so that
coarse-to-fine and full give the same masks (the organ spans at least 2k slices). When every coarse slice finds the
organ (it spans the search, as the spinal cord does on a head-and-neck CT), the rest run at once in full batches,
as full inference would: the fine rounds would run nearly every slice anyway, in smaller batches, and could end up
slower than every slice. Likewise, as soon as the slices run plus those a fine round is about to run reach
ONE_PASS_FRACTION of the window, the rest of the window runs in that round. So the search either runs fewer than
ONE_PASS_FRACTION of the window's slices or runs every slice once. A slice alone costs about a fifth more than in a
batch of four, in pairs or threes a few per cent (measured in Testing/benchmarks/BENCHMARK.md), so the search is
slower than every slice only if most of its slices ran alone; in fine rounds most run in batches of four or more.

The coarse step is half of the organ's smallest plausible cranio-caudal extent (`Organ.min_extent_mm`),
rounded down to whole slices and at least one slice: k = max(1, floor(min_extent_mm / 2 / slice_mm)). An
organ of its smallest plausible extent spans at least two steps (2k slices), so it is always hit and kept
whole as long as the network finds at least half of it in one piece; the result equals full inference there.
The fine margin stays 10 mm: a larger one only adds slices around stray findings (measured in
Testing/benchmarks/BENCHMARK.md).

Interpolate: coarse-to-fine that also skips slices inside the organ. Gaps between two found slices at most
INTERPOLATE_MM apart whose masks agree (Dice >= MIN_SIMILARITY) take the distance-weighted mean of the two
slices' probabilities; other gaps are bisected, so the organ's ends are still found slice by slice. It is
not exact: measured Dice against full inference is in Testing/benchmarks/BENCHMARK.md and tested >= 0.99 on real CT.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from organseg.masks import dice
from organseg.method.preprocess import Prepared
from organseg.method.runtime import Runtime

STRATEGIES = ("coarse-to-fine", "interpolate", "full")
#: Distance around each finding searched by the fine pass, in mm (whole slices, at least one).
FINE_MARGIN_MM = 10.0
#: Coarse-to-fine: the share of the window's slices, run or about to run, from which the rest runs in one pass.
ONE_PASS_FRACTION = 0.9
#: Interpolate strategy: the largest distance between two run slices whose probabilities are interpolated, in mm.
INTERPOLATE_MM = 6.0
#: Interpolate strategy: the least Dice between the two slices' masks for a gap to be interpolated.
MIN_SIMILARITY = 0.9


class Cancelled(Exception):
    """Raised when the caller's cancel check answers True between two batches."""


def coarse_stride(slice_mm: float, min_extent_mm: float) -> int:
    """Slices between two slices of the coarse pass: half the organ's smallest extent, at least one slice."""
    return slices_within(min_extent_mm / 2, slice_mm)


def slices_within(mm: float, slice_mm: float) -> int:
    """Whole slices of `slice_mm` within `mm`, at least one."""
    return max(1, int(mm // slice_mm)) if slice_mm > 0 else 1


def first_pass(prepared: Prepared, stride: int, window: tuple[int, int] | None = None) -> np.ndarray:
    """Canonical slices of the coarse pass: every `stride`-th slice with body in the window, and its last."""
    zs = prepared.record.slices_with_body
    lo, hi = _window_rows(zs, window)
    return zs[_coarse_rows(lo, hi, stride)] if hi > lo else zs[:0]


def within_reach(mask: np.ndarray, coarse: np.ndarray, margin: int) -> np.ndarray:
    """The findings coarse-to-fine always finds: groups of found slices, each at most `margin` from the next, that
    hold a finding on a `coarse` slice (see `first_pass`); other groups are emptied.

    Applied after every strategy, so that they give the same masks: the fine rounds follow a group from a coarse
    finding to both ends, and a group the coarse pass steps over (it has no run of a stride's length: a stray
    finding, as the organ spans at least two strides) is found only when it lies within the margin of another.
    """
    found = np.flatnonzero(mask.any(axis=(1, 2)))
    out = mask.copy()
    for group in np.split(found, np.flatnonzero(np.diff(found) > margin) + 1):
        if group.size and not np.isin(group, coarse).any():
            out[group] = False
    return out


def _window_rows(zs: np.ndarray, window: tuple[int, int] | None) -> tuple[int, int]:
    """The rows [lo, hi) of the slices with body `zs` inside the window of canonical slices (inclusive)."""
    return (0, len(zs)) if window is None else tuple(int(i) for i in np.searchsorted(zs, [window[0], window[1] + 1]))


def _coarse_rows(lo: int, hi: int, stride: int) -> np.ndarray:
    """Rows of the coarse pass in [lo, hi): every `stride`-th from lo, and the last, so both ends are looked at."""
    return np.unique(np.r_[np.arange(lo, hi, stride), hi - 1])


class _RowPredictor:
    """Runs rows of a prepared CT through a runtime once each and pastes them into a canonical mask.

    With `keep_probabilities`, the canonical probabilities of rows where the organ was found are kept (float16,
    inside each slice's body box) so that rows between two of them can be interpolated.
    """

    def __init__(self, prepared: Prepared, runtime: Runtime, threshold: float, batch_size: int,
                 cancel: Callable[[], bool] | None, keep_probabilities: bool = False) -> None:
        self.prepared, self.runtime, self.threshold = prepared, runtime, threshold
        self.batch_size, self.cancel = batch_size, cancel
        n = len(prepared.record.slices_with_body)
        self.done = np.zeros(n, dtype=bool)  #: evaluated or interpolated
        self.found = np.zeros(n, dtype=bool)  #: the organ is on the row
        self.mask = np.zeros(prepared.record.shape, dtype=bool)
        self.probabilities: dict[int, tuple[tuple[slice, slice], np.ndarray]] | None = (
            {} if keep_probabilities else None)

    def run(self, rows: np.ndarray) -> None:
        """Predict the rows not yet done, batch by batch."""
        rows = rows[~self.done[rows]]
        zs = self.prepared.record.slices_with_body
        for start in range(0, len(rows), self.batch_size):
            if self.cancel is not None and self.cancel():
                raise Cancelled()
            batch = rows[start:start + self.batch_size]
            for row, prob in zip(batch, self.runtime.predict(self.prepared.batch(batch, self.runtime.context))):
                organ = prob >= self.threshold
                self.found[row] = organ.any()
                if self.found[row]:
                    index, values = self.prepared.record.inverse(prob, zs[row])
                    self.mask[zs[row]][index] = values >= self.threshold
                    if self.probabilities is not None:
                        self.probabilities[row] = index, values.astype(np.float16)
            self.done[batch] = True

    def similarity(self, a: int, b: int) -> float:
        """Dice between the masks of two rows."""
        zs = self.prepared.record.slices_with_body
        return dice(self.mask[zs[a]], self.mask[zs[b]])

    def interpolate(self, a: int, b: int) -> None:
        """Rows strictly between found rows a and b from their probabilities, weighted by distance."""
        zs = self.prepared.record.slices_with_body
        pa, pb = (self._slice_probabilities(r) for r in (a, b))
        for row in range(a + 1, b):
            w = (zs[row] - zs[a]) / (zs[b] - zs[a])
            self.mask[zs[row]] = (1.0 - w) * pa + w * pb >= self.threshold
            self.found[row] = self.mask[zs[row]].any()
            self.done[row] = True

    def _slice_probabilities(self, row: int) -> np.ndarray:
        """The kept probabilities of a found row on its whole canonical slice (zero outside the body box)."""
        index, values = self.probabilities[row]
        out = np.zeros(self.mask.shape[1:], dtype=np.float32)
        out[index] = values
        return out


def predict_organ(prepared: Prepared, runtime: Runtime, threshold: float, batch_size: int = 16,
                  cancel: Callable[[], bool] | None = None, stride: int = 1,
                  window: tuple[int, int] | None = None, margin: int | None = None,
                  max_gap: int = 1, min_similarity: float = MIN_SIMILARITY) -> np.ndarray:
    """Canonical (S, P, L) boolean mask of one organ.

    stride 1 runs every slice that has body; stride k > 1 runs coarse-to-fine with a coarse pass over every
    k-th slice, then the slices within `margin` (default: k) of each finding. `window` (lowest, highest
    canonical slice, inclusive) limits the search, e.g. to where the anchor organs allow the organ; slices
    outside it stay empty.

    max_gap > 1 (coarse-to-fine only) also interpolates inside the organ: rows between two found rows at most
    `max_gap` slices apart whose masks agree (Dice >= `min_similarity`) take the distance-weighted mean of
    their probabilities; other gaps inside or at the edge of the organ are bisected, so every edge is still
    found to the slice. The result then differs from full inference where the organ changes within a gap.
    """
    predictor = _RowPredictor(prepared, runtime, threshold, batch_size, cancel, keep_probabilities=max_gap > 1)
    zs = prepared.record.slices_with_body
    lo, hi = _window_rows(zs, window)
    if hi <= lo:
        return predictor.mask
    if stride <= 1:
        predictor.run(np.arange(lo, hi))
        return predictor.mask
    margin = stride if margin is None else max(1, margin)
    coarse = _coarse_rows(lo, hi, stride)
    predictor.run(coarse)
    if max_gap <= 1 and predictor.found[coarse].all():  # found everywhere: every slice would run, in small rounds
        predictor.run(np.arange(lo, hi))
        return predictor.mask
    while True:
        near = np.zeros(len(zs) + 1, dtype=np.int64)  # +1 at each found row - margin, -1 past its + margin
        found = np.flatnonzero(predictor.found)
        np.add.at(near, np.clip(found - margin, lo, hi), 1)
        np.add.at(near, np.clip(found + margin + 1, lo, hi), -1)
        todo = np.flatnonzero((np.cumsum(near)[:-1] > 0) & ~predictor.done)
        if todo.size == 0:
            return predictor.mask
        if max_gap <= 1 and np.count_nonzero(predictor.done[lo:hi]) + todo.size >= ONE_PASS_FRACTION * (hi - lo):
            todo = np.arange(lo, hi)  # nearly the whole window: the rest at once, in full batches
        predictor.run(todo if max_gap <= 1 else _refine(predictor, todo, max_gap, min_similarity))


def _refine(predictor: _RowPredictor, todo: np.ndarray, max_gap: int, min_similarity: float) -> np.ndarray:
    """Interpolate the gaps between agreeing found rows; return the rows to run next.

    Rows to run: the middle row of each other gap with a found end (bisection), and every row of gaps
    with no found end (the margin beyond an organ's edge, run as without interpolation).
    """
    zs = predictor.prepared.record.slices_with_body
    evaluated = np.flatnonzero(predictor.done)
    after = np.searchsorted(evaluated, todo)  # todo rows lie strictly between evaluated[after-1] and evaluated[after]
    run = []
    for gap in np.unique(after):
        rows = todo[after == gap]
        if gap == 0 or gap == len(evaluated):
            run.append(rows)
            continue
        a, b = evaluated[gap - 1], evaluated[gap]
        fa, fb = predictor.found[a], predictor.found[b]
        if fa and fb and zs[b] - zs[a] <= max_gap and predictor.similarity(a, b) >= min_similarity:
            predictor.interpolate(a, b)
        elif fa or fb:
            run.append(rows[len(rows) // 2:len(rows) // 2 + 1])
        else:
            run.append(rows)
    return np.concatenate(run) if run else np.zeros(0, dtype=np.int64)
