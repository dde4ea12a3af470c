"""OrganSegLogic: segment organs of a CT volume node into a segmentation node and a volume table. No Qt.

Runs inside Slicer (scene = slicer.mrmlScene) and on `slicer-core` (any vtkMRMLScene), so it is tested
without the application. A run is started with `start()`, computes in a background thread, and is
advanced from the main thread by `process()` (the widget calls it from a QTimer; `run()` loops on it).
Public methods are named in Slicer's camelCase, like the base class's `getParameterNode`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import slicer

from organseg.catalogue import parse_organs
from organseg.errors import InputError, ModelError
from organseg.method.model_package import ModelStore
from organseg.method.runtime import resolve_device
from organseg.results.plausibility import check_masks, flagged, warning_lines
from organseg.results.result import Progress
from organseg.results.stats import organ_stats
from organseg.segmenter import Segmenter, Settings

from organseg_slicer.job import SegmentationJob
from organseg_slicer.parameters import OrganSegParameterNode
from organseg_slicer.segments import organ_segments, segment_mask, segment_organ, set_organ_segment
from organseg_slicer.table import fill_table
from organseg_slicer.volumes import image_from_volume, volume_array, volume_ijk_to_ras

try:  # the application's base class; slicer-core (tests, scripts) has no ScriptedLoadableModule
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic
except ImportError:
    ScriptedLoadableModuleLogic = object

TABLE_REFERENCE = "OrganSegVolumeTable"
MODULE_NAME = "OrganSeg"


@dataclass
class Plan:
    """The organs a run will segment, in run order, and what the user should be told first."""

    organs: list[str]
    added_anchors: list[str]
    warnings: list[str]
    replaced: list[str] = field(default_factory=list)  #: organs whose existing segments will be replaced


@dataclass
class Run:
    """One segmentation run bound to its nodes; advanced by `OrganSegLogic.process`."""

    job: SegmentationJob
    plan: Plan
    volume_node: slicer.vtkMRMLScalarVolumeNode
    segmentation_node: slicer.vtkMRMLSegmentationNode
    table_node: slicer.vtkMRMLTableNode
    done: list[str] = field(default_factory=list)  #: organs whose segments are in the scene
    rows: dict[str, dict] = field(default_factory=dict)  #: segment ID -> statistics row of the table
    messages: list[str] = field(default_factory=list)  #: everything reported so far, one line each
    finished: bool = False

    @property
    def total(self) -> int:
        return len(self.plan.organs)


class OrganSegLogic(ScriptedLoadableModuleLogic):
    """Creates and updates organ segmentations and volume tables in an MRML scene."""

    def __init__(self, scene: slicer.vtkMRMLScene | None = None) -> None:
        if ScriptedLoadableModuleLogic is not object:
            ScriptedLoadableModuleLogic.__init__(self)
        self.scene = scene if scene is not None else slicer.mrmlScene

    def getParameterNode(self) -> OrganSegParameterNode:
        """The scene's OrganSeg parameter node (a singleton, created on first use), saved with the scene."""
        node = self.scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = self.scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(MODULE_NAME)
            node.SetAttribute("ModuleName", MODULE_NAME)
            node = self.scene.AddNode(node)
        return OrganSegParameterNode(node)

    # -- planning -----------------------------------------------------------------------------------------

    def settings(self) -> Settings:
        """The run this scene's parameter node describes (its interpolate switch picks the strategy)."""
        p = self.getParameterNode()
        return Settings(device=p.device, postprocess=p.postprocess,
                        strategy="interpolate" if p.interpolate else "coarse-to-fine")

    def plan(self, organs: list[str], options: Settings,
             segmentation_node: slicer.vtkMRMLSegmentationNode | None = None) -> Plan:
        """Organs in run order with the anchor organs their post-processing adds; verifies the models."""
        if not organs:
            raise InputError("no organ chosen; tick at least one organ")
        packages, added, warnings = Segmenter(options).plan([o.key for o in parse_organs(organs)])
        keys = [p.organ.key for p in sorted(packages, key=lambda p: not p.organ.anchor)]
        existing = set(organ_segments(segmentation_node).values()) if segmentation_node else set()
        return Plan(keys, added, warnings, [k for k in keys if k in existing])

    @staticmethod
    def modelProvenance() -> dict[str, str]:
        """Organ -> what a user should know of its newest installed model (demonstration, or trained on N
        patients with held-out Dice); organs whose model is missing or fails its checks are left out."""
        store, found = ModelStore(), {}
        for key in store.available():
            try:
                found[key] = store.get(key).provenance
            except ModelError:
                continue
        return found

    @staticmethod
    def availableDevices() -> list[str]:
        """Devices usable here: cpu always, cuda/mps when PyTorch is installed and sees them."""
        found = ["cpu"]
        for device in ("cuda", "mps"):
            try:
                found.append(resolve_device(device))
            except InputError:
                pass
        return found

    # -- running ------------------------------------------------------------------------------------------
    def start(self, volume_node: slicer.vtkMRMLScalarVolumeNode, organs: list[str], options: Settings,
              segmentation_node: slicer.vtkMRMLSegmentationNode | None = None) -> Run:
        """Start segmenting in the background into `segmentation_node` (None: a new node).

        An existing node is changed only when passed here, and then only its OrganSeg segments of the
        chosen organs are replaced; its other segments stay.
        """
        if volume_node is None or volume_node.GetImageData() is None:
            raise InputError("no input volume with voxel data selected")
        plan = self.plan(organs, options, segmentation_node)
        image = image_from_volume(volume_node)
        if segmentation_node is None:
            segmentation_node = self.newSegmentationNode(volume_node)
        table_node = self.tableNode(segmentation_node)
        job = SegmentationJob(Segmenter(options), image, list(organs), volume_node.GetName())
        run = Run(job, plan, volume_node, segmentation_node, table_node)
        if plan.added_anchors:
            run.messages.append(f"added anchor organs needed by post-processing: {', '.join(plan.added_anchors)}")
        run.messages.extend(plan.warnings)
        if plan.replaced:
            run.messages.append(f"replacing segments in '{segmentation_node.GetName()}': {', '.join(plan.replaced)}")
        job.start()
        return run

    def process(self, run: Run) -> list[str]:
        """Write organs that finished into the scene; returns the new status lines. Call from the main thread.

        A failure while writing into the scene cancels the run and is reported as its last line.
        """
        lines = []
        finished = not run.job.running
        try:
            for event in run.job.poll():
                lines.append(self._apply(run, event))
        except Exception as err:  # noqa: BLE001 - the scene keeps the organs written so far
            run.job.cancel()
            run.finished = True
            lines.append(f"error: {err}")
        if finished and not run.finished:
            run.finished = True
            if run.job.result is not None:
                lines.extend(run.job.result.warnings[len(run.plan.warnings):])
                rows = self._update_table(run.segmentation_node, run.volume_node, run.table_node, run.rows, check=True)
                lines.extend(warning_lines(rows))
                need = flagged(rows)
                lines.append(f"done: {len(run.done)} organs in '{run.segmentation_node.GetName()}'; "
                             + (f"{len(need)} need a look ({', '.join(need)}): see the Flags column" if need
                                else "no plausibility flags"))
            elif run.job.cancelled:
                lines.append(f"cancelled: kept the {len(run.done)} finished organs of {run.total}")
            else:
                lines.append(f"error: {run.job.error}")
        run.messages.extend(lines)
        return lines

    def _apply(self, run: Run, event: Progress) -> str:
        name = event.organ.display_name
        if event.stage != "done":
            return f"organ {event.index} of {event.total}: {name} running"
        segment_id = set_organ_segment(run.segmentation_node, event.organ, event.mask, run.volume_node)
        run.done.append(event.organ.key)
        run.rows.pop(segment_id, None)
        self._update_table(run.segmentation_node, run.volume_node, run.table_node, run.rows)
        voxels = int(event.mask.box.sum())
        return f"organ {event.index} of {event.total}: {name} done ({voxels} voxels, {event.seconds:.1f} s)"

    @staticmethod
    def cancel(run: Run) -> bool:
        """Ask a running segmentation to stop after its current batch of slices; False if it is not running."""
        if run.finished:
            return False
        run.job.cancel()
        return True

    def run(self, volume_node: slicer.vtkMRMLScalarVolumeNode, organs: list[str], options: Settings,
            segmentation_node: slicer.vtkMRMLSegmentationNode | None = None, poll_seconds: float = 0.05) -> Run:
        """Segment and wait (for scripts and tests); the same path the widget drives with its timer."""
        run = self.start(volume_node, organs, options, segmentation_node)
        while not run.finished:
            run.job.wait(poll_seconds)
            self.process(run)
        return run

    # -- nodes --------------------------------------------------------------------------------------------
    def newSegmentationNode(self, volume_node: slicer.vtkMRMLScalarVolumeNode) -> slicer.vtkMRMLSegmentationNode:
        """An empty segmentation on the volume's geometry, beside the volume in subject hierarchy."""
        name = self.scene.GenerateUniqueName(f"{volume_node.GetName()} organs")
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        node.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())
        self._place_beside(node, volume_node)
        return node

    def tableNode(self, segmentation_node: slicer.vtkMRMLSegmentationNode) -> slicer.vtkMRMLTableNode:
        """The segmentation's volume table, created (beside it in subject hierarchy) when missing."""
        table = segmentation_node.GetNodeReference(TABLE_REFERENCE)
        if table is None:
            name = self.scene.GenerateUniqueName(f"{segmentation_node.GetName()} volumes")
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
            table.SetLocked(True)
            segmentation_node.SetNodeReferenceID(TABLE_REFERENCE, table.GetID())
            self._place_beside(table, segmentation_node)
        return table

    def showTable(self, table_node: slicer.vtkMRMLTableNode) -> None:
        """Switch to a layout with a table view and show the table there (as Segment Statistics does).

        Works on the scene's layout and selection nodes, which Slicer's layout manager follows; a scene
        without them (slicer-core scripts) is left as it is.
        """
        layout = self.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layout is not None:
            layout.SetViewArrangement(slicer.vtkSlicerTablesLogic().GetLayoutWithTable(layout.GetViewArrangement()))
        selection = self.scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
        if selection is not None:
            selection.SetActiveTableID(table_node.GetID())
        for view in self.scene.GetNodesByClass("vtkMRMLTableViewNode"):  # what PropagateTableSelection does
            view.SetTableNodeID(table_node.GetID())

    def _place_beside(self, node: slicer.vtkMRMLNode, sibling: slicer.vtkMRMLNode) -> None:
        """Put the node under the sibling's parent (e.g. the CT's study) in subject hierarchy."""
        sh = self.scene.GetSubjectHierarchyNode()
        parent = sh.GetItemParent(sh.GetItemByDataNode(sibling)) if sh.GetItemByDataNode(sibling) else sh.GetSceneItemID()
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, parent)
        else:
            sh.CreateItem(parent, node)

    # -- statistics ---------------------------------------------------------------------------------------
    def recomputeTable(self, segmentation_node: slicer.vtkMRMLSegmentationNode,
                        volume_node: slicer.vtkMRMLScalarVolumeNode | None = None,
                        table_node: slicer.vtkMRMLTableNode | None = None) -> slicer.vtkMRMLTableNode:
        """Statistics of every OrganSeg segment from its current voxels (e.g. after Segment Editor edits).

        The volume defaults to the segmentation's reference geometry volume.
        """
        if volume_node is None:
            volume_node = segmentation_node.GetNodeReference(segmentation_node.GetReferenceImageGeometryReferenceRole())
        if volume_node is None:
            raise InputError(f"segmentation '{segmentation_node.GetName()}' references no CT volume; choose one")
        table_node = table_node or self.tableNode(segmentation_node)
        self._update_table(segmentation_node, volume_node, table_node, {}, check=True)
        return table_node

    @staticmethod
    def _update_table(segmentation_node: slicer.vtkMRMLSegmentationNode,
                      volume_node: slicer.vtkMRMLScalarVolumeNode, table_node: slicer.vtkMRMLTableNode,
                      rows: dict[str, dict], check: bool = False) -> list[dict]:
        """Fill the table in segment order; `rows` caches computed rows and gains the missing ones.

        With `check` every row gets its plausibility flags, from all OrganSeg segments of the node (anchors) and
        the CT (body contour); done once a run ends or on recompute, not after each organ. Returns the rows.
        """
        ct = volume_array(volume_node)
        spacing = tuple(np.linalg.norm(volume_ijk_to_ras(volume_node)[:3, :3], axis=0))
        segmentation = segmentation_node.GetSegmentation()
        segments = organ_segments(segmentation_node)
        for segment_id in segments:
            if segment_id not in rows:
                rows[segment_id] = organ_stats(segment_organ(segmentation_node, segment_id),
                                               segment_mask(segmentation_node, segment_id, volume_node), ct, spacing)
            rows[segment_id]["name"] = segmentation.GetSegment(segment_id).GetName()
        if check:
            masks = {key: (lambda sid=sid: segment_mask(segmentation_node, sid, volume_node))
                     for sid, key in segments.items()}
            flags = check_masks(image_from_volume(volume_node), ct, masks)
            for segment_id, key in segments.items():
                rows[segment_id]["flags"] = [f.as_dict() for f in flags[key]]
        ordered = [rows[sid] for sid in segments]
        fill_table(table_node, ordered)
        return ordered
