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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import Organ, organ as find_organ
from organseg.errors import InputError
from organseg.io import read_ct
from organseg.labelmaps import organ_label_ids, read_image, read_label_names, select_labels
from organseg.preprocess import LEVELS
from organseg.training.slices import organ_slices

REQUIRED = ("image", "mask", "source")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class CaseSpec:
    """One row of the dataset CSV, paths resolved."""

    name: str
    image: Path
    mask: Path
    source: str
    label_ids: tuple[int, ...] | None  #: explicit label ids in `mask`
    labels_json: Path | None  #: TotalSegmentator-style labels of `mask`
    split: str | None = None  #: the data set's own split (train, validation or test), if it has one
    labelled: frozenset[str] | None = None  #: organs contoured in the case; None: all the mask expresses

    def contoured(self, organ: Organ) -> bool:
        """Whether the case's mask holds the organ's contour (so its absence is a true negative)."""
        return self.labelled is None or organ.key in self.labelled


@dataclass
class CaseSlices:
    """One case's slice pairs of one organ, stored compactly: inputs as quantisation codes, targets as bool."""

    spec: CaseSpec
    codes: np.ndarray  #: (n, H, W) uint8, input = code / (LEVELS - 1)
    targets: np.ndarray  #: (n, H, W) bool
    z: np.ndarray  #: canonical slice indices (inferior -> superior)

    def centres(self) -> np.ndarray:
        """(n, 2) row, column per slice: the organ's centroid there, or on the nearest slice that holds it.

        Beyond the organ's ends this is where it would continue (the brainstem above the spinal cord, the
        pharynx above the esophagus): the look-alikes a network must learn to leave out.
        """
        held = np.flatnonzero(self.targets.any(axis=(1, 2)))
        if held.size == 0:
            return np.tile(np.array(self.targets.shape[1:]) // 2, (len(self.z), 1))
        centroids = np.array([np.argwhere(self.targets[i]).mean(axis=0) for i in held]).round().astype(np.int64)
        nearest = np.abs(self.z[:, None] - self.z[held][None, :]).argmin(axis=1)
        return centroids[nearest]


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


def load_case(spec: CaseSpec, organ: Organ, margin: int = 30, margin_below: int | None = None) -> CaseSlices:
    """A case's slice pairs of the organ's axial range +/- `margin`, pre-processed as at inference."""
    pairs = organ_slices(read_ct(spec.image), organ_mask(spec, organ), margin, source=str(spec.mask),
                         margin_below=margin_below)
    codes = np.round(pairs.inputs * (LEVELS - 1)).astype(np.uint8)
    return CaseSlices(spec, codes, pairs.targets > 0.5, pairs.z)


def decode(codes: np.ndarray) -> np.ndarray:
    """Quantisation codes back to network inputs in [0, 1]."""
    return codes.astype(np.float32) / (LEVELS - 1)
