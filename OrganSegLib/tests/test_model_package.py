"""Model packages: verified on load, versioned, never overwritten."""
import json
import shutil

import pytest

from organseg.errors import ModelError
from organseg.method.model_package import ModelPackage, ModelStore, write_package


def test_fixture_packages_load_with_checksums_and_onnx(tiny_models):
    pkg = ModelStore([tiny_models]).get("liver")
    assert pkg.organ.key == "liver" and pkg.version == 1
    assert set(pkg.meta["files"]) == {"weights.npz", "model.onnx"}
    assert 400_000 < pkg.meta["architecture"]["parameters"] < 600_000


def test_modified_weights_fail_the_checksum(tiny_models, tmp_path):
    copy = tmp_path / "liver-v1"
    shutil.copytree(tiny_models / "liver-v1", copy)
    with open(copy / "weights.npz", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ModelError, match=r"weights.npz: checksum does not match model.json"):
        ModelPackage.load(copy)


def test_unknown_schema_version_is_refused(tiny_models, tmp_path):
    copy = tmp_path / "liver-v1"
    shutil.copytree(tiny_models / "liver-v1", copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["schema"] = "organseg-model/99"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="schema 'organseg-model/99' is not supported"):
        ModelPackage.load(copy)


def test_missing_model_names_the_organ_and_where_it_looked(tmp_path):
    with pytest.raises(ModelError, match=r"no model installed for 'pancreas' \(looked in .*\); train one"):
        ModelStore([tmp_path]).get("pancreas")


def test_a_new_package_gets_the_next_version_and_the_old_one_stays(tiny_models, tmp_path):
    shutil.copytree(tiny_models / "liver-v1", tmp_path / "liver-v1")
    before = (tmp_path / "liver-v1" / "weights.npz").read_bytes()
    old = ModelPackage.load(tmp_path / "liver-v1")
    new = write_package(tmp_path, "liver", old.state_dict_arrays(), old.channels, {"summary": "copy"},
                        {"val_dice": None}, export_onnx=False)
    assert new.version == 2 and ModelStore([tmp_path]).get("liver").version == 2
    assert (tmp_path / "liver-v1" / "weights.npz").read_bytes() == before
    with pytest.raises(ModelError, match="never overwritten"):
        write_package(tmp_path, "liver", old.state_dict_arrays(), old.channels, {}, {}, version=1,
                      export_onnx=False)
