"""The training library's case types, free of image I/O (SimpleITK) so that training runs where only
PyTorch is installed: a case's description (`CaseSpec`), its slice pairs of one organ (`CaseSlices`), and the
rule of which cases train an organ (`collect_cases`), the same for a dataset CSV and a pack."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from organseg.catalogue import Organ
from organseg.errors import InputError
from organseg.method.preprocess import LEVELS


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


def decode(codes: np.ndarray) -> np.ndarray:
    """Quantisation codes back to network inputs in [0, 1]."""
    return codes.astype(np.float32) / (LEVELS - 1)


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def collect_cases(cases: Iterable[tuple[CaseSpec, Callable[[], CaseSlices]]], organ: Organ, data: str,
                  log: Callable[[str], None] = log_to_stderr) -> list[CaseSlices]:
    """The cases (spec, loader) that can train the organ, loaded: not held out (split `test`), contoured for
    the organ (an absent contour is not an absent organ) and holding some of it."""
    loaded = []
    for spec, load in cases:
        if spec.split == "test":
            continue  # held out for evaluation: never loaded while training
        if not spec.contoured(organ):
            log(f"note: {spec.name}: {organ.key} was not contoured (labelled column); case left out")
            continue
        case = load()
        with_organ = int(case.targets.any(axis=(1, 2)).sum())
        if with_organ == 0:
            log(f"warning: {spec.name}: no {organ.key} voxels in {spec.mask}; case skipped")
            continue
        log(f"{spec.name} ({spec.source}): {len(case.z)} slices, {with_organ} with {organ.key}")
        loaded.append(case)
    if not loaded:
        raise InputError(f"{data}: no case has {organ.key} voxels in its mask; check the label column")
    if sum(len(c.z) for c in loaded) < 2:
        raise InputError(f"{data}: a single slice of {organ.key}; training needs at least two")
    return loaded
