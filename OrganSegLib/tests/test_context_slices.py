"""2.5D input: a package that also reads the slices on each side is trained, recorded, fed and searched as
it was trained, on real CT."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from organseg.cli import main
from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.errors import ModelError
from organseg.method.model_package import ModelPackage, bundled_models_dir, write_package
from organseg.method.network import ResUNet2D
from organseg.method.preprocess import context_rows, prepare
from organseg.method.runtime import OrtRuntime, TorchRuntime
from organseg.segmenter import Segmenter
from organseg.training.cases import CaseSlices, CaseSpec, decode
from organseg.training.fit import training_slices, widened_input


def test_context_rows_repeat_the_end_slices():
    assert context_rows(np.array([0, 5, 9]), 10, 1).tolist() == [[0, 0, 1], [4, 5, 6], [8, 9, 9]]
    assert context_rows(np.array([3]), 10, 0).tolist() == [[3]]


def test_a_widened_network_computes_its_parent():
    torch.manual_seed(0)
    parent = ResUNet2D((4, 8)).eval()
    wide = widened_input(parent, 2).eval()
    assert wide.in_channels == 5
    x = torch.rand(2, 5, 32, 48)
    with torch.inference_mode():
        assert torch.allclose(wide(x), parent(x[:, 2:3]), atol=1e-5)


def _looking_below(parent: ModelPackage, folder: Path) -> ModelPackage:
    """The parent's network reading only the slice below each slice (a 2.5D package with context 1)."""
    weights = parent.state_dict_arrays()
    for name, weight in weights.items():
        if weight.ndim == 4 and weight.shape[1] == 1 and name.startswith("encoders.0."):
            weights[name] = np.concatenate([weight, np.zeros_like(weight), np.zeros_like(weight)], axis=1)
    return write_package(folder, parent.organ.key, weights, parent.channels, {}, {}, threshold=parent.threshold,
                         context=1)


def test_a_25d_package_is_fed_the_neighbours_and_coarse_to_fine_stays_exact(data_dir: Path, tmp_path: Path):
    parent = ModelPackage.load(bundled_models_dir() / "liver-v1")
    package = _looking_below(parent, tmp_path / "models")
    assert (package.context, package.in_channels) == (1, 3)
    assert package.meta["input"]["context_slices"] == 1
    ct = read_ct(data_dir / "example_ct.nii.gz")
    prepared = prepare(Reorientation.of(ct, "example").to_canonical(sitk.GetArrayViewFromImage(ct)))
    rows = np.arange(40, 60)
    below = OrtRuntime(parent).predict(prepared.batch(rows - 1))
    assert np.abs(OrtRuntime(package).predict(prepared.batch(rows, 1)) - below).max() < 1e-4
    assert np.abs(TorchRuntime(package, "cpu").predict(prepared.batch(rows, 1)) - below).max() < 1e-4

    masks = {}
    for strategy in ("full", "coarse-to-fine"):
        result = Segmenter(models=tmp_path / "models", device="cpu", strategy=strategy).segment(ct, ["liver"])
        masks[strategy] = sitk.GetArrayFromImage(result.mask_image("liver")) > 0
    assert masks["full"].sum() > 10000  # the organ, one slice up
    assert np.array_equal(masks["full"], masks["coarse-to-fine"])


def test_a_package_reading_too_many_slices_is_refused(tmp_path: Path):
    parent = ModelPackage.load(bundled_models_dir() / "liver-v1")
    package = write_package(tmp_path, "liver", parent.state_dict_arrays(), parent.channels, {}, {},
                            export_onnx=False)
    meta = package.path / "model.json"
    meta.write_text(meta.read_text().replace('"levels": 240', '"levels": 240, "context_slices": 9'))
    with pytest.raises(ModelError, match="context_slices 9 is not a whole number from 0 to 4"):
        ModelPackage.load(package.path)


def test_training_reads_each_slices_neighbours_within_its_case():
    def case(name: str, first: int, n: int, split: str) -> CaseSlices:
        spec = CaseSpec(name, Path(name), Path(name), "src", None, None, split)
        codes = np.broadcast_to(np.arange(first, first + n, dtype=np.uint8)[:, None, None], (n, 4, 6)).copy()
        targets = np.zeros((n, 4, 6), bool)
        targets[:, 1:3, 2:4] = True
        return CaseSlices(spec, codes, targets, np.arange(n))

    cases = [case("a", 10, 3, "train"), case("b", 20, 4, "train"), case("c", 30, 2, "validation")]
    _, train, val = training_slices(cases, 0, context=1)
    x, y = train.batch(np.arange(len(train)))
    codes = np.rint(x[:, :, 0, 0].numpy() * 239).astype(int).tolist()
    assert codes == [[10, 10, 11], [10, 11, 12], [11, 12, 12], [20, 20, 21], [20, 21, 22], [21, 22, 23],
                     [22, 23, 23]]
    assert y.shape == (7, 1, 4, 6)
    x, _ = val.patches(np.array([0, 1]), (2, 2), np.random.default_rng(0), 1.0)
    assert np.rint(x[:, :, 0, 0].numpy() * 239).astype(int).tolist() == [[30, 30, 31], [30, 31, 31]]
    assert decode(np.array([239], np.uint8))[0] == 1.0


def test_train_with_context_slices_on_real_ct_then_segment(openkbp_dir: Path, tmp_path: Path, capsys):
    lines = ["image,mask,label,source,case,split,labelled"]
    for case, split in (("pt_2", "train"), ("pt_4", "validation")):
        folder = openkbp_dir / "train" / case
        lines.append(f"{folder / 'ct.nii.gz'},{folder / 'labels.nii.gz'},1,openkbp,{case},{split},spinal_cord")
    data = tmp_path / "dataset.csv"
    data.write_text("\n".join(lines) + "\n")
    common = ["--data", str(data), "--steps", "2", "--val-every", "2", "--batch-size", "2", "--patch", "64x96",
              "--threads", "2", "--quiet"]
    assert main(["train", "--organ", "spinal_cord", "--out", str(tmp_path / "m"), "--context-slices", "1",
                 *common]) == 0
    package = ModelPackage.load(tmp_path / "m" / "spinal_cord-v1")
    assert (package.context, package.meta["training"]["config"]["context"]) == (1, 1)
    ct = read_ct(openkbp_dir / "validation" / "pt_201" / "ct.nii.gz")
    result = Segmenter(models=tmp_path / "m", device="cpu").segment(ct, ["spinal_cord"])
    assert result.mask_image("spinal_cord").GetSize() == ct.GetSize()

    assert main(["fine-tune", "--organ", "spinal_cord", "--model", str(package.path), "--context-slices", "2",
                 "--work", str(tmp_path / "w"), *common]) == 2
    assert "reads 1 slices on each side; continue it with that context, not 2" in capsys.readouterr().err
    assert main(["train", "--organ", "spinal_cord", "--out", str(tmp_path / "m"), "--context-slices", "7",
                 "--work", str(tmp_path / "w"), *common]) == 2
    assert "--context-slices must be from 0 to 4 (got 7)" in capsys.readouterr().err
