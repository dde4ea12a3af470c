"""The TotalSegmentator data set layout: `DIR/meta.csv` (semicolon-separated, `image_id` and `split`) and per
subject `DIR/<id>/ct.nii.gz` with one `DIR/<id>/segmentations/<structure>.nii.gz` per structure.

A catalogue organ is the union of several structure files (lungs = five lobes, bones = 61 files), so each
subject's structures of the catalogue are written once into one uint8 label map in the cache (ids named in
the cache's labels.json); training takes the organ's ids from it. Nothing in DIR is written.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from organseg.atomic import atomic_write_image
from organseg.datasets.cases import (Cache, Case, Imported, Skip, check_grid, header, read_checked_ct, read_voxels,
                                     spacing_of)
from organseg.datasets.synonyms import complete_organs, organs_of, vocabulary_name
from organseg.errors import InputError

SPLIT_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
SEGMENTATIONS = "segmentations"


def looks_like(folder: Path) -> bool:
    return (folder / "meta.csv").is_file() or any(p.is_dir() for p in folder.glob(f"*/{SEGMENTATIONS}"))


def _meta(folder: Path) -> tuple[list[tuple[str, str, int]], bool]:
    """(image_id, split value, line) of meta.csv, and whether it has a split column."""
    path = folder / "meta.csv"
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=";")
            fields = [f.strip() for f in reader.fieldnames or []]
            if "image_id" not in fields:
                raise InputError(f"{path}: no image_id column (found {', '.join(fields) or 'no header'}); "
                                 "TotalSegmentator's meta.csv is semicolon-separated with image_id and split")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read it as a semicolon-separated CSV ({err})") from None
    return [(r["image_id"], r.get("split", ""), i) for i, r in enumerate(rows, start=2)], "split" in fields


def _structure_files(subject: Path) -> dict[str, Path]:
    """structure name -> file of a subject's segmentations folder."""
    folder = subject / SEGMENTATIONS
    if not folder.is_dir():
        return {}
    return {p.name[:-len(".nii.gz")]: p for p in sorted(folder.glob("*.nii.gz")) if not p.name.startswith(".")}


def _union_map(name: str, ct: Path, files: dict[str, Path], ids: dict[str, int], cache: Cache) -> dict:
    """Write the subject's catalogue structures as one label map on the CT grid; its facts for the cache."""
    image = read_checked_ct(ct)
    labels = np.zeros(image.GetSize()[::-1], np.uint8)
    flat, overlap = labels.reshape(-1), 0
    for stem, path in files.items():
        check_grid(header(path, f"{SEGMENTATIONS}/{path.name}"), image, f"{SEGMENTATIONS}/{path.name}")
        voxels = np.flatnonzero(read_voxels(path, SEGMENTATIONS))
        value = ids[stem]
        before = flat[voxels]
        overlap += int(np.count_nonzero((before != 0) & (before != value)))
        flat[voxels] = value
    present = sorted(set(np.unique(labels).tolist()) - {0})
    if not present:
        raise Skip("empty: no voxel in the segmentation files of any catalogue organ")
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(image)
    atomic_write_image(out, cache.map_path(name))
    return {"spacing": spacing_of(image), "present": present, "overlap_voxels": overlap}


def import_folder(folder: Path, cache: Cache, extra: dict[str, str],
                  progress: Callable[[str], None] = lambda s: None) -> Imported:
    """Cases of a TotalSegmentator-layout folder with their official split; unusable subjects skipped."""
    if (folder / "meta.csv").is_file():
        subjects, has_split = _meta(folder)
    else:
        subjects = [(p.parent.name, "", 0) for p in sorted(folder.glob(f"*/{SEGMENTATIONS}"))]
        has_split = False
    if not subjects:
        raise InputError(f"{folder}: meta.csv lists no subject")
    files = {sid: _structure_files(folder / sid) for sid, _, _ in subjects}
    stems = sorted({s for f in files.values() for s in f})
    vocabulary = {s: v for s in stems if (v := vocabulary_name(s, extra))}
    names = sorted(set(vocabulary.values()))
    name_ids = {n: i for i, n in enumerate(names, start=1)}
    if len(name_ids) > 255:
        raise InputError(f"{folder}: {len(name_ids)} structures to keep; a uint8 label map holds 255")
    result = Imported("totalsegmentator", folder.name, {i: n for n, i in name_ids.items()},
                      unknown=[s for s in stems if s not in vocabulary])
    if not has_split:
        result.notes.append(f"{folder}: no split column in meta.csv (or no meta.csv): the CSV has no split")
    ids = {s: name_ids[v] for s, v in vocabulary.items()}
    seen: dict[str, int] = {}
    for number, (sid, split_value, line) in enumerate(subjects, start=1):
        progress(f"[{number}/{len(subjects)}] {sid}")
        try:
            if sid in seen:
                raise Skip(f"duplicate case id (meta.csv lines {seen[sid]} and {line})")
            seen[sid] = line
            split = SPLIT_NAMES.get(split_value.lower(), None) if has_split else ""
            if split is None:
                raise Skip(f"split '{split_value}' in meta.csv is not train, val or test")
            ct = folder / sid / "ct.nii.gz"
            if not ct.is_file():
                raise Skip(f"missing image {ct}")
            used = {s: p for s, p in files[sid].items() if s in ids}
            if not used:
                raise Skip(f"missing segmentation files: {folder / sid / SEGMENTATIONS} has none of a catalogue organ")
            labelled = complete_organs({vocabulary[s] for s in used})
            if not labelled:
                raise Skip("missing segmentation files: no catalogue organ has all its structure files")
            facts = cache.facts(sid, [ct, *used.values()], {"ids": {s: ids[s] for s in used}},
                                lambda: _union_map(sid, ct, used, ids, cache), needs_map=True)
        except Skip as reason:
            result.skipped.append((sid, str(reason)))
            continue
        if facts["overlap_voxels"]:
            result.notes.append(f"{sid}: {facts['overlap_voxels']} voxels lie in two structure files; the "
                                "later structure (alphabetically) keeps them")
        present = {o.key for i in facts["present"] for o in organs_of(result.labels[i])}
        result.cases.append(Case(sid, ct, cache.map_path(sid), split, [o.key for o in labelled],
                                 [o.key for o in labelled if o.key in present], tuple(facts["spacing"])))
    return result
