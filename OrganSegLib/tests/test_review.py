"""`organseg review` without a browser, on a real `batch` result: finding cases, bad input (no results, a port
in use, an unreadable mask, paths outside PATH), Save and exports of an open case, and the `[web]` extra being
optional. The browser scenario is Testing/test_review_browser.py."""
from __future__ import annotations

import csv
import json
import hashlib
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.errors import InputError, OutputError
from organseg.review.cases import ct_path, find_cases, mask_files
from organseg.review.corrections import COLUMNS, record, write_corrected
from organseg.training.dataset import read_dataset

import dciodvfy


def review(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "organseg.cli", "review", *args], capture_output=True, text=True)


@pytest.fixture
def cohort(review_cohort: Path, tmp_path: Path) -> Path:
    """A copy of the real batch result that a test may change."""
    return Path(shutil.copytree(review_cohort, tmp_path / "cohort"))


def test_cases_of_a_cohort_most_flagged_first(review_cohort: Path):
    cases = find_cases(review_cohort)
    with open(review_cohort / "batch_summary.csv", newline="") as fh:
        summary = {row["case"]: int(row["flagged"]) for row in csv.DictReader(fh)}
    assert [c.name for c in cases] == sorted(summary, key=lambda name: -summary[name])
    assert [len(c.flagged_organs) for c in cases] == sorted(summary.values(), reverse=True)
    assert all(c.problem is None for c in cases)
    single = find_cases(review_cohort / "example_ct")  # a `segment`-style result folder on its own
    assert [(c.name, c.folder) for c in single] == [("example_ct", review_cohort / "example_ct")]


def test_folder_without_results(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("no results here")
    with pytest.raises(InputError, match="no OrganSeg results here"):
        find_cases(tmp_path)
    run = review(str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [run.stderr.strip()] and "no OrganSeg results here" in run.stderr
    assert str(tmp_path) in run.stderr and "Traceback" not in run.stderr


def test_case_outside_path_is_refused(cohort: Path, tmp_path: Path):
    outside = Path(shutil.copytree(cohort / "example_ct", tmp_path / "outside"))
    with open(cohort / "batch_summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["case"] = "../outside"
    with open(cohort / "batch_summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (cohort / "example_ct" / "masks" / "spleen.nii.gz").unlink()
    (cohort / "example_ct" / "masks" / "spleen.nii.gz").symlink_to(outside / "masks" / "spleen.nii.gz")
    cases = {c.name: c for c in find_cases(cohort)}
    assert "lies outside" in cases["../outside"].problem and cases["../outside"].folder == cohort
    files, skipped = mask_files(cases["example_ct"])
    assert skipped == {"spleen.nii.gz": f"a link to outside {cohort / 'example_ct'}; refused"}
    assert [f.organ for f in files] == ["liver", "lungs"]


@pytest.fixture(scope="module")
def slicer_app():
    pytest.importorskip("trame_slicer", reason="trame-slicer not installed (the [web] extra)")
    from trame_slicer.core import SlicerApp
    return SlicerApp()


def open_case(slicer_app, root: Path, name: str):
    from organseg.review.session import CaseSession
    slicer_app.scene.Clear()
    return CaseSession.open(slicer_app, root, next(c for c in find_cases(root) if c.name == name))


def test_unreadable_mask_among_good_ones(cohort: Path, slicer_app):
    spleen = cohort / "example_ct" / "masks" / "spleen.nii.gz"
    spleen.write_bytes(spleen.read_bytes()[:200])  # truncated, as by a full disk
    session = open_case(slicer_app, cohort, "example_ct")
    assert list(session.skipped) == ["spleen.nii.gz"]
    assert session.skipped["spleen.nii.gz"].startswith("cannot read the image, the file is corrupt or truncated")
    assert session.organs == ["liver", "lungs"]
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "example_ct" / "masks" / "liver.nii.gz"))) > 0
    assert np.array_equal(session.current_masks()["liver"], liver)  # voxel for voxel, no resampling
    rows = {r["organ"]: r for r in session.table()}
    stats = {r["organ"]: r for r in csv.DictReader(open(cohort / "example_ct" / "stats.csv"))}
    assert rows["liver"]["volume_ml"] == f"{float(stats['liver']['volume_ml']):.1f}"
    assert [f["code"] for f in rows["liver"]["flags"]] == stats["liver"]["flags"].split(";")


def test_save_and_exports_of_an_open_case(cohort: Path, slicer_app):
    session = open_case(slicer_app, cohort, "example_ct")
    assert session.save() == "nothing to save: no organ was edited"
    assert not (cohort / "corrections.csv").exists()
    with pytest.raises(InputError, match="needs the CT as a DICOM series"):
        session.export("rtstruct")
    segment_files = sorted(p.name for p in (cohort / "example_ct").iterdir())
    assert session.export("seg-nrrd") == "wrote reviewed/segmentation.seg.nrrd"  # the CLI's name, own folder
    assert sorted(p.name for p in (cohort / "example_ct").iterdir()) == sorted([*segment_files, "reviewed"])
    import slicerio
    segmentation = slicerio.read_segmentation(str(cohort / "example_ct" / "reviewed" / "segmentation.seg.nrrd"))
    assert [s["id"] for s in segmentation["segments"]] == ["liver", "lungs", "spleen"]
    dicom = open_case(slicer_app, cohort, "example_ct_dicom")
    assert dicom.export("dicom-seg").startswith("wrote reviewed/seg.dcm: 2 organs on 20 slices")  # lungs: empty
    dciodvfy.require()
    report, errors = dciodvfy.validate(cohort / "example_ct_dicom" / "reviewed" / "seg.dcm")
    assert not errors, report


def test_ct_of_a_result_not_found(cohort: Path):
    case = find_cases(cohort / "example_ct")[0]
    case.source = "moved/example_ct.nii.gz"
    with pytest.raises(InputError, match=r"the CT it was made from \(moved/example_ct.nii.gz\) is not found"):
        ct_path(case, cohort)


def test_corrections_csv_is_a_fine_tune_dataset(cohort: Path):
    case = cohort / "example_ct"
    original = case / "masks" / "liver.nii.gz"
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    reference = sitk.ReadImage(str(original))
    mask = sitk.GetArrayFromImage(reference) > 0
    mask[40:44, 40:44, 40:44] = True
    ct = Path(find_cases(cohort)[0].source)
    path = write_corrected(case, "liver", mask, reference)
    for _ in range(2):  # saving the organ again keeps its one row
        record(cohort, "example_ct", "liver", ct, path)
    assert hashlib.sha256(original.read_bytes()).hexdigest() == digest
    written = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(written) > 0, mask)
    assert written.GetOrigin() == reference.GetOrigin() and written.GetDirection() == reference.GetDirection()
    [spec] = read_dataset(cohort / "corrections.csv")
    assert (spec.name, spec.image, spec.mask.resolve(), spec.labelled) == (
        "example_ct-liver", ct, path.resolve(), frozenset({"liver"}))
    (cohort / "corrections.csv").write_text("image,mask\nx,y\n")  # someone else's file: never rewritten
    with pytest.raises(OutputError, match="not a corrections file"):
        record(cohort, "example_ct", "liver", ct, path)
    assert (cohort / "corrections.csv").read_text() == "image,mask\nx,y\n"
    assert COLUMNS[:3] == ("image", "mask", "source")


def test_port_in_use_and_only_the_page_is_served(review_cohort: Path):
    pytest.importorskip("trame_slicer", reason="trame-slicer not installed (the [web] extra)")
    server = subprocess.Popen([sys.executable, "-m", "organseg.cli", "review", str(review_cohort), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = next(m.group(1) for line in server.stdout
                   if (m := re.search(r"organseg review: .* at (http://127\.0\.0\.1:(\d+)/)", line)))
        port = url.rstrip("/").rsplit(":", 1)[1]
        busy = review(str(review_cohort), "--port", port)
        assert busy.returncode == 2 and busy.stderr.strip() == (
            f"organseg review: error: port {port} on 127.0.0.1 is in use (another review or server?); choose "
            "another with --port, or --port 0 for any free one")
        exposed = review(str(review_cohort), "--port", port, "--host", "0.0.0.0")
        assert exposed.returncode == 2 and exposed.stderr.startswith("warning: --host 0.0.0.0 exposes the review")
        assert "<html" in urllib.request.urlopen(url).read().decode().lower()
        with pytest.raises(urllib.error.HTTPError) as cross_site:  # another site's page, e.g. its WebSocket
            urllib.request.urlopen(urllib.request.Request(url + "ws", headers={"Origin": "http://example.com"}))
        assert cross_site.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as same_site:  # the page's own origin passes the check (and
            urllib.request.urlopen(urllib.request.Request(url + "ws", headers={"Origin": url.rstrip("/")}))
        assert same_site.value.code != 403  # then fails: a plain GET is no WebSocket upgrade)
        for path in ("batch_summary.csv", "example_ct/stats.json", "..%2f..%2fetc%2fpasswd", "../../etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + path)
            assert refused.value.code in (403, 404), path
    finally:
        server.terminate()
        server.wait()


def test_without_the_web_extra(review_cohort: Path):
    code = ("import sys; sys.modules['trame'] = sys.modules['trame_slicer'] = None\n"
            "import organseg, organseg.cli, organseg.review.cases, organseg.review.corrections\n"
            "organseg.cli.build_parser()\n"
            f"sys.exit(organseg.cli.main(['review', {str(review_cohort)!r}, '--port', '0']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip() == ("organseg review: error: `organseg review` needs the web extra (trame is missing): "
                                  "pip install \"organseg[web]\"")


def test_library_imports_without_trame():
    code = ("import sys, organseg, organseg.cli, organseg.review.cases, organseg.review.corrections\n"
            "organseg.cli.build_parser()\n"
            "heavy = {'trame', 'trame_slicer', 'trame_server', 'slicer', 'vtk', 'vtkmodules'}\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in heavy], sorted(sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr



def test_page_logic_keeps_unsaved_edits(cohort: Path):
    """The app without a browser: an edit, then another case asked for: it stays (nothing lost) until asked twice;
    opacity and Save reach the scene and the disk."""
    pytest.importorskip("trame_slicer", reason="trame-slicer not installed (the [web] extra)")
    import slicer
    import vtk
    from trame.app import get_server

    from organseg.review.app import ReviewApp
    from organseg.review.scene import organ_segments

    app = ReviewApp(cohort, find_cases(cohort), get_server("review-test", client_type="vue3"))
    app._run(app._open, 0)
    assert app.state.message.startswith("example_ct: 3 organs") and app.state.message_kind == "success"
    session = app.session
    liver_id = organ_segments(session.segmentation)["liver"]
    app.set_opacity("liver", 0.3)
    assert session.segmentation.GetDisplayNode().GetSegmentOpacity2DFill(liver_id) == pytest.approx(0.3)
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(0, 4, 0, 4, 0, 4)
    labelmap.AllocateScalars(3, 1)  # VTK_UNSIGNED_CHAR
    labelmap.GetPointData().GetScalars().Fill(1)
    matrix = vtk.vtkMatrix4x4()
    session.volume.GetIJKToRASMatrix(matrix)
    labelmap.SetImageToWorldMatrix(matrix)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    assert logic.SetBinaryLabelmapToSegment(labelmap, session.segmentation, liver_id, logic.MODE_MERGE_MAX)
    assert session.edited() == ["liver"]
    app.step(1)
    assert app.session is session and app.state.case_index == 0
    assert app.state.message == ("example_ct: unsaved edits to liver; Save them, or choose the case again to "
                                 "discard them")
    app.save()
    assert app.state.message.startswith("saved masks/liver_corrected.nii.gz")
    assert (cohort / "example_ct" / "masks" / "liver_corrected.nii.gz").is_file()
    app.step(1)
    assert app.session.case.name == "example_ct_dicom" and app.state.message.startswith("example_ct_dicom:")


def test_a_ct_needs_an_output_folder_and_never_takes_another_cts(cohort: Path, data_dir: Path, tmp_path: Path):
    ct = data_dir / "example_ct.nii.gz"
    bare = review(str(ct))
    assert bare.returncode == 2 and bare.stderr.strip() == (
        f"organseg review: error: {ct}: a CT without results; give -o OUT, the folder the page writes its results "
        "into")
    other = cohort / "example_ct_dicom"  # the results of another CT: refused, nothing replaced
    before = sorted(p.name for p in other.rglob("*"))
    taken = review(str(ct), "-o", str(other))
    assert taken.returncode == 2 and "holds the results of another CT" in taken.stderr and "Traceback" not in taken.stderr
    assert sorted(p.name for p in other.rglob("*")) == before
    (tmp_path / "notes.txt").write_text("not a CT")
    not_ct = review(str(tmp_path / "notes.txt"), "-o", str(tmp_path / "out"))
    assert not_ct.returncode == 2 and "unsupported file type" in not_ct.stderr and not (tmp_path / "out").exists()
    again = find_cases(cohort / "example_ct")[0]  # a review started again on the CT opens its result
    from organseg.review.cases import ct_case
    assert ct_case(Path(again.source), cohort / "example_ct").segmented


def test_page_segments_a_ct_without_results(data_dir: Path, tmp_path: Path):
    """The app without a browser on a bare CT: the checklist offers the installed organs, Segment writes the
    CLI's result into -o with progress reported, and the result opens for review."""
    pytest.importorskip("trame_slicer", reason="trame-slicer not installed (the [web] extra)")
    import asyncio

    from trame.app import get_server

    from organseg.review.app import ReviewApp
    from organseg.review.cases import ct_case

    ct, out = data_dir / "example_ct.nii.gz", tmp_path / "out"
    app = ReviewApp(out, [ct_case(ct, out)], get_server("review-ct-test", client_type="vue3"))
    app._run(app._open, 0)
    assert app.state.to_segment and app.session is None
    assert app.state.message == f"example_ct: not segmented yet; tick the organs and Segment (results go into {out})"
    assert {"organ": "liver", "name": "Liver", "region": "abdomen"} in app.state.organ_choices
    assert app.state.cases == [{"title": "example_ct - not segmented", "value": 0}]
    app.segment()  # nothing ticked
    assert app.state.message == "no organ ticked; tick the organs to segment" and not app.state.busy
    reported = app._show_progress
    app._show_progress = lambda p: (reported(p), app.cancel())  # Cancel pressed once the first organ starts
    asyncio.run(app._segment(0, ["liver"], "cpu"))
    assert app.state.message == "segmentation cancelled; nothing was written" and not app.state.busy
    assert app.state.to_segment and not out.exists()
    shown = []
    show = reported
    app._show_progress = lambda p: (show(p), shown.append((app.state.progress, app.state.progress_text)))
    asyncio.run(app._segment(0, ["liver"], "cpu"))
    # the liver's anchor organ (the lungs) first, as `organseg segment` does
    assert shown[0] == (0, "Lungs (1/2)") and shown[-1] == (100, "2 of 2 organs done")
    assert not app.state.busy and not app.state.to_segment and app.state.message == (
        "example_ct: 2 organs (lungs added: anchor organs for post-processing)")
    assert app.session.organs == ["liver", "lungs"] and [r["organ"] for r in app.state.rows] == ["liver", "lungs"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["source"] == str(ct.resolve()) and (out / "masks" / "liver.nii.gz").is_file()
    volumes = {row["organ"]: row["volume_ml"] for row in stats["organs"]}
    assert [r["volume_ml"] for r in app.state.rows] == [f"{volumes['liver']:.1f}", f"{volumes['lungs']:.1f}"]
    flagged = [row["organ"] for row in stats["organs"] if row["flags"]]
    assert app.state.cases == [{"title": "example_ct" + (f" - flagged: {', '.join(flagged)}" if flagged else ""),
                                "value": 0}]
