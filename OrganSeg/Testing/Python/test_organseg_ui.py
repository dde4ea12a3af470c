"""Static check: every widget name, class, signal and Qt property OrganSeg.py uses exists in OrganSeg.ui.

Qt classes are checked against PyQt5's (Qt 5.15) meta-objects; the ctk/qMRML classes against their signals in
Slicer 5 (listed here, as those classes are not available outside Slicer).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

QtWidgets = pytest.importorskip("PyQt5.QtWidgets", reason="PyQt5 is not installed (pip install PyQt5)")

MODULE = Path(__file__).resolve().parents[2]
#: signals of Slicer's own widget classes used by the module (ctk/qMRML headers of Slicer 5)
SLICER_SIGNALS = {"qMRMLNodeComboBox": {"currentNodeChanged", "currentNodeIDChanged", "nodeAdded"},
                  "ctkCollapsibleButton": {"contentsCollapsed", "clicked", "toggled"},
                  "qMRMLWidget": {"mrmlSceneChanged"}}


def ui_classes(path: Path = MODULE / "Resources" / "UI" / "OrganSeg.ui") -> dict[str, str]:
    return {w.get("name"): w.get("class") for w in ET.parse(path).iter("widget")}


def qt_signals_and_properties(class_name: str) -> tuple[set[str], set[str]]:
    meta = getattr(QtWidgets, class_name).staticMetaObject
    signals = {bytes(meta.method(i).name()).decode() for i in range(meta.methodCount())
               if meta.method(i).methodType() == meta.method(i).Signal}
    return signals, {meta.property(i).name() for i in range(meta.propertyCount())}


def uses(source: str) -> tuple[set[str], set[tuple[str, str]], set[tuple[str, str]]]:
    """Widget names, (name, signal) pairs and (name, attribute) pairs the module's code uses on `self.ui`."""
    names = set(re.findall(r"self\.ui\.(\w+)", source))
    signals = set(re.findall(r"self\.ui\.(\w+)\.(\w+)\.connect\(", source))
    loop = re.search(r"for selector in \(([^)]*)\):\s*\n\s*selector\.(\w+)\.connect", source)
    if loop:
        signals |= {(name, loop.group(2)) for name in re.findall(r"self\.ui\.(\w+)", loop.group(1))}
    attributes = set(re.findall(r"self\.ui\.(\w+)\.(\w+)\b(?!\s*\()(?!\.connect)", source))
    return names, signals, attributes - signals


def test_every_name_signal_and_property_the_module_uses_exists_in_the_ui():
    classes = ui_classes()
    names, signals, attributes = uses((MODULE / "OrganSeg.py").read_text())
    assert names, "the module uses no self.ui widgets: the check would prove nothing"
    assert not names - set(classes), f"not in OrganSeg.ui: {sorted(names - set(classes))}"
    for name, signal in sorted(signals):
        cls = classes[name]
        known = SLICER_SIGNALS[cls] if cls in SLICER_SIGNALS else qt_signals_and_properties(cls)[0]
        assert signal in known, f"{name} ({cls}) has no signal {signal}"
    for name, attribute in sorted(attributes):
        cls = classes[name]
        if cls in SLICER_SIGNALS:
            continue
        properties = qt_signals_and_properties(cls)[1]
        assert attribute in properties or hasattr(getattr(QtWidgets, cls), attribute), \
            f"{name} ({cls}) has no property or method {attribute}"


def test_check_catches_a_misspelt_widget_and_signal():
    names, signals, _ = uses("self.ui.segmentButon.clicked.connect(f)\nself.ui.segmentButton.clickd.connect(f)")
    assert "segmentButon" not in ui_classes() and ("segmentButton", "clickd") in signals
    assert "clickd" not in qt_signals_and_properties(ui_classes()["segmentButton"])[0]
