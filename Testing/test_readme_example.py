"""The README's first command end to end: the bundled example CT through the bundled models.

Needs nothing outside the repository, so it never skips: it is what a fresh clone shows first. The README
says liver and spleen land where they belong on this CT (another patient than the models were trained on).
"""
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.cli import main
from organseg.method.model_package import bundled_models_dir

EXAMPLE = Path(__file__).resolve().parent / "Data" / "example_ct.nii.gz"


def _centre_lps(mask: sitk.Image) -> np.ndarray:
    """The mask's centre of mass in patient LPS millimetres (+x is the patient's left)."""
    zyx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0).mean(axis=0)
    return np.array(mask.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in zyx[::-1])))


def test_readme_example_puts_the_liver_on_the_right_and_the_spleen_on_the_left(tmp_path, capsys):
    out = tmp_path / "example_out"
    assert main(["segment", str(EXAMPLE), "-o", str(out), "--organs", "liver,spleen",
                 "--models", str(bundled_models_dir())]) == 0
    assert "liver-v1" in capsys.readouterr().out
    ct = sitk.ReadImage(str(EXAMPLE))
    liver, spleen = (sitk.ReadImage(str(out / "masks" / f"{key}.nii.gz")) for key in ("liver", "spleen"))
    for mask in (liver, spleen):
        assert mask.GetSize() == ct.GetSize() and mask.GetOrigin() == ct.GetOrigin()
        assert mask.GetDirection() == ct.GetDirection() and mask.GetSpacing() == ct.GetSpacing()
    voxels = {key: int((sitk.GetArrayViewFromImage(m) > 0).sum()) for key, m in (("liver", liver), ("spleen", spleen))}
    assert voxels["liver"] > voxels["spleen"] > 0
    assert _centre_lps(liver)[0] + 50 < _centre_lps(spleen)[0]  # the liver lies well to the patient's right
