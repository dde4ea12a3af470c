"""The module's parameter node: the chosen CT, output, organs and options, saved with the scene.

Slicer's `@parameterNodeWrapper` (as in its VectorToScalarVolume module) stores each field in a
vtkMRMLScriptedModuleNode: MRML nodes as node references, the rest as text parameters.
"""
from __future__ import annotations

import slicer
from slicer.parameterNodeWrapper import parameterNodeWrapper


@parameterNodeWrapper
class OrganSegParameterNode:
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    #: None: each run creates a new segmentation; a node: its OrganSeg segments of the chosen organs are replaced
    outputSegmentation: slicer.vtkMRMLSegmentationNode
    organs: str = ""  #: comma-separated catalogue keys
    device: str = "auto"  #: auto, cpu, cuda or mps
    postprocess: bool = True
    interpolate: bool = False
    roiNames: str = "tg263"  #: names of exported ROIs and segments: tg263, catalogue or a clinic's names file (JSON)
