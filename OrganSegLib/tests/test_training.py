"""Training, resume and fine-tuning on the real DICOM fixture (a few steps), the split and augmentation."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from organseg.cli import main
from organseg.errors import InputError
from organseg.method.model_package import ModelPackage
from organseg.method.network import ResUNet2D
from organseg.training.augment import Augmentation
from organseg.training.cases import CaseSlices, CaseSpec, decode
from organseg.training.config import FitConfig
from organseg.training.dataset import read_dataset
from organseg.training.loop import FitState, SliceSet, Trainer
from organseg.training.split import split_cases

FAST = ["--batch-size", "2", "--no-augment", "--threads", "2", "--quiet", "--patch", "96x128"]


@pytest.fixture(scope="module")
def dataset(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATASET.csv: the DICOM series with its TotalSegmentator label map (mapped through the catalogue)."""
    csv = tmp_path_factory.mktemp("data") / "dataset.csv"
    csv.write_text("image,mask,labels,source\n"
                   f"{data_dir / 'example_ct_dicom'},{data_dir / 'example_seg_dicom.nii.gz'},"
                   f"{data_dir / 'labels_totalsegmentator_v2.json'},totalsegmentator\n")
    return csv


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with spleen-v1 trained for 6 steps by `organseg train`."""
    models = tmp_path_factory.mktemp("trained")
    assert main(["train", "--organ", "spleen", "--data", str(dataset), "--out", str(models), "--steps", "6",
                 "--val-every", "3", *FAST]) == 0
    return models


def test_train_writes_a_valid_package_with_data_summary(trained: Path):
    package = ModelPackage.load(trained / "spleen-v1")
    training, metrics = package.meta["training"], package.meta["metrics"]
    (_, first), (_, last) = training["loss_curve"]
    assert last < first, "loss did not fall over 6 steps"
    assert training["steps"] == 6 and training["data"]["cases"] == 1
    assert training["data"]["slices"] == {"train": 16, "validation": 4}
    split = training["split"]["sources"]["totalsegmentator"]
    assert split["kind"] == "within-patient slice block" and split["val_z"] == [16, 17, 18, 19]
    assert "within-patient" in training["summary"] and metrics["val_split"] == "within-patient slice-block split"
    assert [s for s, _ in training["val_history"]] == [0, 3, 6]
    assert metrics["val_dice"] == max(d for _, d in training["val_history"])
    assert json.loads((trained / ".train-spleen" / "split.json").read_text()) == training["split"]


def test_trained_package_segments_the_ct(trained: Path, data_dir: Path, dicom_ct, tmp_path: Path):
    out = tmp_path / "seg"
    assert main(["segment", str(data_dir / "example_ct_dicom"), "-o", str(out), "--models", str(trained),
                 "--organs", "spleen"]) == 0
    mask = sitk.ReadImage(str(out / "masks" / "spleen.nii.gz"))
    assert mask.GetSize() == dicom_ct.GetSize() and mask.GetOrigin() == dicom_ct.GetOrigin()


def test_rerun_needs_resume_and_resume_continues(trained: Path, dataset: Path, tmp_path: Path, capsys):
    """Continue the fixture's run (checkpoint at step 6) to step 7, into another models folder."""
    args = ["train", "--organ", "spleen", "--data", str(dataset), "--out", str(tmp_path), "--val-every", "3",
            "--work", str(trained / ".train-spleen"), *FAST]
    assert main(args + ["--steps", "7"]) == 4
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--steps", "7", "--resume"]) == 0
    first = ModelPackage.load(trained / "spleen-v1").meta["training"]
    training = ModelPackage.load(tmp_path / "spleen-v1").meta["training"]
    assert training["steps"] == 7 and [s for s, _ in training["val_history"]] == [0, 3, 6, 7]
    assert training["loss_curve"][:2] == first["loss_curve"]


def test_resumed_training_equals_uninterrupted_training(tmp_path: Path):
    """Checkpoints restore weights, Adam state, random streams and history exactly (tiny synthetic data)."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 240, (12, 32, 32), dtype=np.uint8)
    data = SliceSet(codes, codes > 120, decode)

    def run(steps: int, checkpoint: Path, resume: bool) -> FitState:
        torch.manual_seed(0)
        trainer = Trainer(ResUNet2D((4, 8)), FitConfig(max_steps=steps, batch_size=2, val_every=2), Augmentation(),
                          checkpoint, {"test": 1})
        if resume:
            trainer.resume()
        return trainer.fit(data, data, progress=False)

    run(4, tmp_path / "a.pt", False)
    resumed = run(8, tmp_path / "a.pt", True)
    straight = run(8, tmp_path / "b.pt", False)
    assert resumed.losses == straight.losses and resumed.val_history == straight.val_history
    assert resumed.step == 8


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_fine_tune_writes_v2_and_keeps_v1(trained: Path, dataset: Path):
    before = _hashes(trained / "spleen-v1")
    assert main(["fine-tune", "--organ", "spleen", "--model", str(trained / "spleen-v1"), "--data", str(dataset),
                 "--steps", "2", "--val-every", "2", "--work", str(trained / ".fine-tune"), *FAST]) == 0
    assert _hashes(trained / "spleen-v1") == before
    v2 = ModelPackage.load(trained / "spleen-v2")
    assert v2.meta["training"]["parent"]["version"] == 1
    assert v2.meta["training"]["parent"]["weights_sha256"] == before["weights.npz"]
    assert "parent_val_dice_on_this_data" in v2.meta["metrics"]


def test_fine_tune_refuses_another_organ(trained: Path, dataset: Path, capsys):
    assert main(["fine-tune", "--organ", "liver", "--model", str(trained / "spleen-v1"), "--data", str(dataset),
                 *FAST]) == 3
    assert "is a spleen model, not liver" in capsys.readouterr().err


def _case(name: str, source: str, n: int = 10) -> CaseSlices:
    spec = CaseSpec(name, Path(name), Path(name), source, None, None)
    return CaseSlices(spec, np.zeros((n, 4, 4), np.uint8), np.zeros((n, 4, 4), bool), np.arange(5, 5 + n))


def test_split_per_source_is_seeded_and_blocks_single_cases():
    cases = [_case(f"a{i}", "A") for i in range(10)] + [_case(f"b{i}", "B") for i in range(3)] + [_case("c", "C")]
    split = split_cases(cases, seed=3)
    desc = split.description["sources"]
    assert len(desc["A"]["val_cases"]) == 2 and len(desc["A"]["train_cases"]) == 8
    assert len(desc["B"]["val_cases"]) == 1
    assert not set(split.train) & (set(split.val) - {"c"})
    assert desc["C"]["val_z"] == [13, 14] and desc["C"]["kind"] == "within-patient slice block"
    assert split_cases(cases, seed=3).description == split.description
    assert split_cases(cases, seed=4).description["sources"]["A"] != desc["A"]


def test_augmentation_keeps_left_and_right_and_the_intensity_range():
    x = torch.zeros(8, 1, 224, 304)
    x[..., 80:140, 20:100] = 0.9  # a bright block on the image's left (the patient's right)
    y = (x > 0).float()
    ax, ay = Augmentation()(x, y, np.random.default_rng(0))
    assert float(ax.min()) >= 0.0 and float(ax.max()) <= 1.0
    assert set(torch.unique(ay).tolist()) <= {0.0, 1.0}
    assert bool((ay[..., :, :152].sum(dim=(1, 2, 3)) > 0.9 * ay.sum(dim=(1, 2, 3))).all())


def test_dataset_csv_errors(tmp_path: Path):
    csv = tmp_path / "d.csv"
    csv.write_text("image,mask\nct.nii.gz,m.nii.gz\n")
    with pytest.raises(InputError, match="missing column"):
        read_dataset(csv)
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    (tmp_path / "m.nii.gz").write_bytes(b"")
    csv.write_text("image,mask,label,source\nct.nii.gz,m.nii.gz,five,db\n")
    with pytest.raises(InputError, match="label ids"):
        read_dataset(csv)
    csv.write_text("image,mask,source\nct.nii.gz,missing.nii.gz,db\n")
    with pytest.raises(InputError, match="does not exist"):
        read_dataset(csv)
