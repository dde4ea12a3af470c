"""Plausibility flags: short, stable codes that say when an organ mask cannot be right, each with a one-line reason.

Nobody looks at every mask of a cohort, so a wrong mask must say so itself. Each mask is checked against what
OrganSeg knows without a reference: the catalogue's adult volume range, tissue HU range and body side; the body
contour; the axial window the anchor rules allow, from the anchor organs of the same result; the image's edges; both
sides of a paired organ.
Flags never change a mask. The thresholds were set on the real CTs (Testing/benchmarks/plausibility_calibration.py) and
are listed with the volume sources in the README ("Plausibility flags").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from organseg.catalogue import HU_FATTY, HU_SOFT, PAIRED, Organ, organ
from organseg.ct.orientation import Reorientation
from organseg.masks import axial_extent, bounding_box
from organseg.method import postprocess as pp
from organseg.method.body import BODY_THRESHOLD_HU, body_mask
from organseg.method.sides import SideSplitter

#: Every code a check can give, in report order. Codes are stable: scripts and tables select on them.
CODES = ("not_found", "cut_by_fov", "volume_low", "volume_high", "outside_body", "position", "fragmented",
         "hu_out_of_range", "one_side")
OUTSIDE_BODY_MAX = 0.05  #: largest fraction of a mask outside the body contour
MIN_BODY_MM2 = 1000.0  #: a slice's body contour counts from 10 cm2 (a neck is about 100 cm2)
OUTSIDE_WINDOW_MAX = 0.10  #: largest fraction of a mask outside the axial window of its anchor rule
LARGEST_PARTS_MIN = 0.80  #: smallest fraction of a mask in its largest part(s) (as many as its rule keeps)
SIDE_TOLERANCE_MM = 10.0  #: how far a lateral organ's centre may lie across the body midline
DENSE_HU = 300.0  #: above this a voxel is bone, calcification, metal or dense contrast
DENSE_MAX = 0.05  #: largest fraction of dense voxels in soft tissue (catalogue HU_SOFT and HU_FATTY organs)


@dataclass(frozen=True)
class Flag:
    """One finding: a stable code and a one-line reason with the measured value."""

    code: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class Measures:
    """What the checks measure on one mask; fractions are of the mask's voxels, NaN where not measured."""

    voxels: int
    volume_ml: float
    cut_by_fov: bool  #: the mask touches a face of the image (first/last slice or in-plane edge)
    outside_body: float
    median_hu: float
    dense: float  #: fraction of voxels above DENSE_HU
    largest_parts: float  #: fraction in the largest components (26-connected), as many as the rule keeps
    outside_window: float  #: fraction outside the anchor window; NaN when no anchor bounds it
    side_mm: float  #: centre minus body midline, positive toward the patient's left; NaN for non-lateral organs
    expected: bool  #: the anchors bound the organ's window on both sides inside the image: it should be there
    window_mm: tuple[float, float] | None  #: anchor window in mm above the most inferior slice, for the reasons
    side_voxels: tuple[int, int] | None = None  #: a pair's (right, left) voxels (organseg.method.sides); else None


class Scan:
    """One CT in the canonical (S, P, L) layout, with its body contour computed once per slice as needed."""

    def __init__(self, reference: sitk.Image, ct: np.ndarray, body: np.ndarray | None = None) -> None:
        self.orient = Reorientation.of(reference)
        self.ct = self.orient.to_canonical(ct)
        self.spacing = self.orient.spacing(reference)  #: (S, P, L) mm
        self._body = np.zeros(self.ct.shape, dtype=bool) if body is None else body  #: canonical body contour
        self._done = np.full(self.ct.shape[0], body is not None)

    def canonical(self, mask: np.ndarray) -> np.ndarray:
        return self.orient.to_canonical(mask)

    def body(self, lo: int, hi: int) -> np.ndarray:
        """Body contour of slices lo..hi-1 (per-slice image processing, so slices can be computed apart)."""
        todo = np.flatnonzero(~self._done[lo:hi]) + lo
        if todo.size:
            a, b = int(todo[0]), int(todo[-1]) + 1
            self._body[a:b] = body_mask(np.asarray(self.ct[a:b]))
            self._done[a:b] = True
        return self._body[lo:hi]


def holds_gas(o: Organ) -> bool:
    """Whether air belongs in the organ's mask: lungs, bowel, stomach, larynx (their HU range reaches air), and
    the esophagus, whose lumen holds air (more than 5% of the voxels in 24 of 71 OpenKBP manual contours)."""
    return o.median_hu[0] <= BODY_THRESHOLD_HU or o.key == "esophagus"


def measure(o: Organ, mask: np.ndarray, scan: Scan, extents: dict[str, tuple[int, int] | None],
            splitter: SideSplitter | None = None) -> Measures:
    """Measures of a canonical mask; `extents` are the axial extents of the anchor organs in the result;
    `splitter` (on the scan's body) splits a paired organ into its sides."""
    n = scan.ct.shape[0]
    slice_mm = scan.spacing[0]
    rule = pp.rule(o.key)
    (lo, hi), missing = pp.anchor_window(o.key, extents, slice_mm, n)
    bounded = bool(rule.below or rule.above) and len(missing) < len(rule.below + rule.above)
    expected = bool(rule.below and rule.above and not missing and 0 < lo <= hi < n - 1)
    window_mm = (lo * slice_mm, hi * slice_mm) if bounded else None
    voxels = int(np.count_nonzero(mask))
    if not voxels:
        return Measures(0, 0.0, False, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, expected,
                        window_mm)
    first, end = bounding_box(mask)
    box = tuple(slice(a, b) for a, b in zip(first, end))
    crop = np.asarray(mask[box], dtype=bool)
    cut = any(a == 0 or b == size for a, b, size in zip(first, end, mask.shape))
    slab = scan.body(first[0], end[0])
    hu = np.asarray(scan.ct[box])
    # Outside: beyond the contour of a slice that has a body-sized one, or air. A slice whose contour is tiny or
    # missing though it holds tissue is a CT stored only around structures (OpenKBP), not a mask outside the body.
    # Air inside the contour (lung, bowel gas) is outside any organ that holds no gas: a mask of air is not tissue.
    sized = slab.sum(axis=(1, 2)) * scan.spacing[1] * scan.spacing[2] >= MIN_BODY_MM2
    air = hu < BODY_THRESHOLD_HU
    outside = ~slab[:, box[1], box[2]] & (sized[:, None, None] | air)
    if not holds_gas(o):
        outside |= air
    outside_body = np.count_nonzero(crop & outside) / voxels
    values = hu[crop]
    median_hu = float(np.median(values))
    dense = np.count_nonzero(values > DENSE_HU) / voxels
    parts = rule.components or (1 if rule.min_component_share else 0)  # a tube kept in pieces: is it broken?
    largest = math.nan
    if parts:
        labels, count = ndimage.label(crop, structure=np.ones((3, 3, 3), dtype=bool))
        sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
        largest = float(sizes[:parts].sum() / voxels) if count else math.nan
    zs = np.arange(first[0], end[0])
    outside_window = math.nan
    if bounded:
        per_slice = crop.sum(axis=(1, 2))
        outside_window = float(per_slice[(zs < lo) | (zs > hi)].sum() / voxels)
    side_mm = math.nan
    if o.side:
        body_cols = np.nonzero(slab)[2]
        organ_cols = np.nonzero(crop)[2] + first[2]
        if body_cols.size:
            side_mm = float(organ_cols.mean() - body_cols.mean()) * scan.spacing[2]
    volume = voxels * float(np.prod(scan.spacing)) / 1000.0
    side_voxels = None
    if o.paired and splitter is not None:
        side_voxels = tuple(int(np.count_nonzero(m)) for m in splitter.split_canonical(mask))
    return Measures(voxels, volume, cut, float(outside_body), median_hu, float(dense), largest, outside_window,
                    side_mm, expected, window_mm, side_voxels)  # type: ignore[arg-type]


def flags_of(o: Organ, m: Measures) -> list[Flag]:
    """The flags of one organ's measures, in CODES order."""
    if not m.voxels:
        if m.expected:
            return [Flag("not_found", f"empty, though its anchor organs place it {m.window_mm[0]:.0f}-"
                                      f"{m.window_mm[1]:.0f} mm above the lowest slice")]
        return []
    found: list[Flag] = []
    if m.cut_by_fov:
        found.append(Flag("cut_by_fov", f"touches the edge of the image: {m.volume_ml:.1f} mL is a lower bound "
                                        "and the volume range is not checked"))
    elif o.volume_ml is not None:
        low, high = o.volume_ml
        if m.volume_ml < low:
            found.append(Flag("volume_low", f"{m.volume_ml:.1f} mL, below the adult range {low:g}-{high:g} mL"))
        elif m.volume_ml > high:
            found.append(Flag("volume_high", f"{m.volume_ml:.1f} mL, above the adult range {low:g}-{high:g} mL"))
    if m.outside_body > OUTSIDE_BODY_MAX:
        found.append(Flag("outside_body", f"{100 * m.outside_body:.0f}% of the mask lies outside the body contour"))
    if m.outside_window > OUTSIDE_WINDOW_MAX:
        low_mm, high_mm = m.window_mm
        found.append(Flag("position", f"{100 * m.outside_window:.0f}% of the mask lies outside the axial window its "
                                      f"anchor organs allow ({low_mm:.0f}-{high_mm:.0f} mm above the lowest slice)"))
    wrong = {"right": 1.0, "left": -1.0}.get(o.side or "", 0.0) * m.side_mm
    if wrong > SIDE_TOLERANCE_MM and not (m.outside_window > OUTSIDE_WINDOW_MAX):  # one flag per code
        found.append(Flag("position", f"its centre lies {wrong:.0f} mm on the patient's "
                                      f"{'left' if o.side == 'right' else 'right'}; the {o.key} lies on the {o.side}"))
    if m.largest_parts < LARGEST_PARTS_MIN:
        found.append(Flag("fragmented", f"its largest part{'s hold' if pp.rule(o.key).components > 1 else ' holds'} "
                                        f"only {100 * m.largest_parts:.0f}% of the mask"))
    low_hu, high_hu = o.median_hu
    if not low_hu <= m.median_hu <= high_hu:
        found.append(Flag("hu_out_of_range", f"median {m.median_hu:.0f} HU, outside {low_hu:g} to {high_hu:g} HU "
                                             f"for this tissue"))
    elif o.median_hu in (HU_SOFT, HU_FATTY) and m.dense > DENSE_MAX:
        found.append(Flag("hu_out_of_range", f"{100 * m.dense:.0f}% of its voxels are above {DENSE_HU:g} HU (bone "
                                             "or metal), not soft tissue"))
    if m.side_voxels is not None and 0 in m.side_voxels:
        side, other = ("right", "left") if m.side_voxels[0] else ("left", "right")
        found.append(Flag("one_side", f"found on the patient's {side} only: the {other} {PAIRED[o.key]['singular']} "
                                      "is missing, removed or outside the scan; exported as one ROI"))
    return found


def check_masks(reference: sitk.Image, ct: np.ndarray, masks: Mapping[str, Callable[[], np.ndarray]],
                body: np.ndarray | None = None) -> dict[str, list[Flag]]:
    """Flags of each organ of one result: `masks` maps organ keys to getters of (z, y, x) masks on the CT's grid;
    `body`: the CT's canonical body mask where the caller has it.

    Getters are called one organ at a time (anchors twice), so a large CT never holds all full masks at once.
    """
    scan = Scan(reference, ct, body)
    return check_canonical(scan, {key: (lambda get=get: scan.canonical(get())) for key, get in masks.items()},
                           SideSplitter(reference, scan.body))


def check_canonical(scan: Scan, masks: Mapping[str, Callable[[], np.ndarray]],
                    splitter: SideSplitter | None = None) -> dict[str, list[Flag]]:
    """`check_masks` for getters of canonical (S, P, L) masks, as the segmenter holds them; `splitter` splits
    paired organs into their sides."""
    extents = {key: axial_extent(get()) for key, get in masks.items() if key in pp.LEVEL_ORGANS}
    return {key: flags_of(organ(key), measure(organ(key), get(), scan, extents, splitter))
            for key, get in masks.items()}


def flagged(rows: list[dict]) -> dict[str, list[dict]]:
    """organ -> its flags ({code, reason}), for the statistics rows that have any."""
    return {row["organ"]: row["flags"] for row in rows if row.get("flags")}


def warning_lines(rows: list[dict]) -> list[str]:
    """One console line per flagged organ of a result's statistics rows."""
    return [f"{key} needs a look: " + "; ".join(f"{f['code']} ({f['reason']})" for f in flags)
            for key, flags in flagged(rows).items()]
