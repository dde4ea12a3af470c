"""Evaluation metrics against hand-computed values, on the real fixture labels, and `organseg evaluate`."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.evaluation.flag_rates import flag_rates, flag_table
from organseg.evaluation.metrics import jaccard, organ_metrics
from organseg.evaluation.report import wilcoxon_p
from organseg.masks import dice

TS_LIVER = 5
LIVER_VOXELS = 366708  # liver voxels of the TotalSegmentator map of the DICOM series


def rows_case(shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Two one-voxel-thick rows of 10 voxels, `shift` rows apart (every voxel is a surface voxel)."""
    ref = np.zeros((1, 6, 10), dtype=bool)
    pred = np.zeros_like(ref)
    ref[0, 0, :] = True
    pred[0, shift, :] = True
    return pred, ref


def test_dice_jaccard_identical_disjoint_and_empty():
    a = np.zeros((4, 5, 6), dtype=bool)
    a[1:3, 1:4, 2:5] = True
    b = np.zeros_like(a)
    b[0, 0, 0] = True
    assert dice(a, a) == 1.0 and jaccard(a, a) == 1.0
    assert dice(a, b) == 0.0 and jaccard(a, b) == 0.0
    assert dice(b, np.zeros_like(b)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    c = a.copy()
    c[0, 0, 0] = True  # 18 + 1 voxels vs 18: Dice 36/37, Jaccard 18/19
    assert dice(c, a) == pytest.approx(36 / 37) and jaccard(c, a) == pytest.approx(18 / 19)


def test_surface_distances_use_the_spacing():
    pred, ref = rows_case(shift=3)
    coarse = organ_metrics(pred, ref, spacing=(5.0, 2.0, 1.0))  # rows 3 x 2 mm = 6 mm apart
    assert coarse.hd95_mm == pytest.approx(6.0)
    assert coarse.nsd == 0.0 and coarse.dice == 0.0
    fine = organ_metrics(pred, ref, spacing=(5.0, 0.5, 1.0))  # 1.5 mm apart: within the 3 mm tolerance
    assert fine.hd95_mm == pytest.approx(1.5) and fine.nsd == 1.0
    assert fine.volume_pred_ml == pytest.approx(10 * 5 * 0.5 * 1 / 1000)
    assert organ_metrics(pred, ref, (5.0, 2.0, 1.0), tolerance_mm=6.0).nsd == 1.0


def test_nsd_and_hd95_of_an_outlier_voxel():
    """Ref: a row of 10 voxels; pred: the same row plus one voxel 4 rows (8 mm) away.

    Surface distances: pred -> ref ten 0s and one 8 mm, ref -> pred ten 0s; NSD = 20/21. Pooled 21 distances
    sorted, the 95th percentile sits at rank 19 of 0..20 (linear interpolation): 0. With 2 outlier voxels
    (22 distances, rank 19.95 between the last 0 and the first 8) HD95 = 0.95 * 8 = 7.6 mm.
    """
    pred, ref = rows_case(shift=0)
    pred[0, 4, 0] = True
    m = organ_metrics(pred, ref, spacing=(1.0, 2.0, 1.0))
    assert m.nsd == pytest.approx(20 / 21) and m.hd95_mm == 0.0 and m.dice == pytest.approx(20 / 21)
    pred[0, 4, :2] = True
    m = organ_metrics(pred, ref, spacing=(1.0, 2.0, 1.0))
    assert m.nsd == pytest.approx(20 / 22) and m.hd95_mm == pytest.approx(7.6)
    assert m.volume_diff_pct == pytest.approx(20.0)


def test_empty_masks():
    empty = np.zeros((2, 3, 4), dtype=bool)
    full = np.ones_like(empty)
    both = organ_metrics(empty, empty, (1, 1, 1))
    assert (both.dice, both.nsd, both.hd95_mm) == (1.0, 1.0, 0.0)
    one = organ_metrics(empty, full, (1, 1, 1))
    assert one.dice == 0.0 and one.nsd == 0.0 and math.isnan(one.hd95_mm)


def test_fixture_labels_against_themselves_and_shifted(ts_labels):
    labels = sitk.GetArrayFromImage(ts_labels)
    liver = labels == TS_LIVER
    spacing = ts_labels.GetSpacing()[::-1]
    same = organ_metrics(liver, liver, spacing)
    assert (same.dice, same.jaccard, same.nsd, same.hd95_mm) == (1.0, 1.0, 1.0, 0.0)
    assert same.volume_ref_ml == pytest.approx(LIVER_VOXELS * np.prod(spacing) / 1000)
    assert organ_metrics(liver, labels == 1, spacing).dice == 0.0  # liver vs spleen: disjoint
    shifted = np.roll(liver, 4, axis=2)  # 4 columns = 3.9 mm to the left
    moved = organ_metrics(shifted, liver, spacing)
    assert 0.8 < moved.dice < 1.0 and moved.nsd < 1.0
    assert 3.0 < moved.hd95_mm <= 4 * spacing[2] + 1e-6


def test_wilcoxon_needs_pairs():
    assert math.isnan(wilcoxon_p(np.array([0.5]), np.array([0.6]))[0])
    assert wilcoxon_p(np.array([0.5, 0.6]), np.array([0.5, 0.6]))[1] == "no difference"
    p, _ = wilcoxon_p(np.zeros(8), np.arange(1, 9) / 100)
    assert p == pytest.approx(0.0078125)  # exact two-sided p: all 8 differences positive, 2 / 2**8


def _write(array: np.ndarray, path, spacing=(1.0, 1.0, 2.0)) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def test_evaluate_cli_on_tiny_cases(tmp_path, capsys):
    """Three cases of post-processed and raw masks against catalogue label maps; CSV, markdown, PNG."""
    rng = np.random.default_rng(0)
    expected = {}
    for i in range(3):
        ref = np.zeros((6, 12, 12), dtype=np.uint8)
        ref[1:5, 2:8, 2:8] = 1  # liver (catalogue label 1)
        ref[2:4, 8:11, 8:11] = 6  # spleen (label 6)
        liver = ref == 1
        post = liver.copy()
        post[1:5, 2:8, 7 - i % 2] = False  # slightly too small
        raw = post.copy()
        raw[0, 0, : 2 + i] = True  # plus a stray component that post-processing removed
        _write(ref, tmp_path / "ref" / f"case{i}.nii.gz")
        _write(post, tmp_path / "pred" / f"case{i}" / "masks" / "liver.nii.gz")
        _write(raw, tmp_path / "raw" / f"case{i}" / "masks" / "liver.nii.gz")
        _write(ref == 6, tmp_path / "pred" / f"case{i}" / "masks" / "spleen.nii.gz")
        _write(rng.random(ref.shape) < 0.01, tmp_path / "raw" / f"case{i}" / "masks" / "spleen.nii.gz")
        expected[f"case{i}"] = (organ_metrics(raw, liver, (2.0, 1.0, 1.0)), organ_metrics(post, liver, (2.0, 1.0, 1.0)))
        flags = [{"code": "fragmented", "reason": "test"}] if i == 0 else []  # as organseg segment records them
        (tmp_path / "pred" / f"case{i}" / "stats.json").write_text(json.dumps(
            {"organs": [{"organ": "liver", "flags": flags}, {"organ": "spleen", "flags": []}]}))
    (tmp_path / "ref" / "labels.json").write_text(json.dumps([{"label": 1, "organ": "liver"},
                                                             {"label": 6, "organ": "spleen"}]))  # as OrganSeg's
    out = tmp_path / "eval"
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--pred-raw", str(tmp_path / "raw"),
            "--ref", str(tmp_path / "ref"), "-o", str(out)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert {(r["case"], r["organ"], r["variant"]) for r in rows} == {
        (f"case{i}", o, v) for i in range(3) for o in ("liver", "spleen") for v in ("raw", "post")}
    for r in rows:
        if r["organ"] == "liver":
            m = expected[r["case"]][r["variant"] == "post"]
            assert float(r["dice"]) == pytest.approx(m.dice) and float(r["hd95_mm"]) == pytest.approx(m.hd95_mm)
        if r["organ"] == "spleen" and r["variant"] == "post":
            assert float(r["dice"]) == 1.0 and float(r["nsd"]) == 1.0
    summary = {(r["organ"], r["metric"]): r for r in csv.DictReader(open(out / "summary.csv"))}
    assert float(summary["liver", "dice"]["post_mean"]) > float(summary["liver", "dice"]["raw_mean"])
    assert 0 < float(summary["liver", "dice"]["wilcoxon_p"]) <= 1
    md = (out / "evaluation.md").read_text()
    assert "| Liver | 3 |" in md and "Dice PP" in md and "| case2 | spleen | post | 1.0000 |" in md
    assert (out / "boxplot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # flags recorded in the post-processed result folders; the raw folders recorded none
    post_flags = {(r["case"], r["organ"]): r["flags"] for r in rows if r["variant"] == "post"}
    assert post_flags[("case0", "liver")] == "fragmented" and post_flags[("case1", "liver")] == ""
    assert [r["flags"] for r in rows if r["variant"] == "raw"] == [""] * 6
    assert "| fragmented | 1/6 (17%) | – |" in md and "| any flag | 1/6 (17%) | – |" in md
    assert main(args) == 4  # refuses to overwrite an earlier evaluation
    assert "--overwrite" in capsys.readouterr().err
    assert main(args[:1] + ["--pred", str(tmp_path / "pred" / "case0"), "--ref", str(tmp_path / "ref"),
                            "-o", str(tmp_path / "e2")]) == 0  # single case found by name in the ref folder


def test_flag_rates_count_good_and_bad_masks_apart():
    rows = [{"dice": 0.9, "flags": ""}, {"dice": 0.95, "flags": "cut_by_fov"},
            {"dice": 0.1, "flags": "position;volume_low"}, {"dice": 0.0, "flags": "volume_low"},
            {"dice": 0.2, "flags": None}]
    rates = {r["flag"]: r for r in flag_rates(rows)}
    assert (rates["volume_low"]["good_flagged"], rates["volume_low"]["bad_flagged"]) == (0, 2)
    assert (rates["cut_by_fov"]["good_flagged"], rates["cut_by_fov"]["good_n"]) == (1, 2)
    assert (rates["any flag"]["bad_flagged"], rates["any flag"]["bad_n"]) == (2, 2)  # the unknown row is left out
    assert flag_table([{"dice": 0.9, "flags": None}]) == []


def test_evaluate_cli_errors(tmp_path, capsys):
    assert main(["evaluate", "--pred", str(tmp_path / "nope"), "--ref", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_evaluate_segments_the_fixture_ct_against_totalsegmentator_labels(tiny_models, data_dir, tmp_path):
    """--ct runs the segmenter without and with post-processing; the flipped TS map is put on the CT grid."""
    out = tmp_path / "eval"
    assert main(["evaluate", "--ct", str(data_dir / "example_ct_dicom"), "--models", str(tiny_models),
                 "--organs", "liver", "--ref", str(data_dir / "example_seg_dicom.nii.gz"),
                 "--ref-labels", str(data_dir / "labels_totalsegmentator_v2.json"), "-o", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["organ"], r["variant"]) for r in rows] == [("liver", "raw"), ("liver", "post")]
    voxel_ml = 0.9765625 ** 2 * 2.0 / 1000
    for r in rows:
        assert float(r["volume_ref_ml"]) == pytest.approx(LIVER_VOXELS * voxel_ml)
        assert 0.0 <= float(r["dice"]) <= 1.0
    assert "n/a (n=1)" in (out / "evaluation.md").read_text()
    assert "## Plausibility flags on good and bad masks" in (out / "evaluation.md").read_text()  # both variants
