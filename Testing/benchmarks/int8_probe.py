#!/usr/bin/env python
"""Would an int8 ONNX model keep the masks? Static ONNX Runtime quantisation of the bundled models, measured.

For each bundled organ model: calibrate on every slice of the DICOM series and every 4th slice of the example
CT, then compare with the fp32 model on the example CT's other slices: milliseconds per slice (batches of 4)
and the Dice of the thresholded masks. Two variants: every layer int8, and the decoder half int8 (the first
three encoder blocks, the layers measured most sensitive, stay fp32). Run by hand (needs the `onnx` package):

    python Testing/benchmarks/int8_probe.py   # prints a markdown table; results are in Testing/benchmarks/BENCHMARK.md
"""
from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import SimpleITK as sitk
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.masks import dice
from organseg.method.model_package import ModelStore, bundled_models_dir
from organseg.method.preprocess import Prepared, prepare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import DATA  # noqa: E402

VARIANTS = {"all layers int8": (), "decoder half int8": ("/encoders.0/", "/encoders.1/", "/encoders.2/")}


def prepared(path: Path) -> Prepared:
    image = read_ct(path)
    array = Reorientation.of(image, str(path)).to_canonical(sitk.GetArrayViewFromImage(image))
    return prepare(np.ascontiguousarray(array))


class Slices(CalibrationDataReader):
    """Calibration batches of one slice each."""

    def __init__(self, slices: np.ndarray) -> None:
        self.batches = iter([{"slices": slices[i:i + 1]} for i in range(len(slices))])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed_logits(model: Path, slices: np.ndarray) -> tuple[np.ndarray, float]:
    """Logits of all slices in batches of 4, and milliseconds per slice (after one warm-up batch)."""
    s = session(model)
    s.run(None, {"slices": slices[:4]})
    t0 = time.perf_counter()
    out = np.concatenate([s.run(None, {"slices": slices[i:i + 4]})[0] for i in range(0, len(slices), 4)])
    return out, (time.perf_counter() - t0) / len(slices) * 1000


def quantised(source: Path, folder: Path, calibration: np.ndarray, keep_fp32: tuple[str, ...]) -> Path:
    """Static QDQ int8 model (per-channel weights, uint8 activations); nodes named with `keep_fp32` stay fp32."""
    pre, out = folder / "pre.onnx", folder / "int8.onnx"
    quant_pre_process(str(source), str(pre))
    nodes = [n.name for n in onnx.load(str(pre)).graph.node]
    quantize_static(str(pre), str(out), Slices(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_quantize=[n for n in nodes if not n.startswith(keep_fp32)] if keep_fp32 else None)
    return out


def main() -> int:
    logging.disable(logging.WARNING)
    series, example = prepared(DATA / "example_ct_dicom"), prepared(DATA / "example_ct.nii.gz")
    rows = np.arange(len(example.inputs))
    calibration = np.concatenate([series.batch(np.arange(len(series.inputs))), example.batch(rows[::4])])
    test = example.batch(rows[rows % 4 > 0])
    store = ModelStore([bundled_models_dir()])
    print(f"calibration {len(calibration)} slices, test {len(test)} slices of example_ct.nii.gz\n")
    print("| organ | variant | fp32 ms/slice | int8 ms/slice | speed-up | Dice vs fp32 | voxels fp32 / int8 |")
    print("|---|---|---|---|---|---|---|")
    for key in store.available():
        package = store.get(key)
        for variant, keep in VARIANTS.items():
            with tempfile.TemporaryDirectory() as folder:
                int8 = quantised(package.onnx_path, Path(folder), calibration, keep)
                ref, ms_ref = timed_logits(package.onnx_path, test)
                out, ms = timed_logits(int8, test)
            cut = np.log(package.threshold / (1 - package.threshold))  # the threshold as a logit
            a, b = ref >= cut, out >= cut
            print(f"| {key} | {variant} | {ms_ref:.1f} | {ms:.1f} | {ms_ref / ms:.2f}x | {dice(a, b):.4f} "
                  f"| {int(a.sum())} / {int(b.sum())} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
