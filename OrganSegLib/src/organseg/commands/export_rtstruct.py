"""`organseg export-rtstruct --ct DICOMDIR --seg SEG -o rtstruct.dcm`: organ masks as a DICOM RT Structure Set."""
from __future__ import annotations

import argparse

from organseg.commands.options import add_export_arguments, run_export


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export-rtstruct", help="export organ masks as a DICOM RTSTRUCT for a CT series")
    add_export_arguments(p, "rtstruct.dcm")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from organseg.export.rtstruct import write_rtstruct
    return run_export(args, write_rtstruct)
