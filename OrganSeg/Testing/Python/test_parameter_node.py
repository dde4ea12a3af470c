"""The module's parameter node is stored in the scene: a saved and reloaded scene gives back the same choices."""
from __future__ import annotations

import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
import slicer  # noqa: E402

from organseg_slicer.logic import OrganSegLogic  # noqa: E402


def test_choices_survive_saving_and_loading_the_scene(scene):
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    logic = OrganSegLogic(scene)
    p = logic.getParameterNode()
    assert (p.inputVolume, p.outputSegmentation, p.organs, p.device, p.postprocess, p.interpolate, p.roiNames) == \
        (None, None, "", "auto", True, False, "tg263")
    p.inputVolume, p.organs, p.device, p.postprocess, p.interpolate = volume, "liver,spleen", "cpu", False, True
    p.roiNames = "/clinic/names.json"
    assert logic.getParameterNode().parameterNode is p.parameterNode, "one parameter node per scene"
    scene.SetSaveToXMLString(1)
    scene.Commit()
    loaded = slicer.vtkMRMLScene()
    loaded.SetLoadFromXMLString(1)
    loaded.SetSceneXMLString(scene.GetSceneXMLString())
    loaded.Import()
    q = OrganSegLogic(loaded).getParameterNode()
    assert q.inputVolume is not None and q.inputVolume.GetName() == "CT" and q.outputSegmentation is None
    assert (q.organs, q.device, q.postprocess, q.interpolate) == ("liver,spleen", "cpu", False, True)
    assert q.roiNames == "/clinic/names.json"
