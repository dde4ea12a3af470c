"""OrganSegLogic on slicer-core's real MRML scene with the real CT fixtures and the session's small models.

The models only exercise the path (they were trained for a few steps, so the liver and spleen masks
are alike); exactness of the MRML round trip is also checked on TotalSegmentator's real liver and spleen.
"""
from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
import slicer  # noqa: E402

from organseg.catalogue import organ  # noqa: E402
from organseg.errors import OutputError  # noqa: E402
from organseg.results.result import OrganMask  # noqa: E402
from organseg.segmenter import Segmenter, Settings  # noqa: E402
from organseg_slicer.logic import OrganSegLogic  # noqa: E402
from organseg_slicer.segments import (ORGAN_TAG, organ_segments,  # noqa: E402 set_organ_segment, terminology_entry)
                                      segment_mask, segment_tag)
from organseg_slicer.table import table_rows  # noqa: E402
from organseg_slicer.volumes import image_from_volume, volume_ijk_to_ras  # noqa: E402

MODULE = Path(__file__).resolve().parents[2]
TS_LIVER, TS_SPLEEN = 5, 1
ORGANS = ["liver", "spleen"]


@pytest.fixture(scope="module")
def library_result(dicom_ct, tiny_models):
    """What the library itself gives for the DICOM CT (the reference for the MRML results)."""
    return Segmenter(models=tiny_models, device="cpu").segment(dicom_ct, ORGANS)


def options(models: Path) -> Settings:
    return Settings(models=models, device="cpu")


def sh_parent(scene, node):
    sh = scene.GetSubjectHierarchyNode()
    return sh.GetItemParent(sh.GetItemByDataNode(node))


def test_volume_geometry_matches_slicer_reader_and_round_trips(scene, add_volume, data_dir, dicom_ct):
    from organseg.ct.grid import ijk_to_ras
    from organseg.ct.read import read_ct
    path = data_dir / "example_ct.nii.gz"
    by_slicer = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "read by Slicer")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(by_slicer)
    image = read_ct(path)
    ours = add_volume(image, "ours")
    np.testing.assert_allclose(volume_ijk_to_ras(ours), volume_ijk_to_ras(by_slicer), atol=1e-4)
    np.testing.assert_allclose(volume_ijk_to_ras(ours), ijk_to_ras(image), atol=0)
    assert np.array_equal(sitk.GetArrayFromImage(image_from_volume(by_slicer)), sitk.GetArrayFromImage(image))
    for original in (image, dicom_ct):
        back = image_from_volume(add_volume(original, "round trip"))
        np.testing.assert_allclose(back.GetOrigin(), original.GetOrigin(), atol=1e-9)
        np.testing.assert_allclose(back.GetSpacing(), original.GetSpacing(), atol=1e-12)
        np.testing.assert_allclose(back.GetDirection(), original.GetDirection(), atol=1e-12)
        assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(original))


def test_real_organ_masks_round_trip_through_segments(scene, ct_volume, ts_labels):
    """TotalSegmentator's liver and spleen go into segments and come back voxel for voxel."""
    labels = sitk.GetArrayFromImage(ts_labels)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "real organs")
    node.SetReferenceImageGeometryParameterFromVolumeNode(ct_volume)
    masks = {"liver": labels == TS_LIVER, "spleen": labels == TS_SPLEEN}
    assert all(m.sum() > 1000 for m in masks.values())
    ids = {key: set_organ_segment(node, organ(key), OrganMask.from_full(m), ct_volume) for key, m in masks.items()}
    for key, mask in masks.items():
        assert np.array_equal(segment_mask(node, ids[key], ct_volume), mask)
    # Slicer's own export of all segments onto the CT grid gives the same multi-label map
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
        node, [ids["liver"], ids["spleen"]], labelmap, ct_volume)
    exported = sitk.GetArrayFromImage(image_from_volume(labelmap))
    assert np.array_equal(exported, masks["liver"] * 1 + masks["spleen"] * 2)


def manual_spleen(scene, ct_volume, ts_labels):
    """A user's segmentation with one hand-made segment (TotalSegmentator's spleen)."""
    from organseg_slicer.volumes import oriented_image
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "manual")
    node.SetReferenceImageGeometryParameterFromVolumeNode(ct_volume)
    spleen = sitk.GetArrayFromImage(ts_labels) == TS_SPLEEN
    segment_id = node.GetSegmentation().AddEmptySegment("mine", "my spleen")
    edit = slicer.vtkSlicerSegmentationsModuleLogic
    assert edit.SetBinaryLabelmapToSegment(oriented_image(spleen.astype(np.uint8), volume_ijk_to_ras(ct_volume)),
                                           node, segment_id, edit.MODE_REPLACE)
    return node, segment_id, spleen


def test_run_matches_library_voxel_for_voxel(scene, ct_volume, tiny_models, library_result, ts_labels):
    manual, manual_id, spleen = manual_spleen(scene, ct_volume, ts_labels)
    mtime = manual.GetSegmentation().GetMTime()
    logic = OrganSegLogic(scene)
    run = logic.run(ct_volume, ORGANS, options(tiny_models))
    assert run.job.result is not None and run.job.error is None
    node = run.segmentation_node
    # an existing segmentation not chosen as output is left untouched
    assert node is not manual and manual.GetSegmentation().GetMTime() == mtime
    assert manual.GetSegmentation().GetNumberOfSegments() == 1
    assert np.array_equal(segment_mask(manual, manual_id, ct_volume), spleen)
    segments = organ_segments(node)
    assert list(segments.values()) == list(library_result.masks) == run.done
    for segment_id, key in segments.items():
        assert np.array_equal(segment_mask(node, segment_id, ct_volume), library_result.masks[key].full()), key
        segment = node.GetSegmentation().GetSegment(segment_id)
        o = organ(key)
        assert segment.GetName() == o.display_name
        np.testing.assert_allclose(segment.GetColor(), o.colour_float)
        entry = segment_tag(segment, segment.GetTerminologyEntryTagName())
        assert entry == terminology_entry(o)
        assert f"~SCT^123037004^Anatomical Structure~SCT^{o.snomed_code}^{o.snomed_meaning}~" in entry
    # table = the library's statistics
    rows = table_rows(run.table_node)
    assert len(rows) == len(library_result.stats)
    for row, expected in zip(rows, library_result.stats):
        assert row["name"] == expected["name"] and row["voxels"] == expected["voxels"]
        for key in ("volume_ml", "mean_hu", "std_hu", "min_hu", "max_hu"):
            assert row[key] == pytest.approx(expected[key], rel=1e-12), key
        assert row["flags"] == ";".join(f["code"] for f in expected["flags"])  # the same checks on the same masks
    # the status line counts the organs that need a look; each has its warning line with the reasons
    flagged = [r["organ"] for r in library_result.stats if r["flags"]]
    assert flagged, "tiny models on a 20-slice series: at least cut by the field of view"
    done = next(m for m in run.messages if m.startswith("done: "))
    assert f"{len(flagged)} need a look ({', '.join(flagged)})" in done
    assert sum("needs a look: " in m for m in run.messages) == len(flagged)
    # geometry reference and subject hierarchy: beside the CT, under its study
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is ct_volume
    study = sh_parent(scene, ct_volume)
    assert scene.GetSubjectHierarchyNode().GetItemLevel(study) == "Study"
    assert sh_parent(scene, node) == study and sh_parent(scene, run.table_node) == study
    # progress: one running and one done line per organ, "organ k of n"
    lines = [m for m in run.messages if m.startswith("organ ")]
    assert len(lines) == 4 and lines[0] == "organ 1 of 2: Liver running" and lines[2] == "organ 2 of 2: Spleen running"
    assert re.match(r"organ 1 of 2: Liver done \(\d+ voxels", lines[1])
    assert re.match(r"organ 2 of 2: Spleen done \(\d+ voxels", lines[3])
    assert any("femur_heads" in m for m in run.messages), "missing anchor models are reported"


def test_recompute_after_edit(scene, ct_volume, tiny_models):
    logic = OrganSegLogic(scene)
    run = logic.run(ct_volume, ["liver"], options(tiny_models))
    node = run.segmentation_node
    segment_id = next(iter(organ_segments(node)))
    before = table_rows(run.table_node)[0]
    mask = segment_mask(node, segment_id, ct_volume)
    removed = int(mask[:5].sum())
    assert removed > 0
    mask[:5] = False  # erase five slices, as a Segment Editor edit would
    edit = slicer.vtkSlicerSegmentationsModuleLogic
    from organseg_slicer.volumes import oriented_image
    assert edit.SetBinaryLabelmapToSegment(oriented_image(mask.astype(np.uint8), volume_ijk_to_ras(ct_volume)),
                                           node, segment_id, edit.MODE_REPLACE)
    assert table_rows(run.table_node)[0]["voxels"] == before["voxels"]  # not recomputed yet
    logic.recomputeTable(node)
    after = table_rows(run.table_node)[0]
    voxel_ml = float(np.prod(ct_volume.GetSpacing())) / 1000.0
    assert after["voxels"] == before["voxels"] - removed
    assert after["volume_ml"] == pytest.approx(before["volume_ml"] - removed * voxel_ml, rel=1e-12)


def test_existing_segmentation_changed_only_when_chosen(scene, ct_volume, tiny_models, ts_labels):
    manual, manual_id, spleen = manual_spleen(scene, ct_volume, ts_labels)
    logic = OrganSegLogic(scene)
    # chosen as output: organ segments are added, the manual segment stays
    into = logic.run(ct_volume, ["liver"], options(tiny_models), manual)
    assert into.segmentation_node is manual and into.plan.replaced == []
    assert list(organ_segments(manual).values()) == ["liver"]
    assert np.array_equal(segment_mask(manual, manual_id, ct_volume), spleen)
    # again: the plan says what it replaces, and the segment is replaced, not duplicated
    again = logic.run(ct_volume, ["liver"], options(tiny_models), manual)
    assert again.plan.replaced == ["liver"] and any("replacing segments" in m for m in again.messages)
    assert manual.GetSegmentation().GetNumberOfSegments() == 2
    assert segment_tag(manual.GetSegmentation().GetSegment(manual_id), ORGAN_TAG) is None
    assert np.array_equal(segment_mask(manual, manual_id, ct_volume), spleen)


def test_cancel_after_first_organ_leaves_consistent_state(scene, ct_volume, tiny_models, monkeypatch):
    """Cancel once the first organ is in the scene; the second stops at its first batch."""
    import organseg.segmenter as segmenter_module
    release = threading.Event()
    calls = []
    original = segmenter_module.predict_organ

    def gated(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # hold the second organ until the test has cancelled
            release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(segmenter_module, "predict_organ", gated)
    logic = OrganSegLogic(scene)
    run = logic.start(ct_volume, ORGANS, options(tiny_models))
    while not run.done:
        run.job.wait(0.05)
        logic.process(run)
    run.job.cancel()
    release.set()
    while not run.finished:
        run.job.wait(0.05)
        logic.process(run)
    assert run.job.cancelled and run.job.result is None and run.job.error is None
    assert run.done == ["liver"]
    assert list(organ_segments(run.segmentation_node).values()) == ["liver"]
    assert [r["name"] for r in table_rows(run.table_node)] == ["Liver"]
    assert run.messages[-1] == "cancelled: kept the 1 finished organs of 2"


def test_anchor_organs_are_added_and_reported(scene, ct_volume, tiny_models, tmp_path):
    """Gallbladder's rule needs the liver: choosing it alone adds the liver and says so."""
    import shutil
    from organseg.method.model_package import ModelStore as Store, write_package
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    liver = Store([models]).get("liver")
    write_package(models, "gallbladder", liver.state_dict_arrays(), liver.channels,
                  {"summary": "test: the liver fixture's weights under the gallbladder's name"}, {"val_dice": None})
    logic = OrganSegLogic(scene)
    plan = logic.plan(["gallbladder"], options(models))
    assert plan.organs == ["liver", "gallbladder"] and plan.added_anchors == ["liver"]
    run = logic.start(ct_volume, ["gallbladder"], options(models))
    assert "added anchor organs needed by post-processing: liver" in run.messages
    run.job.cancel()
    assert run.job.wait(60)


def test_bad_input_is_one_clear_error(scene, tiny_models):
    from organseg.errors import InputError
    logic = OrganSegLogic(scene)
    with pytest.raises(InputError, match="no organ chosen"):
        logic.plan([], options(tiny_models))
    with pytest.raises(InputError, match="no input volume"):
        logic.start(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty"), ["liver"], options(tiny_models))
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0


@pytest.mark.parametrize("kind", ["rtstruct", "dicom_seg"])
def test_dicom_export_references_the_source_series(scene, ct_volume, ts_labels, data_dir, tmp_path, kind):
    """Segments (as edited in the scene) exported against the DICOM series the volume came from."""
    pydicom = pytest.importorskip("pydicom")
    from organseg_slicer.dicom_export import export
    files = {}
    for f in sorted((data_dir / "example_ct_dicom").iterdir()):
        header = pydicom.dcmread(f, stop_before_pixels=True)  # anonymised: UID only in the file meta
        files[str(header.SOPInstanceUID or header.file_meta.MediaStorageSOPInstanceUID)] = str(f)

    class Database:  # what the export asks of Slicer's ctkDICOMDatabase
        fileForInstance = staticmethod(files.get)

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "organs")
    labels = sitk.GetArrayFromImage(ts_labels)
    masks = {"liver": labels == TS_LIVER, "spleen": labels == TS_SPLEEN}
    for key, m in masks.items():
        set_organ_segment(node, organ(key), OrganMask.from_full(m), ct_volume)
    from organseg.errors import InputError
    with pytest.raises(InputError, match="not loaded from DICOM"):
        export(node, ct_volume, kind, tmp_path / "x.dcm", Database())
    ct_volume.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    out = tmp_path / f"{kind}.dcm"
    export(node, ct_volume, kind, out, Database())
    ds = pydicom.dcmread(out)
    if kind == "rtstruct":
        assert ds.Modality == "RTSTRUCT"
        assert [r.ROIName for r in ds.StructureSetROISequence] == ["Liver", "Spleen"]
        referenced = {str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
                      for roi in ds.ROIContourSequence for c in roi.ContourSequence}
    else:
        assert ds.Modality == "SEG" and [s.SegmentLabel for s in ds.SegmentSequence] == ["Liver", "Spleen"]
        assert int(ds.pixel_array.astype(bool).sum()) == sum(int(m.sum()) for m in masks.values())
        referenced = {str(i.ReferencedSOPInstanceUID) for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced and referenced <= set(files)
    with pytest.raises(OutputError, match="exists"):
        export(node, ct_volume, kind, out, Database())


def test_ui_parses_and_names_every_widget_the_module_uses():
    tree = ET.parse(MODULE / "Resources" / "UI" / "OrganSeg.ui")
    names = {w.get("name") for w in tree.iter("widget")}
    classes = {w.get("class") for w in tree.iter("widget")}
    assert {"qMRMLNodeComboBox", "ctkCollapsibleButton"} <= classes
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE / "OrganSeg.py").read_text()))
    assert used and used <= names, f"not in OrganSeg.ui: {sorted(used - names)}"
    selector = next(w for w in tree.iter("widget") if w.get("name") == "outputSegmentationSelector")
    props = {p.get("name"): p for p in selector.iter("property")}
    assert props["noneEnabled"].find("bool").text == "true"
    assert props["noneDisplay"].find("string").text == "Create new segmentation"


def test_module_file_imports_without_the_application():
    import OrganSeg
    assert {"OrganSeg", "OrganSegWidget", "OrganSegLogic"} <= set(vars(OrganSeg))  # OrganSegTest needs the app
    assert OrganSeg.OrganSegLogic is OrganSegLogic


def test_cmake_registers_every_module_file():
    cmake = (MODULE / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", "OrganSeg")
    for path in sorted(MODULE.glob("organseg_slicer/*.py")) + [MODULE / "Resources" / "UI" / "OrganSeg.ui",
                                                            MODULE / "Resources" / "Icons" / "OrganSeg.png"]:
        assert path.relative_to(MODULE).as_posix() in cmake, path
        assert path.is_file()


def test_first_run_install_takes_the_library_shipped_with_the_extension(monkeypatch):
    """In a source checkout (as in the installed extension) pip is pointed at OrganSegLib, not PyPI."""
    from organseg_slicer import dependencies

    monkeypatch.delenv("ORGANSEG_PIP_REQUIREMENT", raising=False)
    shipped = Path(dependencies.library_requirement())
    assert (shipped / "pyproject.toml").is_file() and shipped.name == "OrganSegLib"
    monkeypatch.setenv("ORGANSEG_PIP_REQUIREMENT", "organseg==0.1.0")
    assert dependencies.library_requirement() == "organseg==0.1.0"


def test_interpolate_option_selects_the_interpolating_strategy(scene):
    logic = OrganSegLogic(scene)
    assert logic.settings().strategy == "coarse-to-fine"
    logic.getParameterNode().interpolate = True
    assert logic.settings().strategy == "interpolate"
