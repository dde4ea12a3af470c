"""Training (or fine-tuning) one organ's model from a dataset CSV into a new model package version."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from organseg.catalogue import organ as find_organ
from organseg.errors import InputError, OutputError
from organseg.model_package import ModelPackage, ModelStore, sha256, write_package
from organseg.network import DEFAULT_CHANNELS, ResUNet2D
from organseg.training.augment import Augmentation
from organseg.training.dataset import CaseSlices, decode, load_case, read_dataset
from organseg.training.config import FitConfig
from organseg.training.loop import SliceSet, Trainer, state_dict_arrays
from organseg.training.split import Split, split_cases

CHECKPOINT = "checkpoint.pt"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _slice_set(cases: list[CaseSlices], rows: dict[str, np.ndarray]) -> SliceSet:
    chosen = [(c, rows[c.spec.name]) for c in cases if c.spec.name in rows]
    codes = np.concatenate([c.codes[r] for c, r in chosen]) if chosen else np.zeros((0, 1, 1), np.uint8)
    targets = np.concatenate([c.targets[r] for c, r in chosen]) if chosen else np.zeros((0, 1, 1), bool)
    centres = np.concatenate([c.centres()[r] for c, r in chosen]) if chosen else np.zeros((0, 2), np.int64)
    return SliceSet(codes, targets, decode, centres)


def load_training_data(data_csv: Path, organ_key: str, margin: int, seed: int,
                       log: Callable[[str], None] = _stderr, margin_below: int | None = None
                       ) -> tuple[list[CaseSlices], Split, SliceSet, SliceSet]:
    """Cases of the CSV with slices of the organ, their per-source split and the train/validation slices."""
    organ = find_organ(organ_key)
    cases = []
    for spec in read_dataset(data_csv):
        if spec.split == "test":
            continue  # held out for evaluation: never loaded while training
        if not spec.contoured(organ):
            log(f"note: {spec.name}: {organ.key} was not contoured (labelled column); case left out")
            continue
        case = load_case(spec, organ, margin, margin_below)
        with_organ = int(case.targets.any(axis=(1, 2)).sum())
        if with_organ == 0:
            log(f"warning: {spec.name}: no {organ.key} voxels in {spec.mask}; case skipped")
            continue
        log(f"{spec.name} ({spec.source}): {len(case.z)} slices, {with_organ} with {organ.key}")
        cases.append(case)
    if not cases:
        raise InputError(f"{data_csv}: no case has {organ.key} voxels in its mask; check the label column")
    if sum(len(c.z) for c in cases) < 2:
        raise InputError(f"{data_csv}: a single slice of {organ.key}; training needs at least two")
    split = split_cases(cases, seed)
    train, val = _slice_set(cases, split.train), _slice_set(cases, split.val)
    for source in split.description["within_patient_sources"]:
        log(f"note: source '{source}' has one case: validation is its most superior slice block, a "
            "within-patient split (not a patient split); the validation Dice overstates generalisation")
    return cases, split, train, val


def train_organ(organ_key: str, data_csv: str | Path, out_dir: str | Path, config: FitConfig = FitConfig(),
                work_dir: str | Path | None = None, resume: bool = False, parent: ModelPackage | None = None,
                margin: int = 30, progress: bool = True, log: Callable[[str], None] = _stderr, device: str = "cpu",
                workers: int = 0) -> ModelPackage:
    """Train the organ's network (from `parent`'s weights when fine-tuning) and write a new package version.

    On a GPU (`device` 'cuda') the steps run in mixed precision with `workers` DataLoader processes.
    Checkpoints go to `work_dir` (default OUT/.train-<organ>); `resume` continues from its checkpoint.
    """
    organ = find_organ(organ_key)
    data_csv, out_dir = Path(data_csv).resolve(), Path(out_dir)
    work = Path(work_dir) if work_dir else out_dir / f".train-{organ.key}"
    checkpoint = work / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise OutputError(f"{checkpoint}: a checkpoint of an earlier run exists; pass --resume to continue it, "
                          "or another --work folder (or delete it) to start over")
    cases, split, train, val = load_training_data(data_csv, organ.key, margin, config.seed, log,
                                                    config.margin_below)
    work.mkdir(parents=True, exist_ok=True)
    (work / "split.json").write_text(json.dumps(split.description, indent=2) + "\n")

    torch.manual_seed(config.seed)  # reproducible initial weights
    net = ResUNet2D(parent.channels if parent else DEFAULT_CHANNELS)
    if parent is not None:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in parent.state_dict_arrays().items()})
    settings = {k: v for k, v in asdict(config).items() if k not in ("max_steps", "patience", "max_seconds")}
    identity = {"organ": organ.key, "data_sha256": sha256(data_csv), "margin": margin, **settings,
                "parent": parent.meta["files"]["weights.npz"]["sha256"] if parent else None}
    trainer = Trainer(net, config, Augmentation() if config.augment else None, checkpoint, identity, device, workers)
    if resume:
        trainer.resume()
        log(f"resuming from step {trainer.state.step} ({checkpoint})")

    def log_both(line: str) -> None:
        with open(work / "train.log", "a") as fh:
            fh.write(line + "\n")
        log(line)

    log_both(f"training {organ.key}: {len(train)} train / {len(val)} validation slices, up to "
             f"{config.max_steps} steps of {config.batch_size}")
    state = trainer.fit(train, val, log_both, progress)

    sources: dict[str, int] = {}
    for c in cases:
        sources[c.spec.source] = sources.get(c.spec.source, 0) + 1
    kind = "within-patient slice-block split" if split.within_patient else "patient split"
    summary = (f"{'fine-tuned' if parent else 'trained'} {state.step} steps on {len(cases)} case(s) from "
               f"{len(sources)} source(s), {len(train)} train / {len(val)} validation slices ({kind})")
    if split.within_patient:
        summary += "; validation Dice overstates generalisation to new patients"
    val_every = config.val_every
    training = {
        "patients": len(cases),  # one case per patient: the CT of each row of the dataset CSV
        "summary": summary,
        "data": {"csv": data_csv.name, "csv_sha256": identity["data_sha256"], "cases": len(cases),
                 "case_names": [c.spec.name for c in cases], "sources": sources,
                 "slices": {"train": len(train), "validation": len(val)}, "margin_slices": margin},
        "split": split.description,
        "steps": state.step, "best_step": state.best_step, "stopped_early": state.stopped_early,
        "seconds": round(state.seconds, 1), "torch_threads": torch.get_num_threads(),
        "device": device,
        "config": asdict(config), "augmentation": asdict(Augmentation()) if config.augment else None,
        "loss_curve": [[min(i + val_every, len(state.losses)), round(float(np.mean(state.losses[i:i + val_every])), 4)]
                       for i in range(0, len(state.losses), val_every)],
        "val_history": [[int(s), round(d, 4)] for s, d in state.val_history],
    }
    metrics = {"val_dice": round(state.best_dice, 4),
               "val_dice_definition": "Dice of thresholded predictions pooled over the validation slices, at "
                                      "network input size (224x304), best validation (early stopping)",
               "val_split": kind}
    version = None
    if parent is not None:
        training["parent"] = {"organ": parent.organ.key, "version": parent.version, "package": parent.path.name,
                              "weights_sha256": parent.meta["files"]["weights.npz"]["sha256"],
                              "val_dice": parent.dice}
        metrics["parent_val_dice_on_this_data"] = round(state.val_history[0][1], 4)
        installed = ModelStore([out_dir]).available().get(organ.key, {})
        version = max([parent.version, *installed]) + 1
    package = write_package(out_dir, organ.key, state_dict_arrays(net), net.channels, training, metrics, version)
    log(f"wrote {package.path} (validation Dice {state.best_dice:.4f} at step {state.best_step}, "
        f"{state.step} steps, {state.seconds:.0f} s)")
    return package
