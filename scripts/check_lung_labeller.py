"""Run the lung labeller on every real CT in ../shared/data and print one row per CT (volumes, seconds, checks).

The rows are the evidence the lungs model card cites (`checked_on`): right and left lung volumes in mL, the
axial range labelled, whether the right lung lies on the patient's right (LPS x), and the labeller's seconds.

Usage: python scripts/check_lung_labeller.py [DATA_DIR] > scripts/lung_labeller_check.tsv
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.method.lungs import LEFT, RIGHT, label_lungs

REPO = Path(__file__).resolve().parents[1]


def real_cts(data: Path) -> list[tuple[str, Path]]:
    """(name, path) of the TotalSegmentator fixtures and every OpenKBP case."""
    found = [("totalseg/example_ct", data / "totalseg_example/example_ct.nii.gz"),
             ("totalseg/example_ct_dicom", data / "totalseg_example/example_ct_dicom")]
    for path in sorted((data / "openkbp_hn").glob("*/pt_*/ct.nii.gz"), key=lambda p: int(p.parent.name[3:])):
        found.append((f"openkbp/{path.parent.parent.name}/{path.parent.name}", path))
    return [(name, path) for name, path in found if path.exists()]


def check(path: Path) -> dict:
    """Label one CT; volumes, the labelled axial range in mm and the LPS x of each lung's centroid."""
    image = read_ct(path)
    orient = Reorientation.of(image)
    volume = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(image)))
    spacing = orient.spacing(image)
    start = time.perf_counter()
    labels = label_lungs(volume, spacing)
    seconds = time.perf_counter() - start
    source = orient.from_canonical(labels)  # (z, y, x) on the image grid, for LPS positions
    row = {"seconds": seconds, "slices": volume.shape[0]}
    for name, side in (("right", RIGHT), ("left", LEFT)):
        idx = np.argwhere(source == side)
        row[f"{name}_ml"] = len(idx) * float(np.prod(spacing)) / 1000.0
        row[f"{name}_x_mm"] = (image.TransformContinuousIndexToPhysicalPoint(idx.mean(axis=0)[::-1].tolist())[0]
                               if len(idx) else float("nan"))
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    row["lung_slices"] = f"{zs[0]}-{zs[-1]}" if zs.size else "-"
    return row


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    print("case\tslices\tlung_slices\tright_ml\tleft_ml\tright_x_mm\tleft_x_mm\tseconds")
    for name, path in real_cts(data):
        r = check(path)
        print(f"{name}\t{r['slices']}\t{r['lung_slices']}\t{r['right_ml']:.1f}\t{r['left_ml']:.1f}\t"
              f"{r['right_x_mm']:.1f}\t{r['left_x_mm']:.1f}\t{r['seconds']:.2f}", flush=True)


if __name__ == "__main__":
    main()
