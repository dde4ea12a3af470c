"""Render the bundled spinal cord model's masks on real CTs it never trained on: Resources/Screenshots/
spinal_cord_overlay.png.

Sagittal slices through the found cord: the TotalSegmentator example CT (abdomen and lower thorax at 3 mm, a body
region and a patient outside its training) and two held-out OpenKBP patients with their manual contour outlined
(pt_208, typical; pt_221, the worst of the patients whose reference is a cord), with the 3D Dice.

Usage: python scripts/render_spinal_cord.py [DATA_DIR] [PNG]
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from organseg.ct.orientation import Reorientation  # noqa: E402
from organseg.ct.read import read_ct  # noqa: E402
from organseg.masks import dice  # noqa: E402
from organseg.method.model_package import ModelStore, bundled_models_dir  # noqa: E402
from organseg.segmenter import Segmenter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CASES = (("TotalSegmentator example CT", "totalseg_example/example_ct.nii.gz", None),
         ("OpenKBP pt_208, held out", "openkbp_hn/validation/pt_208/ct.nii.gz", "labels.nii.gz"),
         ("OpenKBP pt_221, held out", "openkbp_hn/validation/pt_221/ct.nii.gz", "labels.nii.gz"))
CORD_LABEL = 1  #: OpenKBP's SpinalCord label


def sagittal(path: Path, reference: str | None, segmenter: Segmenter) -> tuple:
    """(HU, found, reference or None, aspect) on the sagittal plane through the found cord's median column,
    and the 3D Dice (None without a reference)."""
    image = read_ct(path)
    orient = Reorientation.of(image)
    found = segmenter.segment(image, ["spinal_cord"], source=str(path)).mask_image("spinal_cord")
    ct, mask = (orient.to_canonical(sitk.GetArrayFromImage(i)) for i in (image, found))
    ref = None if reference is None else \
        orient.to_canonical(sitk.GetArrayFromImage(sitk.ReadImage(str(path.parent / reference)))) == CORD_LABEL
    column = int(np.median(np.nonzero(mask)[2])) if mask.any() else ct.shape[2] // 2
    spacing = orient.spacing(image)
    aspect = float(spacing[0] / spacing[1])
    score = None if ref is None else dice(mask > 0, ref)
    return ct[:, :, column], mask[:, :, column] > 0, None if ref is None else ref[:, :, column], aspect, score


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "Resources" / "Screenshots" / "spinal_cord_overlay.png"
    package = ModelStore([bundled_models_dir()]).get("spinal_cord")
    segmenter = Segmenter(models=bundled_models_dir(), device="cpu")
    fig, axes = plt.subplots(1, len(CASES), figsize=(4.2 * len(CASES), 5.2))
    for ax, (title, relative, reference) in zip(axes, CASES):
        hu, found, ref, aspect, score = sagittal(data / relative, reference, segmenter)
        ax.imshow(np.clip(hu, -200, 400), cmap="gray", origin="lower", aspect=aspect)
        ax.imshow(np.ma.masked_where(~found, found), cmap="autumn", alpha=0.6, origin="lower", aspect=aspect)
        if ref is not None and ref.any():
            ax.contour(ref, levels=[0.5], colors="cyan", linewidths=1.0, origin="lower")
        ax.set_title(title if score is None else f"{title}, Dice {score:.2f}", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{package.path.name} (red; manual contour cyan), sagittal, head at the top", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
