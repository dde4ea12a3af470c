"""`organseg batch CT... -o OUTDIR`: segment many CTs, one result folder each, and a summary table.

Resumable: a CT whose result folder holds results is not segmented again (unless --overwrite). A CT that
fails (unreadable, not a CT, too large, ...) is reported in the summary and the batch goes on.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from organseg.batch import (DONE_BEFORE, FAILED, SEGMENTED, SUMMARY, CaseRow, case_names, find_cts, read_list,
                            volumes_of, write_summary)
from organseg.catalogue import parse_organs
from organseg.commands.segment import add_segmentation_options, make_segmenter
from organseg.errors import InputError, OrganSegError
from organseg.export.output_types import dicom_writers, parse_output_types
from organseg.input_checks import format_ml
from organseg.io import read_ct
from organseg.outputs import holds_results, write_result
from organseg.segmenter import Segmenter


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("batch", help="segment many CTs: one result folder each and a summary table")
    p.add_argument("cts", type=Path, nargs="*", metavar="CT",
                   help="CT image files, DICOM series folders, or folders holding them (searched one level deep)")
    p.add_argument("--list", type=Path, metavar="FILE", help="a text file naming one CT per line (also accepted)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help=f"output folder: OUTDIR/<case>/ per CT and OUTDIR/{SUMMARY}")
    add_segmentation_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = list(args.cts) + (read_list(args.list) if args.list else [])
    if not inputs:
        raise InputError("give CTs, folders of CTs, or --list FILE")
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"{args.output}: exists and is not a folder")
    cts = find_cts(inputs)
    names = case_names(cts)
    fmt, dicom_types = parse_output_types(args.output_type, args.format)
    segmenter = make_segmenter(args)
    organs = args.organs if args.organs == "all" else [o.key for o in parse_organs(args.organs)]
    job = Job(segmenter, organs, fmt, dicom_types, args.overwrite, args.resample_irregular)
    _, added, job.plan_warnings = segmenter.plan(job.organs)  # every model present and verified before the first CT
    if added:
        print(f"adding anchor organs for post-processing: {', '.join(added)}", file=sys.stderr)
    for warning in job.plan_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    args.output.mkdir(parents=True, exist_ok=True)
    rows: list[CaseRow] = []
    bar = tqdm(cts, unit="CT", file=sys.stderr)
    for ct in bar:
        bar.set_description(names[ct])
        row = job.run_case(ct, args.output / names[ct], names[ct])
        rows.append(row)
        write_summary(rows, args.output)
        volumes = ", ".join(f"{k} {format_ml(v)} mL" for k, v in row.volumes_ml.items())
        detail = row.message if row.status == FAILED else volumes
        bar.write(f"{row.case}: {row.status}" + (f" in {row.seconds:.1f} s" if row.status == SEGMENTED else "")
                  + (f" ({detail})" if detail else ""))
    bar.close()
    counts = {status: sum(row.status == status for row in rows) for status in (SEGMENTED, DONE_BEFORE, FAILED)}
    print(f"{len(rows)} CTs: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; summary in {args.output / SUMMARY}")
    return 1 if counts[FAILED] else 0


@dataclass
class Job:
    """What every CT of a batch gets: the segmenter, the organs and the outputs."""

    segmenter: Segmenter
    organs: list[str]
    fmt: str
    dicom_types: list[str]
    overwrite: bool
    resample_irregular: bool
    plan_warnings: list[str] = field(default_factory=list)  #: said once for the batch, not per CT

    def run_case(self, ct: Path, outdir: Path, case: str) -> CaseRow:
        """Segment one CT into its folder; an error becomes a failed row, not the end of the batch."""
        if not self.overwrite and holds_results(outdir):
            try:
                return CaseRow(case, str(ct), DONE_BEFORE, volumes_ml=volumes_of(outdir))
            except (OSError, ValueError, KeyError):
                return CaseRow(case, str(ct), FAILED, message=f"{outdir}: holds results without a readable "
                                                              "stats.json; remove the folder to segment it again")
        t0 = time.perf_counter()
        try:
            writers = dicom_writers(ct, outdir, None, self.dicom_types)
            image = read_ct(ct, resample_irregular=self.resample_irregular)
            result = self.segmenter.segment(image, self.organs, source=str(ct))
            write_result(result, outdir, self.fmt, self.overwrite, source=str(ct), extra_writers=writers)
        except OrganSegError as err:
            return CaseRow(case, str(ct), FAILED, time.perf_counter() - t0, str(err))
        except MemoryError:
            return CaseRow(case, str(ct), FAILED, time.perf_counter() - t0, f"{ct}: out of memory")
        except Exception as err:  # a bug must not cost the rest of the batch; its traceback goes to stderr
            traceback.print_exc(file=sys.stderr)
            return CaseRow(case, str(ct), FAILED, time.perf_counter() - t0,
                           f"{ct}: unexpected {type(err).__name__}: {err}")
        notes = [w for w in result.warnings if w not in self.plan_warnings]
        return CaseRow(case, str(ct), SEGMENTED, time.perf_counter() - t0, "; ".join(notes),
                       {row["organ"]: float(row["volume_ml"]) for row in result.stats})
