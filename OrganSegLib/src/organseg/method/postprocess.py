"""Post-processing, the whole step: connected components, hole filling, a vote along the body axis, and the
anchor-organ rules.

All masks here are canonical (S, P, L) arrays: axis 0 runs inferior -> superior. An anchor rule keeps an
organ's voxels only between two axial levels taken from anchor organs (e.g. the spleen lies below the lung
apex and above the femur heads; the brainstem above the spinal cord's top). An organ that continues another
(the brainstem the cord) also reaches down to it across a short gap. Each rule is per organ and can be switched
off; a rule whose anchor is absent from the result is skipped and reported.

The rule table is read only here: `clean_organ` cleans an organ's mask by its rule, `anchor_window` gives the
axial window an organ's rule allows, `AnchorRules` is the anchor policy of one run (which anchors the chosen
organs need, the window an organ is searched and kept in, applying that box), and `rule` shows a rule.

The vote along the body axis (`vote_along_z`) is calibrated per model, like its threshold, on the patients that
select it, so its window is the model package's (`ModelPackage.z_vote_mm`): a 2D network judges each slice alone,
and on thin organs it misses or adds single slices that the slices around them contradict.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from organseg.catalogue import ORGANS
from organseg.masks import bounding_box


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
    components: int = 1  #: keep this many largest 3D components (0: keep all above the two minimums)
    min_component_ml: float = 0.0
    #: keep only components at least this share of the largest: a tube the network breaks keeps its pieces
    min_component_share: float = 0.0
    fill_holes: bool = True
    anchors_by_default: bool = True  #: whether the anchor box is applied unless asked otherwise
    #: the organ continues upward from this level: where its lowest slice ends at most `reach_mm` above it, that
    #: slice is repeated down to the level (applied with the box)
    reaches: Level | None = None
    reach_mm: float = 0.0

    @property
    def anchors(self) -> tuple[str, ...]:
        reaches = (self.reaches,) if self.reaches else ()
        return tuple(dict.fromkeys(level.anchor for level in self.below + self.above + reaches))


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
    "spinal_cord": Rule(components=0, min_component_share=0.2, fill_holes=False),
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
    # Head and neck: above the lung apex where the CT holds the lungs (off by default: a head-and-neck CT often ends
    # at the apex, where the lungs labeller's top is not reliable). The brainstem continues the spinal cord upward:
    # on 154 of OpenKBP's 155 training patients with both contoured it lies wholly above the cord's top - 10 mm
    # (its lowest slice is the one above the cord's top in 151; pt_152 reaches 22.5 mm below). The network
    # misses its lowest, cord-like slices: reaching down to the cord over up to 10 mm (the shortest of the reaches
    # that tied best) raised the selection patients' median Dice 0.651 -> 0.677 (scripts/TRAINING_OPENKBP.md,
    # round 4).
    "brainstem": Rule(above=(_top("spinal_cord", -10),), reaches=_top("spinal_cord"), reach_mm=10),
    "parotid_left": Rule(above=(_top("lungs"),), anchors_by_default=False),
    "parotid_right": Rule(above=(_top("lungs"),), anchors_by_default=False),
    "mandible": Rule(above=(_top("lungs"),), anchors_by_default=False),
    "larynx": Rule(above=(_top("lungs"),), anchors_by_default=False),
}
assert set(RULES) == {o.key for o in ORGANS}, "every catalogue organ needs a post-processing rule"
#: The organs whose axial extent bounds another organ's rule: the six anchor organs and the spinal cord.
LEVEL_ORGANS = frozenset(anchor for r in RULES.values() for anchor in r.anchors)


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
    keep = (sizes * voxel_ml >= rule.min_component_ml) & (sizes >= rule.min_component_share * sizes.max())
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


def vote_slices(window_mm: float, slice_mm: float) -> int:
    """The odd number of slices nearest to `window_mm` at this slice thickness (1: no vote)."""
    if window_mm <= 0 or slice_mm <= 0:
        return 1
    return 2 * max(0, int(round((window_mm / slice_mm - 1) / 2))) + 1


def vote_along_z(mask: np.ndarray, slices: int) -> np.ndarray:
    """Each voxel set where most of the `slices` (odd) slices centred on it along axis 0 are set; beyond the
    volume's ends the end slice counts again. Only the mask's box, grown by half the window along axis 0, can
    change: elsewhere no slice of the window is set."""
    if slices <= 1 or not mask.any():
        return mask
    half = slices // 2
    first, end = bounding_box(mask)
    box = (slice(max(first[0] - half, 0), min(end[0] + half, mask.shape[0])),
           *(slice(a, b) for a, b in zip(first[1:], end[1:])))
    counts = ndimage.uniform_filter1d(mask[box].astype(np.float32), slices, axis=0, mode="nearest") * slices
    out = mask.copy()
    out[box] = counts > half + 0.5  # more than half of the slices (counts are whole numbers up to rounding)
    return out


def rule(key: str) -> Rule:
    """The organ's rule (frozen), e.g. for listing its anchors or judging a mask against it."""
    return RULES[key]


def clean_organ(key: str, mask: np.ndarray, voxel_ml: float) -> np.ndarray:
    """The organ's canonical mask cleaned by its rule (components, holes); see `clean_components`."""
    return clean_components(mask, RULES[key], voxel_ml)


def within_window(mask: np.ndarray, window: tuple[int, int] | None) -> np.ndarray:
    """The canonical mask with the slices outside the inclusive window (lo, hi) emptied; the mask itself for None."""
    if window is None:
        return mask
    lo, hi = window
    out = mask.copy()
    out[:max(lo, 0)] = False
    if hi + 1 < out.shape[0]:
        out[max(hi + 1, 0):] = False
    return out


def anchor_window(key: str, extents: dict[str, tuple[int, int] | None], slice_mm: float,
                  n_slices: int) -> tuple[tuple[int, int], list[str]]:
    """The slice range [lo, hi] the organ's rule allows given the anchors' (bottom, top) extents, whether or
    not its box is switched on, and the anchors that were missing (their bounds are left open)."""
    lo, hi, missing = 0, n_slices - 1, []
    for lv in RULES[key].below:
        z = level_slice(lv, extents, slice_mm)
        if z is not None:
            hi = min(hi, z)
    for lv in RULES[key].above:
        z = level_slice(lv, extents, slice_mm)
        if z is not None:
            lo = max(lo, z)
    missing += [lv.anchor for lv in RULES[key].below + RULES[key].above if extents.get(lv.anchor) is None]
    return (lo, hi), missing


def level_slice(level: Level, extents: dict[str, tuple[int, int] | None], slice_mm: float) -> int | None:
    """The canonical slice of an axial level given the anchors' (bottom, top) extents; None when its anchor is
    missing."""
    extent = extents.get(level.anchor)
    if extent is None:
        return None
    return (extent[1] if level.edge == "top" else extent[0]) + int(round(level.margin_mm / slice_mm))


def reach_down(mask: np.ndarray, level: int | None, reach_mm: float, slice_mm: float) -> np.ndarray:
    """The canonical mask with its lowest slice repeated down to the slice above `level` where it ends at most
    `reach_mm` (whole slices) above that slice; the mask itself otherwise."""
    if level is None or not mask.any():
        return mask
    lowest = int(np.flatnonzero(mask.any(axis=(1, 2)))[0])
    if not 0 < lowest - (level + 1) <= int(reach_mm / slice_mm):
        return mask
    out = mask.copy()
    out[max(level + 1, 0):lowest] = mask[lowest]
    return out


class AnchorRules:
    """The anchor policy of one run: which organs' boxes apply, the anchors they need, where they may lie.

    `switches` turns single organs' boxes on or off (else each rule's default); `enabled=False` (a run without
    post-processing) turns every box off. Extents are (bottom, top) canonical slice indices of the anchors
    found so far (None: not found); windows are inclusive (lo, hi) canonical slice ranges.
    """

    def __init__(self, switches: dict[str, bool] | None = None, enabled: bool = True) -> None:
        self.switches = dict(switches or {})
        self.enabled = enabled

    def applies(self, key: str) -> bool:
        """Whether the organ's anchor box is applied: the explicit switch, else the rule's default."""
        return self.enabled and self.switches.get(key, RULES[key].anchors_by_default)

    def needs(self, key: str) -> tuple[str, ...]:
        """The anchors the organ's box uses in this run; none when the box does not apply."""
        return RULES[key].anchors if self.applies(key) else ()

    def required(self, organs: list[str]) -> list[str]:
        """Anchor organs the chosen organs' boxes need but that were not chosen."""
        needed: list[str] = []
        for key in organs:
            needed += [a for a in self.needs(key) if a not in organs and a not in needed]
        return needed

    def order(self, organs: list[str]) -> list[str]:
        """The organs in the order to run them: each after the chosen anchors its box needs, so that its search and
        its components are bounded by them; where anchors need each other (lungs and kidneys) the earlier goes first."""
        pending, done = list(organs), []
        while pending:
            ready = [k for k in pending if set(self.needs(k)) & set(organs) <= set(done) | {k}]
            done.append((ready or pending)[0])
            pending.remove(done[-1])
        return done

    def window(self, key: str, extents: dict[str, tuple[int, int] | None], slice_mm: float,
               n_slices: int) -> tuple[tuple[int, int] | None, list[str]]:
        """The slice range the organ may occupy given the anchors found (None when its box does not apply), and
        the anchors it needs that were missing (their bounds are left open)."""
        return anchor_window(key, extents, slice_mm, n_slices) if self.applies(key) else (None, [])

    def apply(self, key: str, mask: np.ndarray, extents: dict[str, tuple[int, int] | None],
              slice_mm: float) -> tuple[np.ndarray, list[str]]:
        """The organ's canonical mask with the slices outside its window zeroed and, for an organ that continues
        another (`Rule.reaches`), its lowest slice reaching down to it (the mask itself when its box does not
        apply); and the anchors that were missing."""
        window, missing = self.window(key, extents, slice_mm, mask.shape[0])
        boxed, reaches = within_window(mask, window), RULES[key].reaches
        if window is not None and reaches is not None:
            boxed = reach_down(boxed, level_slice(reaches, extents, slice_mm), RULES[key].reach_mm, slice_mm)
        return boxed, missing

    def clean(self, key: str, mask: np.ndarray, voxel_ml: float, slice_mm: float, vote_mm: float = 0.0
              ) -> np.ndarray:
        """The organ's canonical mask cleaned by its rule (`clean_organ`), then voted along the body axis over
        `vote_mm` (the model's, `vote_along_z`); the mask itself in a run without post-processing."""
        if not self.enabled:
            return mask
        return vote_along_z(clean_organ(key, mask, voxel_ml), vote_slices(vote_mm, slice_mm))
