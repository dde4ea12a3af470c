"""Writing a segmentation result to an output folder, atomically and without losing earlier results.

Layout: `masks/<organ>.nii.gz` (or .nrrd), `segmentation.nii.gz` (multi-label, catalogue label values),
`segmentation.seg.nrrd` (Slicer's segmentation file), `labels.json` (label value -> name, colour, SNOMED CT), `stats.csv`, `stats.json`. Everything is written
into a hidden temporary folder beside OUTDIR and renamed into place at the end, so an interrupted run
leaves nothing half-written. With `overwrite`, only the entries this run writes are replaced.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Callable

from organseg import __version__
from organseg.atomic import temp_dir
from organseg.catalogue import organ
from organseg.errors import OutputError
from organseg.export.seg_nrrd import FILE_NAME as SEG_NRRD, write_seg_nrrd
from organseg.io import atomic_write_image, output_path
from organseg.segmenter import Result
from organseg.stats import FIELDS

RESULT_MARKERS = ("stats.json", "segmentation.nii.gz", "segmentation.nrrd", "masks")


def holds_results(outdir: Path) -> bool:
    """Whether a folder already holds a segmentation result."""
    return outdir.is_dir() and any((outdir / m).exists() for m in RESULT_MARKERS)


def check_output_dir(outdir: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds results (unless overwrite) or that is not a folder."""
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir}: exists and is not a folder")
    if not overwrite and holds_results(outdir):
        raise OutputError(f"{outdir}: already holds results; choose another folder or pass --overwrite")


def labels_table(result: Result) -> list[dict]:
    """Label value, name, colour and SNOMED CT type of each organ in the result."""
    rows = []
    for key in result.masks:
        o = organ(key)
        rows.append({"label": o.label, "organ": o.key, "name": o.display_name, "colour": list(o.colour),
                     "snomed_category": {"scheme": "SCT", "code": "123037004", "meaning": "Anatomical Structure"},
                     "snomed_type": {"scheme": "SCT", "code": o.snomed_code, "meaning": o.snomed_meaning}})
    return sorted(rows, key=lambda r: r["label"])


def write_result(result: Result, outdir: str | Path, fmt: str = "nifti", overwrite: bool = False,
                 source: str = "", extra_writers: list[Callable[[Result, Path], None]] | None = None) -> Path:
    """Write masks, label map, labels and statistics into `outdir`; returns the folder.

    `extra_writers` add more files (e.g. RTSTRUCT) into the same temporary folder before it is moved.
    """
    outdir = Path(outdir)
    check_output_dir(outdir, overwrite)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(outdir.parent, f".{outdir.name}-")
    try:
        (tmp / "masks").mkdir()
        for key in result.masks:
            atomic_write_image(result.mask_image(key), output_path(tmp / "masks", key, fmt))
        atomic_write_image(result.label_image(), output_path(tmp, "segmentation", fmt))
        write_seg_nrrd({key: mask.full() for key, mask in result.masks.items()}, result.reference, tmp / SEG_NRRD)
        (tmp / "labels.json").write_text(json.dumps(labels_table(result), indent=2) + "\n")
        _write_stats(result, tmp, source)
        for writer in extra_writers or []:
            writer(result, tmp)
        _move_into_place(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return outdir


def _write_stats(result: Result, folder: Path, source: str) -> None:
    with open(folder / "stats.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for row in result.stats:
            writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()})
    doc = {"organseg_version": __version__, "source": source, "organs": result.stats,
           "seconds": result.seconds, "models": result.models, "added_anchors": result.added_anchors,
           "warnings": result.warnings}
    (folder / "stats.json").write_text(json.dumps(doc, indent=2) + "\n")


def _move_into_place(tmp: Path, outdir: Path) -> None:
    """Rename the finished folder into place; into an existing folder, entry by entry.

    Only the entries this run wrote are replaced (each renamed aside, then removed); any other file the
    user keeps in the folder stays.
    """
    if not outdir.exists():
        tmp.rename(outdir)
        return
    aside = temp_dir(outdir.parent, f".{outdir.name}-old-")
    try:
        for entry in sorted(tmp.iterdir()):
            target = outdir / entry.name
            if target.exists():
                target.rename(aside / entry.name)
            entry.rename(target)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
