"""OrganSeg: per-organ CT segmentation in 3D Slicer with light 2D Res-UNets.

Module, widget, logic and self-test, as Slicer expects them in this file. The logic (organseg_slicer.logic,
no Qt) also runs on `slicer-core`, so it is tested without the application; the widget here stays thin:
it fills the controls, starts a background run and polls it with a QTimer.
"""
from __future__ import annotations

import os
from pathlib import Path

import slicer

from slicer.util import VTKObservationMixin

try:  # the application; on slicer-core (tests, scripts) only the logic below is usable
    import qt
    from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleTest,
                                               ScriptedLoadableModuleWidget)
except ImportError:
    class _NeedsSlicerApplication:
        """Base of the module, widget and test classes where Slicer's application is absent."""

    ScriptedLoadableModule = ScriptedLoadableModuleWidget = ScriptedLoadableModuleTest = _NeedsSlicerApplication

try:
    from organseg_slicer.logic import OrganSegLogic, Options
except ImportError:  # first run in Slicer: the organseg library is not installed yet; the widget offers it
    OrganSegLogic = Options = None

POLL_MS = 200


class OrganSeg(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "OrganSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["OrganSeg contributors"]
        self.parent.helpText = (
            "Segments organs in CT, one light 2D Res-UNet per organ, on the CPU (ONNX Runtime) or a GPU. "
            "Choose the organs, press Segment: each organ appears as soon as it is done, with a volume table. "
            "After editing segments in Segment Editor press Recompute table.")
        self.parent.acknowledgementText = (
            "Method: Salimi et al., per-organ 2D Res-UNets with anchor-organ post-processing. "
            "Example CT from the TotalSegmentator repository (Apache-2.0).")


class OrganSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: controls in Resources/UI/OrganSeg.ui, work in OrganSegLogic."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.run = None
        self.organItems = {}
        self.timer = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/OrganSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.onPoll)
        self.ui.segmentButton.clicked.connect(self.onSegment)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.selectAllButton.clicked.connect(lambda: self.checkAll(qt.Qt.Checked))
        self.ui.selectNoneButton.clicked.connect(lambda: self.checkAll(qt.Qt.Unchecked))
        self.ui.recomputeTableButton.clicked.connect(self.onRecomputeTable)
        self.ui.exportRtstructButton.clicked.connect(lambda: self.onExport("rtstruct"))
        self.ui.exportDicomSegButton.clicked.connect(lambda: self.onExport("dicom_seg"))
        self.ui.inputVolumeSelector.currentNodeChanged.connect(self.updateButtons)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        if not self.ensureLibrary(ask=False):
            self.ui.statusText.setPlainText("OrganSeg needs the organseg and onnxruntime Python packages; "
                                            "press Segment to install them.")
        self.updateButtons()

    def cleanup(self):
        self.onCancel()
        if self.timer:
            self.timer.stop()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        self.onCancel()

    # -- library and controls ---------------------------------------------------------------------------
    def ensureLibrary(self, ask=True):
        """Import the logic, installing organseg and ONNX Runtime first (after one confirmation)."""
        global OrganSegLogic, Options
        from organseg_slicer.dependencies import install, missing_requirements

        missing = missing_requirements()
        if missing:
            if not ask or not slicer.util.confirmOkCancelDisplay(
                    f"OrganSeg needs these Python packages: {', '.join(missing)}. Install them now? "
                    "numpy, SimpleITK and scipy stay at the versions Slicer has.", windowTitle="OrganSeg"):
                return False
            with slicer.util.WaitCursor():
                install(missing)
        if self.logic is None:
            from organseg_slicer.logic import Options as options, OrganSegLogic as logic
            OrganSegLogic, Options = logic, options
            self.logic = OrganSegLogic()
            self.fillOrgans()
            self.fillDevices()
        return True

    def fillOrgans(self):
        """Organ checklist grouped by region; anchors marked; organs without a model disabled."""
        from organseg.catalogue import ORGANS, REGIONS
        from organseg.model_package import ModelStore

        installed = ModelStore().available()
        tree = self.ui.organTree
        tree.clear()
        self.organItems = {}
        for region in REGIONS:
            group = qt.QTreeWidgetItem(tree, [region.capitalize()])
            group.setFlags(group.flags() | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsAutoTristate)
            for organ in (o for o in ORGANS if o.region == region):
                item = qt.QTreeWidgetItem(group, [organ.display_name + (" \u2693" if organ.anchor else "")])
                item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                item.setCheckState(0, qt.Qt.Unchecked)
                item.setData(0, qt.Qt.UserRole, organ.key)
                item.setToolTip(0, f"{organ.snomed_meaning} (SNOMED CT {organ.snomed_code})")
                if organ.key not in installed:
                    item.setDisabled(True)
                    item.setToolTip(0, f"no model installed for {organ.key}")
                self.organItems[organ.key] = item
            group.setExpanded(True)

    def fillDevices(self):
        available = OrganSegLogic.available_devices()
        self.ui.deviceComboBox.clear()
        for device in ("auto", "cpu", "cuda", "mps"):
            usable = device == "auto" or device in available
            self.ui.deviceComboBox.addItem(device if usable else f"{device} (not available)", device)

    def checkAll(self, state):
        for item in self.organItems.values():
            if not item.isDisabled():
                item.setCheckState(0, state)

    def chosenOrgans(self):
        return [key for key, item in self.organItems.items() if item.checkState(0) == qt.Qt.Checked]

    def updateButtons(self, *_):
        running = self.run is not None and not self.run.finished
        self.ui.segmentButton.enabled = not running and self.ui.inputVolumeSelector.currentNode() is not None
        self.ui.cancelButton.enabled = running
        for button in (self.ui.recomputeTableButton, self.ui.exportRtstructButton, self.ui.exportDicomSegButton):
            button.enabled = not running

    def status(self, lines):
        for line in lines:
            self.ui.statusText.appendPlainText(line)

    # -- running ------------------------------------------------------------------------------------------
    def onSegment(self):
        if not self.ensureLibrary():
            return
        from organseg.errors import OrganSegError
        from organseg_slicer.dependencies import torch_from_pytorch_utils

        volume = self.ui.inputVolumeSelector.currentNode()
        output = self.ui.outputSegmentationSelector.currentNode()
        device = self.ui.deviceComboBox.currentData
        if device in ("cuda", "mps"):
            problem = torch_from_pytorch_utils()
            if problem:
                slicer.util.errorDisplay(problem)
                return
        options = Options(device=device, postprocess=self.ui.postprocessCheckBox.checked,
                          interpolate=self.ui.interpolateCheckBox.checked)
        try:
            plan = self.logic.plan(self.chosenOrgans(), options, output)
            if plan.replaced and not slicer.util.confirmOkCancelDisplay(
                    f"'{output.GetName()}' already holds OrganSeg segments of: {', '.join(plan.replaced)}. "
                    "Replace them? Its other segments stay.", windowTitle="OrganSeg"):
                return
            for key in plan.added_anchors:
                self.organItems[key].setCheckState(0, qt.Qt.Checked)
            self.run = self.logic.start(volume, self.chosenOrgans(), options, output)
        except OrganSegError as err:
            slicer.util.errorDisplay(str(err))
            return
        self.ui.statusText.setPlainText("\n".join(self.run.messages))
        self.ui.progressBar.setMaximum(self.run.total)
        self.ui.progressBar.setValue(0)
        self.timer.start()
        self.updateButtons()

    def onPoll(self):
        try:
            self.status(self.logic.process(self.run))
        except Exception as err:  # noqa: BLE001 - keep the panel usable, report the problem
            self.run.job.cancel()
            self.run.finished = True
            self.status([f"error: {err}"])
        self.ui.progressBar.setValue(len(self.run.done))
        if self.run.finished:
            self.timer.stop()
            selection = slicer.app.applicationLogic().GetSelectionNode()
            selection.SetActiveTableID(self.run.table_node.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
            self.updateButtons()

    def onCancel(self):
        if self.run is not None and not self.run.finished:
            self.run.job.cancel()
            self.status(["cancelling after the current batch of slices..."])

    # -- results ------------------------------------------------------------------------------------------
    def currentSegmentation(self):
        node = self.ui.outputSegmentationSelector.currentNode()
        return node or (self.run.segmentation_node if self.run else None)

    def onRecomputeTable(self):
        from organseg.errors import OrganSegError

        segmentation = self.currentSegmentation()
        if segmentation is None or not self.ensureLibrary():
            return
        try:
            table = self.logic.recompute_table(segmentation)
        except OrganSegError as err:
            slicer.util.errorDisplay(str(err))
            return
        self.status([f"table '{table.GetName()}' recomputed from the current segments"])

    def onExport(self, kind):
        from organseg.errors import OrganSegError
        from organseg_slicer.dicom_export import export

        segmentation = self.currentSegmentation()
        if segmentation is None or not self.ensureLibrary():
            return
        volume = segmentation.GetNodeReference(segmentation.GetReferenceImageGeometryReferenceRole())
        volume = volume or self.ui.inputVolumeSelector.currentNode()
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), f"Export {kind.upper()}",
                                              f"{segmentation.GetName()}-{kind}.dcm", "DICOM (*.dcm)")
        if not path:
            return
        try:
            with slicer.util.WaitCursor():
                notes = export(segmentation, volume, kind, path)
        except OrganSegError as err:
            slicer.util.errorDisplay(str(err))
            return
        self.status([f"wrote {path}"] + notes)


class OrganSegTest(ScriptedLoadableModuleTest):
    """Self-test in Slicer on the real example CT with the installed models."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_edit_recompute()
        self.setUp()
        self.test_cancel_keeps_consistent_state()

    def _example_ct(self):
        here = Path(__file__).resolve().parent
        candidates = [os.environ.get("ORGANSEG_TEST_CT", ""), here.parent / "Testing" / "Data" / "example_ct.nii.gz"]
        for candidate in candidates:
            if candidate and Path(candidate).is_file():
                return slicer.util.loadVolume(str(candidate))
        raise FileNotFoundError(f"example CT not found (tried {', '.join(map(str, candidates[1:]))}); "
                                "set ORGANSEG_TEST_CT to a CT file")

    def _organs(self):
        from organseg.model_package import ModelStore
        organs = [key for key in ("liver", "spleen", "kidneys") if key in ModelStore().available()]
        self.assertTrue(organs, "no liver, spleen or kidneys model installed")
        return organs

    def test_segment_edit_recompute(self):
        import numpy as np
        from organseg_slicer.segments import organ_segments, segment_mask, set_organ_segment
        from organseg_slicer.table import table_rows
        from organseg.catalogue import organ
        from organseg.result import OrganMask

        volume = self._example_ct()
        logic = OrganSegLogic()
        run = logic.run(volume, self._organs(), Options(device="cpu"))
        self.assertTrue(run.job.result is not None, run.messages[-1])
        segments = organ_segments(run.segmentation_node)
        self.assertEqual(sorted(segments.values()), sorted(run.plan.organs))
        rows = table_rows(run.table_node)
        self.assertEqual([r["voxels"] for r in rows], [s["voxels"] for s in run.job.result.stats])
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        self.assertEqual(sh.GetItemParent(sh.GetItemByDataNode(run.segmentation_node)),
                         sh.GetItemParent(sh.GetItemByDataNode(volume)))
        segment_id, key = next(iter(segments.items()))
        mask = segment_mask(run.segmentation_node, segment_id, volume)
        self.assertTrue(mask.any(), f"{key}: the bundled model found nothing on the example CT")
        first = int(np.flatnonzero(mask.any(axis=(1, 2)))[0])
        removed = int(mask[first].sum())
        mask[first] = False
        set_organ_segment(run.segmentation_node, organ(key), OrganMask.from_full(mask), volume)
        logic.recompute_table(run.segmentation_node)
        self.assertEqual(table_rows(run.table_node)[0]["voxels"], rows[0]["voxels"] - removed)

    def test_cancel_keeps_consistent_state(self):
        from organseg_slicer.segments import organ_segments

        volume = self._example_ct()
        logic = OrganSegLogic()
        run = logic.start(volume, self._organs(), Options(device="cpu"))
        run.job.cancel()
        while not run.finished:
            run.job.wait(0.05)
            logic.process(run)
        self.assertTrue(run.job.cancelled or run.job.result is not None)
        self.assertEqual(sorted(organ_segments(run.segmentation_node).values()), sorted(run.done))
        self.assertEqual(run.table_node.GetNumberOfRows(), len(run.done))
