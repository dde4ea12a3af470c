"""CPU inference with PyTorch absent: `organseg segment` runs on ONNX Runtime alone (the light install)."""
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

#: Runs the organseg command in a Python where `import torch` (and anything under it) fails.
NO_TORCH = ("import sys; sys.modules['torch'] = None; from organseg.cli import main; "
            "code = main(sys.argv[1:]); "
            "assert sys.modules.get('torch') is None, 'torch was imported'; sys.exit(code)")


def _organseg_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=600)


def test_segment_runs_without_torch(tmp_path, data_dir, tiny_models):
    out = tmp_path / "out"
    run = _organseg_without_torch("segment", str(data_dir / "example_ct_dicom"), "-o", str(out),
                                  "--organs", "liver,spleen", "--models", str(tiny_models))
    assert run.returncode == 0, run.stderr
    assert "onnxruntime-cpu" in run.stdout
    for organ in ("liver", "spleen"):
        assert np.any(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "masks" / f"{organ}.nii.gz"))))


def test_torch_engine_without_torch_is_a_one_line_error(tmp_path, data_dir, tiny_models):
    run = _organseg_without_torch("segment", str(data_dir / "example_ct_dicom"), "-o", str(tmp_path / "out"),
                                  "--organs", "liver", "--models", str(tiny_models), "--engine", "torch")
    assert run.returncode != 0
    assert "needs PyTorch" in run.stderr and "Traceback" not in run.stderr
