"""Body contour by image processing, and its per-slice bounding boxes."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Voxels above this HU are tissue (air is about -1000, lung parenchyma about -800 but enclosed by the body).
BODY_THRESHOLD_HU = -500.0
_IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                      [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                      [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], dtype=bool)


def body_mask(volume: np.ndarray) -> np.ndarray:
    """Body mask of a canonical (S, P, L) HU volume: threshold, opening, largest component and holes filled per slice.

    The opening detaches thin structures such as the table and blankets before the largest component is kept.
    """
    tissue = volume > BODY_THRESHOLD_HU
    tissue = ndimage.binary_opening(tissue, structure=_IN_PLANE, iterations=2)
    labels, n = ndimage.label(tissue, structure=_IN_PLANE)
    if n == 0:
        return tissue
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    keep = np.zeros(n + 1, dtype=bool)
    for z in range(volume.shape[0]):
        present = np.unique(labels[z])
        present = present[present > 0]
        if present.size:
            keep[present[np.argmax(sizes[present])]] = True
    body = keep[labels]
    padded = np.pad(body, ((1, 1), (0, 0), (0, 0)))
    return ndimage.binary_fill_holes(padded, structure=_IN_PLANE)[1:-1]


def slice_boxes(mask: np.ndarray) -> np.ndarray:
    """Per-slice bounding boxes (row0, row1, col0, col1), end-exclusive; -1 rows for slices without body."""
    boxes = np.full((mask.shape[0], 4), -1, dtype=np.int64)
    rows_any = mask.any(axis=2)
    cols_any = mask.any(axis=1)
    for z in range(mask.shape[0]):
        rows = np.flatnonzero(rows_any[z])
        if rows.size:
            cols = np.flatnonzero(cols_any[z])
            boxes[z] = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    return boxes
