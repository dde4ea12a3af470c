"""A PythonQt-flavoured `qt` module over PyQt5 (Qt 5.15, the Qt of Slicer 5).

What the module code relies on and PyQt5 does differently:
- Qt properties are Python attributes (`button.enabled = False`, `combo.currentData`), and a property wins over
  a method of the same name, as in PythonQt; `name` is the object name. A Qt object is always true (PyQt5
  makes an empty combo box false through its length).
- `qt.QUiLoader` loads .ui files (here with PyQt5.uic; custom classes come from modules named after their
  header, see `widgets.install`).
- `qt.QFileDialog.getSaveFileName` returns the path, not PyQt5's (path, filter) pair.
The attribute rules apply to code written for PythonQt (the module, `slicer.util`); PyQt5's own uic and the
harness keep PyQt5's rules.
"""
from __future__ import annotations

import sys
import types

from PyQt5 import QtCore, QtGui, QtWidgets, uic

_get = QtCore.QObject.__getattribute__
#: modules written for PythonQt: attribute access from their code follows PythonQt's rules
PYTHONQT_MODULES = ("OrganSeg", "organseg_slicer", "slicer.util", "slicer.parameterNodeWrapper")


def _from_pythonqt_code() -> bool:
    name = sys._getframe(2).f_globals.get("__name__", "")
    return name.split(".")[0] in PYTHONQT_MODULES or name in PYTHONQT_MODULES


def _meta_property(obj, name: str) -> QtCore.QMetaProperty | None:
    meta = _get(obj, "metaObject")()
    index = meta.indexOfProperty("objectName" if name == "name" else name)
    return meta.property(index) if index >= 0 else None


def _getattribute(self, name: str):
    if not name.startswith("_") and _from_pythonqt_code():
        prop = _meta_property(self, name)
        if prop is not None:
            return prop.read(self)
    return _get(self, name)


def _setattr(self, name: str, value) -> None:
    prop = None if name.startswith("_") or not _from_pythonqt_code() else _meta_property(self, name)
    if prop is None:
        object.__setattr__(self, name, value)
    elif not prop.write(self, value):
        _get(self, "set" + prop.name()[0].upper() + prop.name()[1:])(value)


class QUiLoader:
    """Loads a .ui file into widgets, as PythonQt's QUiLoader does."""

    def load(self, qfile: QtCore.QFile, parent: QtWidgets.QWidget | None = None) -> QtWidgets.QWidget:
        widget = uic.loadUi(qfile.fileName())
        if parent is not None:
            widget.setParent(parent)
        return widget


class QFileDialog(QtWidgets.QFileDialog):
    @staticmethod
    def getSaveFileName(*args, **kwargs) -> str:
        return QtWidgets.QFileDialog.getSaveFileName(*args, **kwargs)[0]


def install() -> types.ModuleType:
    """Give PyQt5 objects PythonQt's attribute access and register the `qt` module."""
    QtCore.QObject.__getattribute__ = _getattribute
    QtCore.QObject.__setattr__ = _setattr
    QtCore.QObject.__bool__ = lambda self: True
    qt = types.ModuleType("qt", __doc__)
    for source in (QtCore, QtGui, QtWidgets):
        qt.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("_")})
    qt.QUiLoader, qt.QFileDialog = QUiLoader, QFileDialog
    sys.modules["qt"] = qt
    return qt
