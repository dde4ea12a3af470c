"""`organseg evaluate`: Dice, Jaccard, NSD, HD95 and volume difference against references, per organ and
case, without and with post-processing, as CSV, a markdown table and a box plot.

Predictions come from result folders of `organseg segment` (--pred, and --pred-raw for a run with
--no-postprocess), from segmenting a CT here both ways (--ct with --models), or from segmenting every
test-split case of a dataset CSV both ways (--data with --models: the paper's Table 1 for the user's models).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from organseg.catalogue import Organ, parse_organs
from organseg.commands.options import add_models_option, model_store
from organseg.ct.labelmaps import read_label_names
from organseg.errors import InputError, OutputError
from organseg.evaluation.cases import MaskGetter, case_sources, match_references
from organseg.evaluation.compare import POST, PRED, RAW, compare
from organseg.evaluation.metrics import NSD_TOLERANCE_MM
from organseg.evaluation.report import FILES, write_report
from organseg.method.runtime import DEVICES

if TYPE_CHECKING:
    import SimpleITK as sitk

    from organseg.results.result import Result


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="compare segmentations with reference masks (Dice, NSD, HD95, ...)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pred", type=Path, help="result folder of `organseg segment` (or a folder of them, one "
                                                  "per case), a folder of ORGAN.nii.gz masks or a label map")
    source.add_argument("--ct", type=Path, help="segment this CT here, without and with post-processing")
    source.add_argument("--data", type=Path, help="dataset CSV (`organseg dataset`): segment its test-split cases "
                                                  "both ways against their references (the paper's Table 1)")
    p.add_argument("--pred-raw", type=Path, help="the same cases segmented with --no-postprocess (then --pred "
                                                 "is taken as post-processed and the effect is tested)")
    p.add_argument("--ref", type=Path,
                   help="reference: label map file, folder of ORGAN.nii.gz masks, or a folder with one per case "
                        "(needed with --pred and --ct; --data takes the CSV's masks)")
    p.add_argument("--ref-labels", type=Path, help="labels JSON of a TotalSegmentator-style reference map (id -> "
                                                   "name); default: the map uses catalogue label values")
    p.add_argument("--organs", help="comma-separated organs (default: every organ predicted)")
    add_models_option(p, "model folder for --ct and --data")
    p.add_argument("--split", default="test", help="with --data: the split to evaluate (default test)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where --ct and --data segment (default auto)")
    p.add_argument("--case", help="case name for a single case (default: the file or folder name)")
    p.add_argument("--tolerance", type=float, default=NSD_TOLERANCE_MM,
                   help=f"NSD tolerance in mm (default {NSD_TOLERANCE_MM:g})")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for " + ", ".join(FILES))
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in the output folder")
    p.set_defaults(func=run)


class ResultMasks:
    """A segmentation result as a mask source: organ masks and the flags recorded in its statistics."""

    def __init__(self, result: "Result") -> None:
        self.result = result

    def __call__(self, o: Organ) -> "sitk.Image | None":
        return self.result.mask_image(o.key) if o.key in self.result.masks else None

    def flags(self, o: Organ) -> list[str] | None:
        row = next((r for r in self.result.stats if r["organ"] == o.key), None)
        return None if row is None else [f["code"] for f in row["flags"]]


def _segmented(args: argparse.Namespace) -> tuple[dict[str, dict[str, MaskGetter]], list[Organ]]:
    """Segment the CT without and with post-processing; masks as getters."""
    from organseg.catalogue import organ as find_organ
    from organseg.ct.read import read_ct
    from organseg.segmenter import Segmenter

    store = model_store(args)
    organs = parse_organs(args.organs) if args.organs else parse_organs(sorted(store.available()) or None)
    keys = [o.key for o in organs]
    image = read_ct(args.ct)
    variants: dict[str, MaskGetter] = {}
    for name, post in ((RAW, False), (POST, True)):
        result = Segmenter(models=store, device=args.device, postprocess=post).segment(image, keys, source=str(args.ct))
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        variants[name] = ResultMasks(result)
        print(f"segmented {args.ct} ({'with' if post else 'without'} post-processing)", file=sys.stderr)
    name = args.case or args.ct.name.split(".")[0]
    return {name: variants}, [find_organ(k) for k in keys]


def _from_folders(args: argparse.Namespace) -> tuple[dict[str, dict[str, MaskGetter]], list[Organ]]:
    """Predicted cases of --pred (and --pred-raw), matched by case name."""
    pred = case_sources(args.pred, single_name=args.case)
    predictions: dict[str, dict[str, MaskGetter]] = {c: {PRED: s} for c, s in pred.items()}
    if args.pred_raw:
        raw = case_sources(args.pred_raw, single_name=args.case)
        if set(raw) != set(pred):
            raise InputError(f"{args.pred_raw}: cases {sorted(raw)} differ from those of {args.pred}: {sorted(pred)}")
        predictions = {c: {RAW: raw[c], POST: pred[c]} for c in pred}
    if args.organs:
        organs = parse_organs(args.organs)
    else:
        found = {o.key for s in pred.values() for o in s.organs()}
        organs = parse_organs(sorted(found)) if found else []
    if not organs:
        raise InputError(f"{args.pred}: no organ masks found; pass --organs")
    return predictions, organs


def _held_out(args: argparse.Namespace, warn) -> tuple[list[dict], list[Organ]]:
    """Metric rows of the --data split's cases segmented both ways against the CSV's masks, case by case
    (one case's masks in memory at a time)."""
    from organseg.evaluation.held_out import evaluated_organs, held_out_cases, references, segment_both_ways

    from organseg.segmenter import Segmenter

    store = model_store(args)
    cases = held_out_cases(args.data, args.split)
    organs = evaluated_organs(cases, store, parse_organs(args.organs))
    segment = {name: Segmenter(models=store, device=args.device, postprocess=post).segment
               for name, post in ((RAW, False), (POST, True))}
    rows = []
    for number, spec in enumerate(cases, start=1):
        print(f"[{number}/{len(cases)}] segmenting {spec.name} without and with post-processing", file=sys.stderr)
        variants = segment_both_ways(spec, organs, segment, warn)
        rows += compare({spec.name: variants}, {spec.name: references(spec)}, organs, args.tolerance)
    return rows, organs


def run(args: argparse.Namespace) -> int:
    existing = [f for f in FILES if (args.output / f).exists()]
    if existing and not args.overwrite:
        raise OutputError(f"{args.output}: already holds {', '.join(existing)}; choose another folder or pass "
                          "--overwrite")
    if args.tolerance <= 0:
        raise InputError(f"--tolerance must be positive (got {args.tolerance})")
    if args.ct and args.pred_raw:
        raise InputError("--pred-raw goes with --pred; --ct segments without and with post-processing itself")
    if (args.ref is None) != bool(args.data):
        raise InputError("--ref names the references of --pred and --ct; --data takes them from the CSV")
    if args.data and args.pred_raw:
        raise InputError("--pred-raw goes with --pred; --data segments without and with post-processing itself")

    def warn(line: str) -> None:
        print(f"warning: {line}", file=sys.stderr)

    if args.data:
        rows, organs = _held_out(args, warn)
        notes = [f"prediction: the models of {', '.join(map(str, model_store(args).dirs))} on the '{args.split}' "
                 f"cases of {args.data}, without and with the anchor post-processing",
                 f"reference: the masks of {args.data}; an organ a case does not label is not scored"]
    else:
        names = read_label_names(args.ref_labels) if args.ref_labels else None
        predictions, organs = _segmented(args) if args.ct else _from_folders(args)
        references = match_references(list(predictions), args.ref, names)
        notes = [f"prediction: {args.ct or args.pred}" + (f"; without post-processing: {args.pred_raw}"
                                                           if args.pred_raw else ""),
                 f"reference: {args.ref}" + (f" (labels {args.ref_labels}, mapped through the catalogue's "
                                             "TotalSegmentator names)" if args.ref_labels else "")]
        flags = {c: {v: g.flags for v, g in variants.items() if hasattr(g, "flags")}
                 for c, variants in predictions.items()}
        rows = compare(predictions, references, organs, args.tolerance, warn=warn, flags=flags)
    if not rows:
        raise InputError(f"{args.ref or args.data}: no reference mask for any of {', '.join(o.key for o in organs)}")
    notes += [f"NSD tolerance {args.tolerance:g} mm; distances in mm on the prediction's voxel grid; HD95 is "
             "NaN where a mask is empty"]
    title = f"Table 1: OrganSeg on the {args.split} split of {args.data.name}" if args.data else "OrganSeg evaluation"
    files = write_report(rows, args.output, title, notes)
    print(files["evaluation.md"].read_text())
    print("wrote " + ", ".join(str(p) for p in files.values()), file=sys.stderr)
    return 0
