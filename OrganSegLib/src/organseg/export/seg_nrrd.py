"""Slicer's own segmentation file (`.seg.nrrd`, written with `slicerio`): a command-line result that opens in
3D Slicer as after a panel run, one segment per organ with the catalogue's name, colour and SNOMED CT
terminology, and the organ tag by which the OrganSeg module recognises (recomputes, exports) its segments.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import CATEGORY, Organ, organ

FILE_NAME = "segmentation.seg.nrrd"
#: Segment tag holding the catalogue key: marks the segments OrganSeg made (others are never touched).
ORGAN_TAG = "OrganSeg.Organ"
TERMINOLOGY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def terminology(o: Organ) -> dict:
    """The organ's terminology entry as slicerio writes it (category and type from the catalogue)."""
    return {"contextName": TERMINOLOGY_CONTEXT, "category": list(CATEGORY), "type": list(o.snomed_type),
            "anatomicContextName": ANATOMIC_CONTEXT}


def ijk_to_lps(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k) to LPS millimetres (SimpleITK's and NRRD's space)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(image.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def write_seg_nrrd(masks: dict[str, np.ndarray], reference: sitk.Image, path: str | Path) -> None:
    """Write (z, y, x) boolean masks on the reference grid as one segment each, in the order given.

    Overlapping organs go to separate layers, as Slicer stores them, so no voxel is lost.
    """
    import slicerio

    segmentation = slicerio.create_segmentation(reference.GetSize(), ijk_to_lps(reference))
    for key, mask in masks.items():
        o = organ(key)
        slicerio.add_segment(segmentation, np.asarray(mask, dtype=bool).transpose(2, 1, 0), {
            "id": o.key, "name": o.display_name, "color": list(o.colour_float), "terminology": terminology(o),
            "tags": {ORGAN_TAG: o.key}})
    segmentation["containedRepresentationNames"] = ["Binary labelmap"]
    slicerio.write_segmentation(str(path), segmentation)
