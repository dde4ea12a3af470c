#!/usr/bin/env python
"""CPU speed of organ inference: torch full, ONNX Runtime full, coarse-to-fine and interpolate.

For a real CT (the TotalSegmentator example CT, 112 slices of 3 mm) and two synthetic whole-body-sized CTs
(512 x 512 x 800) made from it (tiled: the organs recur in every copy, the worst case for coarse-to-fine;
whole-body layout: the organs occur once), prints seconds per organ for each path, the ratio to the slowest
path, the slices each organ's network ran, the peak memory of each run, the Dice between the paths' masks and
the exact floor (the slices the final mask covers, at full inference's rate). Each run is a separate process
with its own peak memory. The torch path is skipped on the second synthetic CT: full inference costs the
same per slice whatever the slice shows. Run by hand, not in the test suite:

    python Testing/benchmarks/benchmark.py                      # writes Testing/benchmarks/BENCHMARK.md
    python Testing/benchmarks/benchmark.py --organs liver --no-torch --output -
    python Testing/benchmarks/benchmark.py --cases whole-body --no-torch --output -   # one case only

Models: the bundled packages (organseg/bundled/models) of the chosen organs; when none is installed, a quick
liver and spleen package is trained on the DICOM series first and the report says so.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ORGANSEG_TEST_DATA", REPO.parent / "shared" / "data" / "totalseg_example"))
PATHS = {"torch full": ("torch", "full"), "ORT full": ("onnx", "full"), "ORT coarse-to-fine": ("onnx", "coarse-to-fine"),
         "ORT interpolate": ("onnx", "interpolate")}
TS_LABELS = {"liver": 5, "spleen": 1}
SYNTH_MM = 1.5  #: slice spacing of the synthetic whole-body-sized CTs


def resampled(ct: sitk.Image, size: int = 512, slice_mm: float = SYNTH_MM) -> sitk.Image:
    """The real CT resampled to size x size in-plane (square pixels, whole field of view) and slice_mm slices."""
    spacing = max(ct.GetSpacing()[0] * ct.GetSize()[0], ct.GetSpacing()[1] * ct.GetSize()[1]) / size
    grid = sitk.Image(size, size, int(ct.GetSpacing()[2] * (ct.GetSize()[2] - 1) / slice_mm) + 1, sitk.sitkInt16)
    grid.SetSpacing((spacing, spacing, slice_mm))
    grid.SetDirection(ct.GetDirection())
    grid.SetOrigin(ct.GetOrigin())
    return sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkInt16)


def stacked(image: sitk.Image, parts: list[np.ndarray]) -> sitk.Image:
    """Slices of `image` stacked along z into a new image with its spacing, direction and origin."""
    out = sitk.GetImageFromArray(np.concatenate(parts))
    out.SetSpacing(image.GetSpacing())
    out.SetDirection(image.GetDirection())
    out.SetOrigin(image.GetOrigin())
    return out


def tiled(ct: sitk.Image, slices: int) -> sitk.Image:
    """The resampled real CT tiled along z, every other copy mirrored, to `slices` slices."""
    one = sitk.GetArrayFromImage(ct)
    copies = [one if i % 2 == 0 else one[::-1] for i in range(-(-slices // len(one)))]
    return stacked(ct, [np.concatenate(copies)[:slices]])


def single_torso(ct: sitk.Image, slices: int, base: int = 8) -> sitk.Image:
    """The resampled real CT once, above its `base` most inferior slices repeated (mirrored) to `slices` slices.

    A whole-body layout: the organs occur once, the other slices hold body (pelvis-level anatomy standing in
    for the legs) as in a real whole-body CT.
    """
    one = sitk.GetArrayFromImage(ct)
    below = slices - len(one)
    bottom = np.concatenate([one[:base] if i % 2 else one[:base][::-1] for i in range(-(-below // base))])
    return stacked(ct, [bottom[len(bottom) - below:], one])


def quick_models(folder: Path, steps: int) -> Path:
    """Liver and spleen packages trained for `steps` steps on the real DICOM series (demonstration quality)."""
    from organseg.io import read_ct
    from organseg.model_package import write_package
    from organseg.network import ResUNet2D
    from organseg.training.loop import state_dict_arrays

    sys.path.insert(0, str(REPO))
    from conftest import train_steps  # the test fixtures' few-step training
    from organseg.training.slices import organ_slices

    ct = read_ct(DATA / "example_ct_dicom")
    seg = sitk.ReadImage(str(DATA / "example_seg_dicom.nii.gz"))
    seg = sitk.Resample(seg, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, seg.GetPixelID())
    for key, label in TS_LABELS.items():
        pairs = organ_slices(ct, sitk.Cast(seg == label, sitk.sitkUInt8))
        net = ResUNet2D()
        train_steps(net, pairs.inputs, pairs.targets, steps=steps, batch_size=4, seed=1)
        write_package(folder, key, state_dict_arrays(net), net.channels,
                      {"summary": f"benchmark quick model: {steps} steps on the 20-slice DICOM series"}, {})
    return folder


def worker(args: argparse.Namespace) -> int:
    """One run in its own process: segment the CT with one path, save masks, print timings as JSON."""
    from organseg import runtime
    from organseg.result import Progress
    from organseg.segmenter import Segmenter

    engine, strategy = PATHS[args.path]
    runtime_class = runtime.OrtRuntime if engine == "onnx" else runtime.TorchRuntime
    slices: dict[str, int] = {}
    current = {"organ": ""}
    predict = runtime_class.predict

    def counting(self, batch: np.ndarray) -> np.ndarray:
        slices[current["organ"]] = slices.get(current["organ"], 0) + len(batch)
        return predict(self, batch)

    def progress(p: Progress) -> None:
        if p.stage == "inference":
            current["organ"] = p.organ.key

    runtime_class.predict = counting
    image = sitk.ReadImage(args.ct)
    segmenter = Segmenter(args.models, "cpu", engine, strategy=strategy)
    t0 = time.perf_counter()
    result = segmenter.segment(image, args.organs.split(","), progress)
    total = time.perf_counter() - t0
    np.savez_compressed(args.masks, **{k: np.packbits(m.full()) for k, m in result.masks.items()})
    print(json.dumps({"seconds": result.seconds, "total": total, "models": result.models, "slices": slices,
                      "peak_mb": peak_memory_mb()}))
    return 0


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM, which unlike ru_maxrss starts afresh at exec)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def run_path(ct: Path, path: str, organs: str, models: Path, masks: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--ct", str(ct), "--path", path, "--organs", organs,
           "--models", str(models), "--masks", str(masks)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{path} on {ct.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> list[str]:
    import onnxruntime
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    versions = [f"onnxruntime {onnxruntime.__version__}"]
    try:
        import torch
        versions.insert(0, f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    return [f"- CPU: {cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {', '.join(versions)}",
            f"- load average at start (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}"]


def benchmark(args: argparse.Namespace, tmp: Path) -> list[str]:
    from organseg.masks import dice
    from organseg.model_package import ModelStore, bundled_models_dir

    bundled = ModelStore([bundled_models_dir()]).available()
    organs = [o for o in args.organs.split(",") if o in bundled]
    if organs:
        models, note = bundled_models_dir(), "bundled model packages"
    else:
        print("no bundled model for these organs: training quick liver/spleen packages", file=sys.stderr)
        models, organs = quick_models(tmp / "models", args.train_steps), list(TS_LABELS)
        note = f"QUICK models trained here for {args.train_steps} steps on the DICOM series (not the bundled ones)"
    lines = ["# Inference speed on the CPU (Testing/benchmarks/benchmark.py)", "", *machine(),
             f"- models: {note} ({', '.join(organs)})", ""]
    real = sitk.ReadImage(str(DATA / "example_ct.nii.gz"))
    fine = resampled(real)
    cases = {"real": ("real CT example_ct.nii.gz", lambda: stacked(real, [sitk.GetArrayFromImage(real)])),
             "tiled": (f"synthetic CT, tiled: the real CT at {SYNTH_MM} mm, mirrored copies",
                       lambda: tiled(fine, args.slices)),
             "whole-body": (f"synthetic CT, whole-body layout: the real CT at {SYNTH_MM} mm once, above its most "
                            "inferior slices repeated", lambda: single_torso(fine, args.slices))}
    for index, (name, (title, make)) in enumerate(cases.items()):
        if name not in args.cases.split(","):
            continue
        image = make()
        file = tmp / f"ct{index}.mha"
        sitk.WriteImage(image, str(file))
        del image
        image = sitk.ReadImage(str(file))
        paths = [p for p in PATHS if not (p.startswith("torch") and (args.no_torch or index == 2))]
        size = "x".join(map(str, image.GetSize()))
        print(f"{title} {size}", file=sys.stderr)
        runs, masks = {}, {}
        for path in paths:
            runs[path] = run_path(file, path, ",".join(organs), models, tmp / "masks.npz")
            with np.load(tmp / "masks.npz") as data:
                masks[path] = {k: np.unpackbits(data[k]).astype(bool) for k in data.files}
            print(f"  {path}: {runs[path]['seconds']}", file=sys.stderr)
        lines += [f"## {title}: {size} voxels, {', '.join(f'{s:g}' for s in image.GetSpacing())} mm", "",
                  "| path | pre-processing s | " + " | ".join(f"{o} s" for o in organs)
                  + " | s per organ | speed-up | slices run | peak memory MB | Dice vs ORT full |",
                  "|---" * (len(organs) + 7) + "|"]
        slowest = max(np.mean([runs[p]["seconds"][o] for o in organs]) for p in paths)
        for path in paths:
            sec = runs[path]["seconds"]
            mean = float(np.mean([sec[o] for o in organs]))
            dices = ", ".join(f"{o} {dice(masks[path][o], masks['ORT full'][o]):.4f}" for o in organs)
            run = ", ".join(f"{o} {runs[path]['slices'].get(o, 0)}" for o in organs)
            lines.append(f"| {path} | {sec.get('_prepare', 0):.2f} | " + " | ".join(f"{sec[o]:.2f}" for o in organs)
                         + f" | {mean:.2f} | {slowest / mean:.1f}x | {run} | {runs[path]['peak_mb']:.0f} | {dices} |")
        lines += ["", "Organ voxels (ORT full): " + ", ".join(f"{o} {int(masks['ORT full'][o].sum())}" for o in organs),
                  "", exact_floor(runs["ORT full"], masks["ORT full"], image.GetSize()[::-1], organs), ""]
    lines.append(f"- load average at end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return lines


def exact_floor(full: dict, masks: dict[str, np.ndarray], shape: tuple[int, ...], organs: list[str]) -> str:
    """The least any exact strategy can cost: every slice of the final mask run at the full path's rate."""
    parts = []
    for o in organs:
        covered = int(masks[o].reshape(shape).any(axis=(1, 2)).sum())
        rate = full["seconds"][o] / full["slices"][o]
        parts.append(f"{o} {covered} slices, {covered * rate:.2f} s")
    return ("Exact floor (slices of the final mask, each run at ORT full's seconds per slice; every exact strategy "
            "runs at least these): " + ", ".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organs", default="liver,spleen")
    parser.add_argument("--slices", type=int, default=800, help="slices of the synthetic CT (default 800)")
    parser.add_argument("--cases", default="real,tiled,whole-body", help="CTs to run (default: all three)")
    parser.add_argument("--no-torch", action="store_true", help="skip the (slow) torch path")
    parser.add_argument("--train-steps", type=int, default=60, help="steps of the quick models if none is bundled")
    parser.add_argument("--output", default=str(Path(__file__).with_name("BENCHMARK.md")), help="report file, or -")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--ct", "--path", "--models", "--masks"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    tmp = Path(tempfile.mkdtemp(prefix="organseg-bench-"))
    try:
        report = "\n".join(benchmark(args, tmp)) + "\n"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report)
    if args.output != "-":
        Path(args.output).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
