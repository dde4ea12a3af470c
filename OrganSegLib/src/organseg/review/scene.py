"""A case in a Slicer MRML scene (slicer-core): the CT as a volume node, one segment per organ mask, and back.

SimpleITK images are LPS, Slicer is RAS: the volume's IJK-to-RAS matrix is `organseg.ct.grid.ijk_to_ras` of the
CT, and every segment is set on that same matrix and extent, so voxel (i, j, k) of a mask is voxel (i, j, k)
of its segment, with no resampling either way.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from organseg.catalogue import organ
from organseg.ct.grid import ijk_to_ras

ORGAN_ATTRIBUTE = "organseg.organ"  #: segment tag holding the catalogue key


def _matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def add_ct(scene: slicer.vtkMRMLScene, ct: sitk.Image, name: str) -> slicer.vtkMRMLScalarVolumeNode:
    """The CT as a scalar volume node (voxels copied, (z, y, x) -> VTK's i-fastest order is the same memory)."""
    array = sitk.GetArrayViewFromImage(ct)
    image = vtk.vtkImageData()
    image.SetDimensions(ct.GetSize())
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_matrix(ijk_to_ras(ct)))
    node.CreateDefaultDisplayNodes()
    return node


def add_segmentation(scene: slicer.vtkMRMLScene, volume: slicer.vtkMRMLScalarVolumeNode,
                     masks: dict[str, np.ndarray], name: str) -> slicer.vtkMRMLSegmentationNode:
    """One segment per organ ((z, y, x) masks on the CT's grid), named and coloured from the catalogue."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    for key, mask in masks.items():
        o = organ(key)
        segment_id = node.GetSegmentation().AddEmptySegment(o.key, o.display_name, list(o.colour_float))
        node.GetSegmentation().GetSegment(segment_id).SetTag(ORGAN_ATTRIBUTE, o.key)
        labelmap = slicer.vtkOrientedImageData()
        labelmap.SetDimensions(mask.shape[::-1])
        labelmap.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=True))
        labelmap.SetImageToWorldMatrix(matrix)
        logic.SetBinaryLabelmapToSegment(labelmap, node, segment_id, logic.MODE_REPLACE)
    return node


def segment_mask(node: slicer.vtkMRMLSegmentationNode, segment_id: str,
                 volume: slicer.vtkMRMLScalarVolumeNode) -> np.ndarray:
    """The segment as a (z, y, x) bool array on the volume's grid (segments share labelmap layers: the layer
    holds this segment where it equals the segment's label value)."""
    labelmap = slicer.vtkOrientedImageData()
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.GetSegmentBinaryLabelmapRepresentation(node, segment_id, labelmap, False)
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(volume.GetImageData().GetExtent())
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    reference.SetImageToWorldMatrix(matrix)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(labelmap, reference, resampled)
    dims = resampled.GetDimensions()
    scalars = resampled.GetPointData().GetScalars()
    if scalars is None:  # an empty segment
        return np.zeros(dims[::-1], dtype=bool)
    label = node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[::-1]) == label


def organ_segments(node: slicer.vtkMRMLSegmentationNode) -> dict[str, str]:
    """Organ key -> segment ID of the segments made from organ masks, in segment order."""
    segmentation = node.GetSegmentation()
    found = {}
    for index in range(segmentation.GetNumberOfSegments()):
        value = vtk.reference("")
        if segmentation.GetNthSegment(index).GetTag(ORGAN_ATTRIBUTE, value):
            found[str(value)] = segmentation.GetNthSegmentID(index)
    return found
