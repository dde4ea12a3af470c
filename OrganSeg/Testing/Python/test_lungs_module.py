"""The bundled lungs labeller package run from the module's logic on a real CT: same mask as the library."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")

from organseg.ct.read import read_ct  # noqa: E402
from organseg.method.model_package import bundled_models_dir  # noqa: E402
from organseg.segmenter import Segmenter, Settings  # noqa: E402
from organseg_slicer.logic import OrganSegLogic  # noqa: E402
from organseg_slicer.segments import organ_segments, segment_mask  # noqa: E402
from organseg_slicer.table import table_rows  # noqa: E402


def test_lungs_labeller_segment_matches_the_library(scene, add_volume, data_dir):
    image = read_ct(data_dir / "example_ct.nii.gz")
    volume = add_volume(image, "example CT")
    run = OrganSegLogic(scene).run(volume, ["lungs"], Settings(models=bundled_models_dir(), device="cpu"))
    assert run.job.error is None and run.done == ["lungs"]
    expected = Segmenter(models=bundled_models_dir(), device="cpu").segment(image, "lungs")
    (segment_id, key), = organ_segments(run.segmentation_node).items()
    mask = segment_mask(run.segmentation_node, segment_id, volume)
    assert key == "lungs" and mask.any()
    np.testing.assert_array_equal(mask, expected.masks["lungs"].full())
    assert table_rows(run.table_node)[0]["volume_ml"] == pytest.approx(expected.stats[0]["volume_ml"])
