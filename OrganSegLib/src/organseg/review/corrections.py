"""Saving a review's corrections: the edited mask beside the original, and a row of training data.

`masks/<organ>_corrected.nii.gz` gets the original's exact grid (its header is copied, so LPS geometry is
untouched); the original is never written. `corrections.csv` (in PATH, one for a whole cohort) is a dataset
CSV as `organseg fine-tune --data` reads it: image, mask (relative to the CSV), source, case, labelled.
Both are written atomically; saving an organ again replaces its corrected mask and keeps its one row.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.atomic import atomic_file
from organseg.errors import InputError, OutputError
from organseg.review.cases import CORRECTED, MASKS

CSV_NAME = "corrections.csv"
COLUMNS = ("image", "mask", "source", "case", "labelled")
SOURCE = "review"  #: the `source` of every row: fine-tune splits per source, and these are one reviewer's


def corrected_path(case_folder: Path, organ_key: str) -> Path:
    return case_folder / MASKS / f"{organ_key}{CORRECTED}.nii.gz"


def write_corrected(case_folder: Path, organ_key: str, mask: np.ndarray, reference: sitk.Image) -> Path:
    """Write a (z, y, x) mask on the reference grid (the CT's) as the organ's corrected mask; returns its path."""
    if mask.shape != reference.GetSize()[::-1]:
        raise InputError(f"{organ_key}: the edited mask has shape {mask.shape}, the CT {reference.GetSize()[::-1]}")
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    path = corrected_path(case_folder, organ_key)
    try:
        with atomic_file(path, ".nii.gz") as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=True)
    except (OSError, RuntimeError) as err:
        raise OutputError(f"{path}: cannot write the corrected mask ({err}); nothing was changed") from None
    return path


def record(root: Path, case: str, organ_key: str, ct: Path, mask: Path) -> Path:
    """Add (or keep) the row of this case's organ in PATH/corrections.csv; returns the CSV's path."""
    path = root / CSV_NAME
    rows: list[dict[str, str]] = []
    if path.exists():
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                if tuple(reader.fieldnames or ()) != COLUMNS:
                    raise OutputError(f"{path}: not a corrections file of `organseg review` (header "
                                      f"{reader.fieldnames}); move it away to save corrections")
                rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise OutputError(f"{path}: cannot read it ({err}); nothing was changed") from None
    name = f"{case}-{organ_key}"
    if not any(row["case"] == name for row in rows):
        rows.append({"image": str(ct), "mask": mask.resolve().relative_to(root.resolve()).as_posix(),
                     "source": SOURCE, "case": name, "labelled": organ_key})
    try:
        with atomic_file(path, ".csv") as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as err:
        raise OutputError(f"{path}: cannot write it ({err}); the corrected mask is saved") from None
    return path
