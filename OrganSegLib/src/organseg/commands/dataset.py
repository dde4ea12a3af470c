"""`organseg dataset DIR -o dataset.csv`: a training CSV and a coverage table from a public labelled CT set
(TotalSegmentator or nnU-Net raw / MSD layout). DIR is only read; what must be made goes to a cache folder
next to the CSV."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from organseg.errors import InputError, OutputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dataset", help="import a TotalSegmentator or nnU-Net data set into a training CSV")
    p.add_argument("folder", type=Path, metavar="DIR", help="the data set folder (only read)")
    p.add_argument("-o", "--output", type=Path, required=True, help="dataset CSV to write (e.g. dataset.csv)")
    p.add_argument("--format", choices=("totalsegmentator", "nnunet"), help="layout of DIR (default: detected)")
    p.add_argument("--map", action="append", metavar="NAME=organ",
                   help="use label NAME for a catalogue organ, e.g. --map Mandible=bones (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV and coverage table")
    p.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from organseg.datasets.importer import import_dataset
    from organseg.datasets.report import COVERAGE_FIELDS, write_outputs
    from organseg.datasets.synonyms import map_hint, parse_map

    folder, csv_path = args.folder.resolve(), args.output.resolve()
    if csv_path.is_relative_to(folder):
        raise InputError(f"{args.output}: is inside {args.folder}; write the CSV elsewhere (DIR is only read)")
    if csv_path.exists() and not args.overwrite:
        raise OutputError(f"{args.output}: already exists; pass --overwrite to replace it")
    if csv_path.parent.exists() and not csv_path.parent.is_dir():
        raise OutputError(f"{args.output}: {csv_path.parent} is not a folder")
    extra = parse_map(args.map)
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    result, labels_json = import_dataset(folder, csv_path, args.format, extra, say)
    for case, reason in result.skipped:
        print(f"skipped {case}: {reason}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.unknown:
        print(f"note: {len(result.unknown)} label name(s) match no catalogue organ and are ignored: "
              f"{', '.join(result.unknown)} (to use one: {map_hint(result.unknown[0])})", file=sys.stderr)
    if not result.cases:
        raise InputError(f"{args.folder}: no usable case ({len(result.skipped)} skipped, reasons above); "
                         "nothing written")
    try:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{args.output}: cannot create the folder {csv_path.parent} ({err.strerror})") from None
    rows, paths = write_outputs(result, csv_path, labels_json, folder)
    print("| " + " | ".join(COVERAGE_FIELDS) + " |\n|" + "---|" * len(COVERAGE_FIELDS))
    for row in rows:
        print("| " + " | ".join(str(row[f]) for f in COVERAGE_FIELDS) + " |")
    print(f"{len(result.cases)} case(s) in {args.output}, {len(result.skipped)} skipped; wrote "
          + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0
