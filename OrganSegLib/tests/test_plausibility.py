"""Plausibility flags on real CTs: good masks stay quiet, bad masks (synthetic and real model errors) are flagged."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from organseg.catalogue import ORGANS, organ
from organseg.results.plausibility import CODES, check_masks

TS_LIVER, TS_SPLEEN = 5, 1


def codes(flags) -> list[str]:
    return [f.code for f in flags]


def check(image: sitk.Image, masks: dict[str, np.ndarray]) -> dict[str, list[str]]:
    found = check_masks(image, sitk.GetArrayViewFromImage(image), {k: (lambda m=m: m) for k, m in masks.items()})
    for flags in found.values():
        assert all(f.code in CODES and f.reason and "\n" not in f.reason for f in flags)
    return {k: codes(v) for k, v in found.items()}


@pytest.fixture(scope="module")
def example(data_dir):
    """The 3 mm abdomen/thorax CT (RAS-stored NIfTI) and its arrays."""
    image = sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))
    return image, sitk.GetArrayFromImage(image)


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def test_reference_liver_and_spleen_are_only_cut_by_the_20_slice_series(dicom_ct, ts_labels):
    labels = sitk.GetArrayFromImage(ts_labels)
    found = check(dicom_ct, {"liver": labels == TS_LIVER, "spleen": labels == TS_SPLEEN})
    assert found == {"liver": ["cut_by_fov"], "spleen": ["cut_by_fov"]}
    for label in (TS_LIVER, TS_SPLEEN):  # really cut: the organ fills part of the first and the last slice
        assert (labels[0] == label).sum() > 100 and (labels[-1] == label).sum() > 100


def test_mirrored_liver_is_on_the_wrong_side(dicom_ct, ts_labels):
    liver = sitk.GetArrayFromImage(ts_labels) == TS_LIVER
    assert check(dicom_ct, {"liver": liver[:, :, ::-1]})["liver"] == ["cut_by_fov", "position"]


def test_split_liver_is_fragmented(dicom_ct, ts_labels):
    liver = sitk.GetArrayFromImage(ts_labels) == TS_LIVER
    pieces = liver.copy()
    pieces[::3] = False  # a gap every third slice: 7 slabs
    assert ndimage.label(pieces)[1] >= 6
    assert "fragmented" in check(dicom_ct, {"liver": pieces})["liver"]
    assert "fragmented" not in check(dicom_ct, {"liver": liver})["liver"]


def test_blob_in_air_is_outside_the_body_and_not_tissue(example):
    image, ct = example
    air = np.argwhere((ct < -900) & ndimage.binary_erosion(ct < -900, iterations=4))
    centre = air[len(air) // 2]
    blob = ball(ct.shape, centre, 3)  # 3 voxels = 9 mm: about 3 mL
    assert (ct[blob] < -900).all()
    assert check(image, {"pancreas": blob})["pancreas"] == ["volume_low", "outside_body", "hu_out_of_range"]


def test_soft_tissue_organ_in_bone_is_flagged_and_bones_there_are_not(example):
    image, ct = example
    dense = ndimage.binary_opening(ct > 300, iterations=1)
    labels, n = ndimage.label(dense)
    bone = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))  # the largest bone: the spine
    bone[:1] = bone[-1:] = False
    found = check(image, {"pancreas": bone, "bones": bone})
    assert "hu_out_of_range" in found["pancreas"]
    assert "hu_out_of_range" not in found["bones"]


def test_volume_range_applies_only_to_whole_organs(example):
    image, ct = example
    soft = ndimage.binary_erosion(ct > -300, iterations=12) & (np.abs(ndimage.uniform_filter(ct, 9) - 40) < 30)
    centre = np.argwhere(soft)[len(np.argwhere(soft)) // 2]
    big = ball(ct.shape, centre, 22) & (ct > -300)  # about 1.2 L: larger than two kidneys
    assert check(image, {"kidneys": big})["kidneys"] == ["volume_high"]
    small = ball(ct.shape, (0, *centre[1:]), 3) & (ct > -300)  # touches the first slice: a lower bound
    assert check(image, {"kidneys": small})["kidneys"] == ["cut_by_fov"]
    assert check(image, {"kidneys": np.roll(small, 5, axis=0)})["kidneys"] == ["volume_low"]
    for edge in (np.roll(small, -4, axis=0), ball(ct.shape, (centre[0], ct.shape[1] - 1, centre[2]), 3),
                 ball(ct.shape, (centre[0], centre[1], 0), 3)):  # the last slice, the in-plane edges
        found = check(image, {"kidneys": edge})["kidneys"]
        assert "cut_by_fov" in found and "volume_low" not in found

def test_not_found_and_axial_position_follow_the_anchor_organs(example):
    image, ct = example
    n = ct.shape[0]  # slices run inferior -> superior in this RAS-stored file (array axis 0 is S)
    lungs = np.zeros(ct.shape, bool)
    lungs[n - 30:n - 20, 40:60, 40:80] = True
    femur = np.zeros(ct.shape, bool)
    femur[5:15, 40:60, 30:50] = True
    spleen_low = np.zeros(ct.shape, bool)
    spleen_low[2:12, 40:60, 70:90] = True  # below the top of the femur heads
    found = check(image, {"lungs": lungs, "femur_heads": femur, "liver": np.zeros(ct.shape, bool),
                          "spleen": spleen_low})
    assert found["liver"] == ["not_found"]
    assert "position" in found["spleen"]
    assert check(image, {"liver": np.zeros(ct.shape, bool)})["liver"] == []  # no anchors: may lie beyond the scan


def test_catalogue_ranges_are_ordered_and_sides_known():
    for o in ORGANS:
        assert o.median_hu[0] < o.median_hu[1]
        assert o.volume_ml is None or 0 < o.volume_ml[0] < o.volume_ml[1]
        assert o.side in (None, "left", "right")
    assert organ("liver").side == "right" and organ("spleen").side == "left"
