"""OrganSeg: per-organ CT segmentation in 3D Slicer with light 2D Res-UNets.

Module and widget, as Slicer expects them in this file (the self-test is organseg_slicer/self_test.py). The
logic (organseg_slicer.logic, no Qt) also runs on `slicer-core`, so it is tested without the application; the
widget stays thin: it keeps the choices in the parameter node, starts a background run through the logic and
polls it with a QTimer. OrganSeg/Testing/Python/slicer_harness runs it on slicer-core with PyQt5.
"""
from __future__ import annotations

import slicer
import vtk
from slicer.util import VTKObservationMixin

try:  # the application's translations; slicer-core (tests, scripts) has none: the English text
    from slicer.i18n import tr as _
    from slicer.i18n import translate
except ImportError:
    def _(text):
        return text

    def translate(context, text):
        return text


class _NeedsSlicerApplication:
    """Base of the module and widget classes where Slicer's application is absent."""


try:  # the application; on slicer-core (tests, scripts) only the logic is usable
    import qt
    from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleTest,
                                               ScriptedLoadableModuleWidget)
except ImportError:
    ScriptedLoadableModule = ScriptedLoadableModuleWidget = ScriptedLoadableModuleTest = _NeedsSlicerApplication

try:
    from organseg_slicer.logic import OrganSegLogic
except ImportError:  # first run in Slicer: the organseg library is not installed yet; the widget offers it
    OrganSegLogic = None

POLL_MS = 200


class OrganSeg(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("OrganSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["OrganSeg contributors"]
        self.parent.helpText = _(
            "Segments organs in CT, one light 2D Res-UNet per organ, on the CPU (ONNX Runtime) or a GPU. "
            "Choose the organs, press Segment: each organ appears as soon as it is done, with a volume table. "
            "After editing segments in Segment Editor press Recompute table.")
        self.parent.acknowledgementText = _(
            "Method: Salimi et al., per-organ 2D Res-UNets with anchor-organ post-processing. "
            "Example CT from the TotalSegmentator repository (Apache-2.0).")


class OrganSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: controls in Resources/UI/OrganSeg.ui, state in the parameter node, work in OrganSegLogic."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.run = None
        self.organItems = {}
        self.timer = None
        self._parameterNode = None
        self._updatingGUI = False

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
        for selector in (self.ui.inputVolumeSelector, self.ui.outputSegmentationSelector):
            selector.currentNodeChanged.connect(self.updateParameterNodeFromGUI)
        self.ui.deviceComboBox.currentIndexChanged.connect(self.updateParameterNodeFromGUI)
        self.ui.postprocessCheckBox.toggled.connect(self.updateParameterNodeFromGUI)
        self.ui.interpolateCheckBox.toggled.connect(self.updateParameterNodeFromGUI)
        self.ui.roiNamesComboBox.editTextChanged.connect(self.updateParameterNodeFromGUI)
        self.ui.organTree.itemChanged.connect(self.updateParameterNodeFromGUI)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        if not self.ensureLibrary(ask=False):
            from organseg_slicer.dependencies import missing_packages
            self.ui.statusText.setPlainText(_(
                "First use: OrganSeg needs the Python packages {packages}. Load a CT, choose it above and press "
                "Segment to install them (you are asked first); then tick the organs.").format(
                    packages=_(" and ").join(missing_packages())))
        self.updateButtons()

    def cleanup(self):
        self.onCancel()
        if self.timer:
            self.timer.stop()
        self.removeObservers()

    def onSceneStartClose(self, caller, event):
        self.onCancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.logic is not None:
            self.setParameterNode(self.logic.getParameterNode())

    # -- parameter node -----------------------------------------------------------------------------------
    def setParameterNode(self, parameterNode):
        """Show and edit this parameter node (saved with the scene); None detaches the panel."""
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.updateGUIFromParameterNode)
        self._parameterNode = parameterNode
        if parameterNode is not None:
            if parameterNode.inputVolume is None:
                parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            self.addObserver(parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, *_):
        p = self._parameterNode
        if p is not None and not self._updatingGUI:
            self._updatingGUI = True
            try:
                self.ui.inputVolumeSelector.setCurrentNode(p.inputVolume)
                self.ui.outputSegmentationSelector.setCurrentNode(p.outputSegmentation)
                self.ui.deviceComboBox.currentIndex = max(self.ui.deviceComboBox.findData(p.device), 0)
                self.ui.postprocessCheckBox.checked = p.postprocess
                self.ui.interpolateCheckBox.checked = p.interpolate
                self.ui.roiNamesComboBox.setEditText(p.roiNames)
                chosen = set(filter(None, p.organs.split(",")))
                for key, item in self.organItems.items():
                    item.setCheckState(0, qt.Qt.Checked if key in chosen else qt.Qt.Unchecked)
            finally:
                self._updatingGUI = False
        self.updateButtons()

    def updateParameterNodeFromGUI(self, *_):
        p = self._parameterNode
        if p is not None and not self._updatingGUI:
            wasModifying = p.StartModify()
            p.inputVolume = self.ui.inputVolumeSelector.currentNode()
            p.outputSegmentation = self.ui.outputSegmentationSelector.currentNode()
            p.device = self.ui.deviceComboBox.currentData or "auto"
            p.postprocess = self.ui.postprocessCheckBox.checked
            p.interpolate = self.ui.interpolateCheckBox.checked
            p.roiNames = self.ui.roiNamesComboBox.currentText.strip() or "tg263"
            p.organs = ",".join(key for key, item in self.organItems.items() if item.checkState(0) == qt.Qt.Checked)
            p.EndModify(wasModifying)
        self.updateButtons()

    # -- library and controls ---------------------------------------------------------------------------
    def confirm(self, text):
        """Ask OK/Cancel (a test replaces this to give its own answer)."""
        return slicer.util.confirmOkCancelDisplay(text, windowTitle=_("OrganSeg"))

    def ensureLibrary(self, ask=True):
        """Import the logic, installing organseg and ONNX Runtime first (after one confirmation)."""
        global OrganSegLogic
        from organseg_slicer.dependencies import InstallError, install, install_plan, missing_packages

        missing = missing_packages()
        if missing:
            if not ask:
                return False
            try:
                plan = install_plan(missing)
            except InstallError as err:
                slicer.util.errorDisplay(str(err))
                return False
            if not self.confirm(_(
                    "OrganSeg needs the Python packages {packages}. Install them now? pip will install: {plan}. "
                    "Packages Slicer has stay at its versions.").format(packages=_(" and ").join(missing),
                                                                         plan=", ".join(plan))):
                return False
            with slicer.util.WaitCursor():
                install(missing)
        if self.logic is None:
            from organseg_slicer.logic import OrganSegLogic as logic
            OrganSegLogic = logic
            self.logic = OrganSegLogic()
            self.fillOrgans()
            self.fillDevices()
            self.setParameterNode(self.logic.getParameterNode())
        return True

    def fillOrgans(self):
        """Organ checklist by region: organs with an installed model first, their regions expanded, each with
        its model's provenance; the others disabled (no model) in collapsed regions. Anchor organs are marked."""
        from organseg.catalogue import ORGANS, REGIONS

        installed = self.logic.modelProvenance()
        tree = self.ui.organTree
        tree.clear()
        self.organItems = {}
        for region in sorted(REGIONS, key=lambda r: not any(o.key in installed for o in ORGANS if o.region == r)):
            group = qt.QTreeWidgetItem(tree, [region.capitalize()])
            group.setFlags(group.flags() | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsAutoTristate)
            organs = sorted((o for o in ORGANS if o.region == region), key=lambda o: o.key not in installed)
            for organ in organs:
                name = organ.display_name + (" \u2693" if organ.anchor else "")
                if organ.key in installed:
                    name += f"  ({installed[organ.key]})"
                item = qt.QTreeWidgetItem(group, [name])
                item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                item.setCheckState(0, qt.Qt.Unchecked)
                item.setData(0, qt.Qt.UserRole, organ.key)
                item.setToolTip(0, _("{meaning} (SNOMED CT {code}); model: {model}").format(
                    meaning=organ.snomed_meaning, code=organ.snomed_code, model=installed.get(organ.key, _("none"))))
                if organ.key not in installed:
                    item.setDisabled(True)
                    item.setToolTip(0, _("no model installed for {organ}").format(organ=organ.key))
                self.organItems[organ.key] = item
            group.setExpanded(organs[0].key in installed)

    def fillDevices(self):
        available = self.logic.availableDevices()
        self.ui.deviceComboBox.clear()
        for device in ("auto", "cpu", "cuda", "mps"):
            usable = device == "auto" or device in available
            self.ui.deviceComboBox.addItem(device if usable else _("{device} (not available)").format(device=device),
                                           device)

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
        firstUse = self.logic is None
        if not self.ensureLibrary():
            return
        if firstUse and not self.chosenOrgans():
            self.ui.statusText.setPlainText(_("Installed. Tick the organs to segment and press Segment."))
            return
        from organseg_slicer.dependencies import torch_from_pytorch_utils

        p = self._parameterNode
        if p.device in ("cuda", "mps"):
            problem = torch_from_pytorch_utils()
            if problem:
                slicer.util.errorDisplay(problem)
                return
        options = self.logic.settings()
        output = p.outputSegmentation
        with slicer.util.tryWithErrorDisplay():
            plan = self.logic.plan(self.chosenOrgans(), options, output)
            if plan.replaced and not self.confirm(_(
                    "'{name}' already holds OrganSeg segments of: {organs}. Replace them? Its other segments "
                    "stay.").format(name=output.GetName(), organs=", ".join(plan.replaced))):
                return
            for key in plan.added_anchors:
                self.organItems[key].setCheckState(0, qt.Qt.Checked)
            self.run = self.logic.start(p.inputVolume, self.chosenOrgans(), options, output)
        self.ui.statusText.setPlainText("\n".join(self.run.messages))
        self.ui.progressBar.setFormat(_("%v of %m organs"))
        self.ui.progressBar.setMaximum(self.run.total)
        self.ui.progressBar.setValue(0)
        self.timer.start()
        self.updateButtons()

    def onPoll(self):
        self.status(self.logic.process(self.run))
        self.ui.progressBar.setValue(len(self.run.done))
        if self.run.finished:
            self.timer.stop()
            if self.run.done:
                self.logic.showTable(self.run.table_node)
            self.updateButtons()

    def onCancel(self):
        if self.run is not None and self.logic.cancel(self.run):
            self.status([_("cancelling after the current batch of slices...")])

    # -- results ------------------------------------------------------------------------------------------
    def currentSegmentation(self):
        node = self.ui.outputSegmentationSelector.currentNode()
        return node or (self.run.segmentation_node if self.run else None)

    def onRecomputeTable(self):
        segmentation = self.currentSegmentation()
        if segmentation is None or not self.ensureLibrary():
            return
        with slicer.util.tryWithErrorDisplay(waitCursor=True):
            table = self.logic.recomputeTable(segmentation)
        self.logic.showTable(table)
        self.status([_("table '{name}' recomputed from the current segments").format(name=table.GetName())])

    def onExport(self, kind):
        from organseg_slicer.dicom_export import export

        segmentation = self.currentSegmentation()
        if segmentation is None or not self.ensureLibrary():
            return
        volume = segmentation.GetNodeReference(segmentation.GetReferenceImageGeometryReferenceRole())
        volume = volume or self.ui.inputVolumeSelector.currentNode()
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export {kind}").format(kind=kind.upper()),
                                              f"{segmentation.GetName()}-{kind}.dcm", _("DICOM (*.dcm)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(waitCursor=True):
            notes = export(segmentation, volume, kind, path, roi_names=self.ui.roiNamesComboBox.currentText)
        self.status([_("wrote {path}").format(path=path)] + notes)


if ScriptedLoadableModuleTest is not _NeedsSlicerApplication:  # Slicer's "Reload and Test" looks for it here
    from organseg_slicer.self_test import OrganSegTest  # noqa: E402,F401
