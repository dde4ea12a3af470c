"""A pack: training cases as compressed canonical arrays in one folder, read back without image I/O.

Made where SimpleITK reads the data set (`training.dataset.canonical_case`), it carries a data set to a
machine that has only PyTorch (a rented GPU, say) in a fraction of its size: each case keeps only the body
boxes of the slices training uses, its voxels stored exactly (int16 where that is lossless, byte planes apart
so that LZMA finds their redundancy) and its organ masks as bits. Reading a case back gives the arrays it was
packed from, so its slice pairs are those `load_case` makes from the original files.
"""
from __future__ import annotations

import json
import lzma
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from organseg.atomic import atomic_file
from organseg.catalogue import Organ
from organseg.errors import InputError
from organseg.training.canonical import CanonicalCase
from organseg.training.cases import CaseSlices, CaseSpec, collect_cases, log_to_stderr

INDEX = "pack.json"


def _shuffled(values: np.ndarray) -> bytes:
    """Bytes of the array with its byte planes one after another (LZMA finds more redundancy so)."""
    return lzma.compress(values.view(np.uint8).reshape(-1, values.itemsize).T.tobytes(), preset=9)


def _unshuffled(data: bytes, dtype: np.dtype) -> np.ndarray:
    planes = np.frombuffer(lzma.decompress(data), np.uint8).reshape(dtype.itemsize, -1)
    return np.ascontiguousarray(planes.T).view(dtype).ravel()


def spec_json(spec: CaseSpec) -> dict:
    return {"name": spec.name, "image": str(spec.image), "mask": str(spec.mask), "source": spec.source,
            "label_ids": spec.label_ids, "labels_json": None if spec.labels_json is None else str(spec.labels_json),
            "split": spec.split, "labelled": None if spec.labelled is None else sorted(spec.labelled)}


def spec_case(meta: dict) -> CaseSpec:
    return CaseSpec(meta["name"], Path(meta["image"]), Path(meta["mask"]), meta["source"],
                    None if meta["label_ids"] is None else tuple(meta["label_ids"]),
                    None if meta["labels_json"] is None else Path(meta["labels_json"]), meta["split"],
                    None if meta["labelled"] is None else frozenset(meta["labelled"]))


def write_case(folder: Path, case: CanonicalCase, margin: int, margin_below: int | None) -> Path:
    """Write one case, trimmed with these margins (`CanonicalCase.trimmed`), to `folder/<case>.npz`, atomically."""
    stored = np.flatnonzero(case.boxes[:, 0] >= 0)
    voxels = np.concatenate([case.volume[z, r0:r1, c0:c1].ravel() for z, (r0, r1, c0, c1) in
                             zip(stored, case.boxes[stored])]) if stored.size else np.zeros(0, case.volume.dtype)
    as_int16 = voxels.astype(np.int16)
    if np.array_equal(as_int16, voxels):
        voxels = as_int16
    meta = {"spec": spec_json(case.spec), "shape": list(case.volume.shape), "volume_dtype": str(case.volume.dtype),
            "stored_dtype": str(voxels.dtype), "organs": sorted(case.masks), "margin": margin,
            "margin_below": margin_below}
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8), "boxes": case.boxes.astype(np.int32),
              "voxels": np.frombuffer(_shuffled(voxels), np.uint8)}
    for key, mask in case.masks.items():
        arrays[f"mask_{key}"] = np.frombuffer(lzma.compress(np.packbits(mask).tobytes(), preset=9), np.uint8)
    path = folder / f"{case.spec.name}.npz"
    with atomic_file(path, ".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


@contextmanager
def _case_file(path: Path, remedy: str) -> Iterator[tuple[Any, dict]]:
    """An open case file and its meta; a file that cannot be read is a one-line InputError ending in `remedy`."""
    try:
        with np.load(path) as saved:
            yield saved, json.loads(saved["meta"].tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as err:
        raise InputError(f"{path}: not a readable OrganSeg pack case ({err}); {remedy}") from None


def check_reusable(path: Path, spec: CaseSpec, organs: list[str], margin: int, margin_below: int | None) -> None:
    """Refuse a case file packed from another row, for other organs or with other margins (a rerun may only
    finish a pack, never mix two)."""
    with _case_file(path, "pack into a new folder") as (_, meta):
        packed = (meta["spec"], meta["organs"], meta.get("margin"), meta.get("margin_below"))
    if packed != (json.loads(json.dumps(spec_json(spec))), sorted(organs), margin, margin_below):  # as stored
        raise InputError(f"{path}: packed from another dataset row, for other organs or with other margins; "
                         "pack into a new folder")


def read_case(path: Path) -> CanonicalCase:
    """A case as it was packed (voxels outside the stored boxes are zero: nothing reads them)."""
    with _case_file(path, "pack the data set again") as (saved, meta):
        boxes = saved["boxes"].astype(np.int64)
        voxels = _unshuffled(saved["voxels"].tobytes(), np.dtype(meta["stored_dtype"]))
        masks = {key: np.unpackbits(np.frombuffer(lzma.decompress(saved[f"mask_{key}"].tobytes()), np.uint8),
                                    count=int(np.prod(meta["shape"]))).reshape(meta["shape"]).astype(bool)
                 for key in meta["organs"]}
    volume = np.zeros(meta["shape"], np.dtype(meta["volume_dtype"]))
    start = 0
    for z in np.flatnonzero(boxes[:, 0] >= 0):
        r0, r1, c0, c1 = boxes[z]
        n = (r1 - r0) * (c1 - c0)
        volume[z, r0:r1, c0:c1] = voxels[start:start + n].reshape(r1 - r0, c1 - c0)
        start += n
    return CanonicalCase(spec_case(meta["spec"]), volume, boxes, masks)


def write_index(folder: Path, index: dict) -> None:
    """The pack's description (organs, margins, the data set it came from), written last: a pack with an
    index is complete."""
    with atomic_file(folder / INDEX, ".json") as tmp:
        tmp.write_text(json.dumps(index, indent=2) + "\n")


def read_index(folder: Path) -> dict:
    """The pack's index (`write_index`)."""
    index_path = folder / INDEX
    if not index_path.is_file():
        raise InputError(f"{folder}: not a complete pack (no {INDEX}); pack the data set (again)")
    return json.loads(index_path.read_text())


def load_pack(folder: Path, organ: Organ, margin: int = 30, margin_below: int | None = None,
              log: Callable[[str], None] = log_to_stderr) -> tuple[list[CaseSlices], tuple[str, str]]:
    """The pack's cases that can train the organ (`cases.collect_cases`) and the data set's (name, SHA-256).

    The margins must be those the pack was trimmed with: a larger one would silently miss slices.
    """
    index = read_index(folder)
    if organ.key not in index["organs"]:
        raise InputError(f"{folder}: packed for {', '.join(index['organs'])}, not {organ.key}; pack it again")
    if (margin, margin_below) != (index["margin"], index["margin_below"]):
        raise InputError(f"{folder}: packed with margin {index['margin']}, below {index['margin_below']}; train "
                         f"with the same (asked {margin}, {margin_below}) or pack again")
    cases = ((spec_case(meta), lambda name=name: read_case(folder / f"{name}.npz").slices(organ, margin,
                                                                                         margin_below))
             for name, meta in index["cases"].items())
    return collect_cases(cases, organ, str(folder), log), (index["data"]["name"], index["data"]["sha256"])
