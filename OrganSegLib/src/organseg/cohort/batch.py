"""Many CTs in one run: finding the CTs, naming their result folders, the per-CT step, the cohort summary.

A batch writes one result folder per CT (`OUTDIR/<case>/`, the layout of `organseg segment`) and
`OUTDIR/batch_summary.csv`: one row per CT with its status, seconds, message, the organs with plausibility
flags (how many, and which with their codes, so a cohort sorts by them) and organ volumes in mL.
A CT whose folder already holds results is counted as done and not segmented again, so an interrupted
batch resumes where it stopped. `segment_case` is the step for one CT (raising typed errors), `run_case`
the same for a batch loop (a failure becomes a failed row), `run_batch` the loop with its summary.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import SimpleITK as sitk

from organseg.atomic import atomic_file
from organseg.catalogue import ORGANS
from organseg.ct.dicom_series import dicom_header
from organseg.ct.read import IMAGE_SUFFIXES, image_stem, read_ct
from organseg.errors import InputError, OrganSegError, OutputError, printable
from organseg.export.output_types import dicom_writers
from organseg.export.roi_names import TG263_NAMES, RoiNames
from organseg.method.settings import Settings
from organseg.results.folder import holds_results, write_result
from organseg.results.result import Result

log = logging.getLogger(__name__)

SUMMARY = "batch_summary.csv"
SEGMENTED, DONE_BEFORE, FAILED = "segmented", "done before", "failed"


class CaseSegmenter(Protocol):
    """What a batch needs of `organseg.segmenter.Segmenter`; the front door passes one in, so the cohort step
    never imports the segmenter above it. Built from its settings alone (`Segmenter(settings)`): a cluster
    worker makes its own."""

    settings: Settings

    def __init__(self, settings: Settings) -> None: ...

    def segment(self, image: sitk.Image, organs: tuple[str, ...] | str, *, source: str) -> Result: ...


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def _holds_dicom(folder: Path) -> bool:
    return any(dicom_header(p) is not None for p in folder.iterdir() if p.is_file())


def find_cts(inputs: list[Path]) -> list[Path]:
    """The CTs named by files and folders, in the order given, each once.

    A file is a CT image; a folder holding DICOM files is one DICOM series; any other folder stands for the
    image files and DICOM series folders directly inside it (one level: masks in deeper folders are not CTs).
    """
    found: list[Path] = []
    for path in inputs:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_file() or _holds_dicom(path):
            found.append(path)
        else:
            inside = [p for p in sorted(path.iterdir()) if _is_image(p) or (p.is_dir() and _holds_dicom(p))]
            if not inside:
                raise InputError(f"{path}: holds no CT image file ({', '.join(IMAGE_SUFFIXES)}) and no DICOM "
                                 "series folder; for CTs deeper down name them (e.g. 'DIR/*/ct.nii.gz') or use --list")
            found += inside
    unique: dict[Path, Path] = {}  # each CT once, however it was reached; named as the user named it
    for path in found:
        unique.setdefault(path.resolve(), path.absolute())
    if not unique:
        raise InputError("no CT given")
    return list(unique.values())


def read_list(path: Path) -> list[Path]:
    """Paths of a list file, one per line; blank lines and lines starting with '#' are skipped.

    Relative paths are relative to the list file's folder. Bytes that are not UTF-8 are kept as the file
    system's own names keep them (a list written by `ls` of Latin-1 names names those files).
    """
    try:
        lines = os.fsdecode(path.read_bytes()).splitlines()
    except OSError as err:
        raise InputError(f"{path}: cannot read the list of CTs ({err.strerror})") from None
    return [path.parent / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


#: Longest case folder name in UTF-8 bytes (file systems allow 255; room is left for a hash suffix).
MAX_NAME_BYTES = 120
_UNSAFE = set('/\\:*?"<>|')  # separators, and what Windows shares refuse


def safe_name(name: str) -> str:
    """`name` as a plain folder name inside the output: no separator, no control character, no byte that is
    not UTF-8 (each becomes '_'), no leading dot (no '..', no hidden or OrganSeg temporary folder), not
    'batch_summary.csv', at most MAX_NAME_BYTES (cut, with a hash of the whole name kept unique)."""
    clean = "".join("_" if c in _UNSAFE or not c.isprintable() else c for c in name)  # not UTF-8: a surrogate
    clean = clean.lstrip(". ").rstrip(". ") or "case"
    if clean.lower() == SUMMARY:
        clean += "_case"
    if len(clean.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        clean = clean.encode()[:MAX_NAME_BYTES - 9].decode("utf-8", "ignore").rstrip(". ") + "-" + digest
    return clean


def case_names(cts: list[Path]) -> dict[Path, str]:
    """A unique result folder name per CT: its file or folder name, with as many parent folder names as needed,
    made safe (`safe_name`); unique also where case does not count (macOS, Windows shares).

    data/s0001/ct.nii.gz and data/s0002/ct.nii.gz become s0001_ct and s0002_ct; a.nii.gz stays a. Names that
    stay alike with every parent folder (a.nii and a.nii.gz side by side) get a hash of the CT's path added.
    """
    parts = {p: [*p.parent.parts[1:], image_stem(p)] for p in cts}
    names: dict[Path, str] = {}
    depth = 1
    while len(names) < len(cts):
        pending = [p for p in cts if p not in names]
        exhausted = all(depth > len(parts[p]) for p in pending)
        candidates = {p: safe_name("_".join(parts[p][-depth:])) for p in cts}
        if exhausted:
            candidates = {p: safe_name(f"{candidates[p]}-{_path_hash(p)}") for p in pending}
        counts: dict[str, int] = {}
        for name in candidates.values():
            counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
        taken = {name.casefold() for name in names.values()}
        for p in pending:
            if counts[candidates[p].casefold()] == 1 and candidates[p].casefold() not in taken:
                names[p] = candidates[p]
        if exhausted and len(names) < len(cts):
            raise InputError(f"cannot name the results of {printable(str(pending[0]))} apart from another CT")
        depth += 1
    return {p: names[p] for p in cts}


def _path_hash(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


@dataclass
class CaseRow:
    """One CT's line in the summary."""

    case: str
    source: str
    status: str
    seconds: float = 0.0
    message: str = ""
    volumes_ml: dict[str, float] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)  #: flagged organ -> its flag codes

    @classmethod
    def of_stats(cls, case: str, source: str, status: str, stats: list[dict], seconds: float = 0.0,
                 message: str = "") -> "CaseRow":
        """A row from a result's statistics rows (organseg.results.stats plus flags)."""
        return cls(case, source, status, seconds, message, {row["organ"]: float(row["volume_ml"]) for row in stats},
                   {row["organ"]: [f["code"] for f in row["flags"]] for row in stats if row.get("flags")})

    @property
    def flagged(self) -> str:
        """'liver (volume_low, hu_out_of_range); spleen (position)'."""
        return "; ".join(f"{key} ({', '.join(codes)})" for key, codes in self.flags.items())


def stats_of(result_dir: Path) -> list[dict]:
    """The statistics rows of a result folder's stats.json."""
    return json.loads((result_dir / "stats.json").read_text())["organs"]


def write_summary(rows: list[CaseRow], outdir: Path) -> Path:
    """Write (atomically replace) OUTDIR/batch_summary.csv; one volume column per organ, catalogue order."""
    seen = {key for row in rows for key in row.volumes_ml}
    organs = [o.key for o in ORGANS if o.key in seen]
    path = outdir / SUMMARY
    with atomic_file(path, ".csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case", "source", "status", "seconds", "message", "flagged", "flagged_organs",
                         *(f"{o}_ml" for o in organs)])
        for row in rows:
            writer.writerow([row.case, printable(row.source), row.status, f"{row.seconds:.2f}",
                             printable(row.message), len(row.flags), row.flagged,
                             *(f"{row.volumes_ml[o]:.3f}" if o in row.volumes_ml else "" for o in organs)])
    return path


@dataclass(frozen=True)
class BatchOptions:
    """What every CT of a batch gets besides the segmenter: the organs, the outputs and how to read it."""

    organs: tuple[str, ...] | str  #: catalogue keys, or "all" (every organ with a model), as `Segmenter` takes them
    fmt: str = "nifti"  #: image format of masks and label map: nifti or nrrd
    dicom_types: tuple[str, ...] = ()  #: DICOM exports into each folder: rtstruct, dicom-seg
    roi_names: RoiNames = TG263_NAMES  #: what those exports call the ROIs and segments
    overwrite: bool = False  #: segment again a CT whose folder holds results
    resample_irregular: bool = False  #: resample irregular DICOM series instead of refusing them
    plan_warnings: tuple[str, ...] = ()  #: said once for the batch (`Segmenter.plan`), left out of each row


def segment_case(ct: Path, outdir: Path, segmenter: CaseSegmenter, options: BatchOptions,
                 case: str | None = None) -> CaseRow:
    """Segment one CT into its result folder; a folder that holds results already counts as done before.

    Returns the CT's summary row (segmented or done before; `case` defaults to the folder's name). Raises
    OrganSegError (InputError for a CT that is unreadable, not a CT or too large; OutputError for a folder
    that cannot be written or read back; ModelError) and MemoryError.
    """
    case = outdir.name if case is None else case
    if not options.overwrite and holds_results(outdir):
        try:
            done = CaseRow.of_stats(case, str(ct), DONE_BEFORE, stats_of(outdir))
        except (OSError, ValueError, KeyError):
            raise OutputError(f"{outdir}: holds results without a readable stats.json; remove the folder to "
                              "segment it again") from None
        missing = [key for key in options.organs if key not in done.volumes_ml]
        if missing:
            raise OutputError(f"{outdir}: holds results of {', '.join(done.volumes_ml) or 'no organ'} but not "
                              f"{', '.join(missing)}; pass --overwrite to segment it again with these organs")
        return done
    t0 = time.perf_counter()
    writers, series = dicom_writers(ct, outdir, None, list(options.dicom_types), options.roi_names)
    image = read_ct(ct, resample_irregular=options.resample_irregular, series=series)
    result = segmenter.segment(image, options.organs, source=str(ct))
    write_result(result, outdir, options.fmt, options.overwrite, source=str(ct), extra_writers=writers)
    notes = [w for w in result.warnings if w not in options.plan_warnings]
    return CaseRow.of_stats(case, str(ct), SEGMENTED, result.stats, time.perf_counter() - t0, "; ".join(notes))


def run_case(ct: Path, outdir: Path, segmenter: CaseSegmenter, options: BatchOptions,
             case: str | None = None) -> CaseRow:
    """`segment_case` for a batch loop: an error becomes a failed row, not the end of the batch.

    A bug (an unexpected exception) is logged with its traceback and reported in the row as well.
    """
    case = outdir.name if case is None else case
    t0 = time.perf_counter()
    try:
        return segment_case(ct, outdir, segmenter, options, case)
    except OrganSegError as err:
        return CaseRow(case, str(ct), FAILED, time.perf_counter() - t0, str(err))
    except MemoryError:
        return CaseRow(case, str(ct), FAILED, time.perf_counter() - t0, f"{ct}: out of memory")
    except Exception as err:  # a bug must not cost the rest of the batch
        log.exception(f"{ct}: unexpected error")
        return CaseRow(case, str(ct), FAILED, time.perf_counter() - t0, f"{ct}: unexpected {type(err).__name__}: {err}")


def run_batch(cases: dict[Path, str], outdir: Path, segmenter: CaseSegmenter, options: BatchOptions,
              starting: Callable[[str], None] | None = None) -> Iterator[CaseRow]:
    """Segment each CT (ct -> case name, see `case_names`) into OUTDIR/<case>/, rewriting the summary after
    each; yields each CT's row when it is done. `starting(case)` is called before each CT."""
    outdir.mkdir(parents=True, exist_ok=True)
    rows: list[CaseRow] = []
    for ct, case in cases.items():
        if starting is not None:
            starting(case)
        rows.append(run_case(ct, outdir / case, segmenter, options, case))
        write_summary(rows, outdir)
        yield rows[-1]
