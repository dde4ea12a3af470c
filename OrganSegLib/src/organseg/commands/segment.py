"""`organseg segment CT -o OUTDIR --organs ...`: masks, label map and statistics on the CT's grid."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from organseg.catalogue import parse_organs
from organseg.commands.options import FLAGGED_EXIT, add_segmentation_options, make_segmenter, say_added_anchors
from organseg.ct.checks import format_ml
from organseg.ct.read import read_ct
from organseg.export.output_types import dicom_writers, parse_output_types
from organseg.results.folder import check_output_dir, write_result
from organseg.results.plausibility import flagged, warning_lines
from organseg.results.result import Progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("segment", help="segment organs of a CT (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("ct", type=Path, help="CT image file or DICOM series folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_segmentation_options(p)
    p.add_argument("--series-uid", help="DICOM Series Instance UID when the folder holds several series")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output, args.overwrite)
    fmt, dicom_types = parse_output_types(args.output_type, args.format)
    extra_writers = dicom_writers(args.ct, args.output, args.series_uid, dicom_types)
    organs = args.organs if args.organs == "all" else [o.key for o in parse_organs(args.organs)]
    segmenter = make_segmenter(args)
    packages, added, _ = segmenter.plan(organs)
    image = read_ct(args.ct, args.series_uid, args.resample_irregular)
    say_added_anchors(added)
    bar = tqdm(total=len(packages), unit="organ", file=sys.stderr)

    def progress(p: Progress) -> None:
        if p.stage == "inference":
            bar.set_description(f"{p.organ.display_name} ({p.index}/{p.total})")
        elif p.stage == "done" and p.index <= bar.total:
            bar.update(1)

    try:
        result = segmenter.segment(image, organs, progress=progress, source=str(args.ct))
    finally:
        bar.close()  # ends the bar's line, so an error or interrupt message starts on its own
    for warning in result.warnings + warning_lines(result.stats):
        print(f"warning: {warning}", file=sys.stderr)
    empty = [row["organ"] for row in result.stats if not row["voxels"]]
    if empty:
        print(f"warning: {args.ct}: not found (empty mask): {', '.join(empty)}", file=sys.stderr)
    write_result(result, args.output, fmt, args.overwrite, source=str(args.ct), extra_writers=extra_writers)
    print(f"{'organ':<20}{'volume mL':>11}{'seconds':>9}  model")
    for row in result.stats:
        print(f"{row['organ']:<20}{format_ml(row['volume_ml']):>11}{result.seconds[row['organ']]:>9.2f}  "
              f"{result.models[row['organ']]}")
    organ_seconds = [v for k, v in result.seconds.items() if not k.startswith("_")]
    print(f"pre-processing {result.seconds.get('_prepare', 0.0):.2f} s; "
          f"{sum(organ_seconds) / max(len(organ_seconds), 1):.2f} s per organ; results in {args.output}")
    return FLAGGED_EXIT if args.strict and flagged(result.stats) else 0
