"""Training (or fine-tuning) one organ's model from a dataset CSV into a new model package version."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from organseg.catalogue import organ as find_organ
from organseg.method.model_package import ModelPackage, sha256
from organseg.training.cases import CaseSlices, collect_cases, log_to_stderr
from organseg.training.config import FitConfig
from organseg.training.dataset import load_case, read_dataset
from organseg.training.fit import fit_organ, with_parent_context, work_folder


def load_cases(data_csv: Path, organ_key: str, margin: int = 30, margin_below: int | None = None,
               log: Callable[[str], None] = log_to_stderr) -> list[CaseSlices]:
    """The CSV's cases that can train the organ (`fit.collect_cases`), read and pre-processed."""
    organ = find_organ(organ_key)
    specs = read_dataset(data_csv)
    return collect_cases(((s, lambda s=s: load_case(s, organ, margin, margin_below)) for s in specs), organ,
                         str(data_csv), log)


def train_organ(organ_key: str, data_csv: str | Path, out_dir: str | Path, config: FitConfig = FitConfig(),
                work_dir: str | Path | None = None, resume: bool = False, parent: ModelPackage | None = None,
                margin: int = 30, progress: bool = True, log: Callable[[str], None] = log_to_stderr,
                device: str = "cpu", workers: int = 0) -> ModelPackage:
    """Train the organ's network on the dataset CSV's cases (`fit.fit_organ`) and write a new package version.

    A leftover checkpoint without `resume`, or a context the parent cannot continue with, is refused before the
    (long) loading of the cases.
    """
    organ, data_csv = find_organ(organ_key), Path(data_csv).resolve()
    work_folder(organ, Path(out_dir), Path(work_dir) if work_dir else None, resume)
    config = with_parent_context(config, parent)
    cases = load_cases(data_csv, organ.key, margin, config.margin_below, log)
    return fit_organ(organ.key, cases, (data_csv.name, sha256(data_csv)), out_dir, config, work_dir, resume, parent,
                     margin, progress, log, device, workers)
