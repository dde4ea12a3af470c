"""Overlap and surface metrics of one organ mask against a reference, in physical units.

Arrays are (z, y, x) booleans on the same grid; `spacing` is the voxel size in mm in the same (z, y, x)
order (SimpleITK's GetSpacing() reversed). Surfaces are the mask voxels with a 6-neighbour outside the mask
(or outside the image); distances between surfaces come from Euclidean distance transforms with
`sampling=spacing`, so they are in mm.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from organseg.masks import dice

NSD_TOLERANCE_MM = 3.0


@dataclass(frozen=True)
class OrganMetrics:
    """Metrics of one prediction against its reference; distances are NaN when either mask is empty."""

    dice: float
    jaccard: float
    nsd: float  #: normalised surface distance (surface Dice) at `tolerance_mm`
    hd95_mm: float
    volume_pred_ml: float
    volume_ref_ml: float
    volume_diff_ml: float  #: prediction minus reference
    volume_diff_pct: float  #: relative to the reference; NaN for an empty reference

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def jaccard(pred: np.ndarray, ref: np.ndarray) -> float:
    """|A∩B| / |A∪B|; two empty masks agree perfectly (1.0)."""
    union = int(np.count_nonzero(pred | ref))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & ref)) / union


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a mask: voxels with a face neighbour outside the mask or the image."""
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of `pred` to the surface of `ref`, and the other way."""
    s_pred, s_ref = surface(pred), surface(ref)
    to_ref = ndimage.distance_transform_edt(~s_ref, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~s_pred, sampling=spacing)
    return to_ref[s_pred], to_pred[s_ref]


def nsd(d_pred: np.ndarray, d_ref: np.ndarray, tolerance_mm: float = NSD_TOLERANCE_MM) -> float:
    """Fraction of both surfaces lying within `tolerance_mm` of the other surface."""
    return (int(np.count_nonzero(d_pred <= tolerance_mm)) + int(np.count_nonzero(d_ref <= tolerance_mm))) \
        / (d_pred.size + d_ref.size)


def hd95(d_pred: np.ndarray, d_ref: np.ndarray) -> float:
    """95th percentile of the pooled symmetric surface distances (mm)."""
    return float(np.percentile(np.concatenate([d_pred, d_ref]), 95))


def organ_metrics(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float, float],
                  tolerance_mm: float = NSD_TOLERANCE_MM) -> OrganMetrics:
    """All metrics of one organ; `spacing` in mm, (z, y, x) like the arrays."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    pred, ref = pred.astype(bool, copy=False), ref.astype(bool, copy=False)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    v_pred, v_ref = int(np.count_nonzero(pred)) * voxel_ml, int(np.count_nonzero(ref)) * voxel_ml
    if not pred.any() and not ref.any():
        surface_nsd, surface_hd95 = 1.0, 0.0
    elif not pred.any() or not ref.any():
        surface_nsd, surface_hd95 = 0.0, math.nan
    else:
        d_pred, d_ref = surface_distances(pred, ref, tuple(float(s) for s in spacing))
        surface_nsd, surface_hd95 = nsd(d_pred, d_ref, tolerance_mm), hd95(d_pred, d_ref)
    return OrganMetrics(dice(pred, ref), jaccard(pred, ref), surface_nsd, surface_hd95, v_pred, v_ref,
                        v_pred - v_ref, 100.0 * (v_pred - v_ref) / v_ref if v_ref else math.nan)
