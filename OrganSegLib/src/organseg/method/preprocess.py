"""Pre-processing of the method and its exact inverse.

Per axial slice: crop to the body's bounding box, resize to 224 (rows, anterior-posterior) x 304 (columns,
left-right) by bilinear interpolation, clip HU to [-70, 170], scale to [0, 1] and quantise to 240 levels.
The `CropRecord` keeps what is needed to map network output back onto the original voxel grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from organseg.method.body import body_boxes

INPUT_HEIGHT = 224  #: rows, anterior-posterior
INPUT_WIDTH = 304  #: columns, left-right
HU_WINDOW = (-70.0, 170.0)
LEVELS = 240


@lru_cache(maxsize=4096)
def resize_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps (lo, hi, w), pixel centres aligned (align_corners=False).

    out[i] = in[lo[i]] * (1 - w[i]) + in[hi[i]] * w[i]; w is an (n_out, 1) column, ready to weight image rows.
    """
    centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    weight = (centres - lo).astype(np.float32)[:, None]
    for array in (lo, hi, weight):
        array.setflags(write=False)
    return lo, hi, weight


def resize_slice(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2D array (or a stack with the 2D axes last) to `shape`, two taps per axis."""
    lo, hi, w = resize_taps(shape[0], image.shape[-2])
    image = image.astype(np.float32, copy=False)
    rows = image[..., lo, :] * (1 - w) + image[..., hi, :] * w
    lo, hi, w = resize_taps(shape[1], image.shape[-1])
    return rows[..., lo] * (1 - w.T) + rows[..., hi] * w.T


def normalise(hu: np.ndarray, window: tuple[float, float] = HU_WINDOW, levels: int = LEVELS) -> np.ndarray:
    """Clip HU to the window, scale to [0, 1] and quantise to `levels` levels (float32)."""
    lo, hi = window
    scaled = (np.clip(hu, lo, hi) - lo) / (hi - lo)
    return (np.round(scaled * (levels - 1)) / (levels - 1)).astype(np.float32)


@dataclass
class CropRecord:
    """Per-slice body boxes of a canonical volume: enough to invert the crop and resize exactly."""

    shape: tuple[int, int, int]  #: canonical (S, P, L) volume shape
    boxes: np.ndarray  #: (S, 4) row0, row1, col0, col1 end-exclusive; -1 where a slice has no body
    input_shape: tuple[int, int] = (INPUT_HEIGHT, INPUT_WIDTH)

    @property
    def slices_with_body(self) -> np.ndarray:
        """Indices of the slices that contain body."""
        return np.flatnonzero(self.boxes[:, 0] >= 0)

    def forward(self, volume: np.ndarray, z: int) -> np.ndarray:
        """Crop slice z of a canonical volume to its body box and resize it to the network input size."""
        r0, r1, c0, c1 = self.boxes[z]
        return resize_slice(volume[z, r0:r1, c0:c1], self.input_shape)

    def inverse(self, output: np.ndarray, z: int) -> tuple[tuple[slice, slice], np.ndarray]:
        """Network-size output of slice z resized back onto its body box: (in-slice index, values)."""
        r0, r1, c0, c1 = self.boxes[z]
        return (slice(r0, r1), slice(c0, c1)), resize_slice(output, (r1 - r0, c1 - c0))


@dataclass
class Prepared:
    """A CT ready for every organ's network: quantised network inputs and the crop record."""

    inputs: np.ndarray  #: (n, H, W) float32 in [0, 1], one row per slice in `record.slices_with_body`
    record: CropRecord

    def batch(self, indices: np.ndarray, context: int = 0) -> np.ndarray:
        """(n, 2 * context + 1, H, W) network input of the given rows of `inputs`: each row with the `context`
        rows on each side, inferior first (`context_rows`)."""
        return self.inputs[context_rows(np.asarray(indices), len(self.inputs), context)]


def context_rows(rows: np.ndarray, n: int, context: int) -> np.ndarray:
    """(len(rows), 2 * context + 1) rows of each row's neighbourhood among n rows, inferior first.

    The neighbours of a slice are the adjacent slices with body; at an end the last one repeats, as a network
    trained on whole CTs has seen. Each slice is cropped to its own body box, so the neighbours are resized
    with their own crop: training reads them the same way (`training.loop.SliceSet`).
    """
    return np.clip(rows[:, None] + np.arange(-context, context + 1), 0, n - 1)


def prepare(volume: np.ndarray, window: tuple[float, float] = HU_WINDOW, levels: int = LEVELS,
            boxes: np.ndarray | None = None) -> Prepared:
    """Body crop, resize and normalisation of a canonical (S, P, L) HU volume, done once per CT.

    `boxes`: the body boxes (`slice_boxes` of the CT's body mask) where the caller has the mask already.

    The volume may keep its stored type (e.g. int16): each cropped slice is converted to float32 before resizing,
    which gives the same inputs as a float32 copy of the whole volume, with half its memory for an int16 CT.
    """
    record = CropRecord(volume.shape, body_boxes(volume) if boxes is None else boxes)
    zs = record.slices_with_body
    inputs = np.empty((len(zs), *record.input_shape), dtype=np.float32)
    for i, z in enumerate(zs):
        inputs[i] = normalise(record.forward(volume, z), window, levels)
    return Prepared(inputs, record)
