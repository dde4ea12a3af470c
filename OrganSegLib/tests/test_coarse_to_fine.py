"""Coarse-to-fine slice selection gives exactly the masks of full slice-by-slice inference.

The selection is checked on real anatomy: a taller real volume (the DICOM series stacked with its mirror
image along z) and a runtime that answers, for each slice it is given, TotalSegmentator's mask of a structure
(a perfect network), so organs of every height and position are covered; then end to end with real networks.
"""
import numpy as np
import pytest
import SimpleITK as sitk

from organseg.inference import coarse_stride, predict_organ
from organseg.orientation import Reorientation
from organseg.preprocess import CropRecord, Prepared, prepare
from organseg.segmenter import Segmenter

#: TotalSegmentator labels of the DICOM series, from one to all of its 20 slices.
STRUCTURES = {"liver": 5, "pancreas": 7, "adrenal_gland_right": 8, "colon": 20, "vertebrae_T11": 33,
              "portal_vein": 64, "rib_left_12": 103, "rib_right_6": 109}


class ReferenceRuntime:
    """Answers each prepared slice with the reference mask of that slice, and counts the slices it ran."""

    name = "reference"

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


@pytest.mark.parametrize("structure", STRUCTURES)
def test_coarse_to_fine_equals_full_inference_on_real_anatomy(tall, structure):
    prepared, labels, slice_mm = tall
    reference = labels == STRUCTURES[structure]
    full_runtime = ReferenceRuntime(prepared, reference)
    full = predict_organ(prepared, full_runtime, 0.5, batch_size=16)
    runtime = ReferenceRuntime(prepared, reference)
    stride = coarse_stride(slice_mm)
    fast = predict_organ(prepared, runtime, 0.5, batch_size=16, stride=stride)
    assert stride == 5 and full.any()
    assert np.array_equal(fast, full)
    # The slices run: the coarse ones and those within a stride of a slice holding the structure.
    present = np.flatnonzero(full.any(axis=(1, 2)))
    near = np.abs(np.arange(len(full))[:, None] - present[None, :]).min(axis=1) <= stride
    coarse = np.isin(np.arange(len(full)), np.r_[np.arange(0, len(full), stride), len(full) - 1])
    assert full_runtime.calls == len(full) and runtime.calls == np.count_nonzero(near | coarse)


def test_anchor_window_limits_the_search_and_nothing_else(tall):
    prepared, labels, _ = tall
    reference = labels == STRUCTURES["liver"]
    full = predict_organ(prepared, ReferenceRuntime(prepared, reference), 0.5)
    runtime = ReferenceRuntime(prepared, reference)
    windowed = predict_organ(prepared, runtime, 0.5, stride=5, window=(30, 69))
    assert np.array_equal(windowed[30:70], full[30:70]) and not windowed[:30].any() and not windowed[70:].any()
    assert runtime.calls == 40
    assert not predict_organ(prepared, runtime, 0.5, stride=5, window=(80, 79)).any()


def test_every_run_at_least_a_stride_long_is_kept_whole():
    """Random z-profiles: runs of >= k found slices anywhere, with gaps of any length, are never cut."""
    rng = np.random.default_rng(0)
    n, k = 300, 6
    record = CropRecord((n, 4, 4), np.tile([0, 4, 0, 4], (n, 1)), input_shape=(4, 4))
    prepared = Prepared(np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32), record)
    for _ in range(50):
        found = np.zeros(n, dtype=bool)
        z = int(rng.integers(0, 20))
        while z < n:
            length = int(rng.integers(k, 4 * k))
            found[z:z + length] = True
            z += length + int(rng.integers(1, 5 * k))

        class Profile:
            def predict(self, batch: np.ndarray) -> np.ndarray:
                return found[batch[:, 0, 0, 0].astype(int)][:, None, None] * np.ones((1, 4, 4), np.float32)

        mask = predict_organ(prepared, Profile(), 0.5, stride=k)
        assert np.array_equal(mask.any(axis=(1, 2)), found)


def test_segmenter_strategies_agree_with_real_networks(dicom_ct, tiny_models):
    organs = ["liver", "spleen"]
    fast = Segmenter(tiny_models, "cpu").segment(dicom_ct, organs)
    full = Segmenter(tiny_models, "cpu", strategy="full").segment(dicom_ct, organs)
    for key in organs:
        assert fast.masks[key].box.any()
        assert np.array_equal(fast.masks[key].full(), full.masks[key].full())


def test_unknown_strategy_is_refused(tiny_models):
    from organseg.errors import InputError
    with pytest.raises(InputError, match="strategy"):
        Segmenter(tiny_models, "cpu", strategy="fast")
