"""Coarse-to-fine slice selection gives exactly the masks of full slice-by-slice inference.

The selection is checked on real anatomy: a taller real volume (the DICOM series stacked with its mirror
image along z) and a runtime that answers, for each slice it is given, TotalSegmentator's mask of a structure
(a perfect network), so organs of every height and position are covered, both with a fixed stride and with
each catalogue organ's own coarse stride; then end to end with real networks.
"""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.catalogue import ORGANS, organ
from organseg.ct.orientation import Reorientation
from organseg.masks import dice
from organseg.method.inference import ONE_PASS_FRACTION, coarse_stride, first_pass, predict_organ, within_reach
from organseg.method.preprocess import CropRecord, Prepared, prepare
from organseg.segmenter import Segmenter

#: TotalSegmentator labels of the DICOM series, from one to all of its 20 slices.
STRUCTURES = {"liver": 5, "pancreas": 7, "adrenal_gland_right": 8, "colon": 20, "vertebrae_T11": 33,
              "portal_vein": 64, "rib_left_12": 103, "rib_right_6": 109}


class ReferenceRuntime:
    """Answers each prepared slice with the reference mask of that slice, and counts the slices it ran."""

    name, context = "reference", 0

    def __init__(self, prepared: Prepared, reference: np.ndarray) -> None:
        record, reference = prepared.record, reference.astype(np.float32)
        self.answers = {prepared.inputs[row].tobytes(): record.forward(reference, z)
                        for row, z in enumerate(record.slices_with_body)}
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += len(batch)
        return np.stack([self.answers[x[0].tobytes()] for x in batch])


@pytest.fixture(scope="module")
def tall(dicom_ct, ts_labels):
    """120 real slices (the series, its mirror, three times), prepared, with the reference labels."""
    orient = Reorientation.of(dicom_ct)
    ct = orient.to_canonical(sitk.GetArrayFromImage(dicom_ct)).astype(np.float32)
    labels = orient.to_canonical(sitk.GetArrayFromImage(ts_labels))
    stack = lambda a: np.ascontiguousarray(np.concatenate([a, a[::-1]] * 3))  # noqa: E731
    return prepare(stack(ct)), stack(labels), dicom_ct.GetSpacing()[2]


def check_equals_full(prepared: Prepared, reference: np.ndarray, stride: int) -> None:
    """Coarse-to-fine with `stride` gives the full mask and runs exactly the slices it should."""
    full_runtime = ReferenceRuntime(prepared, reference)
    full = predict_organ(prepared, full_runtime, 0.5, batch_size=16)
    runtime = ReferenceRuntime(prepared, reference)
    fast = predict_organ(prepared, runtime, 0.5, batch_size=16, stride=stride)
    assert full.any()
    assert np.array_equal(fast, full)
    # The slices run: the coarse ones and those within a stride of a slice holding the structure.
    present = np.flatnonzero(full.any(axis=(1, 2)))
    near = np.abs(np.arange(len(full))[:, None] - present[None, :]).min(axis=1) <= stride
    coarse = np.isin(np.arange(len(full)), np.r_[np.arange(0, len(full), stride), len(full) - 1])
    spans = full.any(axis=(1, 2))[coarse].all()  # found on every coarse slice: every slice runs at once
    most = np.count_nonzero(near | coarse) >= ONE_PASS_FRACTION * len(full)  # likewise once the rounds reach 90%
    assert full_runtime.calls == len(full)
    assert runtime.calls == (len(full) if spans or most else np.count_nonzero(near | coarse))


@pytest.mark.parametrize("structure", STRUCTURES)
def test_coarse_to_fine_equals_full_inference_on_real_anatomy(tall, structure):
    prepared, labels, _ = tall
    check_equals_full(prepared, labels == STRUCTURES[structure], stride=5)


def catalogue_organs_in_series(data_dir) -> dict[str, list[int]]:
    """Catalogue organs with TotalSegmentator labels in the label map's legend: organ key -> label values."""
    legend = json.loads((data_dir / "labels_totalsegmentator_v2.json").read_text())
    by_name = {name: int(value) for value, name in legend.items()}
    return {o.key: [by_name[n] for n in o.totalsegmentator_names if n in by_name] for o in ORGANS}


@pytest.mark.parametrize("key", ["liver", "pancreas", "bones", "spleen", "spinal_cord", "aorta", "adrenal_glands",
                                 "inferior_vena_cava", "colon", "stomach", "gi_tract"])
def test_each_organs_own_coarse_stride_equals_full_inference(tall, data_dir, key):
    """The organs of the series with the strides the segmenter uses (half their smallest extent)."""
    prepared, labels, slice_mm = tall
    stride = coarse_stride(slice_mm, organ(key).min_extent_mm)
    check_equals_full(prepared, np.isin(labels, catalogue_organs_in_series(data_dir)[key]), stride)


def test_coarse_stride_is_half_the_smallest_extent_and_at_least_one_slice():
    assert coarse_stride(1.5, 80) == 26 and coarse_stride(2.0, 20) == 5 and coarse_stride(5.0, 15) == 1
    assert coarse_stride(10.0, 15) == 1 and coarse_stride(0.0, 80) == 1


def test_anchor_window_limits_the_search_and_nothing_else(tall):
    prepared, labels, _ = tall
    reference = labels == STRUCTURES["liver"]
    full = predict_organ(prepared, ReferenceRuntime(prepared, reference), 0.5)
    runtime = ReferenceRuntime(prepared, reference)
    windowed = predict_organ(prepared, runtime, 0.5, stride=5, window=(30, 69))
    assert np.array_equal(windowed[30:70], full[30:70]) and not windowed[:30].any() and not windowed[70:].any()
    assert runtime.calls == 40
    assert not predict_organ(prepared, runtime, 0.5, stride=5, window=(80, 79)).any()


def profile_volume(n: int) -> Prepared:
    """n slices of 4x4 whose network input is the slice's own index, for runtimes that answer by index."""
    record = CropRecord((n, 4, 4), np.tile([0, 4, 0, 4], (n, 1)), input_shape=(4, 4))
    return Prepared(np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32), record)


def random_profiles(seed: int, n: int, k: int, longest: int, count: int = 50):
    """z-profiles of runs of k to `longest` found slices separated by gaps of 1 to 5k slices."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        found = np.zeros(n, dtype=bool)
        z = int(rng.integers(0, 20))
        while z < n:
            length = int(rng.integers(k, longest))
            found[z:z + length] = True
            z += length + int(rng.integers(1, 5 * k))
        yield found


class ProfileRuntime:
    """Answers a whole slice of organ wherever the profile says found, and counts the slices it ran."""

    context = 0

    def __init__(self, found: np.ndarray) -> None:
        self.found, self.calls = found, 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += len(batch)
        return self.found[batch[:, 0, 0, 0].astype(int)][:, None, None] * np.ones((1, 4, 4), np.float32)


@pytest.mark.parametrize("margin", [None, 1, 3])
def test_every_run_at_least_a_stride_long_is_kept_whole(margin):
    """Random z-profiles: runs of >= k found slices anywhere, with gaps of any length, are never cut,
    whatever the fine margin."""
    n, k = 300, 6
    prepared = profile_volume(n)
    for found in random_profiles(0, n, k, 4 * k):
        mask = predict_organ(prepared, ProfileRuntime(found), 0.5, stride=k, margin=margin)
        assert np.array_equal(mask.any(axis=(1, 2)), found)


@pytest.mark.parametrize("margin", [1, 3])
def test_groups_the_coarse_pass_steps_over_are_kept_by_neither_strategy(margin):
    """Random z-profiles with runs of 1 to 2k slices: the search steps over some groups of findings that every
    slice finds; after `within_reach` both give the same mask: the groups with a finding on a coarse slice, which
    include every group with a run of k slices."""
    n, k = 300, 6
    prepared = profile_volume(n)
    coarse = first_pass(prepared, k)
    stepped_over = 0
    rng = np.random.default_rng(2)
    for _ in range(50):
        found = np.zeros(n, dtype=bool)
        z = int(rng.integers(0, 20))
        while z < n:
            length = int(rng.integers(1, 2 * k))
            found[z:z + length] = True
            z += length + int(rng.integers(1, 5 * k))
        full = predict_organ(prepared, ProfileRuntime(found), 0.5)
        fast = predict_organ(prepared, ProfileRuntime(found), 0.5, stride=k, margin=margin)
        stepped_over += not np.array_equal(fast, full)
        kept = within_reach(full, coarse, margin)
        assert np.array_equal(within_reach(fast, coarse, margin), kept)
        groups = np.split(np.flatnonzero(found), np.flatnonzero(np.diff(np.flatnonzero(found)) > margin) + 1)
        for group in groups:
            assert kept[group].all() if found[np.intersect1d(group, coarse)].any() else not kept[group].any()
            if max(len(r) for r in np.split(group, np.flatnonzero(np.diff(group) > 1) + 1)) >= k:
                assert kept[group].all()
    assert stepped_over > 0  # the case the rule is for happens


def test_first_pass_is_every_strideth_slice_with_body_in_the_window_and_its_last():
    prepared = profile_volume(20)
    assert first_pass(prepared, 6).tolist() == [0, 6, 12, 18, 19]
    assert first_pass(prepared, 6, (3, 10)).tolist() == [3, 9, 10]
    assert first_pass(prepared, 6, (12, 11)).size == 0


def test_bundled_esophagus_default_search_gives_the_masks_of_every_slice(data_dir):
    """On the real example CT (abdomen, 3 mm, coarse step 50 mm) every slice finds a 2-4-slice stray piece
    that the coarse pass steps over: both strategies must now give the same mask."""
    from organseg.ct.read import read_ct

    image = read_ct(data_dir / "example_ct.nii.gz")
    default = Segmenter(device="cpu").segment(image, ["esophagus"]).masks["esophagus"].full()
    full = Segmenter(device="cpu", strategy="full").segment(image, ["esophagus"]).masks["esophagus"].full()
    assert np.array_equal(default, full)


def test_an_organ_found_on_every_coarse_slice_runs_every_slice_once_in_full_batches():
    """The fine rounds would run every slice anyway, in small batches: the rest run at once instead."""
    n, k = 100, 6
    runtime = ProfileRuntime(np.ones(n, dtype=bool))
    batches = []
    predict = runtime.predict
    runtime.predict = lambda batch: batches.append(len(batch)) or predict(batch)
    assert predict_organ(profile_volume(n), runtime, 0.5, batch_size=16, stride=k, margin=1).all()
    assert runtime.calls == n and batches == [16, 2] + [16] * 5 + [2]  # 18 coarse slices, then the other 82


@pytest.mark.parametrize("found_from, batches", [(6, [16, 2] + [16] * 5 + [2]), (20, [16, 2, 16, 16, 16, 16, 1, 2, 1])])
def test_once_the_rounds_reach_most_of_the_window_the_rest_runs_in_one_pass(found_from, batches):
    """Stride 6, margin 3, found from row 6 (not on coarse row 0): the first fine round would run rows 3-99, 98% of
    the window with the coarse rows, so rows 1-2 run with them: every row once, in full batches. Found from row 20:
    the rounds reach rows 17-99 and coarse rows 0, 6 and 12, 86 of 100, below 90%: they run only those."""
    n, k = 100, 6
    found = np.arange(n) >= found_from
    runtime = ProfileRuntime(found)
    ran = []
    predict = runtime.predict
    runtime.predict = lambda batch: ran.append(len(batch)) or predict(batch)
    mask = predict_organ(profile_volume(n), runtime, 0.5, batch_size=16, stride=k, margin=3)
    assert np.array_equal(mask.any(axis=(1, 2)), found) and ran == batches


def test_bundled_stomach_on_the_example_ct_runs_every_slice_in_one_pass_after_the_coarse_one(data_dir, monkeypatch):
    """The bundled stomach network finds something on 111 of the real example CT's 112 slices (3 mm, coarse step
    8 slices), every coarse slice among them: the default search must run the 15 coarse slices, then the other 97
    at once in full batches of 16, as full inference would, and no fine rounds in small batches."""
    from organseg.ct.read import read_ct
    from organseg.method.runtime import OrtRuntime

    batches = []
    predict = OrtRuntime.predict
    monkeypatch.setattr(OrtRuntime, "predict", lambda self, batch: batches.append(len(batch)) or predict(self, batch))
    result = Segmenter(device="cpu").segment(read_ct(data_dir / "example_ct.nii.gz"), ["stomach"])
    assert result.masks["stomach"].box.any()
    assert batches == [15] + [16] * 6 + [1]


def test_segmenter_strategies_agree_with_real_networks(dicom_ct, tiny_models):
    organs = ["liver", "spleen"]
    fast = Segmenter(models=tiny_models, device="cpu").segment(dicom_ct, organs)
    full = Segmenter(models=tiny_models, device="cpu", strategy="full").segment(dicom_ct, organs)
    for key in organs:
        assert fast.masks[key].box.any()
        assert np.array_equal(fast.masks[key].full(), full.masks[key].full())


def test_unknown_strategy_is_refused(tiny_models):
    from organseg.errors import InputError
    with pytest.raises(InputError, match="strategy"):
        Segmenter(models=tiny_models, device="cpu", strategy="fastest")


def test_interpolation_keeps_every_run_and_fills_only_short_gaps():
    """Random z-profiles with identical masks on found slices: interpolation never loses a found slice of a
    run, adds slices only inside gaps shorter than the largest interpolated gap, and runs fewer slices."""
    n, k, max_gap = 300, 6, 4
    prepared = profile_volume(n)
    for found in random_profiles(1, n, k, 8 * k):
        exact, fast = ProfileRuntime(found), ProfileRuntime(found)
        predict_organ(prepared, exact, 0.5, stride=k, margin=2)
        got = predict_organ(prepared, fast, 0.5, stride=k, margin=2, max_gap=max_gap).any(axis=(1, 2))
        assert got[found].all()
        added = np.flatnonzero(got & ~found)
        gaps = np.split(np.flatnonzero(~found), np.flatnonzero(np.diff(np.flatnonzero(~found)) > 1) + 1)
        short = np.concatenate([g for g in gaps if len(g) < max_gap and 0 < g[0] and g[-1] < n - 1] or [[]])
        assert np.isin(added, short).all()
        assert fast.calls < exact.calls


@pytest.mark.parametrize("ct", ["example_ct.nii.gz", "example_ct_dicom"])
def test_interpolation_is_within_dice_099_of_full_inference_on_real_ct(data_dir, ct):
    """The bundled liver and spleen networks on the two real CTs (3 mm and 2 mm slices): the interpolate
    strategy's final masks against full inference, and fewer network runs."""
    from organseg.ct.read import read_ct
    from organseg.method.runtime import OrtRuntime

    calls = {"n": 0}
    predict = OrtRuntime.predict

    def counting(self, batch):
        calls["n"] += len(batch)
        return predict(self, batch)

    image = read_ct(data_dir / ct)
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OrtRuntime, "predict", counting)
        for strategy in ("full", "interpolate"):
            calls["n"] = 0
            runs[strategy] = Segmenter(device="cpu", strategy=strategy).segment(image, ["liver", "spleen"]), calls["n"]
    (full, full_calls), (fast, fast_calls) = runs["full"], runs["interpolate"]
    for key in ("liver", "spleen"):
        a, b = full.masks[key].full(), fast.masks[key].full()
        assert a.sum() > 1000
        assert dice(a, b) >= 0.99, key
    assert fast_calls < full_calls
