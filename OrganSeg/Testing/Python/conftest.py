"""Fixtures for testing the OrganSeg module's logic on slicer-core (Slicer's MRML without the application).

The application registers the segmentation converter rules at start-up (Segmentations module setup) and
creates subject hierarchy items for new nodes; here `scene` does the first and the tests the second.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))
try:  # slicer-core has no slicer.parameterNodeWrapper, which the module's parameter node uses
    from slicer_harness import parameter_node_wrapper
    parameter_node_wrapper.install()
except ImportError:  # no slicer-core: the tests that need it skip
    pass


def _register_converter_rules(slicer) -> None:
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                     slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
            factory.RegisterConverterRule(rule())


@pytest.fixture
def scene():
    """An empty MRML scene as Slicer sets it up."""
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
    _register_converter_rules(slicer)
    return slicer.vtkMRMLScene()


def volume_from_image(scene, image, name: str):
    """A new scalar volume node in the scene holding a copy of a SimpleITK image, geometry from `ijk_to_ras`
    (as Slicer's volume reader makes it; the module itself never loads volumes)."""
    import SimpleITK as sitk
    import vtk
    from vtk.util import numpy_support

    from organseg.ct.grid import ijk_to_ras
    from organseg_slicer.volumes import numpy_to_matrix

    image_data = vtk.vtkImageData()
    image_data.SetDimensions(image.GetSize())
    image_data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(sitk.GetArrayFromImage(image).ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image_data)
    node.SetIJKToRASMatrix(numpy_to_matrix(ijk_to_ras(image)))
    node.CreateDefaultDisplayNodes()
    return node


@pytest.fixture
def add_volume(scene):
    """`add_volume(image, name)`: a SimpleITK image as a new scalar volume node of the scene."""
    return lambda image, name: volume_from_image(scene, image, name)


@pytest.fixture
def ct_volume(scene, dicom_ct):
    """The real DICOM CT series in a scalar volume node, under Patient/Study in subject hierarchy."""
    node = volume_from_image(scene, dicom_ct, "CT")
    sh = scene.GetSubjectHierarchyNode()
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient")
    study = sh.CreateStudyItem(patient, "Study")
    sh.CreateItem(study, node)
    return node
