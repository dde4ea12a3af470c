"""Training data that cannot be right, from the real OpenKBP CTs: a CT given as its own mask, a CSV saved by
Excel with a byte-order mark, and `organseg dataset -o` into a folder that does not exist yet."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_fixtures import nnunet_folder
from organseg.catalogue import organ
from organseg.cli import main
from organseg.errors import InputError
from organseg.training.dataset import organ_mask, read_dataset


@pytest.fixture(scope="module")
def dataset_csv(openkbp_dir: Path, tmp_path_factory) -> Path:
    """`organseg dataset` of OpenKBP patients in the nnU-Net layout, written into folders it creates."""
    root = tmp_path_factory.mktemp("kbp")
    out = root / "ts" / "sub" / "dataset.csv"
    assert main(["dataset", str(nnunet_folder(root, openkbp_dir)), "-o", str(out), "--quiet"]) == 0
    return out


def test_dataset_creates_the_output_folder(dataset_csv: Path):
    assert dataset_csv.is_file() and dataset_csv.with_name("dataset.coverage.csv").is_file()
    assert len(read_dataset(dataset_csv)) == 4


def test_a_csv_saved_by_excel_with_a_byte_order_mark_is_read(dataset_csv: Path):
    excel = dataset_csv.with_name("excel.csv")  # beside it: the CSV's paths are relative to its folder
    text = dataset_csv.read_text()
    excel.write_text(text, encoding="utf-8-sig")  # "CSV UTF-8 (comma delimited)"
    assert excel.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_dataset(excel) == read_dataset(dataset_csv)
    latin1 = dataset_csv.with_name("latin1.csv")
    latin1.write_bytes(text.replace("source", "s\xf6urce").encode("latin-1"))
    with pytest.raises(InputError, match="latin1.csv: not a readable UTF-8 CSV"):
        read_dataset(latin1)


def test_a_mask_without_a_label_must_be_binary(dataset_csv: Path, tmp_path: Path, capsys):
    spec = read_dataset(dataset_csv)[0]
    ct_as_mask = tmp_path / "data.csv"
    ct_as_mask.write_text(f"image,mask,source\n{spec.image},{spec.image},kbp\n")
    capsys.readouterr()
    code = main(["train", "--organ", "esophagus", "--data", str(ct_as_mask), "--out", str(tmp_path / "models"),
                 "--steps", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{spec.image}: is given as a mask but holds values from -1024 to" in err
    assert "a mask without a label must be binary" in err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").glob("esophagus-v*"))

    labels = sitk.ReadImage(str(spec.mask))
    binary = sitk.Cast(labels == 2, sitk.sitkUInt8) * 255  # a binary mask of another value than 1
    sitk.WriteImage(binary, str(tmp_path / "esophagus.nii.gz"))
    mask = sitk.GetArrayFromImage(organ_mask(replace(spec, mask=tmp_path / "esophagus.nii.gz", label_ids=None,
                                                     labels_json=None), organ("esophagus")))
    assert np.array_equal(mask, sitk.GetArrayFromImage(labels) == 2) and mask.sum() > 10
