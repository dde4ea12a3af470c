"""`organseg organs`: the catalogue, and which organs have a model installed."""
from __future__ import annotations

import argparse
import json

from organseg.catalogue import CATEGORY, ORGANS
from organseg.commands.options import add_models_option, model_store
from organseg.method.postprocess import rule


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("organs", help="list the organs of the catalogue")
    add_models_option(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = model_store(args)
    installed = store.available()
    rows = [{"organ": o.key, "label": o.label, "name": o.display_name, "region": o.region,
             "colour": "#%02x%02x%02x" % o.colour, "snomed_category": " ".join(CATEGORY),
             "snomed_type": " ".join(o.snomed_type), "anchor": o.anchor,
             "anchor_rules_need": list(rule(o.key).anchors), "min_extent_mm": o.min_extent_mm,
             "model": f"v{max(installed[o.key])}" if o.key in installed else None} for o in ORGANS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'organ':<20}{'label':>5}  {'name':<20}{'region':<10}{'colour':<9}{'SNOMED CT type':<34}"
          f"{'anchor':<8}model")
    for r in rows:
        print(f"{r['organ']:<20}{r['label']:>5}  {r['name']:<20}{r['region']:<10}{r['colour']:<9}"
              f"{r['snomed_type']:<34}{'yes' if r['anchor'] else '':<8}{r['model'] or '-'}")
    return 0
