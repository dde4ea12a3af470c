"""Measure the plausibility checks on real CTs, to set and re-check their thresholds (results: PLAUSIBILITY.md).

Good masks: the manual spinal cord and esophagus contours of OpenKBP head-and-neck CTs, and TotalSegmentator's
map of the 20-slice DICOM series. Any number of `organseg segment` result folders (CT named in their stats.json)
are measured too, e.g. the bundled models on the abdominal example and on head-and-neck CTs:

    python Testing/benchmarks/plausibility_calibration.py --data ../shared/data --openkbp 40 --results RESULT_DIR...
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import ORGANS, organ
from organseg.ct.grid import on_grid
from organseg.ct.labelmaps import organ_label_ids, read_label_names
from organseg.ct.read import read_ct
from organseg.masks import axial_extent
from organseg.method.postprocess import LEVEL_ORGANS
from organseg.results.plausibility import Scan, flags_of, measure

COLUMNS = ("volume_ml", "outside_body", "median_hu", "dense", "largest_parts", "outside_window", "side_mm")
OPENKBP = {"spinal_cord": 1, "esophagus": 2}  #: catalogue organ -> OpenKBP label id


def rows_of(source: str, case: str, ct: sitk.Image, masks: dict[str, np.ndarray]) -> list[dict]:
    scan = Scan(ct, sitk.GetArrayViewFromImage(ct))
    extents = {k: axial_extent(scan.canonical(m)) for k, m in masks.items() if k in LEVEL_ORGANS}
    rows = []
    for key, mask in masks.items():
        m = measure(organ(key), scan.canonical(mask), scan, extents)
        if m.voxels:
            rows.append({"source": source, "case": case, "organ": key, "cut": m.cut_by_fov,
                         **{c: getattr(m, c) for c in COLUMNS}, "flags": [f.code for f in flags_of(organ(key), m)]})
    return rows


def openkbp_rows(data: Path, limit: int) -> list[dict]:
    rows = []
    folders = sorted((data / "openkbp_hn").glob("*/pt_*"), key=lambda p: int(p.name[3:]))
    for folder in folders[:limit]:
        ct = sitk.ReadImage(str(folder / "ct.nii.gz"))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
        masks = {k: labels == v for k, v in OPENKBP.items() if (labels == v).any()}
        rows += rows_of("OpenKBP manual", folder.name, ct, masks)
    return rows


def totalseg_rows(data: Path) -> list[dict]:
    example = data / "totalseg_example"
    ct = read_ct(example / "example_ct_dicom")
    labels = on_grid(sitk.ReadImage(str(example / "example_seg_dicom.nii.gz")), ct)
    names = read_label_names(example / "labels_totalsegmentator_v2.json")
    array = sitk.GetArrayViewFromImage(labels)
    present = set(np.unique(array).tolist())
    masks = {}
    for o in ORGANS:
        ids = [i for i in organ_label_ids(o, names) if i in present] if o.totalsegmentator_names else []
        if ids:
            masks[o.key] = np.isin(array, ids)
    return rows_of("TotalSegmentator map", "example_ct_dicom", ct, masks)


def result_rows(folder: Path) -> list[dict]:
    doc = json.loads((folder / "stats.json").read_text())
    ct = read_ct(doc["source"])
    files = {row["organ"]: next((folder / "masks").glob(f"{row['organ']}.*")) for row in doc["organs"]}
    masks = {key: sitk.GetArrayFromImage(sitk.ReadImage(str(path))) > 0 for key, path in files.items()}
    return rows_of("bundled models", Path(doc["source"]).parent.name + "/" + Path(doc["source"]).name, ct, masks)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| source | case | organ | cut | " + " | ".join(COLUMNS) + " | flags |",
             "|" + "---|" * (len(COLUMNS) + 5)]
    for r in rows:
        lines.append(f"| {r['source']} | {r['case']} | {r['organ']} | {'yes' if r['cut'] else ''} | "
                     + " | ".join(_fmt(r[c]) for c in COLUMNS) + f" | {' '.join(r['flags'])} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> str:
    lines = ["| source | organ | n | flagged | " + " | ".join(f"{c} min-max" for c in COLUMNS) + " |",
             "|" + "---|" * (len(COLUMNS) + 4)]
    groups = dict.fromkeys((r["source"], r["organ"]) for r in rows)
    for source, key in groups:
        group = [r for r in rows if r["source"] == source and r["organ"] == key]
        cells = []
        for c in COLUMNS:
            values = [r[c] for r in group if not (isinstance(r[c], float) and math.isnan(r[c]))]
            cells.append(f"{_fmt(float(min(values)))}–{_fmt(float(max(values)))}" if values else "–")
        flagged = sum(bool(r["flags"]) for r in group)
        lines.append(f"| {source} | {key} | {len(group)} | {flagged} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--openkbp", type=int, default=40, help="OpenKBP cases to measure (lowest numbers)")
    parser.add_argument("--results", type=Path, nargs="*", default=[], help="result folders of organseg segment")
    args = parser.parse_args()
    rows = openkbp_rows(args.data, args.openkbp) + totalseg_rows(args.data)
    for folder in args.results:
        rows += result_rows(folder)
    print("## Range per source and organ\n\n" + summary(rows) + "\n## Every mask\n\n" + markdown(rows))


if __name__ == "__main__":
    main()
