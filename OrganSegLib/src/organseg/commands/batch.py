"""`organseg batch CT... -o OUTDIR`: segment many CTs, one result folder each, and a summary table.

Resumable: a CT whose result folder holds results is not segmented again (unless --overwrite). A CT that
fails (unreadable, not a CT, too large, ...) is reported in the summary and the batch goes on. The work is
`organseg.cohort.batch.run_batch`, or `organseg.cohort.batch_tasks.run_batch_on_cluster` with --workers, --scheduler or
--cluster; this command parses and prints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from organseg.catalogue import parse_organs
from organseg.cohort.batch import (DONE_BEFORE, FAILED, SEGMENTED, SUMMARY, BatchOptions, case_names, find_cts,
                                   read_list, run_batch)
from organseg.commands.options import (FLAGGED_EXIT, add_cluster_options, add_roi_names_option,
                                       add_segmentation_options, cluster_spec, make_segmenter, say_added_anchors,
                                       say_where)
from organseg.ct.checks import format_ml
from organseg.errors import InputError, OutputError
from organseg.export.output_types import parse_output_types
from organseg.export.roi_names import load_roi_names
from organseg.results.folder import check_writable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("batch", help="segment many CTs: one result folder each and a summary table")
    p.add_argument("cts", type=Path, nargs="*", metavar="CT",
                   help="CT image files, DICOM series folders, or folders holding them (searched one level deep)")
    p.add_argument("--list", type=Path, metavar="FILE", help="a text file naming one CT per line (also accepted)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help=f"output folder: OUTDIR/<case>/ per CT and OUTDIR/{SUMMARY}")
    add_segmentation_options(p)
    add_roi_names_option(p)
    add_cluster_options(p, "CT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = list(args.cts) + (read_list(args.list) if args.list else [])
    if not inputs:
        raise InputError("give CTs, folders of CTs, or --list FILE")
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"{args.output}: exists and is not a folder")
    spec = cluster_spec(args)
    cases = case_names(find_cts(inputs))
    for ct in cases:
        if ct.is_dir() and args.output.resolve().is_relative_to(ct.resolve()):
            raise OutputError(f"{args.output}: inside the input DICOM folder {ct}; write the results elsewhere")
    check_writable(args.output)
    fmt, dicom_types = parse_output_types(args.output_type, args.format)
    names = load_roi_names(args.roi_names)
    segmenter = make_segmenter(args)
    organs = args.organs if args.organs == "all" else tuple(o.key for o in parse_organs(args.organs))
    packages, added, plan_warnings = segmenter.plan(organs)  # every model present and verified before the first CT
    organs = tuple(p.organ.key for p in packages if p.organ.key not in added)  # 'all' resolved once
    if dicom_types:
        names.check_covers(p.organ for p in packages)  # before the first CT, not after it
    say_added_anchors(added)
    for warning in plan_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    options = BatchOptions(organs, fmt, tuple(dicom_types), names, args.overwrite, args.resample_irregular,
                           tuple(plan_warnings))
    rows = []
    with tqdm(total=len(cases), unit="CT", file=sys.stderr) as bar:  # closed before an interrupt message
        if spec.distributed:
            from organseg.cohort.batch_tasks import run_batch_on_cluster
            finished = run_batch_on_cluster(cases, args.output, segmenter, options, spec, started=say_where)
        else:
            finished = run_batch(cases, args.output, segmenter, options, starting=bar.set_description)
        for row in finished:
            rows.append(row)
            bar.set_description(row.case)
            bar.update(1)
            volumes = ", ".join(f"{k} {format_ml(v)} mL" for k, v in row.volumes_ml.items())
            detail = row.message if row.status == FAILED else volumes
            bar.write(f"{row.case}: {row.status}" + (f" in {row.seconds:.1f} s" if row.status == SEGMENTED else "")
                      + (f" ({detail})" if detail else ""))
            if row.flags:
                bar.write(f"warning: {row.case}: {len(row.flags)} organ(s) need a look: {row.flagged}")
    counts = {status: sum(row.status == status for row in rows) for status in (SEGMENTED, DONE_BEFORE, FAILED)}
    print(f"{len(rows)} CTs: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; {sum(bool(row.flags) for row in rows)} with flagged organs; summary in {args.output / SUMMARY}")
    return 1 if counts[FAILED] else FLAGGED_EXIT if args.strict and any(row.flags for row in rows) else 0
