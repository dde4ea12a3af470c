"""How a Segmenter runs, spelled once: the command line, a batch's cluster tasks and the Slicer module all
describe a run with `Settings`. Frozen, hashable and picklable, so a cluster task carries it and each worker
builds the same Segmenter from it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from organseg.errors import InputError
from organseg.method.inference import STRATEGIES
from organseg.method.model_package import ModelStore
from organseg.method.runtime import resolve_device

#: Model folders as callers give them: a store, one folder, several, or None for the default search path.
Models = ModelStore | str | os.PathLike | Sequence[str | os.PathLike] | None


@dataclass(frozen=True)
class Settings:
    """Everything a Segmenter needs besides the CT and the organs."""

    models: tuple[str, ...] | None = None  #: model folders; None: $ORGANSEG_MODELS, ~/.organseg/models, bundled
    device: str = "auto"  #: auto, cpu, cuda or mps
    engine: str = "auto"  #: auto, onnx or torch
    batch_size: int = 16  #: slices per network batch
    postprocess: bool = True  #: components, holes and anchor rules; False keeps the raw network masks
    anchor_rules: tuple[tuple[str, bool], ...] | None = None  #: per-organ switches of the anchor rules; None: table
    strategy: str = "coarse-to-fine"  #: one of `inference.STRATEGIES`

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(f"unknown inference strategy '{self.strategy}'; use {', '.join(STRATEGIES)}")
        object.__setattr__(self, "models", _folders(self.models))
        if isinstance(self.anchor_rules, Mapping):
            object.__setattr__(self, "anchor_rules", tuple(sorted(self.anchor_rules.items())))

    @property
    def rules(self) -> dict[str, bool] | None:
        """The anchor-rule switches as post-processing takes them."""
        return dict(self.anchor_rules) if self.anchor_rules is not None else None

    def store(self) -> ModelStore:
        """The model folders to search."""
        return ModelStore([Path(d) for d in self.models]) if self.models is not None else ModelStore()

    def resolved(self) -> Settings:
        """The same run pinned on this machine: the device resolved and the model folders listed, so a cluster
        worker runs what the client chose, not its own defaults."""
        return replace(self, models=tuple(str(d) for d in self.store().dirs), device=resolve_device(self.device))


def _folders(models: Models) -> tuple[str, ...] | None:
    if models is None:
        return None
    if isinstance(models, ModelStore):
        models = models.dirs
    elif isinstance(models, (str, os.PathLike)):
        models = [models]
    return tuple(str(m) for m in models)
