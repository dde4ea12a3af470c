"""`organseg export-dicom-seg --ct DICOMDIR --seg SEG -o seg.dcm`: organ masks as a DICOM Segmentation."""
from __future__ import annotations

import argparse

from organseg.commands.options import add_export_arguments, run_export


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export-dicom-seg", help="export organ masks as a DICOM SEG for a CT series")
    add_export_arguments(p, "seg.dcm")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from organseg.export.dicom_seg import write_dicom_seg
    return run_export(args, write_dicom_seg)
