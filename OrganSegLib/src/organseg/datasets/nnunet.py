"""The nnU-Net raw / Medical Segmentation Decathlon layout: `DIR/dataset.json`, `imagesTr/<case>_0000.nii.gz`
(MSD: `imagesTr/<case>.nii.gz`, listed under "training"), `labelsTr/<case>.nii.gz`, and where present
`imagesTs/` + `labelsTs/` (labelled test cases: the test split).

Labels come in the v1 form `{"1": "liver"}` or the v2 form `{"liver": 1}` (a region, `[1, 2]`, is the union
of its ids). The label maps are used where they lie; the cache holds only a labels JSON naming the ids in
OrganSeg's vocabulary and each case's facts. Every case is taken as labelled for every organ the
dataset.json labels (nnU-Net's convention).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from organseg.datasets.cases import (Cache, Case, Imported, Skip, check_grid, header, read_checked_ct,
                                    read_voxels, spacing_of)
from organseg.datasets.synonyms import complete_organs, organs_of, vocabulary_name
from organseg.errors import InputError


def looks_like(folder: Path) -> bool:
    return (folder / "dataset.json").is_file()


def _ids(value: object) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) or (isinstance(v, str) and v.isdigit()) for v in values):
        raise ValueError(f"label value {value!r} is not an integer or a list of integers")
    return [int(v) for v in values]


def read_labels(path: Path) -> tuple[dict, dict[str, list[int]]]:
    """dataset.json and its labels as {name: ids} (v1 and v2 forms), background dropped."""
    try:
        meta = json.loads(path.read_text())
        labels = meta["labels"]
        if not isinstance(labels, dict) or not labels:
            raise ValueError("'labels' is not a non-empty object")
        if all(str(k).isdigit() for k in labels):  # v1: {"1": "liver"}
            names = {str(name): [int(k)] for k, name in labels.items()}
        else:  # v2: {"liver": 1} or regions {"kidney": [1, 2]}
            names = {str(name): _ids(value) for name, value in labels.items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise InputError(f"{path}: not an nnU-Net dataset.json with a 'labels' object ({err})") from None
    return meta, {n: [i for i in ids if i != 0] for n, ids in names.items() if [i for i in ids if i != 0]}


def _check_ct_channel(meta: dict, path: Path, notes: list[str]) -> None:
    channels = meta.get("channel_names") or meta.get("modality") or {}
    if not isinstance(channels, dict) or not channels:
        notes.append(f"{path}: names no channel; taking channel 0 as CT")
        return
    first = str(channels.get("0", next(iter(channels.values()))))
    if first.strip().lower() != "ct":
        raise InputError(f"{path}: channel 0 is '{first}', not CT; OrganSeg trains on CT")
    if len(channels) > 1:
        notes.append(f"{path}: {len(channels)} channels; only channel 0 (CT) is used")


def _pairs(folder: Path, meta: dict, ending: str, images: str, labels: str) -> list[tuple[str, Path, Path, str]]:
    """(case, image, label, where) of one image/label folder pair; MSD's "training" list for imagesTr."""
    listed = meta.get("training") if images == "imagesTr" else None
    if isinstance(listed, list) and listed and all(isinstance(e, dict) and "label" in e for e in listed):
        out = []
        for entry in listed:
            label = folder / str(entry["label"])
            case = label.name[:-len(ending)] if label.name.endswith(ending) else label.stem
            image = folder / str(entry.get("image", ""))
            if not image.is_file() or image == folder:
                image = folder / images / f"{case}_0000{ending}"
            out.append((case, image, label, "dataset.json 'training'"))
        return out
    cases = {p.name[:-len(f"_0000{ending}")] for p in (folder / images).glob(f"*_0000{ending}")}
    cases |= {p.name[:-len(ending)] for p in (folder / labels).glob(f"*{ending}") if not p.name.startswith(".")}
    return [(c, folder / images / f"{c}_0000{ending}", folder / labels / f"{c}{ending}", labels)
            for c in sorted(cases)]


def _facts(image: Path, label: Path, wanted: set[int]) -> dict:
    ct = read_checked_ct(image)
    check_grid(header(label, "label map"), ct, f"label map {label.name}")
    values = np.unique(read_voxels(label, "label map"))
    present = sorted(int(v) for v in values if int(v) in wanted)
    if not present:
        raise Skip(f"empty: label map {label.name} has no voxel of a catalogue organ")
    return {"spacing": spacing_of(ct), "present": present}


def import_folder(folder: Path, cache: Cache, extra: dict[str, str],
                  progress: Callable[[str], None] = lambda s: None) -> Imported:
    """Cases of an nnU-Net raw / MSD folder; labelled test cases (labelsTs) form the test split."""
    path = folder / "dataset.json"
    meta, names = read_labels(path)
    notes: list[str] = []
    _check_ct_channel(meta, path, notes)
    ending = str(meta.get("file_ending", ".nii.gz"))
    vocabulary = {n: v for n in names if (v := vocabulary_name(n, extra))}
    labels: dict[int, str] = {}
    for name, vocab in vocabulary.items():
        for i in names[name]:
            if labels.setdefault(i, vocab) != vocab:
                notes.append(f"{path}: label {i} is named '{labels[i]}' and '{vocab}'; kept '{labels[i]}'")
    source = str(meta.get("name") or folder.name)
    result = Imported("nnunet", source, labels, unknown=[n for n in names if n not in vocabulary], notes=notes)
    organs = complete_organs(set(labels.values()))
    pairs = _pairs(folder, meta, ending, "imagesTr", "labelsTr")
    if (folder / "labelsTs").is_dir():
        pairs += [(c, i, lab, "labelsTs") for c, i, lab, _ in _pairs(folder, meta, ending, "imagesTs", "labelsTs")]
    if not pairs:
        raise InputError(f"{folder}: no cases in imagesTr/ or labelsTr/ (files ending {ending})")
    seen: dict[str, str] = {}
    for number, (case, image, label, where) in enumerate(pairs, start=1):
        progress(f"[{number}/{len(pairs)}] {case}")
        try:
            if case in seen:
                raise Skip(f"duplicate case id (in {seen[case]} and {where})")
            seen[case] = where
            if not organs:
                raise Skip("no label of dataset.json maps to a catalogue organ")
            for file, what in ((image, "image"), (label, "label map")):
                if not file.is_file():
                    raise Skip(f"missing {what} {file}")
            facts = cache.facts(case, [image, label], {"ids": sorted(labels)},
                                lambda: _facts(image, label, set(labels)))
        except Skip as reason:
            result.skipped.append((case, str(reason)))
            continue
        present = {o.key for i in facts["present"] for o in organs_of(labels[i])}
        result.cases.append(Case(case, image, label, "test" if where == "labelsTs" else "",
                                 [o.key for o in organs], [o.key for o in organs if o.key in present],
                                 tuple(facts["spacing"])))
    return result
