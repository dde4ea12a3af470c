"""Post-processing: component cleaning and the anchor-organ boxes, per organ and switchable."""
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import ORGANS
from organseg.ct.orientation import Reorientation
from organseg.method.postprocess import LEVEL_ORGANS, AnchorRules, clean_components, clean_organ, rule
from organseg.results.plausibility import check_masks


def test_every_rule_names_only_anchor_organs_but_the_brainstem_s_the_spinal_cord():
    anchors = {o.key for o in ORGANS if o.anchor}
    assert all(set(rule(o.key).anchors) <= anchors for o in ORGANS if o.key != "brainstem")
    assert rule("brainstem").anchors == ("spinal_cord",)
    assert "spinal_cord" in LEVEL_ORGANS <= anchors | {"spinal_cord"}


def test_gallbladder_needs_the_liver_and_switching_its_rule_off_drops_the_need():
    assert AnchorRules().required(["gallbladder"]) == ["liver"]
    assert AnchorRules({"gallbladder": False}).required(["gallbladder"]) == []
    assert not AnchorRules().applies("pancreas")
    assert AnchorRules({"pancreas": True}).applies("pancreas")


def test_each_organ_runs_after_the_chosen_anchors_its_box_needs():
    rules = AnchorRules()
    assert rules.order(["liver", "gallbladder", "lungs"]) == ["lungs", "liver", "gallbladder"]
    assert rules.order(["kidneys", "lungs"]) == ["kidneys", "lungs"]  # they bound each other: as chosen
    assert AnchorRules(enabled=False).order(["liver", "lungs"]) == ["liver", "lungs"]


def test_largest_component_is_kept_and_holes_filled():
    mask = np.zeros((10, 20, 20), dtype=bool)
    mask[2:8, 2:12, 2:12] = True
    mask[4, 6, 6] = False  # a hole
    mask[1, 17:19, 17:19] = True  # a stray blob
    out = clean_organ("liver", mask, voxel_ml=0.001)
    assert out[4, 6, 6] and not out[1, 17:19, 17:19].any()
    assert out.sum() == 6 * 10 * 10


def test_kidneys_keep_two_components():
    mask = np.zeros((10, 20, 30), dtype=bool)
    mask[2:8, 5:10, 2:8] = True
    mask[2:8, 5:10, 20:26] = True
    mask[0, 0, 0] = True
    out = clean_organ("kidneys", mask, voxel_ml=0.001)
    assert out.sum() == 2 * 6 * 5 * 6


def test_no_box_applies_without_post_processing_or_when_switched_off():
    mask = np.ones((100, 4, 4), dtype=bool)
    extents = {"lungs": (60, 90), "femur_heads": (5, 15)}
    for rules in (AnchorRules(enabled=False), AnchorRules({"spleen": False})):
        assert rules.window("spleen", extents, 2.0, 100) == (None, [])
        assert rules.apply("spleen", mask, extents, 2.0)[0] is mask
        assert rules.needs("spleen") == () and rules.required(["spleen"]) == []


def test_spleen_is_kept_between_the_femur_heads_and_the_lung_apex():
    extents = {"lungs": (60, 90), "femur_heads": (5, 15)}
    (lo, hi), missing = AnchorRules().window("spleen", extents, slice_mm=2.0, n_slices=100)
    assert (lo, hi) == (15, 90) and missing == []
    mask = np.ones((100, 4, 4), dtype=bool)
    out, missing = AnchorRules().apply("spleen", mask, extents, slice_mm=2.0)
    assert missing == [] and out[15:91].all() and not out[:15].any() and not out[91:].any()


def test_missing_anchor_is_reported_and_its_bound_left_open():
    (lo, hi), missing = AnchorRules().window("spleen", {"lungs": (60, 90)}, slice_mm=2.0, n_slices=100)
    assert (lo, hi) == (0, 90) and missing == ["femur_heads"]


def test_margins_are_in_millimetres():
    (lo, hi), _ = AnchorRules().window("liver", {"lungs": (60, 90), "femur_heads": (5, 15)}, 5.0, 200)
    assert hi == 90 + 4  # 20 mm above the lung apex at 5 mm slices


def _whole_volume_cleaning(mask: np.ndarray, rule, voxel_ml: float) -> np.ndarray:
    """The reference: components and holes of the whole volume with scipy, no boxes."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    keep = (sizes * voxel_ml >= rule.min_component_ml) & (sizes >= rule.min_component_share * sizes.max())
    if rule.components:
        order = np.argsort(sizes, kind="stable")[::-1]
        keep &= np.isin(np.arange(n), order[:rule.components])
        keep[order[0]] = True
    out = np.concatenate([[False], keep])[labels]
    return ndimage.binary_fill_holes(out) if rule.fill_holes else out


def test_cleaning_slab_by_slab_equals_cleaning_the_whole_volume():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mask = np.zeros((60, 50, 60), dtype=bool)
    mask[8:30, 10:40, 12:50] = ndimage.binary_opening(rng.random((22, 30, 38)) > 0.3)
    mask[20, 25, 12:20] = False  # a tunnel from the box face: background that touches the outside
    mask[34:40, 5:15, 40:55] = True  # a second slab, with a hole
    mask[36, 8:11, 45:48] = False
    mask[45:58:3, 30:33, 2:5] = True  # stray one-slice findings
    for key in ("liver", "kidneys", "bones", "colon", "lungs", "spinal_cord"):
        expected = _whole_volume_cleaning(mask, rule(key), voxel_ml=0.01)
        assert (clean_components(mask, rule(key), voxel_ml=0.01) == expected).all(), key
    assert not clean_organ("liver", np.zeros((4, 4, 4), dtype=bool), 0.01).any()


def test_a_broken_spinal_cord_keeps_its_pieces_and_drops_a_stray_finding(openkbp_dir: Path):
    """A real manual cord with two slices cut out (as a network breaks it) plus a stray blob in the skull."""
    labels = sitk.ReadImage(str(openkbp_dir / "train" / "pt_2" / "labels.nii.gz"))
    cord = sitk.GetArrayFromImage(labels) == 1
    zs = np.flatnonzero(cord.any(axis=(1, 2)))
    broken = cord.copy()
    cut = zs[len(zs) // 3]  # the upper piece is about half the lower one
    broken[cut:cut + 2] = False
    stray = np.zeros_like(cord)
    stray[max(zs[0] - 12, 0):max(zs[0] - 12, 0) + 2, 40:42, 60:62] = True  # 8 voxels above the cord
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000
    cleaned = clean_organ("spinal_cord", broken | stray, voxel_ml)
    assert (cleaned == broken).all()
    assert (clean_organ("liver", broken | stray, voxel_ml) != broken).any()  # one piece only: not for a tube


def test_the_brainstem_stays_above_the_spinal_cord_reaches_down_to_it_and_is_flagged_below_it(openkbp_dir: Path):
    """pt_9's manual contours, where the brainstem reaches 9 mm below the cord's top (the calibration's second
    largest overlap). Its box (on by default) needs the cord run first and keeps the whole brainstem; the same
    brainstem moved 40 mm down the neck loses what lies below the cord's top - 10 mm, and is flagged for its
    position wherever the cord is in the result, whether or not the box is on. One that ends 9 mm above the
    cord's top (the network misses its lowest slices) reaches down to it; one that ends 21 mm above is left."""
    folder = openkbp_dir / "train" / "pt_9"
    ct = sitk.ReadImage(str(folder / "ct.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
    orient = Reorientation.of(ct)
    brainstem, cord = (orient.to_canonical(labels == v) for v in (4, 1))  # labels.json: Brainstem, SpinalCord
    slice_mm = ct.GetSpacing()[2]
    assert slice_mm == 3.0
    rules = AnchorRules()
    assert rules.required(["brainstem"]) == ["spinal_cord"]
    assert rules.order(["brainstem", "spinal_cord"]) == ["spinal_cord", "brainstem"]
    assert not AnchorRules({"brainstem": False}).required(["brainstem"])
    cord_slices = np.flatnonzero(cord.any(axis=(1, 2)))
    top = int(cord_slices[-1])
    extents = {"spinal_cord": (int(cord_slices[0]), top)}
    kept, missing = rules.apply("brainstem", brainstem, extents, slice_mm)
    assert missing == [] and (kept == brainstem).all()
    assert np.flatnonzero(brainstem.any(axis=(1, 2)))[0] < top  # it does reach below the top
    shift = int(round(40 / slice_mm))
    lowered = np.zeros_like(brainstem)
    lowered[:-shift] = brainstem[shift:]
    boxed, _ = rules.apply("brainstem", lowered, extents, slice_mm)
    lowest = top - int(round(10 / slice_mm))
    assert not boxed[:lowest].any() and (boxed[lowest:] == lowered[lowest:]).all() and boxed.sum() < lowered.sum()
    for gap, reached in ((3, True), (7, False)):  # slices between the cord's top and the brainstem's lowest
        raised = brainstem.copy()
        raised[:top + gap + 1] = False
        out, _ = rules.apply("brainstem", raised, extents, slice_mm)
        expected = raised.copy()
        if reached:
            expected[top + 1:top + gap + 1] = raised[top + gap + 1]
        assert (out == expected).all() and (out.sum() > raised.sum()) == reached
    hu = sitk.GetArrayFromImage(ct)
    for moved, with_cord, flagged in ((False, True, False), (True, True, True), (True, False, False)):
        masks = {"brainstem": lambda m=(lowered if moved else brainstem): orient.from_canonical(m)}
        if with_cord:
            masks["spinal_cord"] = lambda: orient.from_canonical(cord)
        codes = {f.code for f in check_masks(ct, hu, masks)["brainstem"]}
        assert ("position" in codes) == flagged, (moved, with_cord, codes)
