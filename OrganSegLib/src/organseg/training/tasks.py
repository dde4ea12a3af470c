"""One organ's training as a Dask task: `organseg train --organs ... --workers/--scheduler/--cluster`.

Organs train in parallel, one organ per task; each task is `training.run.train_organ`, the same call the
in-process loop makes, with the same work folder (OUT/.train-ORGAN) and so the same resume rule.
"""
from __future__ import annotations

from pathlib import Path

from organseg.errors import InputError
from organseg.training.config import FitConfig


def train_on_worker(organ_key: str, data_csv: Path, out_dir: Path, config: FitConfig, work_dir: Path,
                    resume: bool, margin: int, threads: int | None, device: str) -> str:
    """Train one organ on a worker: '' once its package is written, else the one-line reason it was not.

    `device` is resolved on the worker (its GPU, if any). `threads` caps PyTorch's CPU threads (its default
    takes every core, which workers sharing a machine fight over).
    """
    import torch

    from organseg.method.runtime import resolve_device
    from organseg.training.run import train_organ

    if threads:
        torch.set_num_threads(threads)
    try:
        train_organ(organ_key, data_csv, out_dir, config, work_dir, resume, margin=margin, progress=False,
                    device="cuda" if resolve_device(device) == "cuda" else "cpu")
    except InputError as err:
        return str(err)
    return ""
