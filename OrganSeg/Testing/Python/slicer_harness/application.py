"""The application around the module panel: `slicer.app`, the main window, a table view and the module base classes.

The scene, application logic and layout logic are slicer-core's real ones: switching the layout creates the
real view nodes, so "is the table in view" is answered by Slicer's layout logic, and the table view here only
renders what the layout's table view node shows (for screenshots).
"""
from __future__ import annotations

import importlib
import sys
import traceback
import types
import unittest
from pathlib import Path

import slicer
from PyQt5 import QtCore, QtWidgets

from slicer_harness import parameter_node_wrapper, pythonqt, widgets


class SlicerApplication(QtWidgets.QApplication):
    """`slicer.app`: application name, testing mode, application logic and events."""

    def __init__(self) -> None:
        super().__init__(["Slicer"])
        self.setApplicationName("3D Slicer")
        self.testing = False

    def setScene(self, scene) -> None:
        """Bind the application and layout logics to a new scene, in Slicer's default (conventional) layout."""
        self.logic = slicer.vtkSlicerApplicationLogic()
        self.logic.SetMRMLScene(scene)
        self.layoutLogic = slicer.vtkMRMLLayoutLogic()
        self.layoutLogic.SetMRMLScene(scene)
        self.layoutLogic.GetLayoutNode().SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutConventionalView)

    def testingEnabled(self) -> bool:
        return self.testing

    def applicationLogic(self):
        return self.logic


class TableView(QtWidgets.QTableWidget):
    """Renders the table of the layout's table view node while the layout has a table view."""

    def refresh(self, scene) -> None:
        layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        views = list(scene.GetNodesByClass("vtkMRMLTableViewNode"))
        shown = "vtkMRMLTableViewNode" in (layout.GetCurrentLayoutDescription() or "")
        table = scene.GetNodeByID(views[0].GetTableNodeID()) if shown and views and views[0].GetTableNodeID() else None
        self.setVisible(table is not None)
        if table is None:
            return
        data = table.GetTable()
        self.setColumnCount(data.GetNumberOfColumns())
        self.setRowCount(data.GetNumberOfRows())
        self.setHorizontalHeaderLabels([data.GetColumnName(c) for c in range(data.GetNumberOfColumns())])
        for r in range(data.GetNumberOfRows()):
            for c in range(data.GetNumberOfColumns()):
                value = data.GetValue(r, c)
                text = f"{value.ToDouble():.1f}" if value.IsDouble() else value.ToString()
                self.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.resizeColumnsToContents()


class ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        self.parent = parent
        self.layout = parent.layout()
        self.moduleName = type(self).__name__[: -len("Widget")]

    def resourcePath(self, filename: str) -> str:
        return str(Path(sys.modules[type(self).__module__].__file__).parent / "Resources" / filename)

    def setup(self) -> None:
        """The application's version adds developer tools (reload, test), not needed here."""


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        self.moduleName = type(self).__name__[: -len("Logic")]


class ScriptedLoadableModuleTest(unittest.TestCase):
    pass


class Harness:
    """The module widget in a main window over a fresh scene; `answer` replies to the next dialog."""

    def __init__(self, module_dir: Path) -> None:
        scene = slicer.vtkMRMLScene()
        factory = slicer.vtkSegmentationConverterFactory.GetInstance()
        if not factory.GetConverterRules():
            for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                         slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
                factory.RegisterConverterRule(rule())
        self.qt = pythonqt.install()
        widgets.install()
        parameter_node_wrapper.install()
        self.errors: list[str] = []  #: tracebacks of exceptions that left a Qt slot, as Slicer's console shows them
        self._excepthook, sys.excepthook = sys.excepthook, self._console
        bases = types.ModuleType("slicer.ScriptedLoadableModule")
        for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                    ScriptedLoadableModuleTest):
            setattr(bases, cls.__name__, cls)
        sys.modules["slicer.ScriptedLoadableModule"] = bases
        self.app = QtWidgets.QApplication.instance() or SlicerApplication()
        self.app.setScene(scene)
        slicer.app, slicer.mrmlScene, self.scene = self.app, scene, scene
        if str(module_dir) not in sys.path:
            sys.path.insert(0, str(module_dir))
        self.module = importlib.reload(sys.modules["OrganSeg"]) if "OrganSeg" in sys.modules else \
            importlib.import_module("OrganSeg")
        self.window = QtWidgets.QMainWindow()
        self.window.setObjectName("qSlicerMainWindow")
        panel = QtWidgets.QWidget()
        panel.setLayout(QtWidgets.QVBoxLayout())
        self.table = TableView()
        split = QtWidgets.QSplitter()
        split.addWidget(panel)
        split.addWidget(self.table)
        self.window.setCentralWidget(split)
        self.window.resize(1280, 900)
        split.setSizes([520, 760])
        self.widget = self.module.OrganSegWidget(panel)
        self.widget.setup()
        self.window.show()
        self.dialogs: list[str] = []  #: texts of the dialogs answered so far

    def loadVolume(self, path: Path, name: str):
        """Read a CT file into a new volume node with Slicer's own reader (as File > Add Data does)."""
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        storage = self.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(path))
        if not storage.ReadData(node):
            raise RuntimeError(f"{path}: Slicer's volume reader failed")
        node.SetAndObserveStorageNodeID(storage.GetID())
        node.CreateDefaultDisplayNodes()
        return node

    def click(self, button: QtWidgets.QAbstractButton) -> None:
        """Click as a user does: from inside the running event loop (where Slicer's dialogs expect to be)."""
        loop = QtCore.QEventLoop()

        def press() -> None:
            button.click()
            loop.quit()
        QtCore.QTimer.singleShot(0, press)
        loop.exec_()

    def answer(self, *replies) -> None:
        """Reply to the next modal dialogs in turn: a message box with a button (default Ok), a file dialog with
        a path ("" cancels). Each dialog's text (a file dialog's title) is appended to `dialogs`."""
        replies = list(replies) or [QtWidgets.QMessageBox.Ok]
        answered = []

        def reply() -> None:
            dialog = QtWidgets.QApplication.activeModalWidget()
            if dialog is None or any(dialog is d for d in answered):
                QtCore.QTimer.singleShot(10, reply)
                return
            answered.append(dialog)
            try:
                respond(dialog, replies.pop(0))
            except Exception as err:  # noqa: BLE001 - an exception escaping a Qt slot would abort the process
                self.dialogs.append(f"harness could not answer {type(dialog).__name__}: {err!r}")
                dialog.reject()
            if replies:
                QtCore.QTimer.singleShot(10, reply)

        def respond(dialog, value) -> None:
            if isinstance(dialog, QtWidgets.QFileDialog):
                self.dialogs.append(dialog.windowTitle())
                if value:
                    dialog.selectFile(str(value))
                    QtCore.QMetaObject.invokeMethod(dialog, "accept")  # protected in QFileDialog
                else:
                    dialog.reject()
            else:
                self.dialogs.append(dialog.text())
                dialog.button(value).click()
        QtCore.QTimer.singleShot(0, reply)

    def wait(self, condition, seconds: float = 60) -> bool:
        """Run the event loop (the widget's own timer polls the run) until `condition()` or the time is up."""
        deadline = QtCore.QDeadlineTimer(int(seconds * 1000))
        while not condition() and not deadline.hasExpired():
            loop = QtCore.QEventLoop()
            QtCore.QTimer.singleShot(50, loop.quit)
            loop.exec_()
        return bool(condition())

    def screenshot(self, path: Path) -> Path:
        self.table.refresh(self.scene)
        self.app.processEvents()
        self.window.grab().save(str(path))
        return path

    def _console(self, kind, value, tb) -> None:
        """An exception escaping a Qt slot: PythonQt prints it to Slicer's Python console and carries on (PyQt5
        would abort the process)."""
        self.errors.append("".join(traceback.format_exception(kind, value, tb)))

    def close(self) -> None:
        sys.excepthook = self._excepthook
        self.widget.cleanup()
        for selector in self.window.findChildren(widgets.qMRMLNodeComboBox):
            selector.setMRMLScene(None)
        self.window.close()
        self.window.deleteLater()
        self.app.processEvents()
        slicer.mrmlScene = None
