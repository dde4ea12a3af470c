"""`organseg train --organs all --workers 2`: organs train in parallel on a real local Dask cluster, one organ per
task, on an imported nnU-Net-layout set of real head-and-neck CT; a rerun skips the organs already done."""
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the cluster extra is not installed: pip install 'organseg[cluster]'")

from dataset_fixtures import nnunet_folder  # noqa: E402
from organseg.cli import main  # noqa: E402
from organseg.method.model_package import ModelStore  # noqa: E402


def test_organs_train_in_parallel_and_a_rerun_skips_them(data_dir: Path, tmp_path: Path, capsys):
    kbp = data_dir.parent / "openkbp_hn"
    if not (kbp / "labels.json").is_file():
        pytest.skip(f"OpenKBP head-and-neck CTs not found at {kbp}")
    csv = tmp_path / "dataset.csv"
    assert main(["dataset", str(nnunet_folder(tmp_path, kbp)), "-o", str(csv), "--quiet"]) == 0
    models = tmp_path / "models"
    args = ["train", "--organs", "all", "--data", str(csv), "--out", str(models), "--steps", "2", "--val-every",
            "2", "--batch-size", "2", "--margin", "0", "--threads", "1", "--quiet", "--workers", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert sorted(ModelStore([models]).available()) == ["esophagus", "spinal_cord"]
    assert "spinal_cord: trained" in err and "esophagus: trained" in err and "local worker process" in err
    assert main(args) == 0
    assert "spinal_cord: skipped, done" in capsys.readouterr().err
