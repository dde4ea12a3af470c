"""Organ segments in a vtkMRMLSegmentationNode: catalogue name, colour, SNOMED CT terminology, voxels.

A segment made by OrganSeg carries the tag `ORGAN_TAG` = catalogue key, so a segmentation can hold other
segments (manual ones, other tools') that are never touched, and re-running replaces only its own.
"""
from __future__ import annotations

import numpy as np
import slicer
import vtk

from organseg.catalogue import CATEGORY, Organ, organ
from organseg.errors import InputError
from organseg.export.seg_nrrd import ANATOMIC_CONTEXT, ORGAN_TAG, TERMINOLOGY_CONTEXT
from organseg.results.result import OrganMask

from organseg_slicer.volumes import oriented_image, oriented_to_array, reference_geometry, volume_ijk_to_ras


def terminology_entry(o: Organ) -> str:
    """Slicer's serialised terminology entry for the organ (category and type from the catalogue)."""
    scheme, code, meaning = CATEGORY
    type_scheme, type_code, type_meaning = o.snomed_type
    return slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        TERMINOLOGY_CONTEXT, code, scheme, meaning, type_code, type_scheme, type_meaning, "", "", "",
        ANATOMIC_CONTEXT, "", "", "", "", "", "")


def segment_tag(segment: slicer.vtkSegment, name: str) -> str | None:
    """A segment's tag value, None if absent."""
    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else None


def organ_segments(segmentation_node: slicer.vtkMRMLSegmentationNode) -> dict[str, str]:
    """Segment ID -> organ key of the segments OrganSeg made, in segment order."""
    segmentation = segmentation_node.GetSegmentation()
    found = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        key = segment_tag(segment, ORGAN_TAG)
        if key:
            found[segmentation.GetNthSegmentID(index)] = key
    return found


def set_organ_segment(segmentation_node: slicer.vtkMRMLSegmentationNode, o: Organ, mask: OrganMask,
                      volume_node: slicer.vtkMRMLVolumeNode) -> str:
    """Create or replace the organ's segment from a mask on the volume's grid; returns the segment ID."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = next((sid for sid, key in organ_segments(segmentation_node).items() if key == o.key), None)
    if segment_id is None:
        segment_id = segmentation.AddEmptySegment(segmentation.GenerateUniqueSegmentID(o.key), o.display_name,
                                                  list(o.colour_float))
    segment = segmentation.GetSegment(segment_id)
    segment.SetName(o.display_name)
    segment.SetColor(*o.colour_float)
    segment.SetTag(ORGAN_TAG, o.key)
    segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_entry(o))
    box = mask.box if mask.box.size else np.zeros((1, 1, 1), dtype=bool)
    labelmap = oriented_image(box.astype(np.uint8), volume_ijk_to_ras(volume_node), mask.offset)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(labelmap, segmentation_node, segment_id, logic.MODE_REPLACE):
        raise InputError(f"segmentation '{segmentation_node.GetName()}': could not write segment {o.display_name}")
    return segment_id


def segment_mask(segmentation_node: slicer.vtkMRMLSegmentationNode, segment_id: str,
                 volume_node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The segment as a boolean (k, j, i) array on the volume's grid (nearest-neighbour resampling).

    Segments share labelmap layers; the layer holds this segment where it equals the segment's label value.
    """
    labelmap = slicer.vtkOrientedImageData()
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, labelmap, False):
        raise InputError(f"segmentation '{segmentation_node.GetName()}': segment '{segment_id}' has no labelmap")
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference_geometry(volume_node), resampled)
    label = segmentation_node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    return oriented_to_array(resampled) == label


def segment_organ(segmentation_node: slicer.vtkMRMLSegmentationNode, segment_id: str) -> Organ:
    return organ(segment_tag(segmentation_node.GetSegmentation().GetSegment(segment_id), ORGAN_TAG))
