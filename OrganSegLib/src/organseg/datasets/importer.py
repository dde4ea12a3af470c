"""Import a labelled CT data set folder: detect its layout, check every case, cache what must be made."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from organseg.datasets import nnunet, totalsegmentator
from organseg.datasets.cases import Cache, Imported
from organseg.errors import InputError

LAYOUTS = {"totalsegmentator": totalsegmentator, "nnunet": nnunet}
EXPECTED = ("a TotalSegmentator folder (meta.csv, <id>/ct.nii.gz, <id>/segmentations/*.nii.gz) or an nnU-Net "
            "raw / MSD folder (dataset.json, imagesTr/, labelsTr/)")


def detect_layout(folder: Path) -> str:
    """'totalsegmentator' or 'nnunet', or a one-line error saying what was expected."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    if not any(folder.iterdir()):
        raise InputError(f"{folder}: the folder is empty; expected {EXPECTED}")
    found = [name for name, module in LAYOUTS.items() if module.looks_like(folder)]
    if len(found) != 1:
        what = "both layouts" if found else "neither layout"
        raise InputError(f"{folder}: looks like {what}; expected {EXPECTED} (or pass --format)")
    return found[0]


def cache_folder(csv_path: Path) -> Path:
    """The cache beside the CSV: dataset.csv -> dataset.cache/."""
    stem = csv_path.name[:-len(csv_path.suffix)] if csv_path.suffix else csv_path.name
    return csv_path.with_name(f"{stem}.cache")


def import_dataset(folder: Path, csv_path: Path, layout: str | None = None, extra: dict[str, str] | None = None,
                   progress: Callable[[str], None] = lambda s: None) -> tuple[Imported, Path]:
    """The imported cases and the labels JSON (in the cache) that names the ids of their masks."""
    layout = layout or detect_layout(folder)
    if not LAYOUTS[layout].looks_like(folder):
        raise InputError(f"{folder}: not a {layout} folder; expected {EXPECTED}")
    cache = Cache(cache_folder(csv_path))
    result = LAYOUTS[layout].import_folder(folder, cache, extra or {}, progress)
    return result, cache.write_labels(result.labels)
