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


@pytest.fixture
def ct_volume(scene, dicom_ct):
    """The real DICOM CT series in a scalar volume node, under Patient/Study in subject hierarchy."""
    from organseg_slicer.volumes import volume_from_image
    node = volume_from_image(scene, dicom_ct, "CT")
    sh = scene.GetSubjectHierarchyNode()
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient")
    study = sh.CreateStudyItem(patient, "Study")
    sh.CreateItem(study, node)
    return node
