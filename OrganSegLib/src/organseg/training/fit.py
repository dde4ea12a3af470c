"""Training one organ's network on loaded cases and writing its model package (no image I/O here: the cases
come from a dataset CSV, `training.run`, or from a pack, `training.pack`)."""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from organseg.catalogue import Organ, organ as find_organ
from organseg.errors import InputError, OutputError
from organseg.method.model_package import ModelPackage, ModelStore, write_package
from organseg.method.network import DEFAULT_CHANNELS, ResUNet2D
from organseg.method.preprocess import context_rows
from organseg.method.runtime import package_network
from organseg.training.augment import Augmentation
from organseg.training.cases import CaseSlices, decode, log_to_stderr
from organseg.training.config import CHECKPOINT, FitConfig
from organseg.training.loop import SliceSet, Trainer, state_dict_arrays
from organseg.training.split import Split, split_cases

def _slice_set(cases: list[CaseSlices], rows: dict[str, np.ndarray], context: int = 0) -> SliceSet:
    """The chosen rows of each case; with `context`, each row also reads its neighbours in its case, as
    inference reads a CT's (the case's slices are consecutive slices with body)."""
    chosen = [(c, rows[c.spec.name]) for c in cases if c.spec.name in rows]
    if not chosen:
        return SliceSet(np.zeros((0, 1, 1), np.uint8), np.zeros((0, 1, 1), bool), decode, np.zeros((0, 2), np.int64),
                        np.zeros((0, 2 * context + 1), np.int64))
    starts = np.cumsum([0] + [len(c.codes) for c, _ in chosen])
    return SliceSet(np.concatenate([c.codes for c, _ in chosen]), np.concatenate([c.targets[r] for c, r in chosen]),
                    decode, np.concatenate([c.centres()[r] for c, r in chosen]),
                    np.concatenate([start + context_rows(r, len(c.codes), context)
                                    for (c, r), start in zip(chosen, starts)]))


def with_parent_context(config: FitConfig, parent: ModelPackage | None) -> FitConfig:
    """A continued 2.5D network keeps its context (asked for or not); a 2D one may be widened (`widened_input`)."""
    if parent is None or not parent.context:
        return config
    if config.context in (0, parent.context):
        return replace(config, context=parent.context)
    raise InputError(f"{parent.path}: reads {parent.context} slices on each side; continue it with that context, "
                     f"not {config.context}")


def widened_input(net: ResUNet2D, context: int) -> ResUNet2D:
    """A 2.5D network reading `context` slices on each side that computes what the 2D `net` computes: the
    first layers' weights on the middle channel, zeros on the neighbours, so training starts from the parent."""
    wide = ResUNet2D(net.channels, 2 * context + 1)
    state = net.state_dict()
    for name, weight in wide.state_dict().items():
        if weight.shape != state[name].shape:  # the first block's convolutions that read the input
            grown = torch.zeros_like(weight)
            grown[:, context:context + 1] = state[name]
            state[name] = grown
    wide.load_state_dict(state)
    return wide


def training_slices(cases: list[CaseSlices], seed: int, log: Callable[[str], None] = log_to_stderr,
                    context: int = 0) -> tuple[Split, SliceSet, SliceSet]:
    """The per-source split of the cases and its train and validation slices (`context`: see `_slice_set`)."""
    split = split_cases(cases, seed)
    for source in split.description["within_patient_sources"]:
        log(f"note: source '{source}' has one case: validation is its most superior slice block, a "
            "within-patient split (not a patient split); the validation Dice overstates generalisation")
    return split, _slice_set(cases, split.train, context), _slice_set(cases, split.val, context)


def work_folder(organ: Organ, out_dir: Path, work_dir: Path | None, resume: bool) -> Path:
    """The run's checkpoint folder (default OUT/.train-<organ>); a checkpoint there needs `resume`."""
    work = Path(work_dir) if work_dir else Path(out_dir) / f".train-{organ.key}"
    if (work / CHECKPOINT).exists() and not resume:
        raise OutputError(f"{work / CHECKPOINT}: a checkpoint of an earlier run exists; pass --resume to continue "
                          "it, or another --work folder (or delete it) to start over")
    return work


def fit_organ(organ_key: str, cases: list[CaseSlices], data: tuple[str, str], out_dir: str | Path,
              config: FitConfig = FitConfig(), work_dir: str | Path | None = None, resume: bool = False,
              parent: ModelPackage | None = None, margin: int = 30, progress: bool = True,
              log: Callable[[str], None] = log_to_stderr, device: str = "cpu", workers: int = 0) -> ModelPackage:
    """Train the organ's network on the cases (from `parent`'s weights when fine-tuning) and write a new
    package version. `data`: the data set's file name and SHA-256 (a resumed run must train on the same).

    On a GPU (`device` 'cuda') the steps run in mixed precision with `workers` DataLoader processes.
    Checkpoints go to `work_dir` (default OUT/.train-<organ>); `resume` continues from its checkpoint.
    """
    organ, out_dir = find_organ(organ_key), Path(out_dir)
    config = with_parent_context(config, parent)
    work = work_folder(organ, out_dir, work_dir, resume)
    split, train, val = training_slices(cases, config.seed, log, config.context)
    work.mkdir(parents=True, exist_ok=True)
    (work / "split.json").write_text(json.dumps(split.description, indent=2) + "\n")

    torch.manual_seed(config.seed)  # reproducible initial weights
    net = package_network(parent) if parent is not None else ResUNet2D(DEFAULT_CHANNELS, 2 * config.context + 1)
    if parent is not None and parent.context != config.context:
        net = widened_input(net, config.context)
    settings = {k: v for k, v in asdict(config).items() if k not in ("max_steps", "patience", "max_seconds")}
    if not config.context:  # 2D, as every checkpoint written before 2.5D input: those still resume
        del settings["context"]
    identity = {"organ": organ.key, "data_sha256": data[1], "margin": margin, **settings,
                "parent": parent.meta["files"]["weights.npz"]["sha256"] if parent else None}
    trainer = Trainer(net, config, Augmentation() if config.augment else None, work / CHECKPOINT, identity, device,
                      workers)
    if resume:
        trainer.resume()
        log(f"resuming from step {trainer.state.step} ({work / CHECKPOINT})")

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
        "data": {"csv": data[0], "csv_sha256": data[1], "cases": len(cases),
                 "case_names": [c.spec.name for c in cases], "sources": sources,
                 "slices": {"train": len(train), "validation": len(val)}, "margin_slices": margin},
        "split": split.description,
        "steps": state.step, "best_step": state.best_step, "stopped_early": state.stopped_early,
        "seconds": round(state.seconds, 1), "torch_threads": torch.get_num_threads(),
        "device": device if device == "cpu" else f"{device} ({torch.cuda.get_device_name()})",
        "config": asdict(config), "augmentation": asdict(Augmentation()) if config.augment else None,
        "loss_curve": [[min(i + val_every, len(state.losses)), round(float(np.mean(state.losses[i:i + val_every])), 4)]
                       for i in range(0, len(state.losses), val_every)],
        "val_history": [[int(s), round(d, 4)] for s, d in state.val_history],
    }
    if device != "cpu":
        training["loader_workers"] = workers
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
        inherited = [parent.version] if parent.organ.key == organ.key else []  # another organ's: a new line
        version = max([0, *inherited, *installed]) + 1
    package = write_package(out_dir, organ.key, state_dict_arrays(net), net.channels, training, metrics, version,
                            context=config.context)
    log(f"wrote {package.path} (validation Dice {state.best_dice:.4f} at step {state.best_step}, "
        f"{state.step} steps, {state.seconds:.0f} s)")
    return package
