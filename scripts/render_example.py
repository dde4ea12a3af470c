"""Render the README's example figure: organseg's masks over the bundled example CT (axial and sagittal).

Usage: organseg segment Testing/Data/example_ct.nii.gz -o example_out --organs liver,spleen,stomach
       python scripts/render_example.py example_out Resources/Screenshots/example_overlay.png
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

from organseg.catalogue import ORGANS  # noqa: E402
from organseg.ct.orientation import Reorientation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def render(result_dir: Path, png: Path, ct_path: Path = REPO / "Testing/Data/example_ct.nii.gz") -> None:
    """Three axial slices through the segmented range and a mid-sagittal slice, in catalogue colours."""
    ct = sitk.ReadImage(str(ct_path))
    labels = sitk.ReadImage(str(result_dir / "segmentation.nii.gz"))
    orient = Reorientation.of(ct)
    hu = orient.to_canonical(sitk.GetArrayFromImage(ct))
    lab = orient.to_canonical(sitk.GetArrayFromImage(labels))
    colours = np.zeros((len(ORGANS) + 1, 4))
    for o in ORGANS:
        colours[o.label] = (*o.colour_float, 1.0)
    cmap = ListedColormap(colours)
    zs = np.flatnonzero(lab.reshape(lab.shape[0], -1).any(axis=1))
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    spacing = orient.spacing(ct)
    views = [(f"axial slice {z}", hu[z], lab[z], spacing[1] / spacing[2])
             for z in np.linspace(zs.min(), zs.max(), 3).astype(int)]
    x = hu.shape[2] // 2 - 10
    views.append(("sagittal (superior up)", hu[::-1, :, x], lab[::-1, :, x], spacing[0] / spacing[1]))
    for ax, (title, image, mask, aspect) in zip(axes, views):
        ax.imshow(np.clip(image, -200, 300), cmap="gray", aspect=aspect)
        ax.imshow(np.ma.masked_equal(mask, 0), cmap=cmap, vmin=0, vmax=len(ORGANS), alpha=0.55,
                  aspect=aspect, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    present = [o for o in ORGANS if (lab == o.label).any()]
    fig.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=o.colour_float) for o in present],
               labels=[o.display_name for o in present], loc="lower center", ncol=len(present))
    fig.suptitle("OrganSeg bundled demonstration models on the example CT (axial: patient's right on the left)")
    fig.savefig(png, dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    render(Path(sys.argv[1]), Path(sys.argv[2]))
