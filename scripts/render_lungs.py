"""Render the lung labeller's masks over real CTs: Resources/Screenshots/lungs_overlay.png.

Runs the bundled `lungs` package's labeller (its own parameters) on the TotalSegmentator example CT (lung bases
above the abdomen: coronal and axial), the 20-slice DICOM series (upper abdomen with gas, where TotalSegmentator
finds no lung) and two OpenKBP head-and-neck CTs (pt_82: both apices; pt_53: a right lung stored as -1024).

Usage: python scripts/render_lungs.py [DATA_DIR] [PNG]
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from organseg.catalogue import organ  # noqa: E402
from organseg.ct.orientation import Reorientation  # noqa: E402
from organseg.ct.read import read_ct  # noqa: E402
from organseg.method.lungs import LEFT, RIGHT, LungParameters, label_lungs  # noqa: E402
from organseg.method.model_package import ModelStore, bundled_models_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CASES = (("TotalSegmentator example_ct", "totalseg_example/example_ct.nii.gz", ("coronal", "axial")),
         ("DICOM series (no lung per TotalSegmentator)", "totalseg_example/example_ct_dicom", ("axial",)),
         ("OpenKBP pt_82", "openkbp_hn/train/pt_82/ct.nii.gz", ("coronal", "axial")),
         ("OpenKBP pt_53 (right lung stored as -1024)", "openkbp_hn/train/pt_53/ct.nii.gz", ("coronal", "axial")))


def views(path: Path, params: LungParameters,
          planes: tuple[str, ...]) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(plane, HU image, labels, aspect) through the middle of the lungs (or of the CT when none is found)."""
    image = read_ct(path)
    orient = Reorientation.of(image)
    ct = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayFromImage(image)))  # a copy: image is dropped
    spacing = orient.spacing(image)
    labels = label_lungs(ct, spacing, params)
    where = np.argwhere(labels > 0)
    z, y, _ = (np.median(where, axis=0).astype(int) if len(where) else np.array(ct.shape) // 2)
    ml = float(np.prod(spacing)) / 1000
    note = f"R {np.count_nonzero(labels == RIGHT) * ml:.0f} mL, L {np.count_nonzero(labels == LEFT) * ml:.0f} mL"
    out = []
    for plane in planes:
        if plane == "axial":
            out.append((f"axial ({note})", ct[z], labels[z], spacing[1] / spacing[2]))
        else:
            out.append((f"coronal ({note})", ct[::-1, y], labels[::-1, y], spacing[0] / spacing[2]))
    return out


def render(data: Path, png: Path) -> None:
    params = LungParameters.from_dict(ModelStore([bundled_models_dir()]).get("lungs").labeller_parameters())
    cases = [(name, views(data / rel, params, planes)) for name, rel, planes in CASES if (data / rel).exists()]
    if not cases:
        sys.exit(f"{data}: none of the CTs to render is there; give the shared data folder")
    base = np.array(organ("lungs").colour_float)
    cmap = ListedColormap([(0, 0, 0, 0), (*base, 1.0), (*(base * 0.55), 1.0)])
    fig, axes = plt.subplots(2, len(cases), figsize=(4.2 * len(cases), 8.6), squeeze=False)
    for column, (name, panels) in enumerate(cases):
        for ax in axes[:, column]:
            ax.axis("off")
        for title, hu, labels, aspect in panels:
            ax = axes[0 if title.startswith("coronal") else 1, column]
            ax.imshow(np.clip(hu, -1000, 400), cmap="gray", aspect=aspect)
            ax.imshow(np.ma.masked_equal(labels, 0), cmap=cmap, vmin=0, vmax=2, alpha=0.7, aspect=aspect,
                      interpolation="nearest")
            ax.set_title(f"{name}\n{title}", fontsize=9)
    fig.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=base), plt.Rectangle((0, 0), 1, 1, color=base * 0.55)],
               labels=["right lung", "left lung"], loc="lower center", ncol=2)
    fig.suptitle("OrganSeg lung labeller (bundled lungs-v1) on real CTs; patient's right on the image's left")
    fig.savefig(png, dpi=72, bbox_inches="tight")


if __name__ == "__main__":
    render(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data",
           Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "Resources" / "Screenshots" / "lungs_overlay.png")
