"""Write the bundled `lungs` package: the classical lung labeller (organseg.method.lungs) with its model card.

The card's `checked_on` summarises scripts/lung_labeller_check.tsv (every real CT in ../shared/data, made by
scripts/check_lung_labeller.py); its failure modes and speed are in scripts/lung_failure_modes.md. Nothing is
trained, so `training.patients` is 0. An existing version is never replaced: remove it first to rebuild.

Usage: python scripts/build_lungs_package.py [MODELS_DIR]   (default: the bundled models folder)
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from organseg.method.lungs import LungParameters
from organseg.method.model_package import bundled_models_dir, write_labeller_package

REPO = Path(__file__).resolve().parents[1]
CHECK_TABLE = "scripts/lung_labeller_check.tsv"
VERSION = 1


def checked_on(table: Path) -> dict:
    """Counts over the real CTs the labeller was run on (not training: nothing is learnt from them)."""
    rows = list(csv.DictReader(table.open(), delimiter="\t"))
    found = [r for r in rows if float(r["right_ml"]) + float(r["left_ml"]) > 0]
    both = [r for r in found if float(r["right_ml"]) > 0 and float(r["left_ml"]) > 0]
    lateral = [r for r in both if float(r["right_x_mm"]) < float(r["left_x_mm"])]
    openkbp = [r for r in rows if r["case"].startswith("openkbp/")]
    seconds = sorted(float(r["seconds"]) for r in rows)
    return {
        "cts": len(rows),
        "data": {"openkbp_hn": f"{len(openkbp)} head-and-neck planning CTs (train and validation), ~4 mm voxels",
                 "totalseg_example": "example_ct.nii.gz (abdomen with the lung bases, 3 mm) and the 20-slice "
                                     "DICOM series (upper abdomen, no lung per TotalSegmentator)"},
        "with_lungs": len(found), "both_lungs": len(both),
        "right_lung_on_patient_right_lps": f"{len(lateral)} of {len(both)}",
        "median_seconds": round(seconds[len(seconds) // 2], 2),
        "seconds_measured_on": "a shared 2-core CPU busy with two trainings and other tests (load about 19)",
        "table": CHECK_TABLE,
    }


def card(table: Path) -> dict:
    return {
        "training": {
            "patients": 0,
            "method": "classical labeller, no training: thresholds chosen by measurement on the CTs of checked_on",
            "checked_on": checked_on(table),
        },
        "metrics": {
            "val_dice": None,
            "reference": "no lung masks exist in ../shared/data (the TotalSegmentator labels of the DICOM series hold "
                         "no lung lobe); the labeller agrees with them on the negative: 0 mL of lung in that series",
            "failure_modes": "scripts/lung_failure_modes.md",
        },
        "why_labeller": (
            "Aerated lung is air in tissue, about 800 HU from its surroundings: a threshold inside the body contour "
            "finds it exactly, on any field of view, in about a second per 128^3 CT. A network trained on the "
            "labeller's masks could at best imitate them, and the method's input window (HU -70 to 170) maps lung, "
            "airway and bowel gas alike to 0, so it would have to tell them apart by shape alone. Measured failure "
            "modes are the labeller's own and are listed in limits."),
        "limits": [
            "Defines lung as aerated lung: dense consolidation, effusion and tumour touching the chest wall are not "
            "lung (enclosed lesions are filled in); see scripts/lung_failure_modes.md",
            "Lungs that read as pure air (severe emphysema, bullae) count as gas unless the other lung is normal",
            "Lung pieces under 10 mL alone in a CT (a sliver of apex or base) are not reported",
            "Trachea and main bronchi are removed; lobar bronchi inside the lung are lung",
            "Right and left are split at the junction line when the lungs touch; one label 'lungs' is returned",
        ],
    }


def main() -> None:
    models = Path(sys.argv[1]) if len(sys.argv) > 1 else bundled_models_dir()
    package = write_labeller_package(models, "lungs", "lung-labeller", LungParameters().to_dict(),
                                     card(REPO / CHECK_TABLE), VERSION)
    print(f"wrote {package.path.name}: {package.meta['training']['checked_on']}")


if __name__ == "__main__":
    main()
