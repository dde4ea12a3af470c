"""Whether two runs of `organseg segment` wrote the same results: a check for changes that must not change
what the method computes (a restructure, a refactor).

    python Testing/benchmarks/check_identical.py REFERENCE_DIR NEW_DIR

Both folders hold result folders (or are one). Compared file by file, every file of either side:
- images (.nii.gz, .nrrd, .mha): pixel type, size, origin, spacing and direction equal, voxels identical;
- Slicer's .seg.nrrd: voxels identical and every header field equal (pynrrd's date comment is not a field);
- .json and .csv: equal, except fields that measure time (a key or column naming seconds or time);
- DICOM (.dcm): every element equal, pixel data byte for byte, except UIDs, dates and times (new per run).
Anything else must be byte-identical. Prints one line per difference and exits 1 when there is any.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import nrrd
import numpy as np
import pydicom
import SimpleITK as sitk

#: DICOM value representations that differ on every run: UIDs, dates, times.
VOLATILE_VR = {"UI", "DA", "TM", "DT"}


def _timing(name: str) -> bool:
    return "second" in name.lower() or "time" in name.lower()


def compare_image(a: Path, b: Path) -> list[str]:
    ia, ib = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    out = [f"{what} {fa} != {fb}" for what, fa, fb in (
        ("pixel type", ia.GetPixelIDTypeAsString(), ib.GetPixelIDTypeAsString()), ("size", ia.GetSize(), ib.GetSize()),
        ("origin", ia.GetOrigin(), ib.GetOrigin()), ("spacing", ia.GetSpacing(), ib.GetSpacing()),
        ("direction", ia.GetDirection(), ib.GetDirection())) if fa != fb]
    if not out and not np.array_equal(sitk.GetArrayViewFromImage(ia), sitk.GetArrayViewFromImage(ib)):
        diff = np.count_nonzero(sitk.GetArrayViewFromImage(ia) != sitk.GetArrayViewFromImage(ib))
        out.append(f"{diff} voxels differ")
    return out


def compare_seg_nrrd(a: Path, b: Path) -> list[str]:
    (da, ha), (db, hb) = nrrd.read(str(a)), nrrd.read(str(b))
    out = [f"header {k}: {ha.get(k)!r} != {hb.get(k)!r}" for k in sorted(set(ha) | set(hb))
           if not _same(ha.get(k), hb.get(k))]
    if da.shape != db.shape or not np.array_equal(da, db):
        out.append("voxels differ")
    return out


def _same(x, y) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
    return x == y


def _drop_timing(value):
    if isinstance(value, dict):
        return {k: _drop_timing(v) for k, v in value.items() if not _timing(k)}
    if isinstance(value, list):
        return [_drop_timing(v) for v in value]
    return value


def compare_json(a: Path, b: Path) -> list[str]:
    ja, jb = (_drop_timing(json.loads(p.read_text())) for p in (a, b))
    return [] if ja == jb else ["contents differ (timing fields left out)"]


def compare_csv(a: Path, b: Path) -> list[str]:
    def rows(p: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if not _timing(k)} for r in csv.DictReader(io.StringIO(p.read_text()))]
    ra, rb = rows(a), rows(b)
    if len(ra) != len(rb):
        return [f"{len(ra)} rows != {len(rb)} rows"]
    return [f"row {i + 1}: {x} != {y}" for i, (x, y) in enumerate(zip(ra, rb)) if x != y]


def compare_dicom(a: Path, b: Path) -> list[str]:
    da, db = pydicom.dcmread(a), pydicom.dcmread(b)
    return _compare_dataset(da.file_meta, db.file_meta, "meta") + _compare_dataset(da, db, "")


def _compare_dataset(a, b, where: str) -> list[str]:
    out = []
    for tag in sorted(set(a.keys()) | set(b.keys())):
        ea, eb = a.get(tag), b.get(tag)
        name = f"{where}/{(ea or eb).keyword or tag}"
        if ea is None or eb is None:
            out.append(f"{name}: only in {'reference' if eb is None else 'new'}")
        elif ea.VR != eb.VR:
            out.append(f"{name}: VR {ea.VR} != {eb.VR}")
        elif ea.VR in VOLATILE_VR:
            continue
        elif ea.VR == "SQ":
            if len(ea.value) != len(eb.value):
                out.append(f"{name}: {len(ea.value)} items != {len(eb.value)}")
            else:
                for i, (ia, ib) in enumerate(zip(ea.value, eb.value)):
                    out += _compare_dataset(ia, ib, f"{name}[{i}]")
        elif ea.value != eb.value:
            out.append(f"{name}: {str(ea.value)[:60]!r} != {str(eb.value)[:60]!r}")
    return out


def compare_file(a: Path, b: Path) -> list[str]:
    name = a.name.lower()
    if name.endswith(".seg.nrrd"):
        return compare_seg_nrrd(a, b)
    if name.endswith((".nii.gz", ".nii", ".nrrd", ".mha")):
        return compare_image(a, b)
    if name.endswith(".json"):
        return compare_json(a, b)
    if name.endswith(".csv"):
        return compare_csv(a, b)
    if name.endswith(".dcm"):
        return compare_dicom(a, b)
    return [] if a.read_bytes() == b.read_bytes() else ["bytes differ"]


def compare_trees(ref: Path, new: Path) -> tuple[int, list[str]]:
    """(files compared, differences) of two folders of results."""
    files_a = {p.relative_to(ref) for p in ref.rglob("*") if p.is_file()}
    files_b = {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
    problems = [f"{p}: only in the reference" for p in sorted(files_a - files_b)]
    problems += [f"{p}: only in the new run" for p in sorted(files_b - files_a)]
    both = sorted(files_a & files_b)
    for rel in both:
        problems += [f"{rel}: {d}" for d in compare_file(ref / rel, new / rel)]
    return len(both), problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    ref, new = map(Path, argv)
    for folder in (ref, new):
        if not folder.is_dir():
            print(f"{folder}: no such folder", file=sys.stderr)
            return 2
    count, problems = compare_trees(ref, new)
    for line in problems:
        print(line)
    print(f"{count} files compared, {len(problems)} differences: {'IDENTICAL' if not problems else 'DIFFERENT'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
