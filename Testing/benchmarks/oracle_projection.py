#!/usr/bin/env python
"""What coarse-to-fine would cost with a model that finds only the organ: a projection, run by hand.

On the 512x512x800 whole-body layout of Testing/benchmarks/benchmark.py, the bundled model's full pass gives the final
(post-processed) mask. An oracle runtime then answers every slice with that final mask, but runs the real
network on the same batch first, so the seconds include the real network cost. Prints the slices the oracle
run evaluated, its seconds (network + pasting back + cleaning) and its Dice against the final mask.

    python Testing/benchmarks/oracle_projection.py [--organ liver]
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import organ
from organseg.ct.orientation import Reorientation
from organseg.masks import dice
from organseg.method import postprocess as pp
from organseg.method.inference import FINE_MARGIN_MM, coarse_stride, predict_organ, slices_within
from organseg.method.model_package import ModelStore, bundled_models_dir
from organseg.method.preprocess import prepare
from organseg.method.runtime import make_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import DATA, resampled, single_torso  # noqa: E402


class OracleRuntime:
    """Answers each prepared slice with a given mask, after running the real network on the batch."""

    name = "oracle"

    def __init__(self, real, answers: dict[str, np.ndarray]) -> None:
        self.real, self.answers, self.slices = real, answers, 0
        self.context = real.context

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.real.predict(batch)
        self.slices += len(batch)
        return np.stack([self.answers[_key(row[0])] for row in batch])


def _key(row: np.ndarray) -> str:
    return hashlib.sha1(row.tobytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organ", default="liver")
    args = parser.parse_args()
    image = single_torso(resampled(sitk.ReadImage(str(DATA / "example_ct.nii.gz"))), 800)
    orient = Reorientation.of(image, "whole-body layout")
    canonical = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(image)))
    slice_mm = orient.spacing(image)[0]
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    prepared = prepare(canonical)
    package = ModelStore([bundled_models_dir()]).get(args.organ)
    real = make_runtime(package, "cpu")
    final = pp.clean_organ(args.organ, predict_organ(prepared, real, package.threshold), voxel_ml)
    answers = {_key(prepared.inputs[row]): prepared.record.forward(final.astype(np.float32), z)
               for row, z in enumerate(prepared.record.slices_with_body)}
    oracle = OracleRuntime(real, answers)
    t0 = time.perf_counter()
    stride = coarse_stride(slice_mm, organ(args.organ).min_extent_mm)
    mask = predict_organ(prepared, oracle, package.threshold, stride=stride,
                         margin=slices_within(FINE_MARGIN_MM, slice_mm))
    mask = pp.clean_organ(args.organ, mask, voxel_ml)
    seconds = time.perf_counter() - t0
    print(f"{args.organ}: final mask on {int(final.any(axis=(1, 2)).sum())} slices; oracle coarse-to-fine ran "
          f"{oracle.slices} slices in {seconds:.2f} s ({seconds / oracle.slices * 1000:.0f} ms per slice in all); "
          f"Dice vs the final mask {dice(mask, final):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
