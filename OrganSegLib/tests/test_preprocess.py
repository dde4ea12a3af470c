"""Orientation, body crop and the pre-processing record: exact and invertible on the real fixtures."""
import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from organseg.ct.orientation import Reorientation
from organseg.ct.read import read_ct
from organseg.method.body import body_boxes, body_mask, slice_boxes
from organseg.method.preprocess import INPUT_HEIGHT, INPUT_WIDTH, LEVELS, normalise, prepare, resize_slice

TS_LIVER = 5


@pytest.mark.parametrize("perm,flips", [((0, 1, 2), (False, False, False)), ((2, 0, 1), (True, False, True)),
                                        ((1, 2, 0), (False, True, True))])
def test_reorientation_is_exactly_invertible(perm, flips):
    direction = np.zeros((3, 3))
    for image_axis, world in enumerate(perm):
        direction[world, image_axis] = -1.0 if flips[image_axis] else 1.0
    image = sitk.Image(5, 6, 7, sitk.sitkInt16)
    image.SetDirection(direction.ravel().tolist())
    array = np.arange(7 * 6 * 5).reshape(7, 6, 5)
    orient = Reorientation.of(image)
    canonical = orient.to_canonical(array)
    assert np.array_equal(orient.from_canonical(canonical), array)


def test_canonical_layout_is_superior_posterior_left_for_both_fixture_conventions(data_dir, dicom_ct):
    """The RAS-stored NIfTI and the LPS DICOM map to the same canonical axes (index 0 -> inferior, right, anterior)."""
    for image in (dicom_ct, read_ct(data_dir / "example_ct.nii.gz")):
        orient = Reorientation.of(image)
        size = image.GetSize()
        corners = np.array([image.TransformIndexToPhysicalPoint([int(i * (s - 1)) for i, s in zip(c, size)])
                            for c in itertools.product((0, 1), repeat=3)])
        idx = np.indices(size[::-1]).reshape(3, -1).T  # (z, y, x) voxel indices in array order
        zyx = orient.to_canonical(np.arange(np.prod(size)).reshape(size[::-1]))
        first, last = zyx.flat[0], zyx.flat[-1]
        p_first = np.array(image.TransformIndexToPhysicalPoint(idx[first][::-1].tolist()))
        p_last = np.array(image.TransformIndexToPhysicalPoint(idx[last][::-1].tolist()))
        assert np.all(p_last > p_first), f"canonical axes must run L, P, S (LPS increasing); corners {corners}"


def test_body_mask_covers_the_patient_not_the_air(dicom_ct):
    hu = sitk.GetArrayFromImage(dicom_ct).astype(np.float32)
    body = body_mask(hu)
    assert body.mean() > 0.2
    assert np.median(hu[body]) > -200  # soft tissue inside
    assert np.median(hu[~body]) < -900  # air outside
    assert body[:, 256, 256].all()  # the centre of a torso slice is body (lungs and bowel gas filled)
    for z in range(len(body)):  # no hole left in any slice, as scipy sees holes
        assert np.array_equal(ndimage.binary_fill_holes(body[z]), body[z])


def test_crop_boxes_are_the_boxes_of_the_body_contour(dicom_ct, data_dir):
    """body_boxes skips building the filled contour; its boxes must be the contour's, slice by slice."""
    for image in (dicom_ct, read_ct(data_dir / "example_ct.nii.gz")):
        hu = Reorientation.of(image).to_canonical(sitk.GetArrayFromImage(image)).astype(np.float32)
        assert np.array_equal(body_boxes(hu), slice_boxes(body_mask(hu)))
        given = prepare(hu, boxes=slice_boxes(body_mask(hu)))  # the segmenter's way: one body mask per CT
        assert np.array_equal(given.record.boxes, prepare(hu).record.boxes) and given.inputs.any()


def test_prepare_on_the_stored_integer_volume_equals_a_float32_copy(dicom_ct, data_dir):
    """The segmenter keeps the CT in its stored type; the network inputs and crop boxes must not change."""
    for image in (dicom_ct, read_ct(data_dir / "example_ct.nii.gz")):
        stored = np.ascontiguousarray(Reorientation.of(image).to_canonical(sitk.GetArrayViewFromImage(image)))
        assert np.issubdtype(stored.dtype, np.integer), stored.dtype
        a, b = prepare(stored), prepare(stored.astype(np.float32))
        assert np.array_equal(a.record.boxes, b.record.boxes)
        assert np.array_equal(a.inputs, b.inputs)


def test_normalise_clips_scales_and_quantises_to_240_levels():
    hu = np.linspace(-200, 300, 10001, dtype=np.float32)
    out = normalise(hu)
    assert out.min() == 0.0 and out.max() == 1.0
    assert len(np.unique(out)) == LEVELS


def test_resize_preserves_a_constant_and_its_size():
    out = resize_slice(np.full((301, 257), 7.0, np.float32), (INPUT_HEIGHT, INPUT_WIDTH))
    assert out.shape == (INPUT_HEIGHT, INPUT_WIDTH)
    assert np.allclose(out, 7.0)


def test_mask_round_trip_through_crop_and_resize_changes_under_one_percent(dicom_ct, ts_labels):
    hu = sitk.GetArrayFromImage(dicom_ct).astype(np.float32)
    liver = sitk.GetArrayFromImage(ts_labels) == TS_LIVER
    prepared = prepare(hu)
    assert prepared.inputs.shape == (20, INPUT_HEIGHT, INPUT_WIDTH)
    back = np.zeros_like(liver)
    for z in prepared.record.slices_with_body:
        small = prepared.record.forward(liver.astype(np.float32), z)
        index, values = prepared.record.inverse(small, z)
        back[z][index] = values >= 0.5
    changed = np.count_nonzero(back ^ liver)
    assert changed / liver.sum() < 0.01, f"{changed} of {liver.sum()} liver voxels changed"
