"""Per-organ statistics from final masks: voxel count, volume in mL (and per side of a paired organ), HU statistics,
bounding box."""
from __future__ import annotations

import numpy as np

from organseg.catalogue import Organ
from organseg.masks import bounding_box

FIELDS = ("organ", "label", "name", "voxels", "volume_ml", "mean_hu", "std_hu", "min_hu", "max_hu",
          "bbox_ijk_min", "bbox_ijk_max", "postprocess_changed", "postprocess_changed_voxels", "flags",
          "volume_right_ml", "volume_left_ml")


def organ_stats(organ: Organ, mask: np.ndarray, ct: np.ndarray, spacing: tuple[float, float, float],
                changed_voxels: int = 0, sides: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Statistics of one organ; `mask` and `ct` are (z, y, x) arrays on the same grid, spacing in (x, y, z) mm.

    `changed_voxels` counts voxels post-processing added or removed. `sides`: a paired organ's (right, left) masks
    (organseg.method.sides), whose volumes are added; None for other organs. The bounding box is in ITK voxel
    indices (i, j, k), inclusive; empty masks give zeros and None.
    """
    voxel_mm3 = float(np.prod(spacing))
    voxels = int(np.count_nonzero(mask))
    row = {"organ": organ.key, "label": organ.label, "name": organ.display_name, "voxels": voxels,
           "volume_ml": voxels * voxel_mm3 / 1000.0,  # in this order: the same float as before the sides
           "mean_hu": None, "std_hu": None, "min_hu": None, "max_hu": None,
           "bbox_ijk_min": None, "bbox_ijk_max": None,
           "postprocess_changed": changed_voxels != 0, "postprocess_changed_voxels": int(changed_voxels),
           "volume_right_ml": None, "volume_left_ml": None}
    if sides is not None:
        row["volume_right_ml"], row["volume_left_ml"] = (int(np.count_nonzero(m)) * voxel_mm3 / 1000.0
                                                         for m in sides)
    if voxels:
        values = ct[mask].astype(np.float64)
        row.update(mean_hu=float(values.mean()), std_hu=float(values.std()),
                   min_hu=float(values.min()), max_hu=float(values.max()))
        lo, hi = bounding_box(mask)
        row["bbox_ijk_min"] = lo[::-1]
        row["bbox_ijk_max"] = [h - 1 for h in hi[::-1]]
    return row

