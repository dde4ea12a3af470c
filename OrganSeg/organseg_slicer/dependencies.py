"""First-run installation of the Python packages OrganSeg needs inside Slicer.

The library and ONNX Runtime are installed with `slicer.util.pip_install` under a constraints file that
pins the numpy, SimpleITK and scipy Slicer already has, so installing never up- or downgrades packages
other extensions rely on. PyTorch (GPU inference, training) is left to the PyTorch Utils extension.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from importlib import metadata
from pathlib import Path

_HERE = Path(__file__).resolve().parent
#: OrganSegLib as the extension ships it (installed module folder), or in a source checkout of the repository
LIBRARY_SOURCES = (_HERE.parent / "OrganSegLib", _HERE.parent.parent / "OrganSegLib")


def library_requirement() -> str:
    """Where pip takes the organseg library from: $ORGANSEG_PIP_REQUIREMENT, the shipped copy, else PyPI."""
    if "ORGANSEG_PIP_REQUIREMENT" in os.environ:
        return os.environ["ORGANSEG_PIP_REQUIREMENT"]
    shipped = next((p for p in LIBRARY_SOURCES if (p / "pyproject.toml").is_file()), None)
    return str(shipped) if shipped else "organseg"


#: import name -> pip requirement
REQUIRED = {"organseg": library_requirement(), "onnxruntime": "onnxruntime>=1.17"}
#: packages Slicer ships; pinned to their installed versions while installing
PROTECTED = ("numpy", "SimpleITK", "scipy")


def missing_packages() -> list[str]:
    """Names of the required packages that cannot be imported yet (what the user is asked to install)."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def constraints(folder: Path) -> Path:
    """A pip constraints file pinning the installed versions of the protected packages."""
    lines = []
    for name in PROTECTED:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    path = folder / "organseg-constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def install(packages: list[str]) -> None:
    """pip-install the packages (names in REQUIRED) inside Slicer without changing the protected packages."""
    import slicer

    with tempfile.TemporaryDirectory() as tmp:
        slicer.util.pip_install([REQUIRED[name] for name in packages] + ["-c", str(constraints(Path(tmp)))])
    importlib.invalidate_caches()


def torch_from_pytorch_utils() -> str | None:
    """Make PyTorch available through the PyTorch Utils extension; returns a message if it cannot."""
    if importlib.util.find_spec("torch") is not None:
        return None
    try:
        import PyTorchUtils
    except ImportError:
        return ("GPU inference and training need PyTorch: install the 'PyTorch' extension from the "
                "Extensions Manager, restart Slicer, then choose the device again")
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
        return "PyTorch was not installed; using the CPU"
    return None
