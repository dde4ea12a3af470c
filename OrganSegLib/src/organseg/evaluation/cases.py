"""Finding evaluation cases: predicted masks (result folders or a live segmentation) and their references.

A mask source is a result folder of `organseg segment` (`masks/<organ>.nii.gz` or `segmentation.nii.gz`),
a folder of `<organ>.nii.gz` masks, or a label-map file. A label map's ids are named by a labels JSON
(TotalSegmentator style) or by the `labels.json` OrganSeg writes beside its own map; without either it is
refused, not guessed. A folder holding several cases has one such entry per case (sub-folder `<case>/` or
file `<case>.nii.gz`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from organseg.catalogue import ORGANS, Organ
from organseg.ct.labelmaps import map_label_names, organ_label_ids, read_image, select_labels
from organseg.ct.read import IMAGE_SUFFIXES, image_stem
from organseg.errors import InputError

#: organ -> its mask on some grid, or None when the source has no such organ.
MaskGetter = Callable[[Organ], "sitk.Image | None"]
#: organ -> its plausibility flag codes, or None when the prediction recorded none (e.g. a plain mask folder).
FlagGetter = Callable[[Organ], "list[str] | None"]


def _image_file(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{s}" for s in IMAGE_SUFFIXES if (folder / f"{stem}{s}").is_file()), None)


def is_mask_source(path: Path) -> bool:
    """A single case: a label-map file, a result folder or a folder of organ masks."""
    if path.is_file():
        return True
    return (path / "masks").is_dir() or _image_file(path, "segmentation") is not None or \
        any(_image_file(path, o.key) for o in ORGANS)


@dataclass
class MaskSource:
    """Organ masks of one case from a file or folder (see the module doc); label maps are read once."""

    path: Path
    label_names: dict[int, str] | None = None
    _map: sitk.Image | None = field(default=None, repr=False)
    _stats: dict[str, dict] | None = field(default=None, repr=False)

    def label_map(self) -> sitk.Image | None:
        if self._map is None:
            file = self.path if self.path.is_file() else _image_file(self.path, "segmentation")
            if file is not None:
                if self.label_names is None:
                    self.label_names = map_label_names(file, option="--ref-labels")
                self._map = read_image(file, "label map")
        return self._map

    def organs(self) -> list[Organ]:
        """Organs with a mask file, else (label map) every catalogue organ the map has labels for."""
        if self.path.is_dir():
            found = [o for o in ORGANS if self.mask_file(o)]
            if found:
                return found
        label_map = self.label_map()
        if label_map is None:
            return []
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(sitk.Cast(label_map, sitk.sitkUInt32))
        present = set(stats.GetLabels())
        return [o for o in ORGANS if self._ids(o, strict=False) & present]

    def mask_file(self, organ: Organ) -> Path | None:
        return (_image_file(self.path / "masks", organ.key) if (self.path / "masks").is_dir() else None) \
            or _image_file(self.path, organ.key)

    def _ids(self, organ: Organ, strict: bool = True) -> set[int]:
        try:
            return set(organ_label_ids(organ, self.label_names, str(self.path)))
        except InputError:
            if strict:
                raise
            return set()

    def flags(self, organ: Organ) -> list[str] | None:
        """Plausibility flag codes of the organ in a result folder's stats.json; None where none were recorded."""
        if self._stats is None:
            try:
                self._stats = {r["organ"]: r for r in json.loads((self.path / "stats.json").read_text())["organs"]}
            except (OSError, ValueError, KeyError, TypeError):
                self._stats = {}
        row = self._stats.get(organ.key)
        return None if row is None or "flags" not in row else [f["code"] for f in row["flags"]]

    def __call__(self, organ: Organ) -> sitk.Image | None:
        if self.path.is_dir() and (file := self.mask_file(organ)) is not None:
            return sitk.Cast(read_image(file, f"{organ.key} mask") != 0, sitk.sitkUInt8)
        label_map = self.label_map()
        return None if label_map is None else select_labels(label_map, tuple(self._ids(organ)))


def case_sources(path: Path, label_names: dict[int, str] | None = None,
                 single_name: str | None = None) -> dict[str, MaskSource]:
    """case name -> mask source of a file or folder holding one case or one entry per case."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if is_mask_source(path):
        return {single_name or image_stem(path): MaskSource(path, label_names)}
    cases = {image_stem(p): MaskSource(p, label_names) for p in sorted(path.iterdir())
             if not p.name.startswith(".") and (p.is_dir() and is_mask_source(p)
                                                or p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))}
    if not cases:
        raise InputError(f"{path}: holds no masks, label maps or result folders of `organseg segment`")
    return cases


def match_references(predicted: list[str], ref: Path, label_names: dict[int, str] | None) -> dict[str, MaskSource]:
    """The reference of each predicted case: the single reference, or the entry with the case's name."""
    if ref.exists() and is_mask_source(ref):
        if len(predicted) > 1:
            raise InputError(f"{ref}: one reference for {len(predicted)} predicted cases; give a folder with "
                             "one entry (<case>/ or <case>.nii.gz) per case")
        return {predicted[0]: MaskSource(ref, label_names)}
    refs = case_sources(ref, label_names)
    missing = [c for c in predicted if c not in refs]
    if missing:
        raise InputError(f"{ref}: no reference for case(s) {', '.join(missing)} (found {', '.join(refs)})")
    return {c: refs[c] for c in predicted}
