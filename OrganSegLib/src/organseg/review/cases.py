"""The cases a review serves: one `segment` result folder, the cases of a `batch` output folder, or a CT without
results that the page segments into an output folder (`ct_case`).

Everything the review reads or writes lies inside the folder it was started on (PATH): a case folder named
by `batch_summary.csv` that resolves outside PATH (`../x`, an absolute path, a link leading out) is listed as
refused, never opened. The CT is the one the result names (`source` in `stats.json`), read, not served.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from organseg.catalogue import organ as find_organ
from organseg.cohort.batch import safe_name
from organseg.ct.read import image_stem
from organseg.errors import InputError, OrganSegError

SUMMARY = "batch_summary.csv"
STATS = "stats.json"
MASKS = "masks"
CORRECTED = "_corrected"
MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


@dataclass
class Case:
    """One result folder to review; `problem` says why it cannot be opened (then the page shows only that)."""

    name: str
    folder: Path
    source: str = ""  #: the CT path as the result records it
    flagged_organs: list[str] = field(default_factory=list)
    problem: str | None = None
    segmented: bool = True  #: False: a CT the page segments into `folder` (`ct_case`)


def inside(root: Path, path: Path) -> bool:
    """Whether `path` (links resolved) lies in `root`."""
    return path.resolve().is_relative_to(root.resolve())


def find_cases(path: Path) -> list[Case]:
    """The cases under PATH, flagged ones first (most flagged organs first, then in the summary's order).

    Raises InputError when PATH holds neither a result (`stats.json`) nor a cohort (`batch_summary.csv`).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such folder; give a `segment` or `batch` output folder")
    if (path / SUMMARY).is_file():
        cases = _cohort(path)
    elif (path / STATS).is_file():
        cases = [result_case(path, path.resolve().name)]
    else:
        raise InputError(f"{path}: no OrganSeg results here (neither {STATS} nor {SUMMARY}); give the folder "
                         "`organseg segment -o` or `organseg batch -o` wrote, or a CT with -o OUT to segment it on "
                         "the page")
    return sorted(cases, key=lambda c: -len(c.flagged_organs))


def _cohort(root: Path) -> list[Case]:
    summary = root / SUMMARY
    try:
        with open(summary, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{summary}: cannot read it ({err})") from None
    if not rows or "case" not in rows[0]:
        raise InputError(f"{summary}: lists no cases (no `case` column)")
    cases = []
    for row in rows:
        name = (row.get("case") or "").strip()
        folder = root / name
        if not name or not inside(root, folder):
            cases.append(Case(name or "?", root, problem=f"{summary}: case folder '{name}' lies outside {root}; "
                                                        "refused"))
        elif row.get("status") == "failed":
            cases.append(Case(name, folder, row.get("source", ""),
                              problem=f"failed in the batch: {row.get('message')}"))
        else:
            cases.append(result_case(folder, name))
    return cases


def result_case(folder: Path, name: str) -> Case:
    """The result in `folder` (its stats.json read for the CT and the flagged organs)."""
    stats = folder / STATS
    try:
        doc = json.loads(stats.read_text())
        rows = doc["organs"]
        flagged = [row["organ"] for row in rows if row.get("flags")]
        source = str(doc.get("source", ""))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Case(name, folder, problem=f"{stats}: cannot read it ({type(err).__name__}: {err}); run the case again")
    return Case(name, folder, source, flagged)


def ct_case(ct: Path, output: Path) -> Case:
    """A CT the page segments, its results going into `output`: the result there when it is this CT's (a review
    started again), else a case still to segment. Raises InputError when `output` holds another CT's results
    (nothing of them is replaced) or is not a folder."""
    ct = Path(ct).resolve()
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder; give -o a folder for the results")
    if (output / STATS).is_file():
        case = result_case(output, output.resolve().name)
        if case.problem is None and Path(case.source).resolve() != ct:
            raise InputError(f"{output}: holds the results of another CT ({case.source}); choose another -o, or "
                             f"`organseg review {output}` to review them")
        return case
    if (output / SUMMARY).is_file():
        raise InputError(f"{output}: holds a batch's results; choose another -o, or `organseg review {output}` to "
                         "review them")
    return Case(safe_name(image_stem(ct)), output, str(ct), segmented=False)


def ct_path(case: Case, root: Path) -> Path:
    """The case's CT: the recorded source as given, else relative to PATH or to the case folder (a result
    records the path the command was given, relative to where it ran)."""
    recorded = Path(case.source)
    for candidate in ([recorded] if recorded.is_absolute() else [Path.cwd() / recorded, root / recorded,
                                                                  case.folder / recorded]):
        if case.source and candidate.exists():
            return candidate.resolve()
    raise InputError(f"{case.folder / STATS}: the CT it was made from ({case.source or 'not recorded'}) is not "
                     "found; run `organseg review` from the folder the segmentation ran in")


@dataclass
class MaskFile:
    organ: str  #: catalogue key
    path: Path
    corrected: bool  #: a `<organ>_corrected` mask from an earlier review (opened instead of the original)


def mask_files(case: Case) -> tuple[list[MaskFile], dict[str, str]]:
    """The case's organ masks (a corrected one in place of its original) and the files left out, with why."""
    folder = case.folder / MASKS
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; the result has no masks")
    found: dict[str, MaskFile] = {}
    skipped: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        suffix = next((s for s in MASK_SUFFIXES if path.name.endswith(s)), None)
        if suffix is None or path.name.startswith("."):
            continue
        stem = path.name[:-len(suffix)]
        corrected = stem.endswith(CORRECTED)
        try:
            key = find_organ(stem[:-len(CORRECTED)] if corrected else stem).key
        except OrganSegError:
            skipped[path.name] = "not named after a catalogue organ"
            continue
        if not inside(case.folder, path):
            skipped[path.name] = f"a link to outside {case.folder}; refused"
        elif corrected or key not in found:
            found[key] = MaskFile(key, path, corrected)
    return list(found.values()), skipped
