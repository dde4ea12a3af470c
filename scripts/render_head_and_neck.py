"""Render the seven bundled head-and-neck models on an OpenKBP patient none of them trained on, beside the
clinicians' manual contours: Resources/Screenshots/head_and_neck_overlay.png.

Top row OrganSeg, bottom row the manual contours, in the catalogue's colours: two axial slices (through the
parotids and through the larynx) shown as radiologists read them (the patient's right on the viewer's left, marked
R and L) and a coronal slice through the parotids. The title gives each organ's 3D Dice. The side check: the mask
named parotid_left must lie on the side marked L.

Usage: python scripts/render_head_and_neck.py [DATA_DIR] [PNG] [CASE]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from organseg.catalogue import organ  # noqa: E402
from organseg.ct.orientation import Reorientation  # noqa: E402
from organseg.ct.read import read_ct  # noqa: E402
from organseg.masks import dice  # noqa: E402
from organseg.method.model_package import bundled_models_dir  # noqa: E402
from organseg.segmenter import Segmenter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: OpenKBP structure -> catalogue organ, in drawing order (large first)
ORGANS = {"Mandible": "mandible", "LeftParotid": "parotid_left", "RightParotid": "parotid_right",
          "Brainstem": "brainstem", "Larynx": "larynx", "Esophagus": "esophagus", "SpinalCord": "spinal_cord"}


def overlay(ax, hu: np.ndarray, masks: dict[str, np.ndarray], aspect: float, sides: bool) -> None:
    """HU in a soft-tissue window, each mask filled in its catalogue colour."""
    ax.imshow(np.clip(hu, -200, 300), cmap="gray", aspect=aspect)
    for key, mask in masks.items():
        if mask.any():
            rgba = np.zeros((*mask.shape, 4))
            rgba[mask] = (*organ(key).colour_float, 0.55)
            ax.imshow(rgba, aspect=aspect)
    if sides:  # canonical columns run from the patient's right to left: radiological display
        for x, text in ((0.03, "R"), (0.93, "L")):
            ax.text(x, 0.93, text, color="yellow", fontsize=11, transform=ax.transAxes, fontweight="bold")
    ax.set_axis_off()


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "Resources" / "Screenshots" / "head_and_neck_overlay.png"
    case = sys.argv[3] if len(sys.argv) > 3 else "pt_222"
    folder = data / "openkbp_hn" / "validation" / case
    image = read_ct(folder / "ct.nii.gz")
    orient = Reorientation.of(image)
    result = Segmenter(models=bundled_models_dir(), device="cpu").segment(image, list(ORGANS.values()), source=str(folder))
    ids = {name: int(i) for i, name in json.loads((folder.parent.parent / "labels.json").read_text()).items()}
    labels = orient.to_canonical(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz"))))
    found = {key: orient.to_canonical(sitk.GetArrayFromImage(result.mask_image(key))) > 0 for key in ORGANS.values()}
    manual = {key: labels == ids[name] for name, key in ORGANS.items()}
    hu = orient.to_canonical(sitk.GetArrayFromImage(image))
    spacing = np.array(image.GetSpacing())[::-1][list(orient.permutation)]  # canonical (S, P, L) spacing

    parotids = manual["parotid_left"] | manual["parotid_right"]
    z_parotid = int(np.median(np.nonzero(parotids)[0]))
    z_larynx = int(np.median(np.nonzero(manual["larynx"])[0])) if manual["larynx"].any() else z_parotid - 15
    y_coronal = int(np.median(np.nonzero(parotids)[1]))
    views = (("axial, parotids", lambda a: a[z_parotid], float(spacing[1] / spacing[2]), True),
             ("axial, larynx", lambda a: a[z_larynx], float(spacing[1] / spacing[2]), True),
             ("coronal, parotids", lambda a: a[::-1, y_coronal], float(spacing[0] / spacing[2]), True))
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4))
    for row, (name, masks) in enumerate((("OrganSeg", found), ("manual contours", manual))):
        for col, (view, cut, aspect, sides) in enumerate(views):
            overlay(axes[row, col], cut(hu), {k: cut(m) for k, m in masks.items()}, aspect, sides)
            axes[row, col].set_title(f"{name}: {view}", fontsize=9)
    scores = ", ".join(f"{key} {dice(found[key], manual[key]):.2f}" for key in ORGANS.values() if manual[key].any())
    fig.suptitle(f"OpenKBP {case} (held out from every model): Dice {scores}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=organ(k).colour_float) for k in ORGANS.values()]
    fig.legend(handles, list(ORGANS.values()), loc="lower center", ncol=7, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(out, dpi=80)
    print(f"wrote {out}; {scores}")


if __name__ == "__main__":
    main()
