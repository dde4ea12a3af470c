"""Writing a segmentation result to an output folder, atomically and without losing earlier results.

Layout: `masks/<organ>.nii.gz` (or .nrrd), `segmentation.nii.gz` (multi-label, catalogue label values),
`segmentation.seg.nrrd` (Slicer's segmentation file), `labels.json` (label value -> name, colour, SNOMED CT),
`stats.csv`, `stats.json`. Everything is written into a hidden temporary folder inside OUTDIR (same
filesystem, so renames work on mounted volumes) and moved into place file by file at the end, with
SIGINT/SIGTERM held during the move: an interrupted run leaves the earlier results or the complete new
ones, never a mix. With `overwrite`, only the files this run writes are replaced; other masks and the
user's own files stay, unless the earlier result is of another CT (stats.json's `source`): then all of
OrganSeg's own earlier files go (masks of other organs on another grid would pass for this CT's), the user's
stay, and a warning names what was removed. A move cut short by SIGKILL is finished by the next run that
looks at the folder.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from contextlib import suppress
from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from organseg import __version__
from organseg.atomic import atomic_write_image, release, remove_stale, signals_deferred, temp_dir, temp_kind
from organseg.catalogue import CATEGORY, organ
from organseg.ct.grid import same_grid
from organseg.errors import InputError, OutputError, itk_path
from organseg.export.output_types import DICOM_FILES
from organseg.export.seg_nrrd import FILE_NAME as SEG_NRRD, write_seg_nrrd
from organseg.results.result import Result
from organseg.results.stats import FIELDS

log = logging.getLogger(__name__)

RESULT_MARKERS = ("stats.json", "segmentation.nii.gz", "segmentation.nrrd", "masks")
#: What a run writes besides the masks: OrganSeg's own files in a result folder.
OWN_FILES = ("segmentation.nii.gz", "segmentation.nrrd", SEG_NRRD, "labels.json", "stats.csv", "stats.json",
             *DICOM_FILES.values())


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
    """Write and remove a small file where the results will go; a read-only or full location fails here, and
    so does a name the image library cannot write to (InputError)."""
    itk_path(outdir)
    where = outdir
    while not where.exists() and where != where.parent:
        if where.is_symlink():  # a dangling link: creating the folder would fail only after the work
            raise OutputError(f"{outdir}: {where} is a link to {os.readlink(where)}, which does not exist; create "
                              "the link's target or choose another output folder")
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
            release(where)


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
    where = outdir.parent if created else outdir
    tmp = None
    try:
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
        release(where)
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


def _of_another_ct(src: Path, dst: Path) -> tuple[str, list[Path]]:
    """Which CT `dst`'s earlier result is of and, where it is not `src`'s CT, OrganSeg's own files of it that
    `src` does not replace (relative paths). Another CT: another file, or the same path with masks on
    another grid (the file was replaced). A result that does not name its CT is taken for the same CT's."""
    try:
        earlier = json.loads((dst / "stats.json").read_text())
        old, new = str(earlier["source"]), str(json.loads((src / "stats.json").read_text())["source"])
        organs = [str(row["organ"]) for row in earlier["organs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return "", []
    names = [*OWN_FILES, *(f"masks/{key}{ext}" for key in organs for ext in (".nii.gz", ".nrrd"))]
    own = [Path(n) for n in names if (dst / n).is_file() and not (src / n).exists()]
    if not old or not new:
        return old, []
    if old != new and not _same_file(old, new):
        return old, own
    new_grid = next(filter(None, map(_header, (src / "segmentation.nii.gz", src / "segmentation.nrrd"))), None)
    earlier_grids = [h for h in (_header(dst / p) for p in own if p.parts[0] == "masks") if h is not None]
    moved = new_grid is not None and any(not same_grid(h, new_grid) for h in earlier_grids)
    return f"{old}, replaced since: masks on another grid", own if moved else []


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _header(path: Path) -> sitk.ImageFileReader | None:
    """An image file's header (its grid), None where it is missing or cannot be read."""
    reader = sitk.ImageFileReader()
    try:
        reader.SetFileName(itk_path(path))
        reader.ReadImageInformation()
    except (RuntimeError, InputError):
        return None
    return reader


def _merge(src: Path, dst: Path) -> None:
    """Move every file under `src` to the same place under `dst`; the file it replaces is set aside and
    removed at the end, and so are OrganSeg's own files of an earlier result of another CT (`_of_another_ct`).
    On an error every step is undone, the folders it created (e.g. `masks/`) included."""
    aside = temp_dir(dst, "old")
    earlier_ct, stale = _of_another_ct(src, dst)
    moved: list[tuple[Path, bool]] = []
    made: list[Path] = []
    removed: list[Path] = []
    try:
        for rel in stale:
            (aside / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).rename(aside / rel)
            removed.append(rel)
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
        for rel in reversed(removed):
            (aside / rel).rename(dst / rel)
        for folder in sorted(made, key=lambda f: len(f.parts), reverse=True):
            with suppress(OSError):  # not empty: another process put a file there meanwhile, keep it
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        release(dst)
    if removed:
        log.warning(f"{dst}: removed the earlier results of another CT ({earlier_ct}): "
                    f"{', '.join(r.as_posix() for r in removed)}")


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
