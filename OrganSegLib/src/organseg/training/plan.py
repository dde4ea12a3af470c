"""What `organseg train --organs` does with each organ: train it, resume it, or skip it (done before, or too
few labelled cases in the dataset CSV). Reads only the CSV's columns and the models folder: no image, no
PyTorch, so the plan is printed before the first organ starts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from organseg.catalogue import Organ
from organseg.ct.labelmaps import organ_label_ids, read_label_names
from organseg.errors import InputError
from organseg.method.model_package import ModelStore
from organseg.training.cases import CaseSpec
from organseg.training.config import CHECKPOINT


@dataclass(frozen=True)
class OrganPlan:
    organ: Organ
    action: str  #: "train", "resume" or "skip"
    reason: str  #: for a skip: why; else how many cases
    work: Path


def labels_organ(spec: CaseSpec, organ: Organ, names: dict[Path, dict[int, str]]) -> bool:
    """Whether a CSV row has the organ: contoured (its `labelled` column) and named in its labels JSON, or
    named in `labelled` when the mask is binary or given by label ids (else the row says nothing about it)."""
    if not spec.contoured(organ):
        return False
    if spec.labels_json is None:
        return spec.labelled is not None
        return False
    if spec.labels_json not in names:
        names[spec.labels_json] = read_label_names(spec.labels_json)
    try:
        return bool(organ_label_ids(organ, names[spec.labels_json]))
    except InputError:
        return False


def plan_organs(organs: list[Organ], specs: list[CaseSpec], out_dir: Path, work_root: Path | None,
                min_cases: int) -> list[OrganPlan]:
    """One plan per organ, in catalogue order. Test-split rows do not count: they are never trained on."""
    installed = ModelStore([out_dir]).available() if out_dir.is_dir() else {}
    names: dict[Path, dict[int, str]] = {}
    plans = []
    for organ in organs:
        work = (work_root / organ.key) if work_root else out_dir / f".train-{organ.key}"
        cases = sum(labels_organ(s, organ, names) for s in specs if s.split != "test")
        if (work / CHECKPOINT).is_file() and organ.key not in installed:
            plans.append(OrganPlan(organ, "resume", f"{cases} labelled case(s)", work))
        elif organ.key in installed:
            version = max(installed[organ.key])
            plans.append(OrganPlan(organ, "skip", f"done: {out_dir / f'{organ.key}-v{version}'} exists "
                                   f"(train it again with --organ {organ.key})", work))
        elif cases < min_cases:
            plans.append(OrganPlan(organ, "skip", f"{cases} labelled training case(s) in the CSV, "
                                   f"fewer than --min-cases {min_cases}", work))
        else:
            plans.append(OrganPlan(organ, "train", f"{cases} labelled case(s)", work))
    return plans
