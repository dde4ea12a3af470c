"""Runtimes that turn batches of prepared slices into organ probabilities (ONNX Runtime or PyTorch), and the
labeller runtime that labels a whole HU volume with a classical labeller package."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from organseg.errors import InputError, ModelError, brief
from organseg.method.model_package import LABELLER, WEIGHTS_FILE, ModelPackage

if TYPE_CHECKING:
    from organseg.method.network import ResUNet2D

DEVICES = ("auto", "cpu", "cuda", "mps")


#: A labeller's mask function: (canonical HU volume, spacing (S, P, L) mm, body mask or None) -> boolean mask.
Labeller = Callable[[np.ndarray, tuple[float, float, float], np.ndarray | None], np.ndarray]


class Runtime(Protocol):
    """Probabilities (N, H, W) float32 of one organ for a batch (N, 2 * context + 1, H, W) of prepared slices."""

    name: str
    context: int  #: slices on each side the network reads (`ModelPackage.context`)

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


class OrtRuntime:
    """ONNX Runtime on the CPU: no torch needed.

    Tuned by measurement on 2 cores (Testing/benchmarks/BENCHMARK.md): threads idle without spinning, which costs
    nothing alone and avoids a large slow-down when other processes share the CPU; batches run as sub-batches
    of `SUB_BATCH` slices, as fast per slice as larger ones while the activation memory stays small.
    """

    name = "onnxruntime-cpu"
    SUB_BATCH = 4

    def __init__(self, package: ModelPackage, threads: int = 0) -> None:
        import onnxruntime as ort

        if package.onnx_path is None:
            raise ModelError(f"{package.path}: has no {package.path.name}/model.onnx; re-export the package")
        self.context = package.context
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(package.onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...) for a bad model
            raise ModelError(f"{package.onnx_path}: not a usable ONNX model ({brief(err)}); "
                             "reinstall the model package") from None
        if [i.name for i in self.session.get_inputs()] != ["slices"] or len(self.session.get_outputs()) != 1:
            raise ModelError(f"{package.onnx_path}: is not an OrganSeg network (one input 'slices', one output); "
                             "reinstall the model package")
        if self.session.get_inputs()[0].shape[1] != package.in_channels:
            raise ModelError(f"{package.onnx_path}: reads {self.session.get_inputs()[0].shape[1]} channels where "
                             f"model.json says {package.in_channels}; reinstall the model package")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        logits = [self.session.run(None, {"slices": batch[i:i + self.SUB_BATCH]})[0][:, 0]
                  for i in range(0, len(batch), self.SUB_BATCH)]
        return _sigmoid(np.concatenate(logits))


class TorchRuntime:
    """PyTorch on cpu, cuda or mps."""

    def __init__(self, package: ModelPackage, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = f"torch-{device}"
        self.context = package.context
        self.net = package_network(package).eval().to(self.device)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            x = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.torch.sigmoid(self.net(x))[:, 0].float().cpu().numpy()


def package_network(package: ModelPackage) -> ResUNet2D:
    """The package's network with its weights (needs torch); weights that do not fit it are a ModelError."""
    import torch

    from organseg.method.network import ResUNet2D

    net = ResUNet2D(package.channels, package.in_channels)
    try:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in package.state_dict_arrays().items()})
    except (RuntimeError, TypeError) as err:  # missing, unexpected or misshapen tensors; non-numeric arrays
        raise ModelError(f"{package.path / WEIGHTS_FILE}: does not hold the weights of the network model.json "
                         f"describes ({brief(err)}); reinstall the model package") from None
    return net


class LabellerRuntime:
    """A classical labeller package: the whole canonical (S, P, L) HU volume in, a boolean organ mask out.

    It runs on the CPU whatever the device: it is image processing, a second or two per 100 slices.
    """

    name = "classical-labeller-cpu"

    def __init__(self, package: ModelPackage) -> None:
        labeller = package.meta["architecture"]["name"]
        if labeller not in LABELLERS:
            raise ModelError(f"{package.path}: labeller '{labeller}' is not known to this organseg "
                             f"(known: {', '.join(LABELLERS)}); update organseg")
        self.label = LABELLERS[labeller](package.labeller_parameters(), package.path)

    def mask(self, volume: np.ndarray, spacing: tuple[float, float, float],
             body: np.ndarray | None = None) -> np.ndarray:
        """Organ mask of a canonical HU volume; `spacing` in mm along (S, P, L); `body`: its body mask, if known."""
        return self.label(volume, spacing, body)


def _lung_labeller(parameters: dict, source) -> Labeller:
    from organseg.method.lungs import LungParameters, label_lungs
    try:
        params = LungParameters.from_dict(parameters)
    except (TypeError, ValueError) as err:
        raise ModelError(f"{source}: invalid lung labeller parameters ({err})") from None
    return lambda volume, spacing, body=None: label_lungs(volume, spacing, params, body) > 0


#: Labeller name (a labeller package's `architecture.name`) -> factory(parameters, source) of its mask function.
LABELLERS: dict[str, Callable[[dict, object], Labeller]] = {
    "lung-labeller": _lung_labeller,
}


def resolve_device(device: str) -> str:
    """'auto' -> cuda, mps or cpu (whatever is there); check that an asked-for GPU exists."""
    if device not in DEVICES:
        raise InputError(f"unknown device '{device}'; use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise InputError(f"device '{device}' needs PyTorch: pip install 'organseg[torch]'") from None
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise InputError(f"device '{device}' is not available on this machine; use --device cpu or auto")
    return device


def make_runtime(package: ModelPackage, device: str, engine: str = "auto") -> Runtime | LabellerRuntime:
    """ONNX Runtime for the CPU where the package has an ONNX file, else PyTorch on the device; a labeller
    package gets its LabellerRuntime.

    engine: 'auto', 'onnx' or 'torch'.
    """
    device = resolve_device(device)
    if package.kind == LABELLER:
        return LabellerRuntime(package)
    if engine not in ("auto", "onnx", "torch"):
        raise InputError(f"unknown engine '{engine}'; use auto, onnx or torch")
    if engine == "onnx" or (engine == "auto" and device == "cpu" and package.onnx_path is not None):
        if device != "cpu":
            raise InputError("the ONNX engine runs on the CPU only; use --engine torch for a GPU")
        return OrtRuntime(package)
    try:
        return TorchRuntime(package, device)
    except ImportError:
        if engine == "torch":
            raise InputError("--engine torch needs PyTorch, which is not installed; pip install 'organseg[torch]' "
                             "or use the ONNX engine") from None
        raise ModelError(f"{package.path}: has no ONNX file and PyTorch is not installed; "
                         "pip install 'organseg[torch]'") from None
