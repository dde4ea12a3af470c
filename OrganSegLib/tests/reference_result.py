"""A segmentation Result made from TotalSegmentator's labels of the real DICOM series (no network), and a
child-process entry point that writes it with a signal sent at a chosen rename of the final move.

Run as `python reference_result.py SIGNAL AT OUT CT LABELS ORGAN=LABEL...`: the signal goes to the process
itself right after the AT-th rename of the move into OUT (a deterministic point, no timing luck).
"""
from __future__ import annotations

import os
import pathlib
import signal
import sys

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import organ
from organseg.results.result import OrganMask, Result
from organseg.results.stats import organ_stats


def reference_result(ct: sitk.Image, labels: sitk.Image, organs: dict[str, int]) -> Result:
    """Result whose masks are `labels == value` per organ, with statistics as the segmenter computes them."""
    values, hu = sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(ct)
    masks = {key: values == value for key, value in organs.items()}
    return Result(ct, {k: OrganMask.from_full(m) for k, m in masks.items()},
                  [organ_stats(organ(k), m, hu, ct.GetSpacing()) for k, m in masks.items()],
                  {k: 0.0 for k in organs}, models={k: "TotalSegmentator reference" for k in organs})


def _main(argv: list[str]) -> None:
    from organseg.cli import Terminated, _terminate
    from organseg.results import folder as outputs

    name, at, out, ct, labels, *pairs = argv
    signal.signal(signal.SIGTERM, _terminate)
    result = reference_result(sitk.ReadImage(ct), sitk.ReadImage(labels),
                              {p.split("=")[0]: int(p.split("=")[1]) for p in pairs})
    rename, merge, count = pathlib.Path.rename, outputs._merge, {"on": False, "n": 0}

    def counting_rename(self, target):
        moved = rename(self, target)
        if count["on"]:
            count["n"] += 1
            if count["n"] == int(at):
                os.kill(os.getpid(), getattr(signal, name))
        return moved

    def flagged_merge(src, dst):
        count["on"] = True
        return merge(src, dst)

    pathlib.Path.rename, outputs._merge = counting_rename, flagged_merge
    try:
        outputs.write_result(result, out, overwrite=True)
    except KeyboardInterrupt as interrupt:
        sys.exit(143 if isinstance(interrupt, Terminated) else 130)


if __name__ == "__main__":
    _main(sys.argv[1:])
