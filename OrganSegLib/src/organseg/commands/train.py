"""`organseg train --organ ORGAN | --organs all|LIST --data DATASET.csv --out MODELDIR`: new model packages
from labelled CT."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from organseg.commands.options import (add_cluster_options, add_training_options, cluster_spec, fit_config, say_where,
                                       trainer_function)
from organseg.errors import InputError
from organseg.training.config import FitConfig

_DEFAULTS = FitConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train an organ's model package from labelled CT (needs PyTorch)")
    add_training_options(p, _DEFAULTS, organ_required=False)
    p.add_argument("--organs", metavar="all|LIST",
                   help="train these organs in turn (comma-separated, or all): organs with fewer than --min-cases "
                        "labelled cases are skipped, a package already in OUT counts as done, an interrupted "
                        "organ resumes; --max-minutes and --work (WORK/ORGAN) apply per organ")
    p.add_argument("--min-cases", type=int, default=2,
                   help="with --organs: labelled training cases an organ needs in the CSV (default 2)")
    p.add_argument("--out", type=Path, required=True, help="models folder to write ORGAN-vN into")
    add_cluster_options(p, "organ")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.organ) == bool(args.organs):
        raise InputError("name the organ(s) to train: --organ ORGAN, or --organs all|LIST (not both)")
    config = fit_config(args)
    if args.organs:
        return _train_organs(args, config)
    train_organ = trainer_function(args.threads, args.device, args.loader_workers)
    train_organ(args.organ, args.data, args.out, config, args.work, args.resume, margin=args.margin,
                progress=not args.quiet)
    return 0


def _train_organs(args: argparse.Namespace, config: FitConfig) -> int:
    """Each organ in turn; an organ whose training fails on its data is reported and the next one goes on."""
    from organseg.catalogue import parse_organs
    from organseg.training.dataset import read_dataset
    from organseg.training.plan import plan_organs

    if args.min_cases < 1:
        raise InputError(f"--min-cases must be at least 1 (got {args.min_cases})")
    plans = plan_organs(parse_organs(args.organs), read_dataset(args.data), args.out, args.work, args.min_cases)
    to_train = any(p.action != "skip" for p in plans)
    train_organ = trainer_function(args.threads, args.device, args.loader_workers) if to_train else None
    failed = []
    spec = cluster_spec(args)
    if spec.distributed:
        for plan in plans:
            print(f"{plan.organ.key}: {'skipped, ' if plan.action == 'skip' else 'to train, '}{plan.reason}",
                  file=sys.stderr)
        failed = _train_on_cluster(args, config, [p for p in plans if p.action != "skip"], spec)
    for number, plan in enumerate([] if spec.distributed else plans, start=1):
        head = f"[{number}/{len(plans)}] {plan.organ.key}:"
        if plan.action == "skip":
            print(f"{head} skipped, {plan.reason}", file=sys.stderr)
            continue
        print(f"{head} {'resuming' if plan.action == 'resume' else 'training'} ({plan.reason})", file=sys.stderr)
        try:
            train_organ(plan.organ.key, args.data, args.out, config, plan.work, plan.action == "resume",
                        margin=args.margin, progress=not args.quiet)
        except InputError as err:
            failed.append(plan.organ.key)
            print(f"{head} not trained: {err}", file=sys.stderr)
    trained = [p.organ.key for p in plans if p.action != "skip" and p.organ.key not in failed]
    print(f"trained {len(trained)} organ(s): {', '.join(trained) or 'none'}; skipped "
          f"{sum(p.action == 'skip' for p in plans)}; failed {len(failed)}: {', '.join(failed) or 'none'}",
          file=sys.stderr)
    return 1 if failed else 0


def _train_on_cluster(args: argparse.Namespace, config: FitConfig, plans: list, spec) -> list[str]:
    """One Dask task per organ to train (`training.tasks.train_on_worker`); returns the organs not trained."""
    from organseg.cohort.cluster import connect
    from organseg.cohort.tasks import Task, run_tasks
    from organseg.training.tasks import train_on_worker

    tasks = [Task(p.organ.key, train_on_worker, (p.organ.key, args.data.resolve(), args.out.resolve(), config,
                                                 p.work.resolve(), p.action == "resume", args.margin, args.threads,
                                                 args.device)) for p in plans]
    failed = []
    with connect(spec) as cluster:
        say_where(cluster)
        for task, error, lost in run_tasks(cluster, tasks):
            if lost or error:
                failed.append(task.name)
            print(f"{task.name}: " + (f"not trained: {lost or error}" if lost or error else "trained"), file=sys.stderr)
    return failed
