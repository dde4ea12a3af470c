#!/usr/bin/env python
"""Speed of every shipped model on the CPU or a GPU: seconds per organ with the default strategy against every
slice, one run.

Organs: every bundled model package (organseg/bundled/models), whatever is installed there, or `--organs`.
Cases: the real CTs of ../shared/data (the TotalSegmentator example CT, its DICOM series, the first OpenKBP
head-and-neck validation patients) and a whole-body-sized CT (512 x 512 x 800, 1.5 mm) made from the example CT:
its torso once, above its most inferior slices repeated, standing in for the legs. `tiled` (the torso repeated,
the worst case for coarse-to-fine) runs on request. Per case, each run is its own process with its own peak memory:

- all organs together, every slice ("full") and the default strategy ("default", coarse-to-fine);
- with `--singles` cases: each organ alone with the default strategy, its anchors added as a user would get them.

Per organ: seconds (network, pasting back and cleaning: `Result.seconds`), network seconds, slices run, the exact
floor (the slices of the final mask, at full's seconds per slice: every exact strategy runs at least these), where
the default's slices lie (in the final mask, within 10 mm of it, elsewhere), and the Dice between the default's
and full's masks. Per run: pre-processing, wall seconds and peak memory. Run by hand, not in the test suite:

    python Testing/benchmarks/benchmark.py                                  # writes BENCHMARK.md beside this script
    python Testing/benchmarks/benchmark.py --cases real --organs liver --output -
    python Testing/benchmarks/benchmark.py --device cuda --output BENCHMARK_GPU.md        # on a GPU machine

On a GPU each run segments the CT once untimed first (CUDA context, cuDNN's choice of kernels), then timed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = next(p for p in Path(__file__).resolve().parents if (p / "OrganSegLib").is_dir())
DATA = Path(os.environ.get("ORGANSEG_TEST_DATA", REPO.parent / "shared" / "data" / "totalseg_example"))
OPENKBP = DATA.parent / "openkbp_hn"
SYNTH_MM = 1.5  #: slice spacing of the synthetic whole-body-sized CTs
NEAR_MM = 10.0  #: "near the mask": within the coarse-to-fine fine margin


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
    """The resampled real CT once, above its `base` most inferior slices repeated (mirrored) to `slices` slices."""
    one = sitk.GetArrayFromImage(ct)
    below = slices - len(one)
    bottom = np.concatenate([one[:base] if i % 2 else one[:base][::-1] for i in range(-(-below // base))])
    return stacked(ct, [bottom[len(bottom) - below:], one])


def openkbp_cases(count: int) -> list[Path]:
    """The first `count` OpenKBP validation patients contoured for both spinal cord and esophagus."""
    with open(OPENKBP / "cases.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "validation"
                and {"SpinalCord", "Esophagus"} <= set(r["labelled"].split(";"))]
    return [OPENKBP / "validation" / r["case"] / "ct.nii.gz" for r in rows[:count]]


def worker(args: argparse.Namespace) -> int:
    """One run in its own process: segment the CT, save the masks, print timings and the slices run as JSON."""
    from organseg.ct.orientation import Reorientation
    from organseg.ct.read import read_ct
    from organseg.method import inference, runtime
    from organseg.segmenter import Segmenter

    organ = {"key": ""}
    network: dict[str, float] = defaultdict(float)
    ran: dict[str, list[int]] = defaultdict(list)

    def timed(method):
        def wrapper(self, *a, **k):
            t0 = time.perf_counter()
            try:
                return method(self, *a, **k)
            finally:
                network[organ["key"]] += time.perf_counter() - t0
        return wrapper

    run = inference._RowPredictor.run  # private: the benchmark records which slices each organ's network ran

    def recording(self, rows: np.ndarray) -> None:
        ran[organ["key"]] += self.prepared.record.slices_with_body[rows[~self.done[rows]]].tolist()
        run(self, rows)

    inference._RowPredictor.run = recording
    for name, method in (("OrtRuntime", "predict"), ("TorchRuntime", "predict"), ("LabellerRuntime", "mask")):
        if hasattr(runtime, name):
            setattr(getattr(runtime, name), method, timed(getattr(getattr(runtime, name), method)))
    image = read_ct(args.ct)
    segmenter = Segmenter(models=args.models or None, device=args.device, strategy=args.strategy)
    if args.device != "cpu":
        segmenter.segment(image, args.organs.split(","))  # warm-up, untimed
        network.clear()
        ran.clear()
    t0 = time.perf_counter()
    result = segmenter.segment(image, args.organs.split(","),
                               lambda p: organ.update(key=p.organ.key) if p.stage == "inference" else None)
    wall = time.perf_counter() - t0
    orient = Reorientation.of(image)
    np.savez_compressed(args.masks, **{k: np.packbits(m.full()) for k, m in result.masks.items()})
    final = {k: np.flatnonzero(orient.to_canonical(m.full()).any(axis=(1, 2))).tolist()
             for k, m in result.masks.items()}
    print(json.dumps({"seconds": result.seconds, "wall": wall, "network": network, "ran": ran, "final": final,
                      "models": result.models, "shape": image.GetSize()[::-1], "peak_mb": peak_memory_mb(),
                      "slice_mm": orient.spacing(image)[0]}))
    return 0


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM, which unlike ru_maxrss starts afresh at exec)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def run(ct: Path, strategy: str, organs: list[str], models: str, masks: Path, device: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--ct", str(ct), "--strategy", strategy, "--organs",
           ",".join(organs), "--masks", str(masks), "--device", device] + (["--models", models] if models else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{strategy} on {ct} failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(masks) as data:
        out["masks"] = {k: np.unpackbits(data[k]).astype(bool) for k in data.files}
    return out


def machine(device: str) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    try:
        import torch
        gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU on this machine"
        engines = f"torch {torch.__version__}"
    except ImportError:
        gpu, engines = "no GPU on this machine", "no torch"
    try:
        import onnxruntime
        engines += f", onnxruntime {onnxruntime.__version__}"
    except ImportError:
        engines += ", no onnxruntime"
    return [f"- CPU: {cpu}, {os.cpu_count()} cores; {gpu}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {engines}; organs run on: {device}", load("start")]


def load(when: str) -> str:
    return f"- load average at {when} (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}"


def organ_rows(full: dict, fast: dict, organs: list[str], dice) -> list[str]:
    """Per organ: seconds, slices run, exact floor, where the default's slices lie, Dice against full."""
    near = max(1, int(NEAR_MM // fast["slice_mm"]))
    rows = ["| organ | model | full s | default s | default / full | network s (default) | slices full | "
            "slices default | floor slices | floor s | default's slices: in mask / within 10 mm / elsewhere | "
            "Dice default vs full |", "|---" * 12 + "|"]
    for o in organs:
        f_s, d_s = full["seconds"][o], fast["seconds"][o]
        covered = np.asarray(full["final"][o], dtype=int)
        if full["ran"].get(o):
            rate = f_s / len(full["ran"][o])
            visited = np.asarray(fast["ran"].get(o, []), dtype=int)
            dist = (np.abs(visited[:, None] - covered[None, :]).min(axis=1) if covered.size and visited.size
                    else np.full(visited.size, 10 ** 6))
            where = f"{int((dist == 0).sum())} / {int(((dist > 0) & (dist <= near)).sum())} / {int((dist > near).sum())}"
            slices = (f"{len(full['ran'][o])} | {len(visited)} | {covered.size} | {covered.size * rate:.2f} | {where}")
        else:  # a classical labeller works on the whole volume at once
            slices = "whole volume | whole volume | - | - | -"
        rows.append(f"| {o} | {fast['models'][o]} | {f_s:.2f} | {d_s:.2f} | {d_s / f_s:.2f} | "
                    f"{fast['network'].get(o, 0.0):.2f} | {slices} | {dice(fast['masks'][o], full['masks'][o]):.4f} |")
    return rows


def benchmark(args: argparse.Namespace, tmp: Path) -> list[str]:
    from organseg.masks import dice
    from organseg.method.model_package import ModelStore, bundled_models_dir

    store = ModelStore([Path(args.models)] if args.models else [bundled_models_dir()])
    organs = sorted(store.available()) if args.organs == "shipped" else args.organs.split(",")
    where = "the CPU" if args.device == "cpu" else f"the GPU ({args.device})"
    lines = [f"# Inference speed on {where} (Testing/benchmarks/benchmark.py)", "", *machine(args.device),
             f"- models: {'bundled model packages' if not args.models else args.models} ({', '.join(organs)})",
             "- full: every slice with body; default: the default strategy (coarse-to-fine). Organ seconds are "
             "`Result.seconds` (network, pasting back, cleaning); pre-processing runs once per CT for all organs.", ""]
    real = DATA / "example_ct.nii.gz"
    cases = {"real": [("real CT example_ct.nii.gz", lambda: real)],
             "dicom": [("real CT example_ct_dicom (20-slice DICOM series)", lambda: DATA / "example_ct_dicom")],
             "openkbp": [(f"real head-and-neck CT OpenKBP {p.parent.name}", lambda p=p: p)
                         for p in openkbp_cases(args.openkbp)],
             "whole-body": [(f"synthetic CT, whole-body layout: the real CT at {SYNTH_MM} mm once, above its most "
                             "inferior slices repeated", lambda: write(single_torso(resampled(sitk.ReadImage(str(real))),
                                                                                    args.slices), tmp / "wb.mha"))],
             "tiled": [(f"synthetic CT, tiled: the real CT at {SYNTH_MM} mm, mirrored copies",
                        lambda: write(tiled(resampled(sitk.ReadImage(str(real))), args.slices), tmp / "tiled.mha"))]}
    for name in args.cases.split(","):
        for title, make in cases[name]:
            ct = make()
            print(f"{title}", file=sys.stderr)
            full = run(ct, "full", organs, args.models, tmp / "m.npz", args.device)
            fast = run(ct, "coarse-to-fine", organs, args.models, tmp / "m.npz", args.device)
            size = "x".join(map(str, full["shape"][::-1]))
            lines += [f"## {title}: {size} voxels, {full['slice_mm']:g} mm slices", "",
                      *organ_rows(full, fast, organs, dice), "",
                      f"All {len(organs)} organs together: wall {full['wall']:.1f} s full, {fast['wall']:.1f} s default "
                      f"({fast['wall'] / full['wall']:.2f}); pre-processing {full['seconds'].get('_prepare', 0):.2f} s "
                      f"/ {fast['seconds'].get('_prepare', 0):.2f} s; peak memory {full['peak_mb']:.0f} / "
                      f"{fast['peak_mb']:.0f} MB.", ""]
            if name in args.singles.split(","):
                alone = {o: run(ct, "coarse-to-fine", [o], args.models, tmp / "m.npz", args.device) for o in organs}
                total = sum(a["wall"] for a in alone.values())
                lines += ["Each organ alone (default strategy, its anchors added): wall s "
                          + ", ".join(f"{o} {a['wall']:.1f}" for o, a in alone.items())
                          + f"; sum {total:.1f} s against {fast['wall']:.1f} s together ({fast['wall'] / total:.2f}).",
                          ""]
            print(f"  full {full['wall']:.1f} s, default {fast['wall']:.1f} s", file=sys.stderr)
    return lines + [load("end")]


def write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organs", default="shipped", help="comma list, or 'shipped' (every bundled package)")
    parser.add_argument("--models", default="", help="a models folder instead of the bundled packages")
    parser.add_argument("--cases", default="real,dicom,openkbp,whole-body",
                        help="CTs to run: real, dicom, openkbp, whole-body, tiled (default: all but tiled)")
    parser.add_argument("--openkbp", type=int, default=2, help="OpenKBP validation patients (default 2)")
    parser.add_argument("--singles", default="real,whole-body", help="cases where each organ also runs alone")
    parser.add_argument("--slices", type=int, default=800, help="slices of the synthetic CTs (default 800)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("BENCHMARK.md")), help="report file, or -")
    parser.add_argument("--device", default="cpu", help="where the organs run: cpu (default) or cuda")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--ct", "--strategy", "--masks"):
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
