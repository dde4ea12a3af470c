"""Model packages travel between sites: each is verified whole before anything in it is loaded.

Built from the bundled liver package and the real example CT (three slices through the liver): an ONNX model whose
weights sit in a separate file, renamed packages, file names that leave the folder, links, numbers that cannot be
right, and weights or checkpoints that are corrupt or hostile (never executed: one line, exit 3).
"""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.errors import ModelError
from organseg.method.model_package import ModelPackage, ModelStore, bundled_models_dir, sha256, write_package
from organseg.method.runtime import make_runtime


def _copy(name: str, models: Path, as_name: str | None = None) -> Path:
    target = models / (as_name or name)
    shutil.copytree(bundled_models_dir() / name, target)
    return target


def _relist(package: Path, change=lambda meta: None) -> None:
    """Rewrite model.json as a careless or hostile packager would: its own edits, checksums of what is there."""
    meta = json.loads((package / "model.json").read_text())
    change(meta)
    for name in meta["files"]:
        if (package / name).is_file():
            meta["files"][name] = {"sha256": sha256(package / name)}
    (package / "model.json").write_text(json.dumps(meta))


def _external_weights(package: Path) -> None:
    """Move the ONNX model's weights into model.onnx.data beside it, as onnx writes large models."""
    model = onnx.load(str(package / "model.onnx"))
    onnx.save_model(model, str(package / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)


@pytest.fixture(scope="module")
def ct(data_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))[:, :, 95:98], str(path))
    return path


def _segment(ct: Path, models: Path, out: Path, organ: str, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["segment", str(ct), "-o", str(out), "--organs", organ, "--models", str(models),
                 "--anchor-rules", f"{organ}=off", "--no-postprocess", *extra])
    return code, capsys.readouterr().err


def _one_error_line(err: str, *parts: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("organseg segment: error:")]
    assert len(lines) == 1 and all(p in lines[0] for p in parts), err
    assert "Traceback" not in err


def test_bundled_packages_and_written_ones_stay_valid(tmp_path):
    for path in sorted(bundled_models_dir().iterdir()):
        assert ModelPackage.load(path).path == path
    liver = ModelStore([bundled_models_dir()]).get("liver")
    written = write_package(tmp_path, "liver", liver.state_dict_arrays(), liver.channels, {}, {}, threshold=0.35)
    assert set(os.listdir(written.path)) == {"model.json", "weights.npz", "model.onnx"}
    assert ModelPackage.load(written.path).threshold == 0.35


def test_external_onnx_weights_are_checked_like_every_file(ct, tmp_path, capsys):
    pristine = _copy("liver-v1", tmp_path)
    _external_weights(pristine)
    weights = (pristine / "model.onnx.data").read_bytes()
    tampered = bytes(len(weights) // 2) + weights[len(weights) // 2:]  # half the weights zeroed
    models = tmp_path / "models"
    package = models / "liver-v1"
    shutil.copytree(pristine, package)
    _relist(package)  # model.json checksums model.onnx, but does not list model.onnx.data
    (package / "model.onnx.data").write_bytes(tampered)
    code, err = _segment(ct, models, tmp_path / "out", "liver", capsys)
    assert code == 3 and not (tmp_path / "out").exists()
    _one_error_line(err, "model.onnx.data", "does not list")

    shutil.copy(pristine / "model.onnx.data", package / "model.onnx.data")
    _relist(package, lambda meta: meta["files"].update({"model.onnx.data": {}}))  # listed and checksummed
    (package / "model.onnx.data").write_bytes(tampered)  # swapped after packaging
    code, err = _segment(ct, models, tmp_path / "out", "liver", capsys)
    assert code == 3
    _one_error_line(err, "model.onnx.data", "checksum does not match")

    shutil.copy(pristine / "model.onnx.data", package / "model.onnx.data")
    code, err = _segment(ct, models, tmp_path / "out", "liver", capsys)  # listed, checksummed, untouched: runs
    assert code == 0, err
    code, err = _segment(ct, bundled_models_dir(), tmp_path / "bundled", "liver", capsys)
    assert code == 0, err
    masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(d / "masks" / "liver.nii.gz"))) for d in
             (tmp_path / "out", tmp_path / "bundled")]
    assert masks[0].sum() > 1000 and np.array_equal(*masks)


def test_a_package_in_another_organs_folder_is_refused(ct, tmp_path, capsys):
    models = tmp_path / "models"
    _copy("liver-v1", models, "spleen-v9")
    code, err = _segment(ct, models, tmp_path / "out", "spleen", capsys)
    assert code == 3 and not (tmp_path / "out").exists()
    _one_error_line(err, "spleen-v9", "holds the liver model version 1", "expected 'liver-v1'")


@pytest.mark.parametrize("name", ["../weights.npz", "/etc/hostname", "sub/weights.npz", "..", "C:weights.npz"])
def test_file_names_that_leave_the_folder_are_refused(tmp_path, name):
    package = _copy("liver-v1", tmp_path)
    meta = json.loads((package / "model.json").read_text())
    meta["files"][name] = {"sha256": "0" * 64}
    (package / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="not a plain name in the package folder"):
        ModelPackage.load(package)


def test_links_and_unlisted_files_are_refused(tmp_path):
    package = _copy("liver-v1", tmp_path)
    (package / "weights.npz").rename(tmp_path / "elsewhere.npz")
    (package / "weights.npz").symlink_to(tmp_path / "elsewhere.npz")  # same bytes, checksum passes
    with pytest.raises(ModelError, match="weights.npz: a link inside a model package is refused"):
        ModelPackage.load(package)
    (package / "weights.npz").unlink()
    shutil.copy(tmp_path / "elsewhere.npz", package / "weights.npz")
    (package / "notes").mkdir()
    with pytest.raises(ModelError, match="notes: a folder model.json does not list"):
        ModelPackage.load(package)


@pytest.mark.parametrize("field, value, problem", [
    ("threshold", 0.0, "threshold 0.0 is not a probability"), ("threshold", 1.0, "threshold 1.0 is not"),
    ("threshold", math.nan, "threshold nan is not"), ("threshold", -2, "threshold -2 is not"),
    ("hu_window", [170.0, -70.0], "HU window [170.0, -70.0] is not two ordered numbers"),
    ("hu_window", [-70.0, math.inf], "HU window [-70.0, inf] is not"), ("hu_window", [0], "HU window [0] is not"),
    ("levels", 0, "levels 0 is not a positive"), ("channels", [16, 10 ** 9], "channels [16, 1000000000] are not")])
def test_numbers_that_cannot_be_right_are_refused(tmp_path, field, value, problem):
    package = _copy("liver-v1", tmp_path)
    meta = json.loads((package / "model.json").read_text())
    {"threshold": meta, "hu_window": meta["input"], "levels": meta["input"],
     "channels": meta["architecture"]}[field][field] = value
    (package / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        ModelPackage.load(package)


def test_corrupt_weights_with_matching_checksums_exit_3(ct, tmp_path, capsys):
    """A packager who checksums garbage: the ONNX model, the weights for torch, an array of Python objects."""
    from organseg.method.runtime import package_network

    models = tmp_path / "models"
    package = _copy("liver-v1", models)
    (package / "model.onnx").write_bytes((package / "model.onnx").read_bytes()[:5000])
    _relist(package)
    code, err = _segment(ct, models, tmp_path / "out", "liver", capsys)
    assert code == 3
    _one_error_line(err, "model.onnx", "not a usable ONNX model")

    arrays = dict(np.load(package / "weights.npz"))
    arrays.pop(sorted(arrays)[0])
    arrays["extra"] = np.zeros(3, np.float32)
    np.savez(package / "weights.npz", **arrays)
    _relist(package)
    with pytest.raises(ModelError, match="weights.npz: does not hold the weights of the network"):
        package_network(ModelPackage.load(package))

    np.savez(package / "weights.npz", payload=np.array([os.system], dtype=object))
    _relist(package)
    with pytest.raises(ModelError, match="weights.npz: not readable as the network's weights"):
        make_runtime(ModelPackage.load(package), "cpu", "torch")


class _Payload:
    """What a hostile checkpoint holds: code that runs when the file is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("content", ["hostile", "truncated", "not a checkpoint"])
def test_hostile_or_corrupt_checkpoints_are_refused_and_never_run(tmp_path, content):
    import torch

    from organseg.method.network import ResUNet2D
    from organseg.training.config import FitConfig
    from organseg.training.loop import Trainer

    checkpoint, marker = tmp_path / "checkpoint.pt", tmp_path / "ran"
    trainer = Trainer(ResUNet2D((4, 8)), FitConfig(), None, checkpoint, {"organ": "liver"})
    trainer.save()
    if content == "hostile":
        torch.save({"identity": json.dumps({"organ": "liver"}), "net": _Payload(marker)}, checkpoint,
                   pickle_protocol=pickle.DEFAULT_PROTOCOL)
    elif content == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        torch.save({"identity": json.dumps({"organ": "liver"}), "net": {"w": torch.zeros(2)}}, checkpoint)
    with pytest.raises(ModelError, match="checkpoint.pt: (not a readable|a damaged) OrganSeg checkpoint"):
        trainer.resume()
    assert not marker.exists()
