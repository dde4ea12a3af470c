#!/usr/bin/env python
"""CTs per minute of `organseg batch` in-process against `organseg batch --workers N` (a local Dask cluster).

Runs the same real CTs (OpenKBP head-and-neck CTs, 128^3) both ways with the bundled models, each into its
own output folder, and prints CTs per minute for each way, their ratio, the mean seconds one CT took inside
each way (from batch_summary.csv) and whether the masks are bit-identical. The Dask run's time includes
starting the cluster, as a user pays it. Run by hand, not in the test suite:

    python Testing/benchmarks/cluster_benchmark.py                  # 6 CTs, liver, --workers 2
    python Testing/benchmarks/cluster_benchmark.py --cts 10 --organs liver,spleen --workers 2
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from organseg.cli import main as organseg

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ORGANSEG_TEST_DATA", REPO.parent / "shared" / "data" / "totalseg_example"))


def cropped(ct: Path, to: Path, slices: int) -> Path:
    """The CT's middle `slices` slices, written to `to` (geometry kept)."""
    image = sitk.ReadImage(str(ct))
    start = max(0, (image.GetSize()[2] - slices) // 2)
    sitk.WriteImage(image[:, :, start:start + slices], str(to))
    return to


def timed_batch(cts: list[Path], out: Path, organs: str, extra: list[str]) -> float:
    """Seconds one `organseg batch` run takes."""
    t0 = time.perf_counter()
    code = organseg(["batch", *map(str, cts), "-o", str(out), "--organs", organs, *extra])
    if code != 0:
        raise SystemExit(f"organseg batch {' '.join(extra)} failed (exit {code})")
    return time.perf_counter() - t0


def case_seconds(out: Path) -> list[float]:
    with open(out / "batch_summary.csv", newline="") as fh:
        return [float(row["seconds"]) for row in csv.DictReader(fh)]


def same_masks(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*.nii.gz"))
    return bool(files) and all(
        (sitk.GetArrayFromImage(sitk.ReadImage(str(a / f))) == sitk.GetArrayFromImage(sitk.ReadImage(str(b / f)))).all()
        for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cts", type=int, default=6, help="OpenKBP CTs to segment (default 6)")
    parser.add_argument("--organs", default="liver", help="organs (default liver)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    parser.add_argument("--slices", type=int, help="keep only this many middle slices of each CT (default all 128)")
    args = parser.parse_args()
    hn = DATA.parent / "openkbp_hn" / "validation"
    cts = sorted(hn.glob("pt_*/ct.nii.gz"))[:args.cts]
    if len(cts) < args.cts:
        raise SystemExit(f"{hn}: found {len(cts)} CTs, fewer than --cts {args.cts}")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if args.slices:
            cts = [cropped(ct, Path(tmp) / f"{ct.parent.name}.nii.gz", args.slices) for ct in cts]
        serial_s = timed_batch(cts, Path(tmp) / "serial", args.organs, [])
        dask_s = timed_batch(cts, Path(tmp) / "dask", args.organs, ["--workers", str(args.workers)])
        identical = same_masks(Path(tmp) / "serial", Path(tmp) / "dask")
        per_case = {way: case_seconds(Path(tmp) / way) for way in ("serial", "dask")}
    rate = {"serial": len(cts) / serial_s * 60, "dask": len(cts) / dask_s * 60}
    size = "x".join(map(str, sitk.ReadImage(str(cts[0])).GetSize())) if not args.slices else f"128x128x{args.slices}"
    print(f"{len(cts)} OpenKBP CTs ({size}), organs {args.organs}, bundled models; {os.cpu_count()} CPU cores, "
          f"load average {load:.1f} before the runs, {os.getloadavg()[0]:.1f} after; {platform.machine()}")
    print(f"{'way':<22}{'seconds':>9}{'CTs/min':>9}{'s per CT inside':>17}")
    for way, label, total in (("serial", "in-process", serial_s), ("dask", f"--workers {args.workers}", dask_s)):
        print(f"{label:<22}{total:>9.1f}{rate[way]:>9.2f}{sum(per_case[way]) / len(cts):>17.1f}")
    print(f"ratio --workers {args.workers} / in-process: {rate['dask'] / rate['serial']:.2f}; "
          f"masks bit-identical: {identical}")


if __name__ == "__main__":
    main()
