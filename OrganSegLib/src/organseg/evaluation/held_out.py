"""Evaluating model packages on the held-out (test) cases of a dataset CSV, the way the paper's Table 1 does:
each case segmented without and with the anchor post-processing, against the references of the organs the
case labels (an organ the case does not label is not scored: its absence there is not a true negative)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import SimpleITK as sitk

from organseg.catalogue import Organ
from organseg.ct.read import read_ct
from organseg.errors import InputError
from organseg.evaluation.cases import MaskGetter
from organseg.method.model_package import ModelStore
from organseg.results.result import Result
from organseg.training.cases import CaseSpec
from organseg.training.dataset import organ_mask, read_dataset
from organseg.training.plan import labels_organ


def held_out_cases(data_csv: Path, split: str = "test") -> list[CaseSpec]:
    """The CSV's cases of the split, or a one-line error saying the CSV has none."""
    cases = [s for s in read_dataset(data_csv) if s.split == split]
    if not cases:
        raise InputError(f"{data_csv}: no case in the '{split}' split (its split column marks none); "
                         "import a data set with a test split, or mark cases 'test'")
    return cases


def evaluated_organs(cases: list[CaseSpec], store: ModelStore, chosen: list[Organ]) -> list[Organ]:
    """Organs with a model package that at least one of the cases labels."""
    names: dict[Path, dict[int, str]] = {}
    installed = store.available()
    organs = [o for o in chosen if o.key in installed and any(labels_organ(c, o, names) for c in cases)]
    if not organs:
        raise InputError(f"no installed model ({', '.join(sorted(installed)) or 'none'}) is for an organ the "
                         f"held-out cases label; pass --models with the trained packages")
    return organs


def references(spec: CaseSpec) -> MaskGetter:
    """The case's reference mask of an organ it labels, else None (not scored)."""
    names: dict[Path, dict[int, str]] = {}
    return lambda organ: organ_mask(spec, organ) if labels_organ(spec, organ, names) else None


def segment_both_ways(spec: CaseSpec, organs: list[Organ], segment: Mapping[str, Callable[..., Result]],
                      warn: Callable[[str], None]) -> dict[str, MaskGetter]:
    """The case's CT segmented by each of `segment` (RAW: `Segmenter.segment` without post-processing, POST: with);
    the caller builds the segmenters, once for every case."""
    image = read_ct(spec.image)
    keys = [o.key for o in organs]
    variants: dict[str, MaskGetter] = {}
    for name, run in segment.items():
        result = run(image, keys, source=str(spec.image))
        for warning in result.warnings:
            warn(f"{spec.name}: {warning}")
        variants[name] = _getter(result)
    return variants


def _getter(result: Result) -> MaskGetter:
    def get(organ: Organ) -> sitk.Image | None:
        return result.mask_image(organ.key) if organ.key in result.masks else None
    return get
