"""`organseg segment` and the Python API end to end on the real CT fixtures."""
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from organseg.cli import main
from organseg.segmenter import Segmenter


def _geometry(image):
    """Size, origin, spacing and direction as one flat tuple."""
    return (*image.GetSize(), *image.GetOrigin(), *image.GetSpacing(), *image.GetDirection())


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory, data_dir, tiny_models):
    out = tmp_path_factory.mktemp("run") / "out"
    code = main([
        "segment", str(data_dir / "example_ct_dicom"), "-o", str(out), "--organs", "liver,spleen",
        "--models", str(tiny_models), "--device", "cpu"])
    assert code == 0
    return out


def test_outputs_are_on_the_exact_input_grid(dicom_run, dicom_ct):
    for path in ["masks/liver.nii.gz", "masks/spleen.nii.gz", "segmentation.nii.gz"]:
        assert _geometry(sitk.ReadImage(str(dicom_run / path))) == pytest.approx(_geometry(dicom_ct))


def test_label_map_and_masks_agree_with_the_catalogue(dicom_run):
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(dicom_run / "segmentation.nii.gz")))
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(dicom_run / "masks/liver.nii.gz"))) > 0
    assert set(np.unique(labels)) <= {0, 1, 6}
    assert np.array_equal(labels == 1, liver & ~(labels == 6))
    table = json.loads((dicom_run / "labels.json").read_text())
    assert [(r["organ"], r["label"], r["snomed_type"]["code"]) for r in table] == [
        ("liver", 1, "10200004"), ("spleen", 6, "78961009")]


def test_stats_are_recomputable_from_the_written_masks(dicom_run, dicom_ct):
    doc = json.loads((dicom_run / "stats.json").read_text())
    hu = sitk.GetArrayFromImage(dicom_ct)
    voxel_ml = np.prod(dicom_ct.GetSpacing()) / 1000
    for row in doc["organs"]:
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(dicom_run / f"masks/{row['organ']}.nii.gz"))) > 0
        assert row["voxels"] == mask.sum() > 0
        assert row["volume_ml"] == pytest.approx(mask.sum() * voxel_ml)
        assert row["mean_hu"] == pytest.approx(hu[mask].mean())
        k, j, i = np.nonzero(mask)
        assert row["bbox_ijk_min"] == [i.min(), j.min(), k.min()]
    assert set(doc["seconds"]) >= {"liver", "spleen", "_prepare"}
    header = (dicom_run / "stats.csv").read_text().splitlines()[0]
    assert header.startswith("organ,label,name,voxels,volume_ml,mean_hu")


def test_ras_stored_nifti_gives_masks_on_its_own_grid(tmp_path, data_dir, tiny_models):
    out = tmp_path / "nifti"
    assert main(["segment", str(data_dir / "example_ct.nii.gz"), "-o", str(out), "--organs", "liver",
                 "--models", str(tiny_models), "--format", "nrrd", "--interpolate"]) == 0
    ct = sitk.ReadImage(str(data_dir / "example_ct.nii.gz"))
    assert _geometry(sitk.ReadImage(str(out / "masks/liver.nrrd"))) == pytest.approx(_geometry(ct))


def test_full_inference_and_interpolate_exclude_each_other(tmp_path, data_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", str(data_dir / "example_ct.nii.gz"), "-o", str(tmp_path / "out"),
              "--full-inference", "--interpolate"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_python_api_reports_progress_per_organ_and_writes_nothing(dicom_ct, tiny_models, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    events = []
    result = Segmenter(models=tiny_models, device="cpu").segment(dicom_ct, ["spleen", "liver"], progress=events.append)
    assert [(e.organ.key, e.stage) for e in events if e.stage == "done"] == [("liver", "done"), ("spleen", "done")]
    assert all(e.mask is not None for e in events if e.stage == "done")
    assert result.masks["liver"].full().shape == dicom_ct.GetSize()[::-1]
    assert list(tmp_path.iterdir()) == []


def test_existing_results_are_kept_unless_overwrite(tmp_path, data_dir, tiny_models, capsys):
    out = tmp_path / "out"
    args = ["segment", str(data_dir / "example_ct.nii.gz"), "-o", str(out), "--organs", "spleen",
            "--models", str(tiny_models)]
    assert main(args) == 0
    (out / "notes.txt").write_text("mine")
    before = (out / "stats.json").read_bytes()
    assert main(args) == 4
    assert "already holds results; choose another folder or pass --overwrite" in capsys.readouterr().err
    assert (out / "stats.json").read_bytes() == before
    assert main(args + ["--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"


@pytest.mark.parametrize("organs,code,message", [
    ("livr", 2, "unknown organ name 'livr'. Did you mean: liver"),
    ("pancreas", 3, "no model installed for 'pancreas'"),
])
def test_bad_organ_or_missing_model_fail_before_any_output(tmp_path, data_dir, tiny_models, capsys,
                                                            organs, code, message):
    out = tmp_path / "out"
    assert main(["segment", str(data_dir / "example_ct.nii.gz"), "-o", str(out), "--organs", organs,
                 "--models", str(tiny_models)]) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_mr_like_input_fails_with_one_line_and_no_output(tmp_path, tiny_models):
    mr = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 900, (12, 40, 40)).astype(np.int16))
    sitk.WriteImage(mr, str(tmp_path / "mr.nii.gz"))
    proc = subprocess.run([sys.executable, "-m", "organseg.cli", "segment", str(tmp_path / "mr.nii.gz"),
                           "-o", str(tmp_path / "out"), "--organs", "liver", "--models", str(tiny_models)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("organseg segment: error:") and "is this an MR" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_organs_and_models_listings(tiny_models, capsys):
    assert main(["organs", "--json", "--models", str(tiny_models)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 28 and {r["organ"]: r["model"] for r in rows}["liver"] == "v1"
    assert main(["models", "--models", str(tiny_models)]) == 0
    out = capsys.readouterr().out
    assert "liver" in out and "spleen" in out and "v1" in out


def test_a_ct_too_large_for_the_memory_is_refused_before_work(tmp_path, data_dir, tiny_models, capsys,
                                                             monkeypatch):
    monkeypatch.setattr("organseg.method.memory.available_memory", lambda: 50 * 2**20)
    assert main(["segment", str(data_dir / "example_ct_dicom"), "-o", str(tmp_path / "out"),
                 "--organs", "liver", "--models", str(tiny_models)]) == 2
    err = capsys.readouterr().err
    assert "example_ct_dicom: segmenting this 512x512x20 CT needs about" in err and "GiB are available" in err
    assert not (tmp_path / "out").exists()


def test_outputs_follow_the_umask_not_private_temp_permissions(dicom_run):
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert dicom_run.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (dicom_run / "masks" / "liver.nii.gz").stat().st_mode & 0o777 == 0o666 & ~umask
