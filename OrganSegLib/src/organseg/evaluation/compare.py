"""Metrics of every case, organ and variant (e.g. without/with post-processing) against the references."""
from __future__ import annotations

from typing import Callable

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import Organ
from organseg.ct.grid import extent, on_grid, overlap
from organseg.errors import InputError
from organseg.evaluation.cases import FlagGetter, MaskGetter
from organseg.evaluation.metrics import NSD_TOLERANCE_MM, organ_metrics

#: Variant names: segmentations without and with post-processing, or a single unnamed prediction.
RAW, POST, PRED = "raw", "post", "pred"


def compare(predictions: dict[str, dict[str, MaskGetter]], references: dict[str, MaskGetter],
            organs: list[Organ], tolerance_mm: float = NSD_TOLERANCE_MM,
            warn: Callable[[str], None] = lambda s: None,
            flags: dict[str, dict[str, FlagGetter]] | None = None) -> list[dict]:
    """Rows (case, organ, variant, metrics..., flags) for each case of `predictions` (case -> variant -> masks).

    `flags` (same layout) gives each prediction's plausibility flag codes; a row's "flags" is the codes joined
    by ';', or None where the prediction recorded none.

    The reference is put onto each prediction's voxel grid (nearest neighbour, physical space) and metrics
    use that grid's spacing. A predicted organ without a mask counts as empty; an organ missing from the
    reference is skipped with a warning.
    """
    rows = []
    for case, variants in predictions.items():
        for organ in organs:
            reference = references[case](organ)
            if reference is None:
                warn(f"{case}: no reference mask of {organ.key}; skipped")
                continue
            for variant, getter in variants.items():
                pred = getter(organ)
                if pred is None:
                    pred = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
                    pred.CopyInformation(reference)
                if not overlap(reference, pred):
                    source = getattr(references[case], "path", case)
                    raise InputError(f"{source}: the reference of {organ.key} does not overlap the prediction: it "
                                     f"covers {_span(reference)} mm, the prediction {_span(pred)} mm (LPS); are "
                                     "they of the same CT?")
                ref = on_grid(reference, pred)
                spacing = tuple(float(s) for s in pred.GetSpacing()[::-1])
                m = organ_metrics(sitk.GetArrayViewFromImage(pred) > 0, sitk.GetArrayViewFromImage(ref) > 0,
                                  spacing, tolerance_mm)
                codes = flags[case][variant](organ) if flags and variant in flags.get(case, {}) else None
                rows.append({"case": case, "organ": organ.key, "variant": variant, **m.as_dict(),
                             "flags": None if codes is None else ";".join(codes)})
    return rows


def _span(image: sitk.Image) -> str:
    lo, hi = extent(image)
    return " x ".join(f"[{a:.0f}, {b:.0f}]" for a, b in zip(lo, hi))


def paired(rows: list[dict], organ: str, metric: str, a: str = RAW, b: str = POST) -> tuple[np.ndarray, np.ndarray]:
    """Values of a metric for variants a and b over the cases that have both (finite), in case order."""
    by_case: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["organ"] == organ and r["variant"] in (a, b):
            by_case.setdefault(r["case"], {})[r["variant"]] = r[metric]
    pairs = [(v[a], v[b]) for v in by_case.values() if a in v and b in v and np.isfinite([v[a], v[b]]).all()]
    arr = np.array(pairs, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]
