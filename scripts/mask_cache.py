"""Per-patient arrays computed once and kept as .npz files, so that choosing a post-processing step on the same
segmented masks (scripts/choose_z_vote.py, scripts/brainstem_reach.py) does not segment the patients again."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from organseg.atomic import atomic_file


def cached_patients(folders: list[Path], saved_as: Callable[[Path], Path | None],
                    compute: Callable[[Path], dict[str, np.ndarray]]) -> list[dict]:
    """Per patient folder: {"case": its name, **arrays}, the arrays read from `saved_as(folder)` where that file
    exists, else computed and saved there (nothing is saved where `saved_as` gives None)."""
    out = []
    for folder in folders:
        saved = saved_as(folder)
        if saved is not None and saved.exists():
            arrays = dict(np.load(saved))
        else:
            arrays = compute(folder)
            if saved is not None:  # written whole or not at all: an interrupted run leaves no truncated file
                with atomic_file(saved, ".npz") as tmp:
                    np.savez_compressed(tmp, **arrays)
        out.append({"case": folder.name, **arrays})
    return out
