"""The anchor window bounds each organ's search before it runs, and the masks stay those of full inference.

Every strategy keeps only the window the anchors allow before choosing components, so coarse-to-fine may skip
the slices outside it. Checked on the real example CT with stand-in networks that answer by slice (a larger false
organ above the lung apex, where a box applied after cleaning would have emptied the organ).
"""
import numpy as np
import pytest
import SimpleITK as sitk

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.method import step as step_module
from organseg.method.model_package import write_package
from organseg.method.preprocess import INPUT_HEIGHT, INPUT_WIDTH, prepare
from organseg.segmenter import Segmenter


class SlabRuntime:
    """Answers each prepared slice of one CT with a centred square of the side its canonical slice index is given
    (nothing elsewhere), and records the slices it ran."""

    name, context = "slabs", 0

    def __init__(self, rows: dict[bytes, int], sides: dict[int, int]) -> None:
        self.rows, self.sides, self.ran = rows, sides, []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = np.zeros((len(batch), INPUT_HEIGHT, INPUT_WIDTH), dtype=np.float32)
        for i, x in enumerate(batch):
            z = self.rows[x[0].tobytes()]
            self.ran.append(z)
            half = self.sides.get(z, 0) // 2
            out[i, INPUT_HEIGHT // 2 - half:INPUT_HEIGHT // 2 + half, INPUT_WIDTH // 2 - half:INPUT_WIDTH // 2 + half] = 1
        return out


@pytest.fixture(scope="module")
def example(data_dir):
    """The real example CT (112 slices of 3 mm) and, per prepared input, its canonical slice index."""
    image = read_ct(data_dir / "example_ct.nii.gz")
    prepared = prepare(Reorientation.of(image).to_canonical(sitk.GetArrayFromImage(image)))
    rows = {x.tobytes(): int(z) for x, z in zip(prepared.inputs, prepared.record.slices_with_body)}
    assert len(rows) == len(prepared.inputs) == image.GetSize()[2], "every slice must be told apart by its input"
    return image, rows


def test_a_larger_finding_outside_the_window_neither_wins_nor_is_searched(example, tmp_path, monkeypatch):
    image, rows = example
    for key in ("lungs", "liver"):  # the stand-in runtimes below replace the weights
        write_package(tmp_path, key, {"w": np.zeros(1, np.float32)}, (1,), {}, {}, export_onnx=False)
    # lungs on slices 60-79; the liver rule allows up to 20 mm (7 slices of 3 mm) above their top: slice 86.
    sides = {"lungs": {z: 40 for z in range(60, 80)},
             "liver": {**{z: 30 for z in range(20, 40)}, **{z: 90 for z in range(95, 112)}}}
    masks, ran = {}, {}
    for strategy in ("full", "coarse-to-fine"):
        runtimes = {}
        monkeypatch.setattr(step_module, "make_runtime", lambda package, *_: runtimes.setdefault(
            package.organ.key, SlabRuntime(rows, sides[package.organ.key])))
        result = Segmenter(models=tmp_path, device="cpu", strategy=strategy).segment(image, ["liver"])
        masks[strategy], ran[strategy] = result.masks["liver"].full(), runtimes["liver"].ran
    canonical = Reorientation.of(image).to_canonical(masks["full"])
    assert np.array_equal(np.flatnonzero(canonical.any(axis=(1, 2))), np.arange(20, 40))  # the true organ
    assert np.array_equal(masks["coarse-to-fine"], masks["full"])
    assert len(ran["full"]) == 112 and max(ran["coarse-to-fine"]) == 86


def test_bundled_liver_is_searched_only_below_the_lung_apex_of_a_head_and_neck_ct(openkbp_dir, monkeypatch):
    """The bundled liver network and lungs labeller on a real head-and-neck CT: the liver's search stays within
    20 mm above the lung apex, and its mask equals full inference's."""
    from organseg.method.runtime import OrtRuntime

    image = read_ct(openkbp_dir / "validation" / "pt_201" / "ct.nii.gz")
    ran = []
    predict = OrtRuntime.predict
    monkeypatch.setattr(OrtRuntime, "predict", lambda self, batch: ran.append(len(batch)) or predict(self, batch))
    fast = Segmenter(device="cpu").segment(image, ["liver"])
    fast_slices = sum(ran)
    ran.clear()
    full = Segmenter(device="cpu", strategy="full").segment(image, ["liver"])
    lungs = np.flatnonzero(Reorientation.of(image).to_canonical(fast.masks["lungs"].full()).any(axis=(1, 2)))
    assert lungs.size, "the lungs labeller must find the lung apices of this CT"
    window_top = lungs[-1] + round(20 / image.GetSpacing()[2])
    assert 0 < fast_slices <= window_top + 1 < sum(ran) / 2  # full ran every slice with body
    assert np.array_equal(fast.masks["liver"].full(), full.masks["liver"].full())
