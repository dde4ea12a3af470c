"""The classical lung labeller on real CTs: volumes, laterality in LPS, airways and gas excluded, apices found."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.evaluation.metrics import dice
from organseg.method.body import body_mask
from organseg.method.lungs import LEFT, RIGHT, LungParameters, label_lungs

PARENCHYMA_HU = (-950, -700)


def _label(path: Path) -> tuple[sitk.Image, np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(image, canonical HU, canonical labels, canonical spacing in mm)."""
    image = read_ct(path)
    orient = Reorientation.of(image)
    ct = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(image)))
    spacing = tuple(float(s) for s in np.array(image.GetSpacing())[2 - np.array(orient.permutation)])
    return image, ct, label_lungs(ct, spacing), spacing


def _ml(labels: np.ndarray, side: int, spacing: tuple[float, float, float]) -> float:
    return float(np.count_nonzero(labels == side) * np.prod(spacing) / 1000.0)


def _lps_x(image: sitk.Image, labels: np.ndarray, side: int) -> float:
    """LPS x (mm, growing toward the patient's left) of a lung's centroid, through the image's own geometry."""
    source = Reorientation.of(image).from_canonical(labels)
    centre = np.argwhere(source == side).mean(axis=0)[::-1]  # (z, y, x) -> (i, j, k)
    return image.TransformContinuousIndexToPhysicalPoint(centre.tolist())[0]


@pytest.fixture(scope="module")
def openkbp(data_dir: Path) -> Path:
    folder = data_dir.parent / "openkbp_hn"
    if not (folder / "train" / "pt_82" / "ct.nii.gz").is_file():
        pytest.skip(f"OpenKBP head-and-neck CTs not found at {folder}")
    return folder


@pytest.fixture(scope="module")
def example(data_dir: Path):
    return _label(data_dir / "example_ct.nii.gz")


def test_example_ct_lung_bases_left_and_right(example):
    image, ct, labels, spacing = example
    assert 55 < _ml(labels, RIGHT, spacing) < 95 and 30 < _ml(labels, LEFT, spacing) < 60
    assert _lps_x(image, labels, RIGHT) < 0 < _lps_x(image, labels, LEFT)


def test_example_ct_no_bowel_gas_below_the_diaphragm(example):
    """The abdomen holds 350 mL of colon and stomach gas, some level with the left lung base: none is lung."""
    _, ct, labels, _ = example
    lung_slices = np.flatnonzero(labels.any(axis=(1, 2)))
    assert lung_slices.min() >= 97, "lung labelled below the domes of the diaphragm (slice 100 in this CT)"
    gas = (ct < -950) & (labels > 0)
    assert np.count_nonzero(gas) < 0.01 * np.count_nonzero(labels), "pure gas labelled as lung"


def test_example_ct_field_of_view_cutting_the_right_chest_wall(example):
    """A field of view that cuts through the right chest wall leaves the right lung open to the image's edge,
    where the body contour cannot enclose it: it is still found, and the left lung is unchanged."""
    _, ct, labels, spacing = example
    cols = np.flatnonzero(labels.any(axis=(0, 1)))
    cut = cols[0] + (cols[-1] - cols[0]) // 8
    cropped = label_lungs(np.ascontiguousarray(ct[:, :, cut:]), spacing)
    assert cropped[:, :, 0].any(), "the cut should run through the right lung"
    assert dice(cropped > 0, labels[:, :, cut:] > 0) > 0.95
    np.testing.assert_array_equal(cropped == LEFT, labels[:, :, cut:] == LEFT)


def test_dicom_series_holds_no_lung_as_totalsegmentator_says(dicom_ct, ts_labels):
    """An independent reference for the negatives: TotalSegmentator finds no lung lobe (labels 10-14) in the
    series, which holds stomach and colon gas; the labeller must not call that gas lung."""
    reference = sitk.GetArrayViewFromImage(ts_labels)
    assert not np.isin(reference, np.arange(10, 15)).any()
    orient = Reorientation.of(dicom_ct)
    ct = np.ascontiguousarray(orient.to_canonical(sitk.GetArrayViewFromImage(dicom_ct)))
    assert np.count_nonzero(ct < -950) > 10000, "the series should hold gas for this test to mean anything"
    spacing = tuple(float(s) for s in np.array(dicom_ct.GetSpacing())[2 - np.array(orient.permutation)])
    assert not label_lungs(ct, spacing).any()


def test_openkbp_both_lungs_apices_found_and_trachea_excluded(openkbp: Path):
    image, ct, labels, spacing = _label(openkbp / "train" / "pt_82" / "ct.nii.gz")
    assert 900 < _ml(labels, RIGHT, spacing) < 1500 and 900 < _ml(labels, LEFT, spacing) < 1500
    assert _lps_x(image, labels, RIGHT) < _lps_x(image, labels, LEFT)
    # Apex: the highest slice with a square centimetre of lateral parenchyma-range air is labelled lung.
    mid = ct.shape[2] // 2
    lateral = np.ones(ct.shape, dtype=bool)
    lateral[:, :, mid - int(30 / spacing[2]):mid + int(30 / spacing[2])] = False
    body = body_mask(ct)
    inside = ndimage.binary_erosion(body, np.ones((1, 5, 5), dtype=bool))  # no skin partial volume
    parenchyma = (ct > PARENCHYMA_HU[0]) & (ct < PARENCHYMA_HU[1]) & lateral & inside
    per_slice = parenchyma.sum(axis=(1, 2)) * spacing[1] * spacing[2]
    apex = np.flatnonzero(per_slice >= 100).max()
    assert np.flatnonzero(labels.any(axis=(1, 2))).max() >= apex - 1
    # Trachea: pure air within 12 mm of the midline, over the lungs' axial range, is not lung.
    band = slice(mid - int(12 / spacing[2]), mid + int(12 / spacing[2]) + 1)
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    levels = slice(zs[0], zs[-1] + 1)
    lumen = (ct[levels, :, band] < -950) & body[levels, :, band]
    assert lumen.sum() > 100, "the trachea should be in this CT"
    assert np.count_nonzero(lumen & (labels[levels, :, band] > 0)) < 0.2 * lumen.sum()


def test_openkbp_lung_stored_as_pure_air_is_kept(openkbp: Path):
    """pt_53's right lung reads -1024 (OpenKBP left its voxels out) beside a normal left lung: still a lung."""
    image, _, labels, spacing = _label(openkbp / "train" / "pt_53" / "ct.nii.gz")
    assert _ml(labels, RIGHT, spacing) > 200 and _ml(labels, LEFT, spacing) > 200
    assert _lps_x(image, labels, RIGHT) < _lps_x(image, labels, LEFT)


def test_openkbp_head_only_crop_has_no_lung(openkbp: Path):
    """pt_57 ends above the apices: the air of the nose, mouth and pharynx is not lung."""
    _, ct, labels, _ = _label(openkbp / "train" / "pt_57" / "ct.nii.gz")
    assert np.count_nonzero(ct < -400) > 1000 and not labels.any()


def test_parameters_round_trip_and_refuse_unknown_keys():
    params = LungParameters(air_hu=-450.0)
    assert LungParameters.from_dict(params.to_dict()) == params
    with pytest.raises(ValueError, match="unknown"):
        LungParameters.from_dict({"air_hu": -400, "vessel_hu": 0})


def test_segmenter_lungs_with_its_shared_body_mask_equal_the_labeller_alone(data_dir: Path, example):
    """The segmenter computes the body mask once per CT and hands it to the labeller: the lungs it reports must be
    the labeller's own (which then computes the body itself), cleaned as every organ is."""
    from organseg.method import postprocess as pp
    from organseg.segmenter import Segmenter

    image, ct, labels, spacing = example
    result = Segmenter(device="cpu").segment(image, ["lungs"])
    alone = pp.clean_organ("lungs", labels > 0, float(np.prod(spacing)) / 1000.0)
    assert alone.sum() > 1000
    np.testing.assert_array_equal(Reorientation.of(image).to_canonical(result.masks["lungs"].full()), alone)
