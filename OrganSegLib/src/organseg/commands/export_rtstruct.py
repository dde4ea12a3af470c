"""`organseg export-rtstruct --ct DICOMDIR --seg SEG -o rtstruct.dcm`: organ masks as a DICOM RT Structure Set."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from organseg.catalogue import parse_organs
from organseg.dicom_series import find_series

SEG_HELP = ("an OrganSeg output folder, a folder of masks named after catalogue organs (liver.nii.gz, ...), "
            "or a multi-label map (with --labels unless it is OrganSeg's); on the CT series' voxel grid, "
            "axes may be flipped or permuted")


def add_export_arguments(p: argparse.ArgumentParser, default_name: str) -> None:
    """Arguments shared by the DICOM export commands."""
    p.add_argument("--ct", type=Path, required=True, help="folder of the CT DICOM series the masks were made on")
    p.add_argument("--seg", type=Path, required=True, help=SEG_HELP)
    p.add_argument("-o", "--output", type=Path, required=True, help=f"output file, e.g. {default_name}")
    p.add_argument("--labels", type=Path, metavar="JSON",
                   help="label id -> name of a --seg label map that is not OrganSeg's (e.g. TotalSegmentator's)")
    p.add_argument("--organs", default=None, help="comma-separated organs to export (default: every mask found)")
    p.add_argument("--series-uid", help="DICOM Series Instance UID when the folder holds several series")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")


def run_export(args: argparse.Namespace, writer: Callable) -> int:
    """Load the series and masks, write the export, print notes and a summary."""
    from organseg.export.masks import load_masks

    series = find_series(args.ct, args.series_uid)
    organs = None if args.organs is None else [o.key for o in parse_organs(args.organs)]
    masks = load_masks(args.seg, series, organs, args.labels)
    for note in series.notes + writer(masks, series, args.output, overwrite=args.overwrite):
        print(f"warning: {note}", file=sys.stderr)
    print(f"wrote {args.output}: {len(masks)} organs on {len(series.files)} slices")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export-rtstruct", help="export organ masks as a DICOM RTSTRUCT for a CT series")
    add_export_arguments(p, "rtstruct.dcm")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from organseg.export.rtstruct import write_rtstruct
    return run_export(args, write_rtstruct)
