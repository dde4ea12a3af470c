"""Writing a segmentation result to an output folder, atomically and without losing earlier results.

Layout: `masks/<organ>.nii.gz` (or .nrrd), `segmentation.nii.gz` (multi-label, catalogue label values),
`segmentation.seg.nrrd` (Slicer's segmentation file), `labels.json` (label value -> name, colour, SNOMED CT),
`stats.csv`, `stats.json`. Everything is written into a hidden temporary folder inside OUTDIR (same
filesystem, so renames work on mounted volumes) and moved into place file by file at the end, with
SIGINT/SIGTERM held during the move: an interrupted run leaves the earlier results or the complete new
ones, never a mix. With `overwrite`, only the files this run writes are replaced; other masks and the
user's own files stay. A move cut short by SIGKILL is finished by the next run that looks at the folder.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Callable

from organseg import __version__
from organseg.atomic import atomic_write_image, remove_stale, signals_deferred, temp_dir, temp_kind
from organseg.catalogue import CATEGORY, organ
from organseg.errors import OutputError
from organseg.export.seg_nrrd import FILE_NAME as SEG_NRRD, write_seg_nrrd
from organseg.results.result import Result
from organseg.results.stats import FIELDS

RESULT_MARKERS = ("stats.json", "segmentation.nii.gz", "segmentation.nrrd", "masks")


def holds_results(outdir: Path) -> bool:
    """Whether a folder holds a segmentation result (a move a killed run left half done is finished first)."""
    finish_interrupted(outdir)
    return outdir.is_dir() and any((outdir / m).exists() for m in RESULT_MARKERS)


def check_output_dir(outdir: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output folder that holds results (unless overwrite), is not a folder, or
    cannot be written (read-only, full, no permission)."""
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir}: exists and is not a folder")
    if not overwrite and holds_results(outdir):
        raise OutputError(f"{outdir}: already holds results; choose another folder or pass --overwrite")
    check_writable(outdir)


def check_writable(outdir: Path, probe_bytes: int = 1 << 20) -> None:
    """Write and remove a small file where the results will go; a read-only or full location fails here."""
    where = outdir
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise OutputError(f"{outdir}: cannot be created, {where} is not a folder")
    probe = None
    try:
        probe = temp_dir(where, "probe")
        with open(probe / "probe", "wb") as fh:
            fh.write(b"\0" * probe_bytes)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise OutputError(f"{outdir}: cannot write there ({err.strerror}); choose another output folder") from None
    finally:
        if probe is not None:
            shutil.rmtree(probe, ignore_errors=True)


def labels_table(result: Result) -> list[dict]:
    """Label value, name, colour and SNOMED CT type of each organ in the result."""
    rows = []
    for key in result.masks:
        o = organ(key)
        rows.append({"label": o.label, "organ": o.key, "name": o.display_name, "colour": list(o.colour),
                     "snomed_category": _coded(CATEGORY), "snomed_type": _coded(o.snomed_type)})
    return sorted(rows, key=lambda r: r["label"])


def _coded(triple: tuple[str, str, str]) -> dict[str, str]:
    return dict(zip(("scheme", "code", "meaning"), triple))


def write_result(result: Result, outdir: str | Path, fmt: str = "nifti", overwrite: bool = False,
                 source: str = "", extra_writers: list[Callable[[Result, Path], None]] | None = None) -> Path:
    """Write masks, label map, labels and statistics into `outdir`; returns the folder.

    `extra_writers` add more files (e.g. RTSTRUCT) into the same temporary folder before it is moved.
    A write that fails (disk full, permissions) raises OutputError and leaves the folder as it was. A new
    folder is written beside its place and renamed into it, so it appears only complete (a batch case folder
    is never half there, even if the process is killed).
    """
    outdir = Path(outdir)
    check_output_dir(outdir, overwrite)
    created = not outdir.exists()
    tmp = None
    try:
        where = outdir.parent if created else outdir
        where.mkdir(parents=True, exist_ok=True)
        remove_stale(where)
        tmp = temp_dir(where, "new")
        (tmp / "masks").mkdir()
        for key in result.masks:
            atomic_write_image(result.mask_image(key), output_path(tmp / "masks", key, fmt))
        atomic_write_image(result.label_image(), output_path(tmp, "segmentation", fmt))
        write_seg_nrrd({key: mask.full() for key, mask in result.masks.items()}, result.reference, tmp / SEG_NRRD)
        (tmp / "labels.json").write_text(json.dumps(labels_table(result), indent=2) + "\n")
        _write_stats(result, tmp, source)
        for writer in extra_writers or []:
            writer(result, tmp)
        if created:
            tmp.rename(outdir)
            tmp = None
        else:
            done = tmp.rename(tmp.with_name(tmp.name.replace("-new-", "-done-", 1)))  # complete: a killed move resumes
            tmp = done
            with signals_deferred():
                _merge(done, outdir)
    except OSError as err:
        raise OutputError(f"{outdir}: cannot write the results ({err.strerror}); the folder was left as it "
                          "was") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return outdir


def flag_codes(row: dict) -> str:
    """A statistics row's plausibility flag codes joined by ';' (empty when nothing is wrong)."""
    return ";".join(f["code"] for f in row.get("flags", []))


def _write_stats(result: Result, folder: Path, source: str) -> None:
    with open(folder / "stats.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for row in result.stats:
            cells = {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.items()}
            writer.writerow({**cells, "flags": flag_codes(row)})
    doc = {"organseg_version": __version__, "source": source, "organs": result.stats,
           "seconds": result.seconds, "models": result.models, "added_anchors": result.added_anchors,
           "warnings": result.warnings}
    (folder / "stats.json").write_text(json.dumps(doc, indent=2) + "\n")


def _merge(src: Path, dst: Path) -> None:
    """Move every file under `src` to the same place under `dst`; the file it replaces is set aside and
    removed at the end. On an error every step is undone, the folders it created (e.g. `masks/`) included."""
    aside = temp_dir(dst, "old")
    moved: list[tuple[Path, bool]] = []
    made: list[Path] = []
    try:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = path.relative_to(src)
            target = dst / rel
            made += [folder for folder in target.parents if folder.is_relative_to(dst) and not folder.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            replaced = target.exists() or target.is_symlink()
            if replaced:
                (aside / rel).parent.mkdir(parents=True, exist_ok=True)
                target.rename(aside / rel)
            moved.append((rel, replaced))
            path.rename(target)
    except OSError:
        for rel, replaced in reversed(moved):
            if not (src / rel).exists():
                (dst / rel).rename(src / rel)
            if replaced:
                (aside / rel).rename(dst / rel)
        for folder in sorted(made, key=lambda f: len(f.parts), reverse=True):
            with suppress(OSError):  # not empty: another process put a file there meanwhile, keep it
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def finish_interrupted(outdir: Path) -> None:
    """Finish the move of a run killed while moving its complete results into `outdir`, then remove what
    dead runs left behind (their unfinished temporary folders and set-aside files)."""
    if not outdir.is_dir():
        return
    for path in sorted(outdir.iterdir()):
        if temp_kind(path) == "done":
            _merge(path, outdir)
    remove_stale(outdir)


def output_path(folder: Path, stem: str, fmt: str) -> Path:
    """`folder/stem.nii.gz` or `folder/stem.nrrd`."""
    if fmt not in ("nifti", "nrrd"):
        raise OutputError(f"unknown image format '{fmt}'; use nifti or nrrd")
    return folder / f"{stem}.{'nii.gz' if fmt == 'nifti' else 'nrrd'}"
