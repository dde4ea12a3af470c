"""Plausibility flags end to end with the bundled models on real CTs: organs a head-and-neck CT cannot hold are
flagged (and --strict fails), while the abdominal liver and spleen carry no flag but a real cut by the scan."""
import csv
import json

import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.commands.options import FLAGGED_EXIT
from organseg.ct.read import read_ct
from organseg.segmenter import Segmenter


@pytest.fixture(scope="module")
def neck_ct(data_dir, tmp_path_factory):
    """28 slices of a real head-and-neck planning CT (OpenKBP pt_201) where the bundled liver model fires."""
    path = data_dir.parent / "openkbp_hn" / "validation" / "pt_201" / "ct.nii.gz"
    if not path.is_file():
        pytest.skip(f"OpenKBP head-and-neck CTs not found at {path.parent.parent.parent}")
    out = tmp_path_factory.mktemp("neck") / "neck_ct.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(path))[:, :, 18:46], str(out))
    return out


def test_liver_found_in_a_neck_is_flagged_everywhere_and_strict_fails(neck_ct, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(neck_ct), "-o", str(out), "--organs", "liver", "--device", "cpu",
                 "--strict"]) == FLAGGED_EXIT
    row = json.loads((out / "stats.json").read_text())["organs"][0]
    assert row["voxels"] > 100  # the model did fire here: the check is not vacuous
    codes = [f["code"] for f in row["flags"]]
    assert {"volume_low", "hu_out_of_range"} <= set(codes)  # about 120 mL, a sixth of it bone
    assert all(f["reason"] for f in row["flags"])
    with open(out / "stats.csv", newline="") as fh:
        assert next(csv.DictReader(fh))["flags"] == ";".join(codes)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "needs a look" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: liver needs a look: volume_low (")


@pytest.mark.parametrize("ct, slices", [("example_ct.nii.gz", slice(76, None)), ("example_ct_dicom", slice(None))])
def test_abdominal_liver_and_spleen_are_flagged_only_where_the_scan_cuts_them(data_dir, ct, slices):
    """The 3 mm CT is cropped below the liver and spleen (slices 76-111 of 112, to keep the test fast); its top
    slice cuts both, as all 20 slices of the DICOM series do. The anchor boxes are off: the networks' masks are
    checked as found, without the lungs labeller the boxes would add."""
    image = read_ct(data_dir / ct)
    image = image[:, :, slices]
    result = Segmenter(device="cpu", anchor_rules={"liver": False, "spleen": False}).segment(image, ["liver", "spleen"])
    for row in result.stats:
        codes = [f["code"] for f in row["flags"]]
        mask = result.masks[row["organ"]].full()
        assert mask.sum() > 1000
        ends = max(mask[0].sum(), mask[-1].sum())  # axis 0 is the slice axis of both files
        assert codes == (["cut_by_fov"] if ends > 50 else []), (row["organ"], codes, ends)
