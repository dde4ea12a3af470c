"""Planar contours of a mask slice, in pixel and in patient coordinates.

Contours are traced with marching squares at level 0.5 on the zero-padded slice: every vertex lies midway
between a pixel inside and one outside, so each pixel centre falls strictly inside or outside the polygons.
Outer outlines and hole outlines are separate, non-crossing closed polygons, so the even-odd rule
(how RTSTRUCT readers such as dicompyler combine the contours of one slice) restores the mask exactly:
holes and several components per slice included.
"""
from __future__ import annotations

import numpy as np
from skimage import measure


def slice_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (n, 2) as (row, column) pixel coordinates, without the repeated closing point."""
    padded = np.pad(np.asarray(mask, dtype=np.float32), 1)
    polygons = []
    for contour in measure.find_contours(padded, 0.5):
        points = measure.approximate_polygon(contour, tolerance=0)[:-1] - 1
        if len(points) >= 3:
            polygons.append(points)
    return polygons


def to_patient(polygon: np.ndarray, position: np.ndarray, row_dir: np.ndarray, col_dir: np.ndarray,
               spacing: tuple[float, float]) -> np.ndarray:
    """(row, column) pixel coordinates of one slice -> (n, 3) LPS millimetres.

    `position` is the slice's Image Position (Patient), `spacing` its (column x, row y) pixel spacing.
    """
    sx, sy = spacing
    return position + np.outer(polygon[:, 1] * sx, row_dir) + np.outer(polygon[:, 0] * sy, col_dir)
