"""Shared pytest fixtures: the real CT fixtures in ../shared/data and small model packages trained on them.

Tests that need the real data skip with a clear reason when ../shared/data/totalseg_example is absent.
The model packages are trained here for a few steps on the real DICOM series: they exercise the whole
path (geometry, statistics, outputs), not accuracy.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ORGANSEG_TEST_DATA", REPO.parent / "shared" / "data" / "totalseg_example"))
TS_LIVER, TS_SPLEEN = 5, 1


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The TotalSegmentator example fixtures (real CT), or skip."""
    if not (DATA / "example_ct.nii.gz").is_file():
        pytest.skip(f"real CT fixtures not found at {DATA} (set ORGANSEG_TEST_DATA or provide ../shared/data)")
    return DATA


@pytest.fixture(scope="session")
def openkbp_dir() -> Path:
    """The OpenKBP head-and-neck CTs with manual contours (real CT, beside the TotalSegmentator fixtures), or skip."""
    folder = DATA.parent / "openkbp_hn"
    if not (folder / "cases.csv").is_file():
        pytest.skip(f"OpenKBP head-and-neck CTs not found at {folder} (provide ../shared/data/openkbp_hn)")
    return folder


@pytest.fixture(scope="session")
def dicom_ct(data_dir: Path):
    """The real 20-slice DICOM CT series as a SimpleITK image."""
    from organseg.io import read_ct
    return read_ct(data_dir / "example_ct_dicom")


@pytest.fixture(scope="session")
def ts_labels(data_dir: Path, dicom_ct):
    """TotalSegmentator's label map of the DICOM series, resampled (exactly, nearest) onto the CT grid."""
    import SimpleITK as sitk
    seg = sitk.ReadImage(str(data_dir / "example_seg_dicom.nii.gz"))
    return sitk.Resample(seg, dicom_ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, seg.GetPixelID())


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, dicom_ct, ts_labels) -> Path:
    """A models folder with liver and spleen packages trained for a few steps on the real DICOM series."""
    import SimpleITK as sitk
    from organseg.model_package import write_package
    from organseg.network import ResUNet2D
    from organseg.training.loop import state_dict_arrays, train_steps
    from organseg.training.slices import organ_slices

    models = tmp_path_factory.mktemp("models")
    for key, label in (("liver", TS_LIVER), ("spleen", TS_SPLEEN)):
        pairs = organ_slices(dicom_ct, sitk.Cast(ts_labels == label, sitk.sitkUInt8))
        net = ResUNet2D()
        losses = train_steps(net, pairs.inputs, pairs.targets, steps=12, batch_size=4, seed=1)
        assert np.mean(losses[-3:]) < np.mean(losses[:3]), f"{key}: loss did not fall in the fixture training"
        write_package(models, key, state_dict_arrays(net), net.channels,
                      {"summary": "test fixture: 12 steps on the 20-slice DICOM series"}, {"val_dice": None})
    return models
