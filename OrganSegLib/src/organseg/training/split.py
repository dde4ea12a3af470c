"""The seeded 80/20 train/validation split, made per source database.

A source with two or more cases is split by case (at least one case on each side). A source with a single
case cannot be split by patient: its most superior 20% of slices (a contiguous block of the organ's range)
become validation. That is a within-patient split: neighbouring slices are strongly correlated, so its
validation Dice overstates how the model generalises to new patients. A source whose cases carry the data
set's own split (the CSV's `split` column) keeps it. The split says which it is.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from organseg.errors import InputError
from organseg.training.cases import CaseSlices

VAL_FRACTION = 0.2


@dataclass
class Split:
    """Index arrays of the train and validation slices of each case, and a JSON-able description."""

    train: dict[str, np.ndarray]  #: case -> row indices into its CaseSlices
    val: dict[str, np.ndarray]
    description: dict

    @property
    def within_patient(self) -> bool:
        return bool(self.description["within_patient_sources"])


def split_cases(cases: list[CaseSlices], seed: int = 0, val_fraction: float = VAL_FRACTION) -> Split:
    """Split each source's cases 80/20 (seeded); single-case sources by a contiguous slice block."""
    by_source: dict[str, list[CaseSlices]] = {}
    for case in cases:
        by_source.setdefault(case.spec.source, []).append(case)
    train: dict[str, np.ndarray] = {}
    val: dict[str, np.ndarray] = {}
    sources, within = {}, []
    for source, members in sorted(by_source.items()):
        rows = {c.spec.name: np.arange(len(c.z)) for c in members}
        given = {c.spec.name: c.spec.split for c in members}
        if any(given.values()):
            sources[source] = _given_split(source, given, rows, train, val)
            continue
        if len(members) == 1:
            case = members[0]
            order = np.argsort(case.z, kind="stable")
            n_val = min(max(1, math.ceil(val_fraction * len(order))), len(order) - 1)
            train[case.spec.name], val[case.spec.name] = np.sort(order[:-n_val]), np.sort(order[-n_val:])
            within.append(source)
            sources[source] = {"kind": "within-patient slice block", "case": case.spec.name,
                               "train_z": case.z[train[case.spec.name]].tolist(),
                               "val_z": case.z[val[case.spec.name]].tolist(),
                               "note": f"one case: the most superior {n_val} of {len(order)} slices are "
                                       "validation (not a patient split)"}
            continue
        rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
        names = [members[i].spec.name for i in rng.permutation(len(members))]
        n_val = min(max(1, round(val_fraction * len(names))), len(names) - 1)
        for name in names[:n_val]:
            val[name] = rows[name]
        for name in names[n_val:]:
            train[name] = rows[name]
        sources[source] = {"kind": "patient split", "train_cases": sorted(names[n_val:]),
                           "val_cases": sorted(names[:n_val])}
    if not val:
        raise InputError("the data set's split names no validation case with this organ; mark some cases "
                         "'validation' in the split column")
    description = {"seed": seed, "val_fraction": val_fraction, "sources": sources,
                   "within_patient_sources": within}
    return Split(train, val, description)


def _given_split(source: str, given: dict[str, str | None], rows: dict[str, np.ndarray],
                 train: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> dict:
    """Keep a source's own train/validation split (its test cases are not loaded for training)."""
    if None in given.values():
        raise InputError(f"source '{source}': some cases have a split and some do not; give every case of "
                         "the source a split (train, validation, test) or none")
    names = {part: sorted(n for n, s in given.items() if s == part) for part in ("train", "validation")}
    train.update({n: rows[n] for n in names["train"]})
    val.update({n: rows[n] for n in names["validation"]})
    return {"kind": "data set split", "train_cases": names["train"], "val_cases": names["validation"]}
