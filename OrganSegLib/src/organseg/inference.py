"""Slice-batched inference of one organ on a prepared CT, mapped back onto the canonical grid."""
from __future__ import annotations

from typing import Callable

import numpy as np

from organseg.preprocess import Prepared
from organseg.runtime import Runtime


class Cancelled(Exception):
    """Raised when the caller's cancel check answers True between two batches."""


def predict_rows(prepared: Prepared, runtime: Runtime, rows: np.ndarray, batch_size: int,
                 cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Probabilities (len(rows), H, W) at network size for the given rows of `prepared.inputs`."""
    out = np.empty((len(rows), *prepared.inputs.shape[1:]), dtype=np.float32)
    for start in range(0, len(rows), batch_size):
        if cancel is not None and cancel():
            raise Cancelled()
        out[start:start + batch_size] = runtime.predict(prepared.batch(rows[start:start + batch_size]))
    return out


def paste_rows(prepared: Prepared, rows: np.ndarray, probabilities: np.ndarray, threshold: float,
               mask: np.ndarray) -> None:
    """Resize each row's probabilities back onto its body box and threshold into the canonical mask."""
    zs = prepared.record.slices_with_body
    for row, prob in zip(rows, probabilities):
        z = zs[row]
        index, values = prepared.record.inverse(prob, z)
        mask[z][index] = values >= threshold


def predict_organ(prepared: Prepared, runtime: Runtime, threshold: float, batch_size: int = 16,
                  cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Canonical (S, P, L) boolean mask of one organ from every slice that has body."""
    mask = np.zeros(prepared.record.shape, dtype=bool)
    rows = np.arange(len(prepared.record.slices_with_body))
    paste_rows(prepared, rows, predict_rows(prepared, runtime, rows, batch_size, cancel), threshold, mask)
    return mask
