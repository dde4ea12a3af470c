"""Training settings (no PyTorch import, so the command line starts fast without it)."""
from __future__ import annotations

from dataclasses import dataclass

CHECKPOINT = "checkpoint.pt"  #: a run's checkpoint in its work folder (training writes it, planning looks for it)


@dataclass(frozen=True)
class FitConfig:
    """CPU-friendly defaults: about 1 s per step of 4 slices on two cores."""

    max_steps: int = 1500
    batch_size: int = 4
    lr: float = 1e-3
    val_every: int = 50  #: steps between validations (and checkpoints)
    patience: int = 8  #: validations without improvement before stopping
    seed: int = 0
    augment: bool = True
    max_seconds: float | None = None  #: stop (after a validation) once training took this long
    #: train on (rows, columns) crops of the network input: the scale of full slices at a fraction of the cost
    patch: tuple[int, int] | None = None
    foreground_fraction: float = 0.5  #: share of crops centred on the organ (the rest: anywhere, negatives)
    margin_below: int | None = None  #: slices below the organ to train on (default: the margin)
    #: decay the learning rate as (1 - used) ** 0.9 (nnU-Net's schedule), `used` the share of the step or time budget
    poly_lr: bool = False
    #: slices on each side the network also reads, as extra input channels (0: the paper's 2D input)
    context: int = 0
