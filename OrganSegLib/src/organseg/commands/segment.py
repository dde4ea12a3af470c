"""`organseg segment CT -o OUTDIR --organs ...`: masks, label map and statistics on the CT's grid."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from organseg.catalogue import parse_organs
from organseg.errors import InputError
from organseg.commands import add_models_option, model_store
from organseg.export.output_types import dicom_writers, parse_output_types
from organseg.inference import INTERPOLATE_MM
from organseg.input_checks import format_ml
from organseg.io import read_ct
from organseg.outputs import check_output_dir, write_result
from organseg.runtime import DEVICES
from organseg.result import Progress
from organseg.segmenter import Segmenter


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("segment", help="segment organs of a CT (NIfTI, NRRD, MHA or DICOM folder)")
    p.add_argument("ct", type=Path, help="CT image file or DICOM series folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_segmentation_options(p)
    p.add_argument("--series-uid", help="DICOM Series Instance UID when the folder holds several series")
    p.set_defaults(func=run)


def add_segmentation_options(p: argparse.ArgumentParser) -> None:
    """The options `segment` and `batch` share: organs, device, models, outputs, post-processing, speed."""
    p.add_argument("--organs", default="all", help="comma-separated organ names, or 'all' (default: every organ with an installed model)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where the networks run (default auto)")
    p.add_argument("--engine", default="auto", choices=("auto", "onnx", "torch"),
                   help="inference engine; auto: ONNX Runtime on the CPU, PyTorch on GPUs")
    add_models_option(p)
    p.add_argument("--format", default="nifti", choices=("nifti", "nrrd"), help="image format of the outputs")
    p.add_argument("--output-type", action="append", metavar="TYPES",
                   help="nifti, nrrd, rtstruct, dicom-seg (repeatable or comma-separated): nifti/nrrd set the mask "
                        "format, rtstruct/dicom-seg add rtstruct.dcm/seg.dcm (need a DICOM series folder as CT)")
    p.add_argument("--resample-irregular", action="store_true",
                   help="resample a DICOM series with gantry tilt, uneven spacing or missing slices (else refused)")
    p.add_argument("--no-postprocess", action="store_true", help="keep the raw network masks")
    p.add_argument("--anchor-rules", default="",
                   help="switch anchor rules per organ, e.g. 'pancreas=on,liver=off' (default: the rule table)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="slices per network batch (default 16)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--full-inference", action="store_true",
                       help="run every slice instead of coarse-to-fine (every few slices, then around the organ)")
    speed.add_argument("--interpolate", action="store_true",
                       help=f"faster: also skip slices inside organs where slices up to {INTERPOLATE_MM:g} mm apart "
                            "agree, and interpolate them (not exact: Dice >= 0.99 against every slice, measured)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in the output folder")


def make_segmenter(args: argparse.Namespace) -> Segmenter:
    """The Segmenter the shared options describe."""
    strategy = "full" if args.full_inference else "interpolate" if args.interpolate else "coarse-to-fine"
    return Segmenter(model_store(args), args.device, args.engine, args.batch_size, not args.no_postprocess,
                     parse_switches(args.anchor_rules), strategy)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return int(text)


def parse_switches(spec: str) -> dict[str, bool]:
    """'pancreas=on,liver=off' -> {'pancreas': True, 'liver': False}."""
    switches = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, value = item.partition("=")
        if value not in ("on", "off"):
            raise InputError(f"--anchor-rules: '{item}' should be ORGAN=on or ORGAN=off")
        switches[parse_organs(name)[0].key] = value == "on"
    return switches


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output, args.overwrite)
    fmt, dicom_types = parse_output_types(args.output_type, args.format)
    extra_writers = dicom_writers(args.ct, args.output, args.series_uid, dicom_types)
    organs = args.organs if args.organs == "all" else [o.key for o in parse_organs(args.organs)]
    segmenter = make_segmenter(args)
    packages, added, _ = segmenter.plan(organs)
    image = read_ct(args.ct, args.series_uid, args.resample_irregular)
    if added:
        print(f"adding anchor organs for post-processing: {', '.join(added)}", file=sys.stderr)
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
    for warning in result.warnings:
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
    return 0
