"""`segmentation.seg.nrrd` (organseg.export.seg_nrrd) read back by Slicer's own segmentation storage node.

Names, colours, SNOMED CT terminology and organ tags must be what a panel run gives, and every voxel must match
the masks, also where organs overlap (Slicer then stores them in separate layers).
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
pytest.importorskip("slicerio", reason="slicerio is not installed (pip install slicerio)")

from organseg.catalogue import organ  # noqa: E402
from organseg.cli import main  # noqa: E402
from organseg.export.seg_nrrd import FILE_NAME, write_seg_nrrd  # noqa: E402
from organseg_slicer.segments import organ_segments, segment_mask, segment_tag, terminology_entry  # noqa: E402

TS_LIVER, TS_SPLEEN = 5, 1


def load_in_slicer(scene, path):
    """The file as Slicer loads it: a segmentation node read by vtkMRMLSegmentationStorageNode."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node), f"Slicer could not read {path}"
    return node


def check_against_masks(add_volume, node, reference, masks):
    volume = add_volume(reference, "reference")
    segmentation = node.GetSegmentation()
    assert sorted(organ_segments(node).values()) == sorted(masks)
    for segment_id, key in organ_segments(node).items():
        o, segment = organ(key), segmentation.GetSegment(segment_id)
        assert segment.GetName() == o.display_name
        assert segment.GetColor() == pytest.approx(o.colour_float, abs=1e-6)
        assert segment_tag(segment, segment.GetTerminologyEntryTagName()) == terminology_entry(o)
        assert np.array_equal(segment_mask(node, segment_id, volume), masks[key]), key


def test_overlapping_real_organs_keep_every_voxel(scene, add_volume, tmp_path, dicom_ct, ts_labels):
    labels = sitk.GetArrayFromImage(ts_labels)
    liver, spleen = labels == TS_LIVER, labels == TS_SPLEEN
    # a third organ overlapping the liver, so the file needs a second layer
    masks = {"liver": liver, "spleen": spleen, "gallbladder": ndimage.binary_dilation(liver, iterations=2) & ~liver
             | liver & (np.arange(liver.shape[2]) < 256)}
    assert (masks["gallbladder"] & liver).any() and all(m.sum() > 1000 for m in masks.values())
    write_seg_nrrd(masks, dicom_ct, tmp_path / FILE_NAME)
    check_against_masks(add_volume, load_in_slicer(scene, tmp_path / FILE_NAME), dicom_ct, masks)


def test_command_line_result_opens_in_slicer_like_a_panel_run(scene, add_volume, tmp_path, data_dir, tiny_models):
    ct = sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))[:, :, 60:66]  # six slices through the liver: fast
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "-o", str(out), "--organs", "liver,spleen",
                 "--models", str(tiny_models), "--device", "cpu"]) == 0
    masks = {key: sitk.GetArrayFromImage(sitk.ReadImage(str(out / "masks" / f"{key}.nii.gz"))) > 0
             for key in ("liver", "spleen")}
    assert any(m.any() for m in masks.values())
    check_against_masks(add_volume, load_in_slicer(scene, out / FILE_NAME), ct, masks)
