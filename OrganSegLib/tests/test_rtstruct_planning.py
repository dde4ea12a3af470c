"""RT structures as a planning system files them, checked by an independent RT tool on real CTs.

plastimatch (Debian package `plastimatch`; .ci/run installs it) converts each RTSTRUCT back into masks on the
CT grid: every ROI must match OrganSeg's mask (Dice >= 0.95) and each `_L` ROI lie on the patient's left, on the
real 20-slice DICOM series (TotalSegmentator's masks) and on a real OpenKBP head-and-neck CT written as a DICOM
series and segmented by the bundled lungs labeller and spinal cord and esophagus networks. Also: TG-263 names,
the catalogue and clinic-map options, checked names files, side volumes and the one-side flag, and dciodvfy.
"""
import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import organseg
from organseg.catalogue import ORGANS, organ
from organseg.cli import main
from organseg.ct.dicom_series import find_series
from organseg.ct.read import read_ct
from organseg.results.plausibility import check_masks
from organseg.method.sides import SideSplitter
import dciodvfy
from ct_dicom import write_ct_series

BUNDLED = Path(organseg.__file__).parent / "bundled" / "models"
OPENKBP_CASE = "pt_215"  #: a validation patient (never trained on) whose CT reaches the lung apices
PARTS = {p.tg263: p for o in ORGANS for p in o.parts()}


def _plastimatch(rtstruct: Path, ct: sitk.Image, out: Path) -> dict[str, np.ndarray]:
    """ROI name -> (z, y, x) mask, as plastimatch rasterises the RTSTRUCT on the CT's grid (`--fixed`)."""
    if shutil.which("plastimatch") is None:
        pytest.skip("plastimatch not installed (Debian package plastimatch; .ci/run installs it)")
    out.mkdir()
    sitk.WriteImage(ct, str(out / "ct.nrrd"))
    run = subprocess.run(["plastimatch", "convert", "--input", str(rtstruct), "--fixed", str(out / "ct.nrrd"),
                          "--output-prefix", str(out / "rois"), "--prefix-format", "nrrd"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    masks = {}
    for path in sorted((out / "rois").glob("*.nrrd")):
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == ct.GetSize() and np.allclose(image.GetOrigin(), ct.GetOrigin())
        assert np.allclose(image.GetSpacing(), ct.GetSpacing()) and np.allclose(image.GetDirection(), ct.GetDirection())
        masks[path.name.removesuffix(".nrrd")] = sitk.GetArrayFromImage(image) > 0
    return masks


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _lps_x(image: sitk.Image, mask: np.ndarray) -> float:
    """Mean LPS x (mm) of a (z, y, x) mask's voxels, from the image's own geometry (+x: the patient's left)."""
    k, j, i = np.nonzero(mask)
    index = np.column_stack([i, j, k]).astype(float)
    matrix = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    return float((index @ matrix.T + image.GetOrigin())[:, 0].mean())


# -- the 20-slice DICOM series with TotalSegmentator's masks ---------------------------------------------------

@pytest.fixture(scope="module")
def series_export(tmp_path_factory, data_dir, ts_labels, dicom_ct):
    """TotalSegmentator's label map of the series exported by `organseg export-rtstruct`, and its masks."""
    folder = tmp_path_factory.mktemp("series")
    sitk.WriteImage(ts_labels, str(folder / "labels.nii.gz"))
    args = ["--ct", str(data_dir / "example_ct_dicom"), "--seg", str(folder / "labels.nii.gz"),
            "--labels", str(data_dir / "labels_totalsegmentator_v2.json")]
    assert main(["export-rtstruct", *args, "-o", str(folder / "rtstruct.dcm")]) == 0
    from organseg.export.masks import load_masks
    masks = load_masks(folder / "labels.nii.gz", find_series(data_dir / "example_ct_dicom"), None,
                       data_dir / "labels_totalsegmentator_v2.json")
    return folder, masks


def test_plastimatch_restores_every_roi_of_the_dicom_series(series_export, dicom_ct, tmp_path):
    folder, masks = series_export
    read_back = _plastimatch(folder / "rtstruct.dcm", dicom_ct, tmp_path / "plastimatch")
    # TotalSegmentator labelled the right adrenal gland only: one ROI, on the right
    expected = {("Glnd_Adrenal_R" if k == "adrenal_glands" else organ(k).tg263): m for k, m in masks.items()}
    assert set(read_back) == set(expected)
    dice = {name: _dice(read_back[name], mask) for name, mask in expected.items()}
    print("plastimatch Dice, DICOM series:", {k: round(v, 4) for k, v in dice.items()})
    assert min(dice.values()) >= 0.95, dice
    # holes (liver vessels, vertebral canals) are kept: the keyhole contours restore every voxel
    assert all(np.array_equal(read_back[n], expected[n]) for n in ("Liver", "Bone")), "holes filled"
    assert _lps_x(dicom_ct, read_back["Glnd_Adrenal_R"]) < _lps_x(dicom_ct, read_back["Liver"]) + 50


def test_a_pair_found_on_one_side_is_one_roi_and_a_flag(series_export, data_dir, dicom_ct, capsys):
    folder, masks = series_export
    ds = pydicom.dcmread(folder / "rtstruct.dcm")
    assert [r.ROIName for r in ds.StructureSetROISequence if r.ROIName.startswith("Glnd_Adrenal")] == ["Glnd_Adrenal_R"]
    ct = sitk.GetArrayFromImage(dicom_ct)
    flags = check_masks(dicom_ct, ct, {"adrenal_glands": lambda: masks["adrenal_glands"]})["adrenal_glands"]
    one_side = [f for f in flags if f.code == "one_side"]
    assert one_side and "right only" in one_side[0].reason


# -- an OpenKBP head-and-neck CT as a DICOM series, segmented ---------------------------------------------------

@pytest.fixture(scope="module")
def openkbp_result(tmp_path_factory, openkbp_dir):
    """The CT written as a DICOM series, and `organseg segment` of it with RTSTRUCT and SEG (bundled models)."""
    folder = tmp_path_factory.mktemp("openkbp")
    write_ct_series(sitk.ReadImage(str(openkbp_dir / "validation" / OPENKBP_CASE / "ct.nii.gz")), folder / "ct",
                    OPENKBP_CASE)
    assert main(["segment", str(folder / "ct"), "-o", str(folder / "out"), "--models", str(BUNDLED),
                 "--organs", "lungs,spinal_cord,esophagus", "--device", "cpu",
                 "--output-type", "rtstruct,dicom-seg"]) == 0
    return folder


def test_plastimatch_restores_the_segmented_head_and_neck_ct_with_lungs_left_and_right(openkbp_result, tmp_path):
    ct = read_ct(openkbp_result / "ct")
    out = openkbp_result / "out"
    ours = {key: sitk.GetArrayFromImage(sitk.ReadImage(str(out / "masks" / f"{key}.nii.gz"))) > 0
            for key in ("lungs", "spinal_cord", "esophagus")}
    read_back = _plastimatch(out / "rtstruct.dcm", ct, tmp_path / "plastimatch")
    assert set(read_back) == {"Lung_R", "Lung_L", "SpinalCord", "Esophagus"}
    dice = {"SpinalCord": _dice(read_back["SpinalCord"], ours["spinal_cord"]),
            "Esophagus": _dice(read_back["Esophagus"], ours["esophagus"]),
            "Lung_R + Lung_L": _dice(read_back["Lung_R"] | read_back["Lung_L"], ours["lungs"])}
    print("plastimatch Dice, OpenKBP", OPENKBP_CASE, {k: round(v, 4) for k, v in dice.items()})
    assert min(dice.values()) >= 0.95, dice
    assert not (read_back["Lung_R"] & read_back["Lung_L"]).any()
    # the sides against the CT alone: the body's centre (tissue above -300 HU) lies between the two lungs
    body_x = _lps_x(ct, sitk.GetArrayFromImage(ct) > -300)
    assert _lps_x(ct, read_back["Lung_L"]) > body_x + 30 > body_x - 30 > _lps_x(ct, read_back["Lung_R"])
    stats = {r["organ"]: r for r in json.loads((out / "stats.json").read_text())["organs"]}
    volume_ml = float(np.prod(ct.GetSpacing())) / 1000
    for side, name in (("right", "Lung_R"), ("left", "Lung_L")):  # stats' side volumes are the exported ROIs'
        assert stats["lungs"][f"volume_{side}_ml"] == pytest.approx(read_back[name].sum() * volume_ml, rel=0.05)



def test_exports_carry_what_planning_systems_check_and_pass_dciodvfy(openkbp_result):
    out, ct = openkbp_result / "out", find_series(openkbp_result / "ct")
    rt = pydicom.dcmread(out / "rtstruct.dcm")
    models = json.loads((out / "stats.json").read_text())["models"]
    assert (rt.StructureSetLabel, rt.SeriesDescription, rt.Manufacturer) == ("OrganSeg", "OrganSeg organs", "OrganSeg")
    assert rt.SoftwareVersions == organseg.__version__ and rt.PatientID == OPENKBP_CASE
    assert rt.StudyInstanceUID == ct.headers[0].StudyInstanceUID
    frame = rt.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ct.headers[0].FrameOfReferenceUID
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct.headers[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == {h.SOPInstanceUID for h in ct.headers}
    colours = {}
    for roi, contour, observation in zip(rt.StructureSetROISequence, rt.ROIContourSequence,
                                         rt.RTROIObservationsSequence):
        part = PARTS[roi.ROIName]
        assert roi.ROIGenerationAlgorithm == "AUTOMATIC" and observation.RTROIInterpretedType == "ORGAN"
        assert roi.ROIGenerationDescription == f"OrganSeg {organseg.__version__}, {models[part.organ.key]}"
        assert contour.ReferencedROINumber == roi.ROINumber == observation.ReferencedROINumber
        colours[roi.ROIName] = tuple(contour.ROIDisplayColor)
    assert colours["Lung_R"] != colours["Lung_L"]  # a shade of the lungs' colour each
    seg = pydicom.dcmread(out / "seg.dcm")
    assert sorted(s.SegmentLabel for s in seg.SegmentSequence) == sorted(colours)
    dciodvfy.require()
    for name in ("rtstruct.dcm", "seg.dcm"):
        assert dciodvfy.problems(out / name, ct.files[0]) == [], name


def test_stats_give_each_sides_volume_after_the_columns_they_had(openkbp_result):
    out = openkbp_result / "out"
    with open(out / "stats.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = {r["organ"]: r for r in reader}
    assert reader.fieldnames[:14] == ["organ", "label", "name", "voxels", "volume_ml", "mean_hu", "std_hu", "min_hu",
                                      "max_hu", "bbox_ijk_min", "bbox_ijk_max", "postprocess_changed",
                                      "postprocess_changed_voxels", "flags"]
    assert reader.fieldnames[14:] == ["volume_right_ml", "volume_left_ml"]
    lungs = rows["lungs"]
    assert float(lungs["volume_right_ml"]) > 0 and float(lungs["volume_left_ml"]) > 0
    assert float(lungs["volume_right_ml"]) + float(lungs["volume_left_ml"]) == pytest.approx(float(lungs["volume_ml"]))
    assert rows["spinal_cord"]["volume_right_ml"] == ""  # not a pair


def test_catalogue_names_and_a_clinic_map(openkbp_result, tmp_path):
    ct, out = str(openkbp_result / "ct"), str(openkbp_result / "out")
    assert main(["export-rtstruct", "--ct", ct, "--seg", out, "--roi-names", "catalogue",
                 "-o", str(tmp_path / "catalogue.dcm")]) == 0
    names = sorted(r.ROIName for r in pydicom.dcmread(tmp_path / "catalogue.dcm").StructureSetROISequence)
    assert names == ["Esophagus", "Left lung", "Right lung", "Spinal cord"]
    clinic = {"lungs_right": "LUNG RT", "lungs_left": "LUNG LT", "spinal_cord": "CORD", "esophagus": "OESOPHAGUS"}
    (tmp_path / "clinic.json").write_text(json.dumps(clinic))
    for command, name in (("export-rtstruct", "clinic.dcm"), ("export-dicom-seg", "clinic-seg.dcm")):
        assert main([command, "--ct", ct, "--seg", out, "--roi-names", str(tmp_path / "clinic.json"),
                     "-o", str(tmp_path / name)]) == 0
    rt = pydicom.dcmread(tmp_path / "clinic.dcm")
    assert sorted(r.ROIName for r in rt.StructureSetROISequence) == sorted(clinic.values())
    seg = pydicom.dcmread(tmp_path / "clinic-seg.dcm")
    assert {s.TrackingID: s.SegmentLabel for s in seg.SegmentSequence} == clinic


@pytest.mark.parametrize("content, problem", [
    ("{'lungs_left': 'Lung_L'", "not JSON"),
    ('{"lung_left": "Lung_L"}', "unknown organ 'lung_left'"),
    ('{"lungs": "Lungs"}', "name 'lungs_right' and 'lungs_left'"),
    ('{"lungs_right": "Lung", "lungs_left": "lung"}', "is given to both"),
    ('{"spinal_cord": "Spinal cord of the neck"}', "has 23 characters; at most 16"),
    ('{"lungs_right": "Lung_R", "lungs_left": "Lung_L", "spinal_cord": "Cord"}', "names no ROI for esophagus"),
])
def test_a_bad_names_file_is_one_line_and_writes_nothing(openkbp_result, tmp_path, capsys, content, problem):
    names = tmp_path / "names.json"
    names.write_text(content)
    for command in ("export-rtstruct", "export-dicom-seg"):
        assert main([command, "--ct", str(openkbp_result / "ct"), "--seg", str(openkbp_result / "out"),
                     "--roi-names", str(names), "-o", str(tmp_path / "x.dcm")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"organseg {command}: error: {names}: ") and problem in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.json"]


def test_segment_checks_the_names_file_before_segmenting(openkbp_result, tmp_path, capsys):
    names = tmp_path / "names.json"
    names.write_text('{"spinal_cord": "Cord"}')
    assert main(["segment", str(openkbp_result / "ct"), "-o", str(tmp_path / "out"), "--models", str(BUNDLED),
                 "--organs", "lungs,spinal_cord", "--output-type", "rtstruct", "--roi-names", str(names)]) == 2
    assert "names no ROI for lungs_right, lungs_left" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_names_the_rois_as_asked_and_checks_a_names_file_first(openkbp_result, tmp_path, capsys):
    names = tmp_path / "names.json"
    names.write_text('{"spinal_cord": "Cord"}')
    batch = ["batch", str(openkbp_result / "ct"), "--models", str(BUNDLED), "--organs", "lungs,spinal_cord",
             "--device", "cpu", "--output-type", "rtstruct"]
    assert main([*batch, "-o", str(tmp_path / "refused"), "--roi-names", str(names)]) == 2
    assert "names no ROI for lungs_right, lungs_left" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main([*batch, "-o", str(tmp_path / "out"), "--roi-names", "catalogue"]) == 0
    rt = pydicom.dcmread(tmp_path / "out" / "ct" / "rtstruct.dcm")
    assert sorted(r.ROIName for r in rt.StructureSetROISequence) == ["Left lung", "Right lung", "Spinal cord"]


# -- the split itself ------------------------------------------------------------------------------------------

def test_sides_split_the_parotids_of_manual_contours_and_follow_the_geometry_not_the_array(openkbp_dir):
    """The union of both parotids' clinical contours splits back into the left and right parotid, on the CT as
    stored and on the same CT with its x axis stored reversed (direction -1)."""
    folder = openkbp_dir / "validation" / OPENKBP_CASE
    image = sitk.ReadImage(str(folder / "ct.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
    ids = {name: int(i) for i, name in json.loads((openkbp_dir / "labels.json").read_text()).items()}
    left, right = labels == ids["LeftParotid"], labels == ids["RightParotid"]
    assert left.any() and right.any()
    ct = sitk.GetArrayFromImage(image)
    split_right, split_left = SideSplitter.of_ct(image, ct).split(left | right)
    assert np.array_equal(split_left, left) and np.array_equal(split_right, right)
    flipped = sitk.Flip(image, [True, False, False])  # same voxels in space, array columns reversed
    assert flipped.GetDirection()[0] == -1
    flip_right, flip_left = SideSplitter.of_ct(flipped, ct[:, :, ::-1]).split((left | right)[:, :, ::-1])
    assert np.array_equal(flip_left[:, :, ::-1], left) and np.array_equal(flip_right[:, :, ::-1], right)
