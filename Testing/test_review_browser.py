"""`organseg review` end to end in a real headless browser: Debian's chromium driven by Playwright, on a real
`batch` result of the DICOM series and the NIfTI CT.

One server, one scenario: the cohort list puts the most flagged case first; the page shows the segments and
the volume table; a Paint stroke on the liver in the axial view, Recompute, the liver grows (and undo/redo
take it back and forth); Save writes `masks/liver_corrected.nii.gz` that differs from the untouched original
by exactly the painted voxels, and a `corrections.csv` that fine-tune's dataset reader takes; on the DICOM
case, Export RTSTRUCT gives a file dciodvfy accepts. Screenshots go to test-artefacts/review/.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

pytest.importorskip("trame_slicer", reason="trame-slicer not installed (pip install -e \"OrganSegLib[web]\")")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (the [test] extra)")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OrganSegLib" / "tests"))
import dciodvfy  # noqa: E402

CHROMIUM = Path(os.environ.get("ORGANSEG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTEFACTS = Path(os.environ.get("ORGANSEG_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts")) \
    / "review"
WAIT_MS = 120_000  # bounds against hanging forever, not speed requirements
OPEN_MS = 300_000


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def need_chromium() -> None:
    """Skip, naming the package, where Debian's chromium is absent (before a server or browser is started)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found (Debian package chromium; .ci/run installs it)")


def start_review(*args: str) -> tuple[subprocess.Popen, str]:
    """`organseg review ARGS --port 0` running; returns the process and the URL it prints once it listens."""
    need_chromium()
    server = subprocess.Popen([sys.executable, "-m", "organseg.cli", "review", *args, "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        found = re.search(r"organseg review: .* at (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return server, found.group(1)
    server.wait()
    pytest.fail(f"organseg review exited with {server.returncode} before serving")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait()


@pytest.fixture(scope="module")
def served(review_cohort: Path, tmp_path_factory: pytest.TempPathFactory):
    """`organseg review COHORT` running on a copy of the cohort; yields (cohort, url)."""
    cohort = tmp_path_factory.mktemp("served") / "cohort"
    shutil.copytree(review_cohort, cohort)
    server, url = start_review(str(cohort))
    yield cohort, url
    stop(server)


@pytest.fixture
def browser_page():
    """A page of Debian's chromium, headless, with the test's waiting bounds."""
    need_chromium()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        playwright.expect.set_options(timeout=WAIT_MS)
        yield page
        browser.close()


def test_review_in_browser(served, browser_page):
    cohort, url = served
    page, expect = browser_page, playwright.expect
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    nifti, dicom = cohort / "example_ct", cohort / "example_ct_dicom"
    original = nifti / "masks" / "liver.nii.gz"
    original_hash = sha256(original)
    with open(cohort / "batch_summary.csv", newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert [r["case"] for r in summary] == ["example_ct_dicom", "example_ct"]  # the batch's order
    assert int(summary[1]["flagged"]) > int(summary[0]["flagged"])

    page.goto(url)

    # The cohort list: the more flagged case (second in the summary) is first and opens first.
    expect(page.locator("#message")).to_have_text(re.compile(r"^example_ct: \d+ organs"), timeout=OPEN_MS)
    expect(page.locator("#case-select")).to_have_value(re.compile(r"^example_ct - flagged: liver, spleen"))
    page.locator(".v-select:has(#case-select) .v-field").click()
    items = page.locator(".v-overlay .v-list-item-title")
    expect(items).to_have_count(2)
    assert [t.split(" - ")[0] for t in items.all_inner_texts()] == ["example_ct", "example_ct_dicom"]
    page.keyboard.press("Escape")
    liver_row = page.locator("#volume-table tr.organ-liver")
    expect(liver_row).to_be_visible()
    expect(page.locator("#volume-table tr.organ-spleen")).to_be_visible()
    opened_ml = float(liver_row.locator("td.volume").inner_text())
    stats = {r["organ"]: float(r["volume_ml"]) for r in csv.DictReader(open(nifti / "stats.csv"))}
    assert opened_ml == round(stats["liver"], 1)
    expect(liver_row.locator(".flag")).to_have_text(["cut_by_fov"])
    page.get_by_text("Liver", exact=True).first.click()
    axial = page.locator(".remote-controlled-area img.image-display-area").first
    expect(axial).to_be_visible()  # the first rendered frame has arrived
    page.screenshot(path=ARTEFACTS / "opened.png")

    # Paint a stroke in the axial view (the layout's first view) with the liver segment active.
    page.locator("button:has(i.mdi-brush)").first.click()
    box = axial.bounding_box()
    y = box["y"] + 0.45 * box["height"]  # soft tissue right of the liver, clear of the other organs
    page.mouse.move(box["x"] + 0.50 * box["width"], y)
    page.mouse.down()
    for fraction in np.linspace(0.50, 0.75, 12):
        page.mouse.move(box["x"] + fraction * box["width"], y)
    page.mouse.up()
    expect(page.locator("button:has(i.mdi-undo)").first).to_be_enabled()  # the stroke reached the editor

    page.locator("#recompute").click()
    expect(page.locator("#message")).to_have_text("volumes recomputed")
    expect(liver_row.locator("td.volume")).not_to_have_text(f"{opened_ml}")
    painted_ml = float(liver_row.locator("td.volume").inner_text())
    assert painted_ml > opened_ml
    page.locator("button:has(i.mdi-undo)").first.click()  # undo and redo reach the segment too
    page.locator("#recompute").click()
    expect(liver_row.locator("td.volume")).to_have_text(f"{opened_ml:.1f}")
    page.locator("button:has(i.mdi-redo)").first.click()
    page.locator("#recompute").click()
    expect(liver_row.locator("td.volume")).to_have_text(f"{painted_ml:.1f}")
    page.screenshot(path=ARTEFACTS / "painted.png")

    page.locator("#save").click()
    expect(page.locator("#message")).to_contain_text("saved masks/liver_corrected.nii.gz")
    corrected_path = nifti / "masks" / "liver_corrected.nii.gz"
    assert sha256(original) == original_hash
    before = sitk.ReadImage(str(original))
    after = sitk.ReadImage(str(corrected_path))
    assert after.GetSize() == before.GetSize() and after.GetOrigin() == before.GetOrigin()
    assert after.GetSpacing() == before.GetSpacing() and after.GetDirection() == before.GetDirection()
    a, b = sitk.GetArrayFromImage(before) > 0, sitk.GetArrayFromImage(after) > 0
    added = b & ~a
    assert not (a & ~b).any()  # paint only adds
    assert added.any() and ndimage.label(added)[1] == 1  # one stroke of the (spherical) brush
    assert sorted(p.name for p in (nifti / "masks").iterdir()) == [
        "liver.nii.gz", "liver_corrected.nii.gz", "lungs.nii.gz", "spleen.nii.gz"]  # only the edited organ
    voxel_ml = float(np.prod(before.GetSpacing())) / 1000
    assert round((a.sum() + added.sum()) * voxel_ml, 1) == painted_ml
    from organseg.training.dataset import read_dataset
    specs = read_dataset(cohort / "corrections.csv")
    assert [(s.name, s.mask.resolve(), s.labelled) for s in specs] == [
        ("example_ct-liver", corrected_path.resolve(), frozenset({"liver"}))]

    # Next case: the DICOM series; its RTSTRUCT export passes dciodvfy.
    page.locator("#next-case").click()
    expect(page.locator("#message")).to_have_text(re.compile(r"^example_ct_dicom: \d+ organs"))
    page.locator("#export-rtstruct").click()
    expect(page.locator("#message")).to_contain_text("wrote reviewed/rtstruct.dcm")
    page.screenshot(path=ARTEFACTS / "dicom_case.png")

    dciodvfy.require()
    report, errors = dciodvfy.validate(dicom / "reviewed" / "rtstruct.dcm")
    assert not errors, report


def test_segment_a_ct_in_browser(data_dir: Path, tmp_path: Path, browser_page):
    """`organseg review CT -o OUT`: the page shows the CT and the organ checklist; ticking Liver and Segment
    writes the CLI's result into OUT and opens it with its segments and volume table."""
    out = tmp_path / "out"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    server, url = start_review(str(data_dir / "example_ct.nii.gz"), "-o", str(out))
    page, expect = browser_page, playwright.expect
    try:
        page.goto(url)
        expect(page.locator("#message")).to_have_text(re.compile(r"^example_ct: not segmented yet"), timeout=OPEN_MS)
        expect(page.locator("#segment")).to_be_disabled()  # nothing ticked yet
        page.get_by_label("Liver", exact=True).check()
        page.screenshot(path=ARTEFACTS / "checklist.png")
        page.locator("#segment").click()
        expect(page.locator("#message")).to_have_text(
            "example_ct: 2 organs (lungs added: anchor organs for post-processing)", timeout=OPEN_MS)
        expect(page.locator("#volume-table tr.organ-liver")).to_be_visible()
        stats = {r["organ"]: float(r["volume_ml"]) for r in csv.DictReader(open(out / "stats.csv"))}
        expect(page.locator("#volume-table tr.organ-liver td.volume")).to_have_text(f"{stats['liver']:.1f}")
        page.screenshot(path=ARTEFACTS / "segmented_from_page.png")
    finally:
        stop(server)
    assert sorted(stats) == ["liver", "lungs"] and (out / "masks" / "liver.nii.gz").is_file()
