"""The outputs of an import: the dataset CSV `organseg train` reads and the coverage table (organ x cases
labelled, per split, voxel spacing range; skipped cases and why), each written atomically."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from organseg.atomic import atomic_file
from organseg.catalogue import ORGANS
from organseg.datasets.cases import SPLITS, Imported
from organseg.datasets.synonyms import map_hint

CSV_FIELDS = ("case", "image", "mask", "labels", "source", "split", "labelled")
COVERAGE_FIELDS = ("organ", "cases_labelled", "cases_with_organ", *SPLITS, "no_split", "spacing_mm")


def _path(path: Path, base: Path) -> str:
    """Relative to the CSV's folder when inside it (the cache moves with the CSV), else absolute."""
    path, base = path.resolve(), base.resolve()
    return os.path.relpath(path, base) if path.is_relative_to(base) else str(path)


def _csv_text(rows: list[dict], fields: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write(path: Path, text: str) -> None:
    with atomic_file(path, path.suffix) as tmp:
        tmp.write_text(text)


def dataset_rows(result: Imported, labels_json: Path, base: Path) -> list[dict]:
    """One CSV row per case: `labels` names the ids of `mask`; `labelled` the organs complete in it."""
    return [{"case": c.name, "image": _path(c.image, base), "mask": _path(c.mask, base),
             "labels": _path(labels_json, base), "source": result.source, "split": c.split,
             "labelled": "+".join(c.labelled)} for c in result.cases]


def _range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def coverage_rows(result: Imported) -> list[dict]:
    """Per catalogue organ: cases labelled, cases with voxels of it, labelled cases per split, spacing range."""
    rows = []
    for organ in ORGANS:
        cases = [c for c in result.cases if organ.key in c.labelled]
        spacing = " x ".join(_range([c.spacing[a] for c in cases]) for a in range(3)) if cases else ""
        rows.append({"organ": organ.key, "cases_labelled": len(cases),
                     "cases_with_organ": sum(organ.key in c.present for c in cases),
                     **{s: sum(c.split == s for c in cases) for s in SPLITS},
                     "no_split": sum(not c.split for c in cases), "spacing_mm": spacing})
    return rows


def coverage_markdown(result: Imported, rows: list[dict], folder: Path) -> str:
    lines = [f"# Coverage of {folder} ({result.layout} layout)", "",
             f"{len(result.cases)} case(s) imported, {len(result.skipped)} skipped.", "",
             "| " + " | ".join(COVERAGE_FIELDS) + " |", "|" + "---|" * len(COVERAGE_FIELDS)]
    lines += ["| " + " | ".join(str(r[f]) for f in COVERAGE_FIELDS) + " |" for r in rows]
    lines += ["", "cases_labelled: the organ's mask is complete in the case (an empty mask then means the organ "
              "is absent); cases_with_organ: it has voxels; spacing: x x y x z in mm over the labelled cases."]
    if result.unknown:
        lines += ["", f"Label names that match no catalogue organ (ignored; `{map_hint(result.unknown[0])}` "
                  "uses one): " + ", ".join(result.unknown)]
    if result.skipped:
        lines += ["", "## Skipped cases", "", "| case | reason |", "|---|---|"]
        lines += [f"| {case} | {reason} |" for case, reason in result.skipped]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_outputs(result: Imported, csv_path: Path, labels_json: Path, folder: Path) -> tuple[list[dict], list[Path]]:
    """Write the dataset CSV and the coverage table (markdown and CSV) beside it; the coverage rows and paths."""
    rows = coverage_rows(result)
    stem = csv_path.name[:-len(csv_path.suffix)] if csv_path.suffix else csv_path.name
    md, cov = csv_path.with_name(f"{stem}.coverage.md"), csv_path.with_name(f"{stem}.coverage.csv")
    _write(csv_path, _csv_text(dataset_rows(result, labels_json, csv_path.parent), CSV_FIELDS))
    _write(cov, _csv_text(rows, COVERAGE_FIELDS))
    _write(md, coverage_markdown(result, rows, folder))
    return rows, [csv_path, md, cov]
