"""Organ masks to export, read from an OrganSeg output folder, a masks folder or a multi-label map.

A label map's values mean nothing without their names: they come from `--labels` (id -> name, as
TotalSegmentator's JSON), or from the `labels.json` OrganSeg writes beside its own map. A map with neither
is refused rather than guessed (a TotalSegmentator map holding 1 and 5 is spleen and liver, not liver and
kidneys).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import ORGANS, organ
from organseg.ct.dicom_series import Series
from organseg.ct.labelmaps import map_label_names
from organseg.ct.read import IMAGE_SUFFIXES
from organseg.errors import InputError
from organseg.export.source import array_on_series_grid

log = logging.getLogger(__name__)


def load_masks(seg: str | Path, series: Series, organs: list[str] | None = None,
               labels: str | Path | None = None) -> dict[str, np.ndarray]:
    """Organ key -> (z, y, x) bool mask on the series' grid, from one of:

    - an OrganSeg output folder (its `masks/` folder is used: it keeps overlapping organs),
    - a folder of masks named after catalogue organs (`liver.nii.gz`, `spleen.nrrd`, ...),
    - a multi-label image file, with `labels` (id -> name JSON) or OrganSeg's `labels.json` beside it.

    `organs` keeps only these organ keys. Empty masks are left out with a warning; all empty is an error.
    """
    seg = Path(seg)
    if not seg.exists():
        raise InputError(f"{seg}: no such file or folder")
    masks = _from_folder(seg, series) if seg.is_dir() else _from_label_map(seg, series, labels)
    if organs is not None:
        missing = [k for k in organs if k not in masks]
        if missing:
            raise InputError(f"{seg}: has no mask for {', '.join(missing)}; it has {', '.join(masks) or 'none'}")
        masks = {k: masks[k] for k in organs}
    if not masks:
        raise InputError(f"{seg}: holds no organ masks")
    empty = [k for k, m in masks.items() if not m.any()]
    if len(empty) == len(masks):
        raise InputError(f"{seg}: every mask is empty ({', '.join(empty)}); there is nothing to export")
    if empty:
        log.warning(f"{seg}: left out empty masks: {', '.join(empty)}")
    return {k: m for k, m in masks.items() if k not in empty}


def _read(path: Path, series: Series) -> np.ndarray:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"{path}: cannot read the image") from None
    return array_on_series_grid(image, series, path)


def _from_folder(folder: Path, series: Series) -> dict[str, np.ndarray]:
    if (folder / "masks").is_dir():
        folder = folder / "masks"
    masks = {}
    for path in sorted(folder.iterdir()):
        suffix = next((s for s in IMAGE_SUFFIXES if path.name.lower().endswith(s)), None)
        if suffix is None or path.name.startswith("."):
            continue
        try:
            key = organ(path.name[: -len(suffix)]).key
        except InputError as err:
            raise InputError(f"{path}: not named after a catalogue organ ({err})") from None
        masks[key] = _read(path, series) > 0
    return masks


def _from_label_map(path: Path, series: Series, labels: str | Path | None) -> dict[str, np.ndarray]:
    names = map_label_names(path, labels)
    array = _read(path, series)
    present = {int(v) for v in np.unique(array) if v != 0}
    unknown = sorted(present - set(names))
    if unknown:
        raise InputError(f"{path}: label values {unknown[:8]} have no name in "
                         f"{labels or path.parent / 'labels.json'}; is it the labels file of this map?")
    masks = {}
    for o in ORGANS:
        ids = [i for i, name in names.items() if i in present and (name == o.key or name in o.totalsegmentator_names)]
        if ids:
            masks[o.key] = np.isin(array, ids)
    if not masks:
        raise InputError(f"{path}: none of its labels ({', '.join(sorted({names[v] for v in present}))[:200]}) "
                         "is a catalogue organ")
    return masks
