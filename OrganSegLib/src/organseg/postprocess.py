"""Post-processing: connected components, hole filling, and the anchor-organ rules of the method.

All masks here are canonical (S, P, L) arrays: axis 0 runs inferior -> superior. An anchor rule keeps an
organ's voxels only between two axial levels taken from anchor organs (e.g. the spleen lies below the lung
apex and above the femur heads). Each rule is per organ and can be switched off; a rule whose anchor is
absent from the result is skipped and reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from organseg.catalogue import ORGANS
from organseg.stats import bounding_box


@dataclass(frozen=True)
class Level:
    """An axial level: the top or bottom of an anchor organ, moved by `margin_mm` (positive = superior)."""

    anchor: str
    edge: str  #: "top" (most superior slice) or "bottom" (most inferior slice)
    margin_mm: float = 0.0


@dataclass(frozen=True)
class Rule:
    """Where an organ may lie along the body axis, and how its components are cleaned."""

    below: tuple[Level, ...] = ()  #: the organ lies below every one of these levels
    above: tuple[Level, ...] = ()  #: ... and above every one of these
    components: int = 1  #: keep this many largest 3D components (0: keep all above `min_component_ml`)
    min_component_ml: float = 0.0
    fill_holes: bool = True
    anchors_by_default: bool = True  #: whether the anchor box is applied unless asked otherwise

    @property
    def anchors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(level.anchor for level in self.below + self.above))


def _top(anchor: str, margin_mm: float = 0.0) -> Level:
    return Level(anchor, "top", margin_mm)


def _bottom(anchor: str, margin_mm: float = 0.0) -> Level:
    return Level(anchor, "bottom", margin_mm)


#: The rule table. Margins in mm; "below top of lungs" is "below the lung apex".
RULES: dict[str, Rule] = {
    "liver": Rule(below=(_top("lungs", 20),), above=(_top("femur_heads"),)),
    "heart": Rule(below=(_top("lungs"),), above=(_top("kidneys"),)),
    "pancreas": Rule(below=(_top("liver"),), above=(_top("femur_heads"),), anchors_by_default=False),
    "bones": Rule(components=0, min_component_ml=0.5),
    "kidneys": Rule(below=(_top("lungs"),), above=(_top("femur_heads"),), components=2),
    "spleen": Rule(below=(_top("lungs"),), above=(_top("femur_heads"),)),
    "urinary_bladder": Rule(below=(_bottom("kidneys"),), above=(_bottom("femur_heads", -30),)),
    "esophagus": Rule(above=(_bottom("kidneys"),), anchors_by_default=False),
    "femur_heads": Rule(below=(_bottom("kidneys"),), components=2),
    "lungs": Rule(above=(_bottom("kidneys"),), components=2, fill_holes=False),
    "spinal_cord": Rule(fill_holes=False),
    "aorta": Rule(below=(_top("lungs", 30),), above=(_top("femur_heads"),), anchors_by_default=False),
    "gallbladder": Rule(below=(_top("liver"),), above=(_bottom("liver", -20),)),
    "adrenal_glands": Rule(below=(_top("liver"),), above=(_bottom("kidneys", 20),), components=2),
    "inferior_vena_cava": Rule(below=(_top("lungs"),), above=(_top("femur_heads"),), components=0,
                               min_component_ml=1.0, anchors_by_default=False),
    "colon": Rule(below=(_top("lungs"),), components=0, min_component_ml=2.0, fill_holes=False),
    "rectum": Rule(below=(_bottom("kidneys"),), components=0, min_component_ml=1.0),
    "small_intestine": Rule(below=(_top("liver"),), above=(_bottom("femur_heads"),), components=0,
                            min_component_ml=2.0, fill_holes=False),
    "stomach": Rule(below=(_top("lungs"),), above=(_top("femur_heads"),)),
    "thymus": Rule(below=(_top("lungs"),), above=(_bottom("lungs", 50),), anchors_by_default=False),
    "gi_tract": Rule(below=(_top("lungs"),), components=0, min_component_ml=2.0, fill_holes=False),
    "eyes": Rule(above=(_top("lungs"),), components=2, fill_holes=False),
    "brain": Rule(above=(_top("lungs"),)),
}
assert set(RULES) == {o.key for o in ORGANS}, "every catalogue organ needs a post-processing rule"


def required_anchors(organs: list[str], anchor_rules: dict[str, bool] | None = None) -> list[str]:
    """Anchor organs the chosen organs' enabled anchor rules need but that were not chosen."""
    needed: list[str] = []
    for key in organs:
        if anchor_rules_enabled(key, anchor_rules):
            needed += [a for a in RULES[key].anchors if a not in organs and a not in needed and a != key]
    return needed


def anchor_rules_enabled(key: str, anchor_rules: dict[str, bool] | None) -> bool:
    """Whether the organ's anchor box is applied: the explicit switch, else the rule's default."""
    if anchor_rules is not None and key in anchor_rules:
        return anchor_rules[key]
    return RULES[key].anchors_by_default


def clean_components(mask: np.ndarray, rule: Rule, voxel_ml: float) -> np.ndarray:
    """Keep the largest `rule.components` components (or all above the minimum volume) and fill holes.

    Components (6-connected) and holes cannot cross a slice without foreground, so the work is done per slab
    of consecutive non-empty slices, inside the slab's bounding box: the same result as on the whole volume
    (background on a box face touches the background outside), at a fraction of the cost on a large CT where
    stray findings are far apart.
    """
    out = np.zeros_like(mask)
    slabs = _slabs(mask)
    if not slabs:
        return out
    labelled = [ndimage.label(mask[box]) for box in slabs]
    sizes = np.concatenate([np.bincount(labels.ravel(), minlength=n + 1)[1:] for labels, n in labelled])
    keep = sizes * voxel_ml >= rule.min_component_ml
    if rule.components:
        order = np.argsort(sizes, kind="stable")[::-1]
        top = np.zeros(len(sizes), dtype=bool)
        top[order[:rule.components]] = True
        keep &= top
        keep[order[0]] = True  # never empty an organ that was found
    first = 0
    for box, (labels, n) in zip(slabs, labelled):
        kept = np.concatenate([[False], keep[first:first + n]])[labels]
        out[box] = _fill_holes(kept) if rule.fill_holes else kept
        first += n
    return out


def _slabs(mask: np.ndarray) -> list[tuple[slice, ...]]:
    """Bounding boxes of the runs of consecutive slices (axis 0) that hold foreground."""
    filled = np.flatnonzero(mask.any(axis=(1, 2)))
    if filled.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(filled) > 1)
    boxes = []
    for lo, hi in zip(filled[np.r_[0, breaks + 1]], filled[np.r_[breaks, -1]] + 1):
        first, end = bounding_box(mask[lo:hi])
        boxes.append((slice(lo, hi), *(slice(a, b) for a, b in zip(first[1:], end[1:]))))
    return boxes


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background not 6-connected to the array's faces becomes foreground (as ndimage.binary_fill_holes)."""
    labels, _ = ndimage.label(~mask)
    faces = np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel(),
                            labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])
    outside = np.zeros(labels.max() + 1, dtype=bool)
    outside[faces] = True  # label 0 is the foreground, kept by `mask |`
    return mask | ~outside[labels]


def axial_extent(mask: np.ndarray) -> tuple[int, int] | None:
    """(bottom, top) slice indices of a canonical mask, inclusive; None if empty."""
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    return (int(zs[0]), int(zs[-1])) if zs.size else None


def anchor_window(rule: Rule, extents: dict[str, tuple[int, int] | None], slice_mm: float,
                  n_slices: int) -> tuple[tuple[int, int], list[str]]:
    """Allowed slice range [lo, hi] from the anchors present, and the anchors that were missing."""
    lo, hi, missing = 0, n_slices - 1, []

    def level(lv: Level) -> int | None:
        extent = extents.get(lv.anchor)
        if extent is None:
            missing.append(lv.anchor)
            return None
        return (extent[1] if lv.edge == "top" else extent[0]) + int(round(lv.margin_mm / slice_mm))

    for lv in rule.below:
        z = level(lv)
        if z is not None:
            hi = min(hi, z)
    for lv in rule.above:
        z = level(lv)
        if z is not None:
            lo = max(lo, z)
    return (lo, hi), missing


def apply_anchor_window(mask: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Zero the slices of a canonical mask outside [lo, hi]."""
    lo, hi = window
    out = mask.copy()
    out[:max(lo, 0)] = False
    if hi + 1 < out.shape[0]:
        out[max(hi + 1, 0):] = False
    return out
