"""What an import produces (cases, skipped cases, the label vocabulary) and the per-case checks both layouts
share: the image is a CT, a label file lies on its grid, the facts of a case are cached next to the CSV.

Checks raise `Skip` with the reason; the importer records it and goes on with the next case.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from organseg.atomic import atomic_file
from organseg.ct.checks import check_ct
from organseg.ct.grid import same_grid
from organseg.errors import InputError

SPLITS = ("train", "validation", "test")


class Skip(Exception):
    """A case cannot be used; the message says why (one line)."""


@dataclass
class Case:
    """One usable case: a CT, its label map (ids named by `Imported.labels`) and what it labels."""

    name: str
    image: Path
    mask: Path
    split: str  #: train, validation, test, or "" where the data set defines no split
    labelled: list[str]  #: organ keys whose masks are complete in this case
    present: list[str]  #: organ keys with at least one voxel
    spacing: tuple[float, float, float]  #: x, y, z in mm


@dataclass
class Imported:
    """The result of importing a data set folder."""

    layout: str
    source: str
    labels: dict[int, str]  #: label id -> vocabulary name (see `organseg.datasets.synonyms`)
    cases: list[Case] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: (case, reason)
    unknown: list[str] = field(default_factory=list)  #: label names that map to no organ
    notes: list[str] = field(default_factory=list)


def header(path: Path, what: str) -> sitk.ImageFileReader:
    """The image's header (size, spacing, origin, direction) without its voxels."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise Skip(f"{what} {path.name} cannot be read (corrupt or not an image)") from None
    return reader


def check_grid(label: sitk.ImageFileReader | sitk.Image, ct: sitk.Image, what: str) -> None:
    """Skip unless the label file has the CT's voxel grid (same size, spacing, origin and direction)."""
    if label.GetDimension() != 3 or tuple(label.GetSize()) != tuple(ct.GetSize()):
        raise Skip(f"{what} is not on the CT grid (size {tuple(label.GetSize())}, CT {ct.GetSize()})")
    if not same_grid(label, ct):
        raise Skip(f"{what} is not on the CT grid (spacing, origin or direction differ); resample it onto the CT")


def read_checked_ct(path: Path) -> sitk.Image:
    """The CT, or Skip when it is missing, unreadable or not a CT in HU."""
    if not path.is_file():
        raise Skip(f"missing image {path}")
    try:
        image = sitk.ReadImage(str(path))
        check_ct(image, path.name)
    except RuntimeError:
        raise Skip(f"image {path.name} cannot be read (corrupt or not an image)") from None
    except InputError as err:
        raise Skip(f"not a CT: {err}") from None
    return image


def read_voxels(path: Path, what: str) -> np.ndarray:
    """The voxels of a label file, or Skip when it cannot be read."""
    try:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError:
        raise Skip(f"{what} {path.name} cannot be read (corrupt or not an image)") from None


def spacing_of(image: sitk.Image | sitk.ImageFileReader) -> tuple[float, float, float]:
    return tuple(round(float(s), 4) for s in image.GetSpacing())  # type: ignore[return-value]


def _fingerprint(files: list[Path], params: dict) -> dict:
    stats = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(files)]
    return {"files": stats, "params": params}


class Cache:
    """Per-case facts (and materialised label maps) in a folder next to the CSV, reused while the input
    files (size, modification time) and the label vocabulary are unchanged. Every file is written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def map_path(self, case: str) -> Path:
        return self.folder / f"{case}.nii.gz"

    def facts(self, case: str, files: list[Path], params: dict, compute: Callable[[], dict],
              needs_map: bool = False) -> dict:
        """The facts `compute` returns for these inputs; a Skip is cached as well."""
        self.folder.mkdir(parents=True, exist_ok=True)
        sidecar = self.folder / f"{case}.json"
        stamp = _fingerprint(files, params)
        try:
            saved = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("fingerprint") == stamp and (not needs_map or "skip" in saved
                                                  or self.map_path(case).is_file()):
            facts = saved
        else:
            try:
                facts = {"facts": compute()}
            except Skip as reason:
                facts = {"skip": str(reason)}
            with atomic_file(sidecar, ".json") as tmp:
                tmp.write_text(json.dumps({"fingerprint": stamp, **facts}) + "\n")
        if "skip" in facts:
            raise Skip(facts["skip"])
        return facts["facts"]

    def write_labels(self, labels: dict[int, str]) -> Path:
        """The labels JSON (id -> vocabulary name) the CSV's `labels` column points to."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "labels.json"
        text = json.dumps({str(k): v for k, v in sorted(labels.items())}, indent=1) + "\n"
        if not path.is_file() or path.read_text() != text:
            with atomic_file(path, ".json") as tmp:
                tmp.write_text(text)
        return path
