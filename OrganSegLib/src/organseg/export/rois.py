"""The ROIs (RTSTRUCT) and segments (DICOM SEG) of an export: one per organ, a paired organ's right and left
parts apart (`organseg.method.sides`, on the CT's own body midline), named by a `RoiNames` scheme."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from organseg.catalogue import Part, organ
from organseg.ct.dicom_series import Series, read_regular
from organseg.errors import InputError
from organseg.export.roi_names import RoiNames
from organseg.export.source import array_on_series_grid, present_masks
from organseg.method.sides import SideSplitter


@dataclass(frozen=True)
class Roi:
    """One exported structure: what it is, its name and its (z, y, x) mask on the series' grid."""

    number: int  #: ROI / segment number, from 1 in catalogue order
    part: Part
    name: str
    mask: np.ndarray


def export_rois(masks: Mapping[str, np.ndarray], series: Series, names: RoiNames,
                what: str) -> tuple[list[Roi], list[str]]:
    """ROIs of the non-empty masks in catalogue order, and notes for the user (left-out organs, a pair found on
    one side only). `what` names the file in the notes ("RTSTRUCT", "DICOM SEG")."""
    names.check_covers(organ(k) for k in masks)
    notes: list[str] = []
    parts = []
    splitter = None
    for o, mask in present_masks(masks, what, notes):
        if not o.paired:
            parts.append((o.part(None), mask))
            continue
        splitter = splitter or _splitter(series)
        found = [(o.part(side), m) for side, m in zip(("right", "left"), splitter.split(mask)) if m.any()]
        if len(found) == 1:
            notes.append(f"{o.display_name}: found on the patient's {found[0][0].side} only; exported as "
                         f"{names.name(found[0][0])} alone")
        parts += found
    if not parts:
        raise InputError(f"{series.folder}: every organ mask is empty; nothing to write")
    rois = [Roi(i, part, names.name(part), mask) for i, (part, mask) in enumerate(parts, start=1)]
    return rois, notes


def _splitter(series: Series) -> SideSplitter:
    """Sides on the body midline of the series' own CT (read once, only when a paired organ is exported)."""
    return SideSplitter.of_ct(series.grid(), array_on_series_grid(read_regular(series), series, series.folder))
