"""The post-processing vote along the body axis: its rule, its window from the package, and that the Segmenter
applies it last, on a real head-and-neck CT."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.ct.read import read_ct
from organseg.errors import ModelError
from organseg.method.model_package import ModelPackage, ModelStore, bundled_models_dir, write_package
from organseg.method.postprocess import vote_along_z, vote_slices
from organseg.segmenter import Segmenter


def test_vote_slices_is_the_nearest_odd_count():
    assert [vote_slices(12.5, mm) for mm in (2.32, 2.5, 3.0, 1.0)] == [5, 5, 5, 13]
    assert [vote_slices(7.5, mm) for mm in (2.5, 3.0, 3.3)] == [3, 3, 3]
    assert vote_slices(0.0, 3.0) == 1 and vote_slices(2.0, 3.0) == 1


def _majority(mask: np.ndarray, slices: int) -> np.ndarray:
    """The rule written out slice by slice, the ends repeated."""
    half, n = slices // 2, len(mask)
    return np.stack([sum(mask[min(max(z + d, 0), n - 1)].astype(int) for d in range(-half, half + 1)) > half
                     for z in range(n)])


def test_vote_fills_a_missed_slice_and_drops_a_lone_one():
    tube = np.zeros((30, 12, 12), bool)
    tube[:20, 4:8, 4:8] = True  # runs to the volume's first slice
    tube[10] = False  # a slice the network missed
    tube[25, 1:3, 1:3] = True  # a finding on one slice alone
    voted = vote_along_z(tube, 3)
    assert voted[10, 4:8, 4:8].all() and not voted[25].any()
    assert voted[0, 4:8, 4:8].all() and not voted[20:].any()
    rng = np.random.default_rng(0)
    noisy = rng.random((40, 9, 11)) > 0.6
    for slices in (1, 3, 5):
        assert np.array_equal(vote_along_z(noisy, slices), _majority(noisy, slices))
    assert not vote_along_z(np.zeros((5, 4, 4), bool), 5).any()


def test_a_vote_window_out_of_range_is_refused(tmp_path: Path):
    parent = ModelPackage.load(bundled_models_dir() / "liver-v1")
    package = write_package(tmp_path, "liver", parent.state_dict_arrays(), parent.channels, {}, {},
                            export_onnx=False, z_vote_mm=7.5)
    assert package.z_vote_mm == 7.5 and ModelPackage.load(package.path).meta["z_vote_mm"] == 7.5
    meta = package.path / "model.json"
    meta.write_text(meta.read_text().replace('"z_vote_mm": 7.5', '"z_vote_mm": 500'))
    with pytest.raises(ModelError, match="z_vote_mm 500 is not a window of 0 to 50 mm"):
        ModelPackage.load(package.path)


def test_the_segmenter_votes_last_with_the_packages_window(openkbp_dir: Path, tmp_path: Path):
    shipped = ModelStore([bundled_models_dir()]).get("larynx")
    without = write_package(tmp_path / "without", "larynx", shipped.state_dict_arrays(), shipped.channels, {}, {},
                            threshold=shipped.threshold, context=shipped.context)
    voting = write_package(tmp_path / "voting", "larynx", shipped.state_dict_arrays(), shipped.channels, {}, {},
                           threshold=shipped.threshold, context=shipped.context, z_vote_mm=12.5)
    ct = read_ct(openkbp_dir / "validation" / "pt_201" / "ct.nii.gz")  # axial: array axis 0 is the body axis

    def mask(package: ModelPackage, **settings) -> np.ndarray:
        result = Segmenter(models=package.path.parent, device="cpu", **settings).segment(ct, ["larynx"])
        return sitk.GetArrayFromImage(result.mask_image("larynx")) > 0

    plain = mask(without)
    assert plain.any()
    slices = vote_slices(12.5, ct.GetSpacing()[2])
    assert slices == 5
    voted = mask(voting)
    assert np.array_equal(voted, vote_along_z(plain, slices)) and not np.array_equal(voted, plain)
    assert np.array_equal(mask(voting, postprocess=False), mask(without, postprocess=False))
