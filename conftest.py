"""Shared pytest fixtures: the real CT fixtures in ../shared/data and small model packages trained on them.

Tests that need the real data skip with a clear reason when ../shared/data/totalseg_example is absent. Test data
that the [test] extra declares (pydicom-data's multi-frame CT) fails a test when missing: it never skips or
downloads. `--strict-skips` (or ORGANSEG_STRICT_SKIPS=1, as .ci/run sets) fails the run when any test skipped for
a missing Python package or data file, so that a clean install proves every test ran.
The model packages are trained here for a few steps on the real DICOM series: they exercise the whole
path (geometry, statistics, outputs), not accuracy.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ORGANSEG_TEST_DATA", REPO.parent / "shared" / "data" / "totalseg_example"))
TS_LIVER, TS_SPLEEN = 5, 1
#: Skip reasons that mean a missing Python package or data file (not a missing system tool or privilege).
MISSING = re.compile(r"could not import|No module named|not installed|not found at")
_missing_skips: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--strict-skips", action="store_true", default=os.environ.get("ORGANSEG_STRICT_SKIPS") == "1",
                     help="fail the run when a test skipped for a missing Python package or data file (CI)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple) and MISSING.search(report.longrepr[2]):
        _missing_skips.append(f"{report.nodeid}: {report.longrepr[2]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--strict-skips") and _missing_skips:
        print(f"\n--strict-skips: {len(_missing_skips)} test(s) skipped for a missing package or data file:")
        print("\n".join(f"  {line}" for line in _missing_skips))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def train_steps(net, inputs: np.ndarray, targets: np.ndarray, steps: int, batch_size: int = 8, lr: float = 1e-3,
                seed: int = 0) -> list[float]:
    """Train `net` in place for `steps` Adam steps on float inputs/targets (n, H, W) with the library's loss; the
    loss of each step. Tiny models for tests and the benchmark's quick models, not a training run."""
    import torch

    from organseg.training.loop import dice_bce_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(inputs), batch_size, replace=len(inputs) < batch_size)
        x, y = (torch.from_numpy(np.ascontiguousarray(a[idx], dtype=np.float32)[:, None]) for a in (inputs, targets))
        optimiser.zero_grad()
        loss = dice_bce_loss(net(x), y)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    net.eval()
    return losses


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
def ect_supplemental() -> Path:
    """pydicom-data's enhanced multi-frame CT (two frames stored against slice order), a [test] dependency."""
    from pydicom.data import get_testdata_file
    path = get_testdata_file("eCT_Supplemental.dcm", download=False)
    if path is None:
        pytest.fail("pydicom-data's eCT_Supplemental.dcm is missing: pip install -e 'OrganSegLib[test]'")
    return Path(path)


@pytest.fixture(scope="session")
def dicom_ct(data_dir: Path):
    """The real 20-slice DICOM CT series as a SimpleITK image."""
    from organseg.ct.read import read_ct
    return read_ct(data_dir / "example_ct_dicom")


@pytest.fixture(scope="session")
def ts_labels(data_dir: Path, dicom_ct):
    """TotalSegmentator's label map of the DICOM series, resampled (exactly, nearest) onto the CT grid."""
    import SimpleITK as sitk
    seg = sitk.ReadImage(str(data_dir / "example_seg_dicom.nii.gz"))
    return sitk.Resample(seg, dicom_ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, seg.GetPixelID())


def _organ_slices(ct, mask, margin: int = 30, margin_below: int | None = None):
    """The slice pairs training makes of one CT and organ mask: its axial range +/- `margin` slices."""
    from organseg.training.canonical import canonical_arrays
    from organseg.training.slices import slice_pairs

    volume, (target,) = canonical_arrays(ct, [mask])
    return slice_pairs(volume, target, None, margin, margin_below=margin_below)


@pytest.fixture(scope="session")
def organ_slices():
    """`_organ_slices` for tests: slice pairs of a CT and one organ mask."""
    return _organ_slices


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, dicom_ct, ts_labels) -> Path:
    """A models folder with liver and spleen packages trained for a few steps on the real DICOM series."""
    import SimpleITK as sitk
    from organseg.method.model_package import write_package
    from organseg.method.network import ResUNet2D
    from organseg.training.loop import state_dict_arrays

    models = tmp_path_factory.mktemp("models")
    for key, label in (("liver", TS_LIVER), ("spleen", TS_SPLEEN)):
        pairs = _organ_slices(dicom_ct, sitk.Cast(ts_labels == label, sitk.sitkUInt8))
        net = ResUNet2D()
        losses = train_steps(net, pairs.inputs, pairs.targets, steps=12, batch_size=4, seed=1)
        assert np.mean(losses[-3:]) < np.mean(losses[:3]), f"{key}: loss did not fall in the fixture training"
        write_package(models, key, state_dict_arrays(net), net.channels,
                      {"summary": "test fixture: 12 steps on the 20-slice DICOM series"}, {"val_dice": None})
    return models


@pytest.fixture(scope="session")
def review_cohort(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A real `organseg batch` output of the DICOM series and the NIfTI CT (liver, spleen; the bundled models),
    as `organseg review` serves it. Tests that change it copy it first."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("review") / "cohort"
    run = subprocess.run([sys.executable, "-m", "organseg.cli", "batch", str(data_dir / "example_ct_dicom"),
                          str(data_dir / "example_ct.nii.gz"), "-o", str(out), "--organs", "liver,spleen"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return out
