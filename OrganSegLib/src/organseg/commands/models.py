"""`organseg models`: installed model packages with version, checksum state, provenance and recorded Dice."""
from __future__ import annotations

import argparse
import json

from organseg.commands.options import add_models_option, model_store
from organseg.errors import ModelError
from organseg.method.model_package import ModelPackage


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list installed model packages")
    add_models_option(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = model_store(args)
    rows = []
    for key, versions in sorted(store.available().items()):
        for version, path in sorted(versions.items()):
            try:
                pkg = ModelPackage.load(path)
                sha = pkg.meta["files"][pkg.main_file]["sha256"]
                rows.append({"organ": key, "version": version, "path": str(path), "status": "ok",
                             "kind": pkg.kind, "sha256": sha, "val_dice": pkg.dice,
                             "onnx": pkg.onnx_path is not None, "patients": pkg.patients, "provenance": pkg.provenance,
                             "training": pkg.meta.get("training", {}).get("summary", "")})
            except ModelError as err:
                rows.append({"organ": key, "version": version, "path": str(path), "status": f"invalid: {err}"})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no model packages installed in: " + ", ".join(str(d) for d in store.dirs))
        return 0
    print(f"{'organ':<20}{'version':<9}{'provenance':<52}{'onnx':<6}{'sha256':<18}path")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['organ']:<20}v{r['version']:<8}{r['status']}")
            continue
        print(f"{r['organ']:<20}v{r['version']:<8}{r['provenance']:<52}{'yes' if r['onnx'] else 'no':<6}"
              f"{r['sha256'][:16]:<18}{r['path']}")
    return 0
