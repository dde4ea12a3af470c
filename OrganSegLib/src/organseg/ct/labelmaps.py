"""Organ masks out of label maps: catalogue label values, explicit ids or TotalSegmentator names.

Training reads its reference masks this way, evaluation its references: a labels JSON names the ids, an
organ is the union of its ids, and unreadable files get a one-line error.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import Organ
from organseg.errors import InputError


def read_label_names(path: str | Path) -> dict[int, str]:
    """A labels JSON (label id -> structure name, as TotalSegmentator's) as {id: name}."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        return {int(k): str(v) for k, v in raw.items()}
    except FileNotFoundError:
        raise InputError(f"{path}: no such labels file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, ValueError) as err:
        raise InputError(f"{path}: not a labels JSON of the form {{\"1\": \"spleen\", ...}} ({err})") from None


def map_label_names(path: str | Path, labels: str | Path | None = None, option: str = "--labels") -> dict[int, str]:
    """Label id -> name of a label map: from the `labels` JSON, else from the `labels.json` OrganSeg writes beside
    its own map. A map with neither is refused: its values would only be guessed (TotalSegmentator's 1 and 5
    are spleen and liver, OrganSeg's are liver and kidneys)."""
    if labels is not None:
        return read_label_names(labels)
    path = Path(path)
    try:
        rows = json.loads((path.parent / "labels.json").read_text())
        return {int(row["label"]): str(row["organ"]) for row in rows}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise InputError(f"{path}: a label map's values mean nothing without their names, and there is no OrganSeg "
                         f"labels.json beside it; pass {option} LABELS.json (id -> name, as TotalSegmentator's) or "
                         "give the OrganSeg result folder") from None


def organ_label_ids(organ: Organ, names: dict[int, str] | None, source: str = "labels") -> tuple[int, ...]:
    """Label ids that make up the organ: labels named by one of `Organ.totalsegmentator_names` or by the organ's
    key (an imported data set's whole-organ label) when names are given, else the catalogue label value."""
    if names is None:
        return (organ.label,)
    ids = tuple(sorted(i for i, name in names.items() if name in organ.totalsegmentator_names or name == organ.key))
    if not ids:
        raise InputError(f"{source}: no label of '{organ.key}' (looked for "
                         f"{', '.join(organ.totalsegmentator_names) or 'no TotalSegmentator names'})")
    return ids


def select_labels(label_map: sitk.Image, ids: tuple[int, ...]) -> sitk.Image:
    """UInt8 mask (1 where the map has one of `ids`) with the map's geometry."""
    array = np.isin(sitk.GetArrayViewFromImage(label_map), ids).astype(np.uint8)
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(label_map)
    return mask


def read_image(path: str | Path, what: str) -> sitk.Image:
    """Read a mask or label map file with a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what} file")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"{path}: cannot read the {what} (corrupt or not an image)") from None
