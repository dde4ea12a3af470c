"""Model packages: one folder per organ and version with weights, an ONNX export and `model.json`.

Layout: `<models_dir>/<organ>-v<version>/` holding `model.json`, `weights.npz` (the network's state dict as
arrays, no pickle) and `model.onnx`. `model.json` records the sha256 of each file; loading verifies the
schema, the organ name and every checksum, and refuses the package with a clear message otherwise.

A package is verified whole, since packages travel between sites: the folder holds `model.json` and exactly the
files it lists (plain names, no links, no subfolders: an ONNX model's external weights file would otherwise be
loaded unchecked), its name `<organ>-v<version>` agrees with `model.json`, and the threshold and HU window are
numbers a network can be run with.

`z_vote_mm` (default 0: none) is the window of the post-processing vote along the body axis chosen with the
model, as its threshold is (`postprocess.vote_along_z`).

`input.context_slices` (k, default 0) records what the network reads: the slice alone (the paper's 2D input) or
also the k slices on each side as extra channels (2.5D), so inference feeds it as it was trained
(`preprocess.Prepared.batch`).

A package of kind `LABELLER` holds a classical labeller instead of a network: `architecture.name` names the
labeller (see `organseg.method.runtime.LABELLERS`) and `parameters.json` its parameters, checksummed the same way,
so it is listed, verified and run through the same paths as a network.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from organseg import __version__
from organseg.atomic import atomic_dir
from organseg.catalogue import Organ, organ
from organseg.errors import ModelError, brief
from organseg.method.preprocess import HU_WINDOW, INPUT_HEIGHT, INPUT_WIDTH, LEVELS

SCHEMA = "organseg-model/1"
WEIGHTS_FILE = "weights.npz"
ONNX_FILE = "model.onnx"
PARAMETERS_FILE = "parameters.json"
NETWORK, LABELLER = "network", "classical labeller"  #: package kinds (`architecture.kind`)
MAX_CONTEXT = 4  #: the most slices on each side a package may read (`input.context_slices`)
MAX_VOTE_MM = 50.0  #: the widest post-processing vote along the body axis a package may ask for (`z_vote_mm`)
_DIR_PATTERN = re.compile(r"^(?P<organ>[a-z_]+)-v(?P<version>\d+)$")
_REQUIRED = {"schema": str, "organ": str, "version": int, "architecture": dict, "files": dict}
_NETWORK_REQUIRED = {"input": dict, "threshold": float}


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelPackage:
    """A verified model package on disk."""

    path: Path
    meta: dict[str, Any]

    @property
    def organ(self) -> Organ:
        return organ(self.meta["organ"])

    @property
    def version(self) -> int:
        return int(self.meta["version"])

    @property
    def kind(self) -> str:
        """NETWORK or LABELLER."""
        return self.meta["architecture"].get("kind", NETWORK)

    @property
    def main_file(self) -> str:
        """The file that holds what the package computes with: the weights or the labeller's parameters."""
        return PARAMETERS_FILE if self.kind == LABELLER else WEIGHTS_FILE

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.meta["architecture"]["channels"])

    @property
    def context(self) -> int:
        """Slices on each side of a slice that the network also reads (0: the slice alone)."""
        return int(self.meta["input"].get("context_slices", 0))

    @property
    def in_channels(self) -> int:
        return 2 * self.context + 1

    @property
    def z_vote_mm(self) -> float:
        """The window along the body axis of the post-processing vote chosen with the model (0: none)."""
        return float(self.meta.get("z_vote_mm", 0.0))

    @property
    def hu_window(self) -> tuple[float, float]:
        lo, hi = self.meta["input"]["hu_window"]
        return float(lo), float(hi)

    @property
    def levels(self) -> int:
        return int(self.meta["input"]["levels"])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def dice(self) -> float | None:
        """Validation Dice recorded by training, if any."""
        return self.meta.get("metrics", {}).get("val_dice")

    @property
    def patients(self) -> int | None:
        """Patients the model was trained and selected on (the card's training.patients), if recorded."""
        value = self.meta.get("training", {}).get("patients")
        return int(value) if value is not None else None

    @property
    def provenance(self) -> str:
        """The first thing a user should know of a model: a one-patient demonstration, or how it was measured."""
        heldout = self.meta.get("metrics", {}).get("heldout")
        if self.kind == LABELLER:
            checked = self.meta.get("training", {}).get("checked_on", {}).get("cts")
            return "classical labeller, no training" + (f", {checked} CTs checked" if checked else "")
        if self.patients is not None and self.patients <= 1:
            return "demonstration (one patient)"
        if heldout:
            return (f"trained on {self.patients} patients, held-out Dice {heldout['dice']['median']:.2f} "
                    f"(n={heldout['patients']})")
        return f"trained on {self.patients} patients" if self.patients else "training not recorded"

    @property
    def onnx_path(self) -> Path | None:
        return self.path / ONNX_FILE if ONNX_FILE in self.meta["files"] else None

    def labeller_parameters(self) -> dict[str, Any]:
        """A labeller package's parameters (verified by checksum at load)."""
        return json.loads((self.path / PARAMETERS_FILE).read_text())

    def state_dict_arrays(self) -> dict[str, np.ndarray]:
        """The network weights as numpy arrays."""
        try:
            with np.load(self.path / WEIGHTS_FILE, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # object arrays raise ValueError
            raise ModelError(f"{self.path / WEIGHTS_FILE}: not readable as the network's weights ({brief(err)}); "
                             "reinstall the model package") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelPackage":
        """Read and verify a package folder (schema, organ, input size, checksums)."""
        path = Path(path)
        meta_path = path / "model.json"
        if not meta_path.is_file():
            raise ModelError(f"{path}: not a model package (no model.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelError(f"{meta_path}: not valid JSON ({err})") from None
        _check_fields(meta, _REQUIRED, meta_path)
        if meta["schema"] != SCHEMA:
            raise ModelError(f"{meta_path}: package schema '{meta['schema']}' is not supported by organseg "
                             f"{__version__} (expects '{SCHEMA}'); update organseg or the model")
        organ(meta["organ"])
        kind = meta["architecture"].get("kind", NETWORK)
        if kind not in (NETWORK, LABELLER):
            raise ModelError(f"{meta_path}: package kind '{kind}' is not supported by organseg {__version__}; "
                             "update organseg or the model")
        if kind == NETWORK:
            _check_fields(meta, _NETWORK_REQUIRED, meta_path)
            if (meta["input"].get("height"), meta["input"].get("width")) != (INPUT_HEIGHT, INPUT_WIDTH):
                raise ModelError(f"{meta_path}: input size {meta['input'].get('height')}x"
                                 f"{meta['input'].get('width')} differs from {INPUT_HEIGHT}x{INPUT_WIDTH}")
            _check_numbers(meta, meta_path)
        _check_folder_name(path, meta, meta_path)
        main = PARAMETERS_FILE if kind == LABELLER else WEIGHTS_FILE
        if main not in meta["files"]:
            raise ModelError(f"{meta_path}: lists no {main}")
        _check_contents(path, meta["files"], meta_path)
        for name, info in meta["files"].items():
            file = path / name
            if not file.is_file():
                raise ModelError(f"{file}: listed in model.json but missing; reinstall the model package")
            if not isinstance(info, dict) or sha256(file) != info.get("sha256"):
                raise ModelError(f"{file}: checksum does not match model.json (corrupt or modified); "
                                 "reinstall the model package")
        return cls(path, meta)


def write_package(models_dir: str | os.PathLike, organ_key: str, state_dict: dict[str, np.ndarray],
                  channels: tuple[int, ...], training: dict[str, Any], metrics: dict[str, Any],
                  version: int | None = None, threshold: float = 0.5, export_onnx: bool = True,
                  context: int = 0, z_vote_mm: float = 0.0) -> ModelPackage:
    """Write a new package version atomically; never replaces an existing version.

    `version` defaults to one more than the highest installed version of the organ; `context`: slices on each
    side the network reads (`ModelPackage.context`); `z_vote_mm`: the post-processing vote's window
    (`ModelPackage.z_vote_mm`).
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    key = organ(organ_key).key
    if version is None:
        version = max((v for o, v, _ in _scan(models_dir) if o == key), default=0) + 1
    final = models_dir / f"{key}-v{version}"
    if final.exists():
        raise ModelError(f"{final}: a package of this version exists; it is never overwritten")
    with atomic_dir(final, "package") as tmp:
        np.savez(tmp / WEIGHTS_FILE, **{k: np.asarray(v) for k, v in state_dict.items()})
        files = {WEIGHTS_FILE: {"sha256": sha256(tmp / WEIGHTS_FILE)}}
        if export_onnx:
            from organseg.method.onnx_export import export_onnx as _export
            _export(state_dict, channels, tmp / ONNX_FILE, 2 * context + 1)
            files[ONNX_FILE] = {"sha256": sha256(tmp / ONNX_FILE)}
        meta = {
            "schema": SCHEMA, "organ": key, "version": version,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "organseg_version": __version__,
            "architecture": {"name": "resunet2d", "channels": list(channels),
                             "parameters": int(sum(np.asarray(v).size for k, v in state_dict.items()
                                                   if not k.endswith(("running_mean", "running_var",
                                                                      "num_batches_tracked"))))},
            "input": {"height": INPUT_HEIGHT, "width": INPUT_WIDTH, "hu_window": list(HU_WINDOW), "levels": LEVELS,
                      **({"context_slices": context} if context else {})},
            "threshold": float(threshold), **({"z_vote_mm": float(z_vote_mm)} if z_vote_mm else {}),
            "files": files, "training": training, "metrics": metrics,
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return ModelPackage.load(final)


def write_labeller_package(models_dir: str | os.PathLike, organ_key: str, labeller: str, parameters: dict[str, Any],
                           card: dict[str, Any], version: int) -> ModelPackage:
    """Write a classical labeller as a package (never replacing a version); `card` holds the model card's
    fields (training, metrics, limits, why)."""
    final = Path(models_dir) / f"{organ(organ_key).key}-v{version}"
    if final.exists():
        raise ModelError(f"{final}: a package of this version exists; it is never overwritten")
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(final, "package") as tmp:
        (tmp / PARAMETERS_FILE).write_text(json.dumps(parameters, indent=2) + "\n")
        meta = {"schema": SCHEMA, "organ": organ(organ_key).key, "version": version,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "organseg_version": __version__, "architecture": {"name": labeller, "kind": LABELLER},
                "files": {PARAMETERS_FILE: {"sha256": sha256(tmp / PARAMETERS_FILE)}}, **card}
        (tmp / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return ModelPackage.load(final)


def _check_fields(meta: dict[str, Any], required: dict[str, type], meta_path: Path) -> None:
    for key, kind in required.items():
        if not isinstance(meta.get(key), kind if kind is not float else (int, float)):
            raise ModelError(f"{meta_path}: missing or invalid field '{key}'")


def _check_numbers(meta: dict[str, Any], meta_path: Path) -> None:
    """A network's threshold in (0, 1), an ordered finite HU window, sane widths: else a wrong mask or a crash."""
    threshold = meta["threshold"]
    if isinstance(threshold, bool) or not math.isfinite(threshold) or not 0 < threshold < 1:
        raise ModelError(f"{meta_path}: threshold {threshold} is not a probability between 0 and 1")
    window = meta["input"].get("hu_window")
    if not (isinstance(window, list) and len(window) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in window)
            and window[0] < window[1]):
        raise ModelError(f"{meta_path}: HU window {window} is not two ordered numbers [low, high]")
    channels = meta["architecture"].get("channels")
    if not (isinstance(channels, list) and 1 <= len(channels) <= 8
            and all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 1024 for c in channels)):
        raise ModelError(f"{meta_path}: architecture channels {channels} are not 1 to 8 widths of 1 to 1024")
    levels = meta["input"].get("levels")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ModelError(f"{meta_path}: levels {levels} is not a positive whole number")
    vote = meta.get("z_vote_mm", 0.0)
    if isinstance(vote, bool) or not isinstance(vote, (int, float)) or not 0 <= vote <= MAX_VOTE_MM:
        raise ModelError(f"{meta_path}: z_vote_mm {vote} is not a window of 0 to {MAX_VOTE_MM:g} mm")
    context = meta["input"].get("context_slices", 0)
    if isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= MAX_CONTEXT:
        raise ModelError(f"{meta_path}: context_slices {context} is not a whole number from 0 to {MAX_CONTEXT}")


def _check_folder_name(path: Path, meta: dict[str, Any], meta_path: Path) -> None:
    """The folder is what the store finds the package by: it must name the organ and version inside."""
    name = Path(os.path.abspath(path)).name
    expected = f"{meta['organ']}-v{meta['version']}"
    if name != expected:
        raise ModelError(f"{meta_path}: holds the {meta['organ']} model version {meta['version']} but its folder "
                         f"is named '{name}' (expected '{expected}'); a renamed package is refused")


def _check_contents(path: Path, files: dict[str, Any], meta_path: Path) -> None:
    """Only model.json and the files it lists, each a plain regular file in the folder itself."""
    for name in files:
        if (not isinstance(name, str) or name in ("", ".", "..", "model.json") or "/" in name or "\\" in name
                or ":" in name or os.path.isabs(name) or "\0" in name):
            raise ModelError(f"{meta_path}: lists the file name {name!r}, which is not a plain name in the package "
                             "folder; the package is refused")
    for entry in os.scandir(path):
        if entry.is_symlink():
            raise ModelError(f"{path / entry.name}: a link inside a model package is refused; copy the file in and "
                             "list it in model.json")
        if entry.name != "model.json" and entry.name not in files:
            kind = "folder" if entry.is_dir() else "file"
            raise ModelError(f"{path / entry.name}: a {kind} model.json does not list; a package holds only "
                             "model.json and the files it lists with their sha256, so it is refused")


def _scan(models_dir: Path) -> list[tuple[str, int, Path]]:
    if not models_dir.is_dir():
        return []
    found = []
    for child in sorted(models_dir.iterdir()):
        match = _DIR_PATTERN.match(child.name)
        if match and child.is_dir():
            found.append((match["organ"], int(match["version"]), child))
    return found


def bundled_models_dir() -> Path:
    """Models shipped inside the organseg package."""
    return Path(__file__).parents[1] / "bundled" / "models"


def default_models_dirs() -> list[Path]:
    """Where packages are looked for: $ORGANSEG_MODELS (os.pathsep-separated), ~/.organseg/models, bundled."""
    env = os.environ.get("ORGANSEG_MODELS")
    dirs = [Path(p) for p in env.split(os.pathsep) if p] if env else []
    return dirs + [Path.home() / ".organseg" / "models", bundled_models_dir()]


@dataclass
class ModelStore:
    """The installed packages of one or more folders; the first folder wins for the same organ and version."""

    dirs: list[Path] = field(default_factory=default_models_dirs)

    def available(self) -> dict[str, dict[int, Path]]:
        """organ -> version -> package folder (unverified)."""
        found: dict[str, dict[int, Path]] = {}
        for d in self.dirs:
            for key, version, path in _scan(Path(d)):
                found.setdefault(key, {}).setdefault(version, path)
        return found

    def get(self, organ_key: str, version: int | None = None) -> ModelPackage:
        """The verified package of an organ: the given version or the newest."""
        key = organ(organ_key).key
        versions = self.available().get(key)
        if not versions:
            where = ", ".join(str(d) for d in self.dirs)
            raise ModelError(f"no model installed for '{key}' (looked in {where}); train one with "
                             f"`organseg train --organ {key}` or pass --models DIR")
        if version is None:
            version = max(versions)
        if version not in versions:
            raise ModelError(f"no version {version} of the '{key}' model; installed: {sorted(versions)}")
        return ModelPackage.load(versions[version])  # its folder name, hence its organ, is verified
