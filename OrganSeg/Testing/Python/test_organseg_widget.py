"""The OrganSeg panel (OrganSeg.py, unchanged) driven by clicks over slicer-core's MRML, offscreen.

slicer_harness supplies PythonQt's `qt` over PyQt5 and stand-ins for the ctk/qMRML widgets; runs are real (the
small example CT, the session's liver and spleen models) and polled by the widget's own timer. Screenshots go
to test-artefacts/gui/ (or $ORGANSEG_TEST_ARTEFACTS).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
pytest.importorskip("PyQt5.QtWidgets", reason="PyQt5 is not installed (pip install PyQt5)")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtWidgets import QMessageBox, QPlainTextEdit  # noqa: E402

import SimpleITK as sitk  # noqa: E402

from organseg.method.model_package import ModelStore  # noqa: E402
from organseg_slicer.segments import organ_segments  # noqa: E402
from organseg_slicer.table import table_rows  # noqa: E402
from slicer_harness.application import Harness  # noqa: E402

MODULE = Path(__file__).resolve().parents[2]
EXAMPLE_CT = MODULE.parent / "Testing" / "Data" / "example_ct.nii.gz"
ARTEFACTS = Path(os.environ.get("ORGANSEG_TEST_ARTEFACTS", MODULE.parent / "test-artefacts" / "gui"))


@pytest.fixture(scope="module")
def models(tiny_models):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORGANSEG_MODELS", str(tiny_models))
        yield tiny_models


@pytest.fixture(scope="module")
def panel(models, tmp_path_factory):
    """The main window with the OrganSeg panel and six slices of the example CT through the liver; the tests
    below use it in turn, as a user would (before a run, a run, then prompts on its result)."""
    crop = tmp_path_factory.mktemp("ct") / "example_ct.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(EXAMPLE_CT))[:, :, 60:66], str(crop))
    h = Harness(MODULE)
    h.ct = h.loadVolume(crop, "example_ct")
    yield h
    h.close()


def ui(h):
    return h.widget.ui


def click_segment_and_wait(h) -> None:
    h.click(ui(h).segmentButton)
    assert h.wait(lambda: h.widget.run is not None and h.widget.run.finished), "the run did not finish"


def shot(h, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return h.screenshot(ARTEFACTS / f"{name}.png")


def test_panel_before_a_run(panel):
    tree = ui(panel).organTree
    first = tree.topLevelItem(0)
    assert first.isExpanded() and not first.child(0).isDisabled(), "organs with models come first, expanded"
    with_model = [not first.child(i).isDisabled() for i in range(first.childCount())]
    assert with_model == sorted(with_model, reverse=True), "in a region, organs with models come first"
    provenance = ModelStore().get("liver").provenance
    assert panel.widget.organItems["liver"].text(0).endswith(f"({provenance})"), "organs show their model's provenance"
    for region in (tree.topLevelItem(i) for i in range(tree.topLevelItemCount())):
        has_model = any(not region.child(i).isDisabled() for i in range(region.childCount()))
        assert region.isExpanded() == has_model, f"{region.text(0)}: expanded if and only if it has a model"
    assert ui(panel).progressBar.text() == "not run yet"
    assert ui(panel).statusText.lineWrapMode() == QPlainTextEdit.WidgetWidth
    assert ui(panel).segmentButton.isEnabled() and not ui(panel).cancelButton.isEnabled()
    assert panel.widget._parameterNode.inputVolume is panel.ct
    assert panel.module.OrganSegTest.__name__ == "OrganSegTest", "Slicer's Reload and Test looks for it there"
    shot(panel, "before_run")


def test_select_all_and_none_follow_the_models_and_the_parameter_node(panel):
    p = panel.widget._parameterNode
    panel.click(ui(panel).selectAllButton)
    with_models = [key for key, item in panel.widget.organItems.items() if not item.isDisabled()]
    assert p.organs == ",".join(with_models) and {"liver", "spleen"} <= set(with_models) and len(with_models) < 28
    panel.click(ui(panel).selectNoneButton)
    assert p.organs == ""
    p.organs, p.postprocess, p.device = "spleen", False, "cpu"  # e.g. a scene saved with these choices
    assert panel.widget.chosenOrgans() == ["spleen"] and not ui(panel).postprocessCheckBox.isChecked()
    assert ui(panel).deviceComboBox.currentData() == "cpu"
    p.organs, p.postprocess = "", True


def test_an_error_is_shown_in_a_dialog(panel):
    panel.answer()
    panel.click(ui(panel).segmentButton)  # no organ ticked
    assert panel.dialogs[-1] == "no organ chosen; tick at least one organ" and panel.widget.run is None


def test_real_run_shows_progress_segments_and_the_table_in_the_layout(panel):
    panel.widget.organItems["liver"].setCheckState(0, Qt.Checked)
    click_segment_and_wait(panel)
    run = panel.widget.run
    # the liver's post-processing needs the lungs anchor: the bundled lungs labeller joins the run
    assert sorted(run.done) == ["liver", "lungs"] and ui(panel).progressBar.text() == "2 of 2 organs"
    assert "done: 2 organs" in ui(panel).statusText.toPlainText()
    assert sorted(organ_segments(run.segmentation_node).values()) == ["liver", "lungs"]
    assert sorted(r["name"] for r in table_rows(run.table_node)) == ["Liver", "Lungs"]
    layout = panel.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    assert "vtkMRMLTableViewNode" in layout.GetCurrentLayoutDescription(), "the layout has no table view"
    views = list(panel.scene.GetNodesByClass("vtkMRMLTableViewNode"))
    assert [v.GetTableNodeID() for v in views] == [run.table_node.GetID()]
    assert panel.scene.GetNodeByID("vtkMRMLSelectionNodeSingleton").GetActiveTableID() == run.table_node.GetID()
    shot(panel, "after_run")
    assert panel.table.isVisible() and {panel.table.item(i, 0).text() for i in range(2)} == {"Liver", "Lungs"}


def test_recompute_and_export_of_the_result(panel, tmp_path):
    panel.click(ui(panel).recomputeTableButton)
    assert ui(panel).statusText.toPlainText().endswith("recomputed from the current segments")
    panel.answer("")
    panel.click(ui(panel).exportRtstructButton)  # the file dialog is cancelled: nothing happens
    assert panel.dialogs[-1] == "Export RTSTRUCT"
    panel.answer(str(tmp_path / "rt.dcm"), QMessageBox.Ok)
    panel.click(ui(panel).exportRtstructButton)
    assert panel.dialogs[-2] == "Export RTSTRUCT" and "was not loaded from DICOM" in panel.dialogs[-1]
    assert not (tmp_path / "rt.dcm").exists()


def test_replace_prompt_cancel_keeps_and_ok_replaces(panel):
    first = panel.widget.run
    ui(panel).outputSegmentationSelector.setCurrentNode(first.segmentation_node)
    panel.answer(QMessageBox.Cancel)
    panel.click(ui(panel).segmentButton)
    assert "already holds OrganSeg segments of: liver, lungs" in panel.dialogs[-1]
    assert panel.widget.run is first, "a run started although the user cancelled"
    panel.answer(QMessageBox.Ok)
    click_segment_and_wait(panel)
    assert panel.widget.run is not first and panel.widget.run.segmentation_node is first.segmentation_node
    assert sorted(organ_segments(first.segmentation_node).values()) == ["liver", "lungs"]
    ui(panel).outputSegmentationSelector.setCurrentNode(None)


def test_cancel_keeps_the_finished_organs(panel):
    panel.click(ui(panel).segmentButton)
    assert ui(panel).cancelButton.isEnabled()
    panel.click(ui(panel).cancelButton)
    assert panel.wait(lambda: panel.widget.run.finished)
    run = panel.widget.run
    assert "cancelling after the current batch of slices..." in ui(panel).statusText.toPlainText()
    assert sorted(organ_segments(run.segmentation_node).values()) == sorted(run.done)
    assert ui(panel).segmentButton.isEnabled() and not ui(panel).cancelButton.isEnabled()


def test_first_use_installs_the_missing_package_after_asking(models, monkeypatch):
    import slicer
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what importlib sees where it is not installed
    installed = []

    def pip_install(requirements):
        installed.append(requirements)
        sys.modules.pop("onnxruntime")
    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    h = Harness(MODULE)
    try:
        status = ui(h).statusText.toPlainText()
        assert "needs the Python packages onnxruntime" in status and "Load a CT" in status
        assert ui(h).organTree.topLevelItemCount() == 0 and not ui(h).segmentButton.isEnabled()
        h.loadVolume(EXAMPLE_CT, "example_ct")
        h.answer(QMessageBox.Cancel)
        h.click(ui(h).segmentButton)
        assert h.dialogs[-1].startswith("OrganSeg needs the Python packages onnxruntime. Install them now?")
        assert installed == [] and h.widget.logic is None
        h.answer(QMessageBox.Ok)
        h.click(ui(h).segmentButton)
        assert installed[0][0] == "onnxruntime>=1.17" and installed[0][1] == "-c"
        assert ui(h).statusText.toPlainText().startswith("Installed. Tick the organs")
        assert ui(h).organTree.topLevelItemCount() > 0 and h.widget.logic is not None
    finally:
        h.close()
