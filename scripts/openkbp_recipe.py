"""The OpenKBP recipe's data set and settings, shared by `train_openkbp.py` (CPU or GPU, with SimpleITK) and
`train_from_pack.py` (a machine with PyTorch alone); no image I/O here."""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from organseg.catalogue import organ as find_organ
from organseg.training.config import FitConfig

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ORGANSEG_DATA", REPO.parent / "shared" / "data"))  #: the shared/data folder
OPENKBP = DATA / "openkbp_hn"
TOTALSEG = DATA / "totalseg_example"
#: OpenKBP structure names -> catalogue organs, and the organs' values in OpenKBP's labels.nii.gz (labels.json)
STRUCTURES = {"SpinalCord": "spinal_cord", "Esophagus": "esophagus", "Larynx": "larynx", "Brainstem": "brainstem",
              "Mandible": "mandible", "LeftParotid": "parotid_left", "RightParotid": "parotid_right"}
LABEL_IDS = {"spinal_cord": 1, "esophagus": 2, "larynx": 3, "brainstem": 4, "mandible": 5, "parotid_left": 6,
             "parotid_right": 7}
MARGIN = 30  #: slices above the organ (and below, up to CONFIG's margin_below) that train it
SELECTION_PATIENTS = 3  #: OpenKBP train patients that select the weights on a CPU (validation runs whole slices)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  #: probability thresholds tried on the selection patients
CONFIG = dict(max_steps=6000, batch_size=8, lr=1e-3, val_every=300, patience=10, patch=(96, 128),
              foreground_fraction=0.6, margin_below=0, poly_lr=True)
#: Organs whose OpenKBP contours stop short of the organ's lower end (tubes drawn only where they are planned
#: around): no slice below the contour is a negative. Every other organ is drawn whole, and each slice below it
#: down to the CT's end trains it as a negative (without them v1 found parotids in the shoulders).
STOP_SHORT = {"spinal_cord", "esophagus"}
WHOLE_CT = 1000  #: a margin in slices that reaches every slice of any CT


def margin_below(organ_key: str) -> int:
    """Slices below the organ's contour that train it as negatives (see STOP_SHORT)."""
    return CONFIG["margin_below"] if organ_key in STOP_SHORT else WHOLE_CT


def openkbp_cases() -> list[dict[str, str]]:
    """The rows of OpenKBP's cases.csv (case, split, spacing, labelled structures)."""
    with open(OPENKBP / "cases.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def contoured(case: dict[str, str], organ_key: str) -> bool:
    """Whether the OpenKBP patient (a cases.csv row) has the organ's contour."""
    return organ_key in {STRUCTURES.get(s) for s in case["labelled"].split(";")}


def write_dataset(organ_key: str, path: Path, seed: int = 0, selection: int = SELECTION_PATIENTS) -> None:
    """The dataset CSV of the recipe (`train_openkbp.py`'s docstring), `selection` patients selecting."""
    rows = []
    candidates = [c for c in openkbp_cases() if c["split"] == "train" and contoured(c, organ_key)]
    rng = np.random.default_rng(seed)
    chosen = {c["case"] for c in rng.choice(candidates, selection, replace=False)}
    for c in openkbp_cases():
        labelled = "+".join(sorted({STRUCTURES[s] for s in c["labelled"].split(";") if s in STRUCTURES}))
        folder = OPENKBP / c["split"] / c["case"]
        split = "test" if c["split"] == "validation" else ("validation" if c["case"] in chosen else "train")
        rows.append({"image": folder / "ct.nii.gz", "mask": folder / "labels.nii.gz",
                     "label": LABEL_IDS[organ_key], "labels": "", "source": "openkbp", "case": c["case"],
                     "split": split, "labelled": labelled})
    if find_organ(organ_key).totalsegmentator_names:  # the abdominal example series holds the organ's labels
        rows.append({"image": TOTALSEG / "example_ct_dicom", "mask": TOTALSEG / "example_seg_dicom.nii.gz",
                     "label": "", "labels": TOTALSEG / "labels_totalsegmentator_v2.json",
                     "source": "totalsegmentator_example", "case": "totalseg_dicom_example", "split": "train",
                     "labelled": ""})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The training options both scripts take (defaults: the CPU recipe, CONFIG)."""
    parser.add_argument("--minutes", type=float, default=100.0, help="training time budget")
    parser.add_argument("--steps", type=int, default=CONFIG["max_steps"])
    parser.add_argument("--lr", type=float, default=CONFIG["lr"], help="peak learning rate (lower to fine-tune a "
                        "--parent without first unlearning it)")
    parser.add_argument("--batch-size", type=int, default=CONFIG["batch_size"], help="crops per step")
    parser.add_argument("--val-every", type=int, default=CONFIG["val_every"], help="steps between validations")
    parser.add_argument("--patience", type=int, default=CONFIG["patience"],
                        help="validations without improvement before stopping")
    parser.add_argument("--parent", type=Path, help="continue from this model package's weights (a fresh "
                        "learning-rate schedule over --minutes), e.g. the bundled spinal_cord-v1")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="batch-making processes on a GPU")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    parser.add_argument("--context-slices", type=int, default=0, help="slices on each side fed as extra input "
                        "channels (2.5D); a 2D --parent is widened to them")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights, sampling and augmentation")


def fit_config(args: argparse.Namespace, organ_key: str) -> FitConfig:
    """The recipe's settings for the organ with the command line's."""
    return FitConfig(**{**CONFIG, "max_steps": args.steps, "max_seconds": args.minutes * 60, "lr": args.lr,
                        "batch_size": args.batch_size, "val_every": args.val_every, "patience": args.patience,
                        "margin_below": margin_below(organ_key), "context": args.context_slices,
                        "seed": args.seed})
