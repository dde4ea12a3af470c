"""Planar contours of a mask slice, in pixel and in patient coordinates.

Contours are traced with marching squares at level 0.5 on the zero-padded slice: every vertex lies midway
between a pixel inside and one outside, so each pixel centre falls strictly inside or outside the polygons.
DICOM does not let a CLOSED_PLANAR contour hold a hole, and readers that follow it (plastimatch, planning
systems) take the union of a slice's contours, so a hole drawn as a contour of its own is filled. Each hole is
therefore joined to its outline by a zero-width cut (the keyhole technique): one simple-boundary polygon per piece
of the slice, holes included, that union and even-odd readers both restore exactly. The cut runs along a row a
quarter pixel off the pixel centres, so it neither passes through a pixel centre nor meets a vertex.
"""
from __future__ import annotations

import numpy as np
from matplotlib.path import Path as PolygonPath
from skimage import measure


def slice_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (n, 2) as (row, column) pixel coordinates, without the repeated closing point; a piece's
    holes are joined to its outline (keyholes), a piece inside a hole is a polygon of its own."""
    padded = np.pad(np.asarray(mask, dtype=np.float32), 1)
    loops = []
    for contour in measure.find_contours(padded, 0.5):
        points = measure.approximate_polygon(contour, tolerance=0)[:-1] - 1
        if len(points) >= 3:
            loops.append(points)
    outlines = [p for p in loops if _area(p) < 0]  # find_contours turns outlines and holes opposite ways
    holes = [p for p in loops if _area(p) > 0]
    members: list[list[np.ndarray]] = [[] for _ in outlines]
    for hole in holes:
        around = [i for i, o in enumerate(outlines) if PolygonPath(o).contains_point(hole[0])]
        if around:  # the innermost outline holding it (a hole always lies in one; else it is left as a contour)
            members[min(around, key=lambda i: abs(_area(outlines[i])))].append(hole)
    return [_keyholed(outline, own) for outline, own in zip(outlines, members)]


def _area(polygon: np.ndarray) -> float:
    """Signed area (shoelace) in (row, column) order."""
    r, c = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(r, np.roll(c, -1)) - np.dot(c, np.roll(r, -1)))


def _keyholed(outline: np.ndarray, holes: list[np.ndarray]) -> np.ndarray:
    """The outline with each hole joined by a cut along a row to the nearest boundary to its right.

    Loops are merged one at a time: a hole's rightmost crossing of the row is cut to the first edge the row meets
    further right (of the outline, or of another hole, which then carries it), so no cut crosses a boundary.
    """
    loops = [outline, *holes]
    while len(loops) > 1:
        hole = loops.pop()
        row = _cut_row(hole, {float(r) for loop in loops for r in loop[:, 0]})
        start, col = max(_crossings(hole, row), key=lambda x: x[1])
        hit, k, edge = min((c, k, e) for k, loop in enumerate(loops) for e, c in _crossings(loop, row) if c > col)
        target, m, i = loops[k], np.array([row, col]), np.array([row, hit])
        walk = np.roll(hole, -(start + 1), axis=0)  # from the vertex after the cut edge round to its start
        loops[k] = np.vstack([target[:edge + 1], [i, m], walk, [m, i], target[edge + 1:]])
    return loops[0]


def _cut_row(hole: np.ndarray, taken: set[float]) -> float:
    """A row inside the hole a quarter pixel off the pixel centres (traced vertices lie on multiples of half a
    pixel), and off the rows of earlier cuts, nearest the hole's middle."""
    low, high = hole[:, 0].min(), hole[:, 0].max()
    rows = np.arange(np.floor(low) + 0.25, high, 0.5)
    rows = rows[(rows > low) & (rows < high)]
    free = [r for r in rows if float(r) not in taken and float(r) not in set(hole[:, 0].tolist())] or list(rows)
    return float(min(free, key=lambda r: abs(r - (low + high) / 2)))


def _crossings(loop: np.ndarray, row: float) -> list[tuple[int, float]]:
    """(edge index, column) where the loop's edges cross the row."""
    a, b = loop, np.roll(loop, -1, axis=0)
    cross = np.flatnonzero((a[:, 0] < row) != (b[:, 0] < row))
    cols = a[cross, 1] + (row - a[cross, 0]) * (b[cross, 1] - a[cross, 1]) / (b[cross, 0] - a[cross, 0])
    return list(zip(cross.tolist(), cols.tolist()))


def to_patient(polygon: np.ndarray, position: np.ndarray, row_dir: np.ndarray, col_dir: np.ndarray,
               spacing: tuple[float, float]) -> np.ndarray:
    """(row, column) pixel coordinates of one slice -> (n, 3) LPS millimetres.

    `position` is the slice's Image Position (Patient), `spacing` its (column x, row y) pixel spacing.
    """
    sx, sy = spacing
    return position + np.outer(polygon[:, 1] * sx, row_dir) + np.outer(polygon[:, 0] * sy, col_dir)
