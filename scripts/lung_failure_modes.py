"""Failure modes of the lung labeller, measured on real CTs with synthetic perturbations, and its speed.

For each real CT the labeller's own output is the reference; each perturbation (dense consolidation inside the
lung and against the chest wall, ground glass, emphysema, a metal implant with streaks, low-dose noise, cropped
fields of view) is applied to the CT and the labeller is run again. Printed as a markdown table (Dice against
the unperturbed labels over the voxels the perturbed CT still holds; for lesions, the share of the lesion
labelled lung), then the seconds on each CT, including a whole-body-sized one built as
Testing/benchmarks/benchmark.py does.

Usage: python scripts/lung_failure_modes.py [DATA_DIR] > scripts/lung_failure_modes.md
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.evaluation.metrics import dice
from organseg.method.lungs import RIGHT, label_lungs

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)


def canonical(image: sitk.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    orient = Reorientation.of(image)
    ct = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(image))).astype(np.int16)
    return ct, orient.spacing(image)


def ball(shape: tuple[int, ...], centre: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)) <= radius_mm ** 2


def lesions(ct: np.ndarray, labels: np.ndarray, spacing) -> dict[str, np.ndarray]:
    """Lesion masks in the right lung: deep inside it, and against its lateral chest wall."""
    right = labels == RIGHT
    depth = ndimage.distance_transform_edt(right, sampling=spacing)
    deep = np.array(np.unravel_index(np.argmax(depth), depth.shape))
    z = deep[0]
    cols = np.flatnonzero(right[z].any(axis=0))
    rows = np.flatnonzero(right[z, :, cols[0]])
    wall = np.array([z, rows[len(rows) // 2], cols[0]])
    radius = min(20.0, float(depth.max()) * 0.8)
    return {"deep": ball(ct.shape, deep, radius, spacing) & right,
            "wall": ball(ct.shape, wall, 25.0, spacing) & (ct > -1024)}


def metal(ct: np.ndarray, labels: np.ndarray, spacing) -> np.ndarray:
    """A pacemaker-like metal disc in the anterior left chest wall with bright and dark streaks (in-plane)."""
    out = ct.astype(np.float32)
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    z0 = zs[len(zs) // 2]
    band = range(max(0, z0 - int(15 / spacing[0])), min(ct.shape[0], z0 + int(15 / spacing[0]) + 1))
    body_rows = np.flatnonzero((ct[z0] > -500).any(axis=1))
    centre = np.array([body_rows[0] + int(12 / spacing[1]), int(ct.shape[2] * 0.65)])
    yy, xx = np.mgrid[:ct.shape[1], :ct.shape[2]]
    dy, dx = (yy - centre[0]) * spacing[1], (xx - centre[1]) * spacing[2]
    dist, angle = np.hypot(dy, dx), np.arctan2(dy, dx)
    streaks = 900 * np.cos(12 * angle) * np.exp(-dist / 80.0) * (np.abs(np.sin(12 * angle)) < 0.2)
    for z in band:
        out[z] += streaks
        out[z][dist <= 6.0] = 3000
    return np.clip(out, -1024, 3071).astype(np.int16)


def perturbations(ct: np.ndarray, labels: np.ndarray, spacing) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, perturbed CT, lesion mask or None)."""
    lungs = labels > 0
    found = lesions(ct, labels, spacing)
    out = []
    for where, mask in found.items():
        dense = ct.copy()
        dense[mask] = (40 + RNG.normal(0, 15, mask.sum())).astype(np.int16)
        out.append((f"consolidation, {where} (40 HU, {mask.sum() * np.prod(spacing) / 1000:.0f} mL)", dense, mask))
    glass = ct.copy()
    glass[found["deep"]] += 250
    out.append(("ground glass (+250 HU)", glass, found["deep"]))
    emphysema = ct.copy()
    emphysema[lungs] = np.maximum(emphysema[lungs] - 100, -1024)
    out.append(("emphysema (lungs -100 HU)", emphysema, None))
    out.append(("metal implant with streaks", metal(ct, labels, spacing), None))
    out.append(("noise (sigma 60 HU)", np.clip(ct + RNG.normal(0, 60, ct.shape), -1024, 3071).astype(np.int16), None))
    return out


def crops(labels: np.ndarray) -> list[tuple[str, tuple[slice, ...]]]:
    """Cropped fields of view: upper third of the lungs, lower third, and the right side of the body cut off."""
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    third = max(1, (zs[-1] - zs[0]) // 3)
    cols = np.flatnonzero(labels.any(axis=(0, 1)))
    return [("FOV: upper third of the lungs", (slice(zs[-1] - third, None), slice(None), slice(None))),
            ("FOV: lower third of the lungs", (slice(0, zs[0] + third), slice(None), slice(None))),
            ("FOV: right chest wall cut off", (slice(None), slice(None), slice(cols[0] + (cols[-1] - cols[0]) // 8,
                                                                                None)))]


def rows_for(name: str, ct: np.ndarray, spacing) -> list[str]:
    labels = label_lungs(ct, spacing)
    ml = float(np.prod(spacing)) / 1000
    rows = [f"| {name} | none | {np.count_nonzero(labels == 1) * ml:.0f} / {np.count_nonzero(labels == 2) * ml:.0f}"
            " | 1.000 | - |"]
    for what, changed, lesion in perturbations(ct, labels, spacing):
        new = label_lungs(changed, spacing)
        share = f"{np.count_nonzero(new[lesion] > 0) / max(1, lesion.sum()):.2f}" if lesion is not None else "-"
        rows.append(f"| {name} | {what} | {np.count_nonzero(new == 1) * ml:.0f} / {np.count_nonzero(new == 2) * ml:.0f}"
                    f" | {dice(new > 0, labels > 0):.3f} | {share} |")
    for what, box in crops(labels):
        new = label_lungs(np.ascontiguousarray(ct[box]), spacing)
        rows.append(f"| {name} | {what} | {np.count_nonzero(new == 1) * ml:.0f} / {np.count_nonzero(new == 2) * ml:.0f}"
                    f" | {dice(new > 0, labels[box] > 0):.3f} | - |")
    return rows


def seconds(ct: np.ndarray, spacing) -> float:
    start = time.perf_counter()
    label_lungs(ct, spacing)
    return time.perf_counter() - start


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    cases = {"OpenKBP pt_82 (neck and upper thorax)": data / "openkbp_hn/train/pt_82/ct.nii.gz",
             "OpenKBP pt_7 (neck and upper thorax)": data / "openkbp_hn/train/pt_7/ct.nii.gz",
             "TotalSegmentator example_ct (lung bases, abdomen)": data / "totalseg_example/example_ct.nii.gz"}
    print("| CT | perturbation | right / left mL | Dice vs unperturbed | lesion labelled lung |")
    print("|---|---|---|---|---|")
    images = {}
    for name, path in cases.items():
        images[name] = canonical(read_ct(path))
        for row in rows_for(name, *images[name]):
            print(row, flush=True)
    sys.path.insert(0, str(REPO / "Testing" / "benchmarks"))
    from benchmark import resampled, single_torso
    example = read_ct(cases["TotalSegmentator example_ct (lung bases, abdomen)"])
    thorax = canonical(resampled(read_ct(cases["OpenKBP pt_82 (neck and upper thorax)"])))
    whole = canonical(single_torso(resampled(example), 800))
    dicom = canonical(read_ct(data / "totalseg_example/example_ct_dicom"))
    print("\n| CT | voxels (S x P x L) | labeller seconds |\n|---|---|---|")
    for name, (ct, spacing) in [*images.items(), ("DICOM series", dicom),
                                ("OpenKBP pt_82 resampled to 512 x 512, 1.5 mm slices", thorax),
                                ("whole-body-sized (example_ct as in Testing/benchmarks/benchmark.py)", whole)]:
        print(f"| {name} | {'x'.join(map(str, ct.shape))} | {seconds(ct, spacing):.2f} |", flush=True)
    print(f"\nCPU load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
