"""ONNX Runtime and PyTorch give the same probabilities on real prepared slices; the engine choice rules."""
import numpy as np
import pytest
import SimpleITK as sitk

from organseg.ct.orientation import Reorientation
from organseg.errors import InputError, ModelError
from organseg.method.model_package import ModelPackage, ModelStore, write_package
from organseg.method.preprocess import prepare
from organseg.method.runtime import OrtRuntime, TorchRuntime, make_runtime


@pytest.fixture(scope="module")
def slices(dicom_ct):
    """Eight real prepared slices of the DICOM series, as a network batch."""
    canonical = Reorientation.of(dicom_ct).to_canonical(sitk.GetArrayFromImage(dicom_ct)).astype(np.float32)
    prepared = prepare(canonical)
    return prepared.batch(np.arange(0, len(prepared.inputs), 2)[:8])


@pytest.mark.parametrize("organ", ["liver", "spleen"])
def test_onnx_runtime_matches_torch_within_1e4(tiny_models, slices, organ):
    package = ModelStore([tiny_models]).get(organ)
    ort_prob = OrtRuntime(package).predict(slices)
    torch_prob = TorchRuntime(package, "cpu").predict(slices)
    assert ort_prob.shape == torch_prob.shape == (len(slices), *slices.shape[2:])
    assert ort_prob.std() > 0  # a real, varying output, not a constant
    assert np.abs(ort_prob - torch_prob).max() < 1e-4


def test_cpu_default_is_onnx_runtime_and_torch_on_request(tiny_models):
    package = ModelStore([tiny_models]).get("liver")
    assert isinstance(make_runtime(package, "cpu"), OrtRuntime)
    assert isinstance(make_runtime(package, "cpu", "torch"), TorchRuntime)
    with pytest.raises(InputError, match="unknown engine"):
        make_runtime(package, "cpu", "tensorrt")


def test_package_without_onnx_falls_back_to_torch_and_refuses_the_onnx_engine(tmp_path, tiny_models):
    source = ModelStore([tiny_models]).get("liver")
    package = write_package(tmp_path, "liver", source.state_dict_arrays(), source.channels, {}, {},
                            export_onnx=False)
    assert package.onnx_path is None
    assert isinstance(make_runtime(package, "cpu"), TorchRuntime)
    with pytest.raises(ModelError, match="model.onnx"):
        make_runtime(ModelPackage.load(package.path), "cpu", "onnx")
