"""Volume nodes -> SimpleITK images, and masks <-> oriented image data, geometry exact.

Slicer's volume nodes hold voxels as vtkImageData (i fastest, i.e. a (k, j, i) numpy array) and their
geometry as an IJK-to-RAS matrix; SimpleITK images are in LPS. `image_from_volume` inverts
`organseg.ct.grid.ijk_to_ras`, so origin, spacing and direction survive (the tests load images the other way).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from organseg.ct.grid import LPS_TO_RAS
from organseg.errors import InputError


def matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def numpy_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def volume_ijk_to_ras(volume_node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The node's own IJK-to-RAS matrix (parent transforms not applied)."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return matrix_to_numpy(matrix)


def volume_array(volume_node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The voxels as a (k, j, i) array sharing memory with the node's image data."""
    image = volume_node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise InputError(f"volume '{volume_node.GetName()}' has no voxel data")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(f"volume '{volume_node.GetName()}' has {image.GetNumberOfScalarComponents()} "
                         "components per voxel; a CT has one")
    dims = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])


def image_from_volume(volume_node: slicer.vtkMRMLVolumeNode) -> sitk.Image:
    """A SimpleITK copy of the volume in LPS, with the node's origin, spacing and direction."""
    ijk_to_ras_matrix = volume_ijk_to_ras(volume_node)
    axes = ijk_to_ras_matrix[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    image = sitk.GetImageFromArray(np.array(volume_array(volume_node)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((LPS_TO_RAS @ axes / spacing).ravel().tolist())
    image.SetOrigin((LPS_TO_RAS @ ijk_to_ras_matrix[:3, 3]).tolist())
    return image


def oriented_image(array: np.ndarray, ijk_to_ras_matrix: np.ndarray,
                   offset: tuple[int, int, int] = (0, 0, 0)) -> slicer.vtkOrientedImageData:
    """Oriented image data of a (k, j, i) array placed at voxel `offset` (k, j, i) of a volume's grid."""
    image = slicer.vtkOrientedImageData()
    k0, j0, i0 = offset
    nk, nj, ni = array.shape
    image.SetExtent(i0, i0 + ni - 1, j0, j0 + nj - 1, k0, k0 + nk - 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
    image.SetImageToWorldMatrix(numpy_to_matrix(ijk_to_ras_matrix))
    return image


def reference_geometry(volume_node: slicer.vtkMRMLVolumeNode) -> slicer.vtkOrientedImageData:
    """Empty oriented image data with the volume's grid (extent and IJK-to-RAS), to resample onto."""
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(volume_node.GetImageData().GetExtent())
    reference.SetImageToWorldMatrix(numpy_to_matrix(volume_ijk_to_ras(volume_node)))
    return reference


def oriented_to_array(image: slicer.vtkOrientedImageData) -> np.ndarray:
    """The voxels of oriented image data as a (k, j, i) array (a copy)."""
    dims = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).copy()
