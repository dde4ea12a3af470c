"""Organ masks to export, read from an OrganSeg output folder, a masks folder or a multi-label map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import organ, organ_by_label
from organseg.dicom_series import Series
from organseg.errors import InputError
from organseg.export.source import check_on_grid
from organseg.io import IMAGE_SUFFIXES


def load_masks(seg: str | Path, series: Series, organs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Organ key -> (z, y, x) bool mask on the series' grid, from one of:

    - an OrganSeg output folder (its `masks/` folder is used: it keeps overlapping organs),
    - a folder of masks named after catalogue organs (`liver.nii.gz`, `spleen.nrrd`, ...),
    - a multi-label image file with catalogue label values (as `segmentation.nii.gz`).

    `organs` keeps only these organ keys.
    """
    seg = Path(seg)
    if not seg.exists():
        raise InputError(f"{seg}: no such file or folder")
    masks = _from_folder(seg, series) if seg.is_dir() else _from_label_map(seg, series)
    if organs is not None:
        missing = [k for k in organs if k not in masks]
        if missing:
            raise InputError(f"{seg}: has no mask for {', '.join(missing)}; it has {', '.join(masks) or 'none'}")
        masks = {k: masks[k] for k in organs}
    if not masks:
        raise InputError(f"{seg}: holds no organ masks")
    return masks


def _read(path: Path, series: Series) -> np.ndarray:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"{path}: cannot read the image") from None
    check_on_grid(image, series, path)
    return sitk.GetArrayFromImage(image)


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


def _from_label_map(path: Path, series: Series) -> dict[str, np.ndarray]:
    labels = _read(path, series)
    values = [int(v) for v in np.unique(labels) if v != 0]
    try:
        return {organ_by_label(v).key: labels == v for v in values}
    except KeyError as err:
        raise InputError(f"{path}: label value {err} is not a catalogue organ label (1-23); "
                         "give an OrganSeg label map or a folder of organ masks") from None
