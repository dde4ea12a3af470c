"""Training data from a DATASET.csv: labelled CT cases, one organ's slice pairs per case.

The CSV has a header with the columns `image`, `mask`, `source` and optionally `label`, `labels`, `case`:

- image: CT file or DICOM series folder; mask: a binary mask or a label map (paths relative to the CSV);
- label: label id(s) of the organ in a label map, e.g. `5` or `2+3`;
- labels: a labels JSON (id -> name, TotalSegmentator style); the organ's ids are the labels named in the
  catalogue's `Organ.totalsegmentator_names`;
- neither: the mask is binary (every non-zero voxel is the organ);
- source: the source database (the train/validation split is made per source); case: a name (default:
  the image's file name);
- split: `train`, `validation` or `test` (a data set's own split, honoured instead of the seeded one; test
  cases are never loaded for training);
- labelled: the catalogue organs contoured in the case, joined by `+` (empty: every organ the mask can
  express). A case whose organ was not contoured is left out: an absent contour is not an absent organ.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from organseg.catalogue import Organ, organ as find_organ
from organseg.ct.labelmaps import organ_label_ids, read_image, read_label_names, select_labels
from organseg.ct.read import read_ct
from organseg.errors import InputError
from organseg.method.body import body_boxes
from organseg.method.model_package import sha256
from organseg.training.canonical import CanonicalCase, canonical_arrays
from organseg.training.cases import CaseSlices, CaseSpec, log_to_stderr
from organseg.training.pack import check_reusable, spec_json, write_case, write_index

REQUIRED = ("image", "mask", "source")
SPLITS = ("train", "validation", "test")


def read_dataset(path: str | Path) -> list[CaseSpec]:
    """Parse and check a dataset CSV (existence of every file, label columns)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such dataset CSV")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                             "image, mask, source (and optionally label, labels, case)")
        rows = list(reader)
    if not rows:
        raise InputError(f"{path}: lists no cases")
    specs = [_spec(path, i, row) for i, row in enumerate(rows, start=2)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: case names repeat; add a `case` column with unique names")
    return specs


def _spec(csv_path: Path, line: int, row: dict[str, str]) -> CaseSpec:
    where = f"{csv_path}, line {line}"
    base = csv_path.parent

    def resolve(value: str | None, column: str) -> Path:
        if not value or not value.strip():
            raise InputError(f"{where}: empty '{column}'")
        p = Path(value.strip())
        p = p if p.is_absolute() else base / p
        if not p.exists():
            raise InputError(f"{where}: {column} {p} does not exist")
        return p

    image, mask = resolve(row.get("image"), "image"), resolve(row.get("mask"), "mask")
    label = (row.get("label") or "").strip()
    labels = (row.get("labels") or "").strip()
    if label and labels:
        raise InputError(f"{where}: give either 'label' (ids) or 'labels' (a labels JSON), not both")
    try:
        ids = tuple(int(v) for v in label.split("+")) if label else None
    except ValueError:
        raise InputError(f"{where}: label '{label}' should be label ids like 5 or 2+3") from None
    source = (row.get("source") or "").strip()
    if not source:
        raise InputError(f"{where}: empty 'source' (name the database the case comes from)")
    name = (row.get("case") or "").strip() or image.name.split(".")[0]
    split = (row.get("split") or "").strip() or None
    if split is not None and split not in SPLITS:
        raise InputError(f"{where}: split '{split}' should be one of {', '.join(SPLITS)} (or empty)")
    contoured = (row.get("labelled") or "").strip()
    try:
        labelled = frozenset(find_organ(k).key for k in contoured.split("+")) if contoured else None
    except InputError as err:
        raise InputError(f"{where}: labelled: {err}") from None
    return CaseSpec(name, image, mask, source, ids, resolve(labels, "labels") if labels else None, split,
                    labelled)


def organ_mask(spec: CaseSpec, organ: Organ) -> sitk.Image:
    """The organ's binary mask of a case (label ids, TotalSegmentator names or a binary mask)."""
    image = read_image(spec.mask, "mask")
    if spec.labels_json is not None:
        ids = organ_label_ids(organ, read_label_names(spec.labels_json), str(spec.labels_json))
    elif spec.label_ids is not None:
        ids = spec.label_ids
    else:
        return sitk.Cast(image != 0, sitk.sitkUInt8)
    return select_labels(image, ids)


def canonical_case(spec: CaseSpec, organs: list[Organ]) -> CanonicalCase:
    """A case read and reoriented once, with the masks of those of `organs` contoured in it."""
    contoured = [o for o in organs if spec.contoured(o)]
    volume, masks = canonical_arrays(read_ct(spec.image), [organ_mask(spec, o) for o in contoured], str(spec.mask))
    return CanonicalCase(spec, volume, body_boxes(volume), {o.key: m for o, m in zip(contoured, masks)})


def load_case(spec: CaseSpec, organ: Organ, margin: int = 30, margin_below: int | None = None) -> CaseSlices:
    """A case's slice pairs of the organ's axial range +/- `margin`, pre-processed as at inference."""
    return canonical_case(spec, [organ]).slices(organ, margin, margin_below)


def pack_dataset(data_csv: Path, organs: list[Organ], folder: Path, margin: int = 30,
                 margin_below: int | None = None, log: Callable[[str], None] = log_to_stderr) -> None:
    """Pack the CSV's training cases (not `test`) contoured for any of the organs into `folder`
    (`training.pack`), trimmed to the slices those organs train on. A rerun keeps the cases packed earlier
    with the same row, organs and margins (it finishes an interrupted pack) and refuses others; the index is
    written last."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [s for s in read_dataset(data_csv) if s.split != "test" and any(s.contoured(o) for o in organs)]
    for spec in specs:
        path = folder / f"{spec.name}.npz"
        if path.is_file():
            check_reusable(path, spec, [o.key for o in organs if spec.contoured(o)], margin, margin_below)
            continue
        write_case(folder, canonical_case(spec, organs).trimmed(margin, margin_below), margin, margin_below)
        log(f"packed {spec.name}: {path.stat().st_size / 1e6:.2f} MB")
    write_index(folder, {"data": {"name": data_csv.name, "sha256": sha256(data_csv)},
                         "organs": [o.key for o in organs], "margin": margin, "margin_below": margin_below,
                         "cases": {s.name: spec_json(s) for s in specs}})
