"""The bundled lungs package: a classical labeller verified, listed and run like a network package."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.errors import ModelError
from organseg.method.lungs import label_lungs
from organseg.method.model_package import LABELLER, PARAMETERS_FILE, ModelPackage, ModelStore, bundled_models_dir
from organseg.method.runtime import LABELLERS, make_runtime
from organseg.segmenter import Segmenter


@pytest.fixture
def lungs_copy(tmp_path: Path) -> Path:
    """A copy of the bundled lungs package in a models folder of its own."""
    source = ModelStore([bundled_models_dir()]).get("lungs").path
    shutil.copytree(source, tmp_path / source.name)
    return tmp_path / source.name


def test_bundled_lungs_is_a_verified_labeller_with_an_honest_card():
    package = ModelStore([bundled_models_dir()]).get("lungs")
    assert package.kind == LABELLER and package.meta["architecture"]["name"] in LABELLERS
    text = (package.path / "model.json").read_text()
    assert re.search(r'"[a-z_]*patients?[a-z_]*" *: *[0-9]', text)
    assert package.meta["training"]["patients"] == 0, "a labeller is not trained on patients"
    assert not re.search(r'"(/|[A-Za-z]:\\\\)|/tmp/|/home/|/work/', text), "a machine path in the model card"


def test_changed_parameters_are_refused(lungs_copy: Path):
    params = json.loads((lungs_copy / PARAMETERS_FILE).read_text())
    params["air_hu"] = -300.0
    (lungs_copy / PARAMETERS_FILE).write_text(json.dumps(params))
    with pytest.raises(ModelError, match="checksum"):
        ModelPackage.load(lungs_copy)


def test_unknown_labeller_is_refused_with_its_name(lungs_copy: Path):
    meta = json.loads((lungs_copy / "model.json").read_text())
    meta["architecture"]["name"] = "liver-labeller"
    (lungs_copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="liver-labeller"):
        make_runtime(ModelPackage.load(lungs_copy), "cpu")


def test_segmenter_runs_the_labeller_on_the_real_ct(data_dir: Path):
    """`segment --organs lungs` path: the labeller's mask, mapped back onto the input grid, with its volume."""
    image = read_ct(data_dir / "example_ct.nii.gz")
    result = Segmenter(models=bundled_models_dir(), device="cpu").segment(image, "lungs")
    assert "classical-labeller" in result.models["lungs"]
    orient = Reorientation.of(image)
    canonical = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(image)))
    expected = orient.from_canonical(label_lungs(canonical, (3.0, 3.0, 3.0)) > 0)
    np.testing.assert_array_equal(result.masks["lungs"].full(), expected)
    assert 100 < result.stats[0]["volume_ml"] < 130
