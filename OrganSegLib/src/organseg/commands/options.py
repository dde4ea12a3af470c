"""The options and helpers that several sub-commands share; sub-commands import this, never each other.

- `--models`: every command that reads model packages;
- the segmentation options: `segment` and `batch` (and the `Segmenter` they describe);
- the DICOM export arguments: `export-rtstruct` and `export-dicom-seg`;
- the training options: `train` and `fine-tune`;
- where the tasks run (a Dask cluster): `batch` and `train`.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Callable

from organseg.catalogue import parse_organs
from organseg.cohort.cluster import Cluster, ClusterSpec, require_dask
from organseg.ct.dicom_series import find_series
from organseg.errors import InputError
from organseg.method.inference import INTERPOLATE_MM
from organseg.method.model_package import MAX_CONTEXT, ModelStore
from organseg.method.preprocess import INPUT_HEIGHT, INPUT_WIDTH
from organseg.method.runtime import DEVICES, resolve_device
from organseg.segmenter import Segmenter, Settings
from organseg.training.config import FitConfig


def add_models_option(parser: argparse.ArgumentParser, what: str = "model folder") -> None:
    """--models DIR (repeatable); without it the standard places are searched."""
    parser.add_argument("--models", action="append", type=Path,
                        help=f"{what} (repeatable; default: $ORGANSEG_MODELS, ~/.organseg/models, bundled)")


def model_store(args: argparse.Namespace) -> ModelStore:
    """The model store that --models names, or the standard one."""
    return ModelStore(args.models) if args.models else ModelStore()


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return int(text)


#: Exit code of `--strict` (segment, batch) when an organ has a plausibility flag; the results are written all the same.
FLAGGED_EXIT = 6


def add_segmentation_options(p: argparse.ArgumentParser) -> None:
    """The options `segment` and `batch` share: organs, device, models, outputs, post-processing, speed."""
    p.add_argument("--organs", default="all",
                   help="comma-separated organ names, or 'all' (default: every organ with an installed model)")
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
    p.add_argument("--strict", action="store_true",
                   help=f"exit with code {FLAGGED_EXIT} when any organ has a plausibility flag (for pipelines)")


def parse_switches(spec: str) -> dict[str, bool]:
    """'pancreas=on,liver=off' -> {'pancreas': True, 'liver': False}."""
    switches = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, value = item.partition("=")
        if value not in ("on", "off"):
            raise InputError(f"--anchor-rules: '{item}' should be ORGAN=on or ORGAN=off")
        switches[parse_organs(name)[0].key] = value == "on"
    return switches


def make_segmenter(args: argparse.Namespace) -> Segmenter:
    """The Segmenter the segmentation options describe."""
    strategy = "full" if args.full_inference else "interpolate" if args.interpolate else "coarse-to-fine"
    return Segmenter(Settings(model_store(args), args.device, args.engine, args.batch_size, not args.no_postprocess,
                              parse_switches(args.anchor_rules), strategy))


def say_added_anchors(added: list[str]) -> None:
    """Tell the user which anchor organs post-processing added to the run."""
    if added:
        print(f"adding anchor organs for post-processing: {', '.join(added)}", file=sys.stderr)


SEG_HELP = ("an OrganSeg output folder, a folder of masks named after catalogue organs (liver.nii.gz, ...), "
            "or a multi-label map (with --labels unless it is OrganSeg's); on the CT series' voxel grid, "
            "axes may be flipped or permuted")


def add_roi_names_option(p: argparse.ArgumentParser) -> None:
    """--roi-names tg263|catalogue|FILE.json: what RTSTRUCT ROIs and DICOM SEG segments are called."""
    p.add_argument("--roi-names", default="tg263", metavar="tg263|catalogue|FILE.json",
                   help="ROI and segment names: AAPM TG-263 (default: Liver, SpinalCord, Lung_L, Lung_R, ...), the "
                        "catalogue's (Liver, Spinal cord, Left lung, ...), or a JSON file of your clinic's names "
                        "(organ or <pair>_right/_left -> name, at most 16 characters; see `organseg organs`)")


def add_export_arguments(p: argparse.ArgumentParser, default_name: str) -> None:
    """Arguments shared by the DICOM export commands."""
    p.add_argument("--ct", type=Path, required=True,
                   help="folder of the CT DICOM series (or an enhanced multi-frame CT file) the masks were made on")
    p.add_argument("--seg", type=Path, required=True, help=SEG_HELP)
    p.add_argument("-o", "--output", type=Path, required=True, help=f"output file, e.g. {default_name}")
    p.add_argument("--labels", type=Path, metavar="JSON",
                   help="label id -> name of a --seg label map that is not OrganSeg's (e.g. TotalSegmentator's)")
    p.add_argument("--organs", default=None, help="comma-separated organs to export (default: every mask found)")
    add_roi_names_option(p)
    p.add_argument("--series-uid", help="DICOM Series Instance UID when the folder holds several series")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")


def run_export(args: argparse.Namespace, writer: Callable) -> int:
    """Load the series and masks, write the export, print notes and a summary."""
    from organseg.export.masks import load_masks, recorded_models
    from organseg.export.roi_names import load_roi_names

    names = load_roi_names(args.roi_names)
    series = find_series(args.ct, args.series_uid)
    organs = None if args.organs is None else [o.key for o in parse_organs(args.organs)]
    masks = load_masks(args.seg, series, organs, args.labels)
    notes = writer(masks, series, args.output, overwrite=args.overwrite, names=names, models=recorded_models(args.seg))
    for note in series.notes + notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"wrote {args.output}: {len(masks)} organs on {len(series.files)} slices")
    return 0


def add_training_options(p: argparse.ArgumentParser, defaults: FitConfig, organ_required: bool = True) -> None:
    """Options shared by `train` and `fine-tune`."""
    p.add_argument("--organ", required=organ_required, help="catalogue organ name (see `organseg organs`)")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset CSV with columns image, mask, source (+ optional label, labels, case)")
    p.add_argument("--steps", type=int, default=defaults.max_steps,
                   help=f"maximum optimisation steps (default {defaults.max_steps})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"slices per step (default {defaults.batch_size})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam learning rate (default {defaults.lr})")
    p.add_argument("--val-every", type=int, default=defaults.val_every,
                   help=f"steps between validations and checkpoints (default {defaults.val_every})")
    p.add_argument("--patience", type=int, default=defaults.patience,
                   help=f"validations without improvement before stopping early (default {defaults.patience})")
    p.add_argument("--max-minutes", type=float, help="stop after this much training time (after a validation)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the split, sampling and augmentation")
    p.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    p.add_argument("--margin", type=int, default=30, help="slices above/below the organ to train on (default 30)")
    p.add_argument("--margin-below", type=int, metavar="N",
                   help="slices below the organ to train on, where contours stop short of it (default: --margin)")
    p.add_argument("--patch", metavar="ROWSxCOLS",
                   help="train on crops of the 224x304 input, e.g. 128x160 (faster; default: whole slices)")
    p.add_argument("--foreground-fraction", type=float, default=defaults.foreground_fraction,
                   help=f"share of crops centred on the organ (default {defaults.foreground_fraction})")
    p.add_argument("--poly-lr", action="store_true", help="decay the learning rate to 0 over --steps or --max-minutes")
    p.add_argument("--context-slices", type=int, default=defaults.context, metavar="K",
                   help=f"also feed the K slices on each side as input channels (2.5D; 0 to {MAX_CONTEXT}, default "
                        f"{defaults.context}: the slice alone); recorded in the package, so inference feeds the same")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: a CUDA GPU if there is one (mixed precision, DataLoader workers), else the CPU")
    p.add_argument("--loader-workers", type=int, default=4,
                   help="DataLoader processes making batches on a GPU (default 4)")
    p.add_argument("--work", type=Path, help="folder for checkpoints and the log (default OUT/.train-ORGAN)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in the work folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def fit_config(args: argparse.Namespace) -> FitConfig:
    """The FitConfig of the command-line options (checked)."""
    if args.loader_workers < 0:
        raise InputError(f"--loader-workers must be 0 or more (got {args.loader_workers})")
    for name in ("steps", "batch_size", "val_every", "patience", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise InputError(f"--max-minutes must be positive (got {args.max_minutes})")
    if args.margin_below is not None and args.margin_below < 0:
        raise InputError(f"--margin-below must be 0 or more (got {args.margin_below})")
    if not 0 <= args.context_slices <= MAX_CONTEXT:
        raise InputError(f"--context-slices must be from 0 to {MAX_CONTEXT} (got {args.context_slices})")
    if not 0 <= args.foreground_fraction <= 1:
        raise InputError(f"--foreground-fraction must be between 0 and 1 (got {args.foreground_fraction})")
    return FitConfig(args.steps, args.batch_size, args.lr, args.val_every, args.patience, args.seed,
                     not args.no_augment, args.max_minutes * 60 if args.max_minutes else None,
                     _patch(args.patch), args.foreground_fraction, args.margin_below, args.poly_lr,
                     args.context_slices)


def _patch(value: str | None) -> tuple[int, int] | None:
    """--patch ROWSxCOLS, checked against the network input (multiples of 8 that fit in 224x304)."""
    if value is None:
        return None
    try:
        rows, cols = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise InputError(f"--patch '{value}' should be ROWSxCOLS, e.g. 128x160") from None
    if not (8 <= rows <= INPUT_HEIGHT and 8 <= cols <= INPUT_WIDTH and rows % 8 == 0 and cols % 8 == 0):
        raise InputError(f"--patch {value}: rows and columns must be multiples of 8 within "
                         f"{INPUT_HEIGHT}x{INPUT_WIDTH}")
    return rows, cols


def trainer_function(threads: int | None, device: str = "cpu", workers: int = 0):
    """`organseg.training.run.train_organ` on the device (PyTorch on `threads` CPU threads), or a one-line
    error when PyTorch or the asked-for GPU is missing."""
    try:
        import torch

        from organseg.training.run import train_organ
    except ImportError as err:
        raise InputError(f"training needs PyTorch ({err}): pip install 'organseg[torch]'") from None
    if threads:
        torch.set_num_threads(threads)
    device = "cuda" if resolve_device(device) == "cuda" else "cpu"
    return partial(train_organ, device=device, workers=workers if device == "cuda" else 0)


def add_cluster_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """Where the tasks run (one per {unit}): in this process (default), or on a Dask cluster."""
    g = parser.add_argument_group("cluster (needs: pip install 'organseg[cluster]')")
    g.add_argument("--workers", type=positive_int, metavar="N",
                   help=f"start a local Dask cluster of N worker processes, one {unit} per worker at a time")
    g.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask cluster, e.g. tcp://host:8786")
    g.add_argument("--cluster", choices=("slurm",), help="start a Dask cluster on Slurm (dask-jobqueue)")
    g.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="--cluster: batch jobs to submit, one worker each (default 1)")
    g.add_argument("--cores", type=positive_int, default=1, metavar="C", help="--cluster: cores per job (default 1)")
    g.add_argument("--memory", default="8GB", metavar="M", help="--cluster: memory per job (default 8GB)")
    g.add_argument("--queue", metavar="Q", help="--cluster: queue (Slurm partition)")
    g.add_argument("--listen", default="127.0.0.1", metavar="HOST",
                   help="--workers: the interface the local cluster and its dashboard listen on (default 127.0.0.1, "
                        "this machine only; the dashboard shows file names and has no login)")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help=f"run the {unit} again on another worker when its worker dies, up to N times (default 2)")


def say_where(cluster: Cluster) -> None:
    """Where the tasks run and the Dask dashboard's address (above any progress bar)."""
    from tqdm import tqdm
    tqdm.write(f"running on {cluster.where}; dashboard: {cluster.dashboard}", file=sys.stderr)


def cluster_spec(args: argparse.Namespace) -> ClusterSpec:
    """The ClusterSpec of the cluster options, checked, with Dask importable when it is needed."""
    spec = ClusterSpec(args.workers, args.scheduler, args.cluster, args.jobs, args.cores, args.memory, args.queue,
                       args.retries, args.listen)
    spec.check()
    if spec.distributed:
        require_dask()
    return spec
