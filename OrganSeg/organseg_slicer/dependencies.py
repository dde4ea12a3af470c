"""First-run installation of the Python packages OrganSeg needs inside Slicer.

The library comes from the copy shipped with the extension (never an unpinned `organseg` from the index) and
every package it pulls in is pinned: a package Slicer already has stays at Slicer's version (so installing never
up- or downgrades what other extensions rely on), a missing one is installed at the version the tests ran with
(`TESTED`; a test checks it against the test environment). `install_plan` says what will be installed, for the
confirmation the module shows first. PyTorch (GPU inference, training) is left to the PyTorch Utils extension.
"""
from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from importlib import metadata
from pathlib import Path

_HERE = Path(__file__).resolve().parent
#: OrganSegLib as the extension ships it (installed module folder), or in a source checkout of the repository
LIBRARY_SOURCES = (_HERE.parent / "OrganSegLib", _HERE.parent.parent / "OrganSegLib")
#: import names of what OrganSeg needs; the library's requirement is `library_requirement()`
REQUIRED = ("organseg", "onnxruntime")
#: every package installing organseg and onnxruntime can pull in (their requirements, without extras), at the
#: versions the tests use
TESTED = {"onnxruntime": "1.32.0", "flatbuffers": "25.12.19", "packaging": "26.4", "protobuf": "7.36.2",
          "numpy": "2.4.6", "scipy": "1.17.1", "SimpleITK": "2.5.7", "tqdm": "4.70.1", "pydicom": "3.0.2",
          "slicerio": "1.4.0", "pynrrd": "1.1.3", "typing-extensions": "4.16.0", "requests": "2.34.2",
          "certifi": "2026.10.19.post1", "charset-normalizer": "3.5.3", "idna": "3.20", "urllib3": "2.8.0"}


class InstallError(Exception):
    """What first use cannot install, with what to do instead."""


def library_requirement() -> str:
    """Where pip takes the organseg library from: $ORGANSEG_PIP_REQUIREMENT, else the shipped copy (never PyPI)."""
    if "ORGANSEG_PIP_REQUIREMENT" in os.environ:
        return os.environ["ORGANSEG_PIP_REQUIREMENT"]
    shipped = next((p for p in LIBRARY_SOURCES if (p / "pyproject.toml").is_file()), None)
    if shipped is None:
        raise InstallError(f"the organseg library shipped with the extension is missing ({LIBRARY_SOURCES[0]}); "
                           "reinstall the OrganSeg extension, or set ORGANSEG_PIP_REQUIREMENT to a pinned "
                           "requirement (organseg==VERSION) or an OrganSegLib folder")
    return str(shipped)


def requirement(name: str) -> str:
    """The pip requirement of a name in REQUIRED."""
    return library_requirement() if name == "organseg" else f"{name}=={TESTED[name]}"


def missing_packages() -> list[str]:
    """Names of the required packages that cannot be imported yet (what the user is asked to install)."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install_plan(packages: list[str]) -> list[str]:
    """What installing `packages` (names in REQUIRED) adds to Slicer's Python, one 'name version' each."""
    plan = []
    if "organseg" in packages:
        source = library_requirement()
        pyproject = Path(source) / "pyproject.toml"
        version = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.MULTILINE)[1] \
            if pyproject.is_file() else None
        plan.append(f"organseg {version} (shipped with the extension)" if version else source)
    plan += [f"{name} {TESTED[name]}" for name in packages if name != "organseg"]
    plan += [f"{name} {version}" for name, version in TESTED.items()
             if name not in packages and _installed(name) is None]
    return plan


def constraints(folder: Path) -> Path:
    """A pip constraints file: each package of TESTED at the version Slicer has, else at the tested version."""
    lines = [f"{name}=={_installed(name) or version}" for name, version in TESTED.items()]
    path = folder / "organseg-constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def install(packages: list[str]) -> None:
    """pip-install the packages (names in REQUIRED) inside Slicer, every package pinned (see `constraints`)."""
    import slicer

    with tempfile.TemporaryDirectory() as tmp:
        slicer.util.pip_install([requirement(name) for name in packages] + ["-c", str(constraints(Path(tmp)))])
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
