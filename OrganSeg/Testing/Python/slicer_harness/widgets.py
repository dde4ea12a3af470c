"""Stand-ins for the ctk and qMRML widgets of the OrganSeg panel, bound to slicer-core's real MRML scene.

Only the API the module and its .ui use; everything else in the panel is real Qt.
"""
from __future__ import annotations

import sys
import types

from PyQt5 import QtCore, QtWidgets


_current_data = QtWidgets.QComboBox.currentData  # `combo.currentData` is the property under PythonQt's rules


class _Overloaded:
    """A signal that .ui connections address by C++ signature (`mrmlSceneChanged(vtkMRMLScene*)`)."""

    def __init__(self, signal) -> None:
        self.signal = signal

    def __getitem__(self, signature: str):
        return self.signal

    def connect(self, slot) -> None:
        self.signal.connect(slot)

    def emit(self, *args) -> None:
        self.signal.emit(*args)


class qMRMLWidget(QtWidgets.QWidget):
    _sceneChanged = QtCore.pyqtSignal(object)

    @property
    def mrmlSceneChanged(self) -> _Overloaded:
        return _Overloaded(self._sceneChanged)

    def setMRMLScene(self, scene) -> None:
        self._scene = scene
        self._sceneChanged.emit(scene)

    def mrmlScene(self):
        return getattr(self, "_scene", None)


class ctkCollapsibleButton(QtWidgets.QGroupBox):
    def setText(self, text: str) -> None:
        self.setTitle(text)


class ctkMessageBox(QtWidgets.QMessageBox):
    """ctk's message box (a QMessageBox with a "don't show again" option, not needed here)."""


class qMRMLNodeComboBox(QtWidgets.QComboBox):
    """Lists the scene's nodes of `nodeTypes` (exact classes, as with showChildNodeTypes false)."""

    currentNodeChanged = QtCore.pyqtSignal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene, self._tags, self._types, self._none = None, [], [], ""
        self._noneEnabled = False
        self.currentIndexChanged.connect(lambda _: self.currentNodeChanged.emit(self.currentNode()))

    def setNodeTypes(self, types_: list[str]) -> None:
        self._types = list(types_)
        self._refresh()

    def setNoneEnabled(self, enabled: bool) -> None:
        self._noneEnabled = enabled
        self._refresh()

    def setNoneDisplay(self, text: str) -> None:
        self._none = text
        self._refresh()

    def setShowChildNodeTypes(self, show: bool) -> None:
        if show:
            raise NotImplementedError("stand-in lists exact node classes only")

    def setAddEnabled(self, _: bool) -> None: ...
    def setRemoveEnabled(self, _: bool) -> None: ...
    def setRenameEnabled(self, _: bool) -> None: ...

    def setMRMLScene(self, scene) -> None:
        for tag in self._tags:
            self._scene.RemoveObserver(tag)
        self._scene = scene
        self._tags = [] if scene is None else [
            scene.AddObserver(event, lambda *_: self._refresh())
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent)]
        self._refresh()

    def currentNode(self):
        node_id = _current_data(self)
        return self._scene.GetNodeByID(node_id) if self._scene is not None and node_id else None

    def setCurrentNode(self, node) -> None:
        self.setCurrentIndex(max(self.findData(node.GetID() if node is not None else None), 0))

    def _nodes(self) -> list:
        if self._scene is None:
            return []
        return [n for t in self._types for n in self._scene.GetNodesByClass(t)
                if n.GetClassName() == t and not n.GetHideFromEditors()]

    def _refresh(self) -> None:
        current = _current_data(self)
        self.blockSignals(True)
        self.clear()
        if self._noneEnabled:
            self.addItem(self._none or "None", None)
        for node in self._nodes():
            self.addItem(node.GetName(), node.GetID())
        index = self.findData(current) if current else -1
        self.setCurrentIndex(index if index >= 0 else 0)
        self.blockSignals(False)
        if _current_data(self) != current:
            self.currentNodeChanged.emit(self.currentNode())


def install() -> types.ModuleType:
    """Register the stand-ins as the modules PyQt5.uic imports for the .ui's custom widgets, and as `ctk`."""
    module = sys.modules[__name__]
    for name in ("qMRMLWidget", "ctkCollapsibleButton", "qMRMLNodeComboBox", "ctkMessageBox"):
        sys.modules[name] = module
    sys.modules["ctk"] = module
    return module

