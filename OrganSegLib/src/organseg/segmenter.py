"""The Python API: `Segmenter(models, device).segment(image, organs) -> Result`, no files written.

A CT is read, oriented and pre-processed once; each organ's network runs over its slices; masks are
post-processed (components, holes, anchor-organ boxes) and mapped back onto the input's voxel grid.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from organseg import postprocess as pp
from organseg.catalogue import Organ, organ, parse_organs
from organseg.errors import InputError, ModelError
from organseg.inference import (FINE_MARGIN_MM, INTERPOLATE_MM, STRATEGIES, Cancelled, coarse_stride,
                                predict_organ, slices_within)
from organseg.input_checks import finite_hu, spacing_warnings
from organseg.io import array_to_image, check_ct
from organseg.model_package import ModelPackage, ModelStore
from organseg.orientation import Reorientation
from organseg.preprocess import INPUT_HEIGHT, INPUT_WIDTH, Prepared, prepare
from organseg.runtime import make_runtime, resolve_device
from organseg.stats import bounding_box, organ_stats

__all__ = ["Segmenter", "Result", "OrganMask", "Progress", "Cancelled"]


@dataclass
class OrganMask:
    """A boolean mask stored as its bounding box on the input grid, to bound memory on large CTs."""

    shape: tuple[int, int, int]  #: full (z, y, x) shape
    offset: tuple[int, int, int]
    box: np.ndarray  #: bool array of the bounding box (empty shape when the organ was not found)

    @classmethod
    def from_full(cls, mask: np.ndarray) -> "OrganMask":
        if not mask.any():
            return cls(mask.shape, (0, 0, 0), np.zeros((0, 0, 0), dtype=bool))
        lo, hi = bounding_box(mask)
        return cls(mask.shape, tuple(lo), mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].copy())

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.box.shape))  # type: ignore[return-value]

    def full(self) -> np.ndarray:
        """The mask on the full (z, y, x) grid."""
        out = np.zeros(self.shape, dtype=bool)
        out[self.slices] = self.box
        return out


@dataclass
class Progress:
    """What the segmenter reports after each step, for progress bars and the Slicer module."""

    index: int  #: 1-based number of the organ
    total: int
    organ: Organ
    stage: str  #: "prepare", "inference" or "done"
    seconds: float = 0.0
    mask: OrganMask | None = None  #: final mask once stage == "done"


@dataclass
class Result:
    """Masks on the input grid, statistics and timings of one segmentation."""

    reference: sitk.Image  #: geometry of the input (origin, spacing, direction)
    masks: dict[str, OrganMask]
    stats: list[dict]
    seconds: dict[str, float]
    added_anchors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  #: organ -> "organ-vN (runtime)"

    def mask_image(self, key: str) -> sitk.Image:
        """One organ's mask as a UInt8 image on the input grid."""
        return array_to_image(self.masks[key].full().astype(np.uint8), self.reference)

    def label_map(self) -> np.ndarray:
        """Multi-label (z, y, x) uint8 array with catalogue label values.

        Where organs overlap (e.g. GI tract and colon) the smaller organ is painted last and wins; the
        per-organ masks keep every voxel.
        """
        labels = np.zeros(self.reference.GetSize()[::-1], dtype=np.uint8)
        for key in sorted(self.masks, key=lambda k: -int(self.masks[k].box.sum())):
            m = self.masks[key]
            labels[m.slices][m.box] = organ(key).label
        return labels

    def label_image(self) -> sitk.Image:
        return array_to_image(self.label_map(), self.reference)


#: Working memory per CT voxel besides the CT's canonical copy (masks, labels). Measured peak at 512x512x800 int16:
#: 2.17 GB, 10.8 bytes per voxel with the image, its 2-byte copy and the process itself (Testing/BENCHMARK.md).
WORK_BYTES_PER_VOXEL = 7


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(image: sitk.Image, source: str) -> None:
    """Refuse a CT whose working set would not fit: a canonical copy, masks, labels and the network inputs."""
    voxels = int(np.prod(image.GetSize(), dtype=np.int64))
    slices = max(image.GetSize())
    needed = (voxels * (image.GetSizeOfPixelComponent() + WORK_BYTES_PER_VOXEL)
              + slices * INPUT_HEIGHT * INPUT_WIDTH * 4)
    available = available_memory()
    if available is not None and needed > available:
        raise InputError(f"{source}: segmenting this {'x'.join(map(str, image.GetSize()))} CT needs about "
                         f"{needed / 2**30:.1f} GiB of memory but {available / 2**30:.1f} GiB are available; "
                         "crop or downsample the CT, or free memory")


class Segmenter:
    """Segments chosen organs of a CT with installed model packages."""

    def __init__(self, models: ModelStore | str | Path | list[Path] | None = None, device: str = "auto",
                 engine: str = "auto", batch_size: int = 16, postprocess: bool = True,
                 anchor_rules: dict[str, bool] | None = None, strategy: str = "coarse-to-fine") -> None:
        if strategy not in STRATEGIES:
            raise InputError(f"unknown inference strategy '{strategy}'; use {', '.join(STRATEGIES)}")
        if models is None:
            models = ModelStore()
        elif not isinstance(models, ModelStore):
            models = ModelStore([Path(models)] if isinstance(models, (str, Path)) else [Path(m) for m in models])
        self.store = models
        self.device = resolve_device(device)
        self.engine = engine
        self.batch_size = batch_size
        self.postprocess = postprocess
        self.anchor_rules = anchor_rules
        self.strategy = strategy

    def plan(self, organs: str | list[str] | None) -> tuple[list[ModelPackage], list[str], list[str]]:
        """Verified packages for the organs plus the anchors their rules need; (packages, added, warnings).

        None or 'all' means every organ that has a model (the others are named in a warning); an organ
        named explicitly without a model is an error.
        """
        added, warnings = [], []
        chosen = [o.key for o in parse_organs(organs)]
        if organs is None or organs == "all":
            chosen, left_out = self._with_models(chosen)
            if left_out:
                warnings.append(f"no model installed for {len(left_out)} organs, left out: {', '.join(left_out)}")
        packages = [self.store.get(key) for key in chosen]
        if self.postprocess:
            for anchor in pp.required_anchors(chosen, self.anchor_rules):
                try:
                    packages.append(self.store.get(anchor))
                    added.append(anchor)
                except ModelError:
                    warnings.append(f"anchor organ '{anchor}' has no model installed; rules that need it are skipped")
        return packages, added, warnings

    def _with_models(self, keys: list[str]) -> tuple[list[str], list[str]]:
        """(organs that have an installed model, organs that have none); refuses when none has one."""
        available = self.store.available()
        have = [k for k in keys if k in available]
        if not have:
            raise ModelError(f"no organ model installed (looked in {', '.join(str(d) for d in self.store.dirs)}); "
                             "train one with `organseg train` or pass --models DIR")
        return have, [k for k in keys if k not in available]

    def segment(self, image: sitk.Image, organs: str | list[str] | None,
                progress: Callable[[Progress], None] | None = None,
                cancel: Callable[[], bool] | None = None, source: str = "image") -> Result:
        """Segment the organs (names, comma string or None for all) of a CT image in HU.

        Anchor organs run first; each organ is finished (anchor box, mapped back, statistics) as soon as
        the anchors its rule needs are done, and reported through `progress` with its final mask.
        """
        check_ct(image, source)
        check_memory(image, source)
        packages, added, warnings = self.plan(organs)
        packages.sort(key=lambda p: not p.organ.anchor)
        orient = Reorientation.of(image, source)
        ct, input_warnings = finite_hu(sitk.GetArrayViewFromImage(image), source)
        canonical = np.ascontiguousarray(orient.to_canonical(ct))  # stored type: slices become float32 one by one
        slice_mm = float(image.GetSpacing()[2 - orient.permutation[0]])
        warnings += input_warnings + spacing_warnings(image, 2 - orient.permutation[0], source)
        voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
        planned = {p.organ.key for p in packages}

        prepared: dict[tuple, Prepared] = {}
        predicted: dict[str, OrganMask] = {}  # canonical, as the network gave them
        cleaned: dict[str, OrganMask] = {}  # canonical, after components and holes
        extents: dict[str, tuple[int, int] | None] = {}
        seconds: dict[str, float] = {}
        models: dict[str, str] = {}
        masks: dict[str, OrganMask] = {}
        stats: dict[str, dict] = {}
        pending = list(packages)

        def finish_ready() -> None:
            for package in list(pending):
                key = package.organ.key
                needs = set(pp.RULES[key].anchors) & planned if self._boxed(key) else set()
                if key not in cleaned or not needs <= set(cleaned):
                    continue
                final = self._anchor_box(key, cleaned[key].full(), extents, slice_mm, planned, warnings)
                changed = int(np.count_nonzero(predicted[key].full() ^ final))
                full = orient.from_canonical(final)
                masks[key] = OrganMask.from_full(full)
                stats[key] = organ_stats(package.organ, full, ct, image.GetSpacing(), changed)
                pending.remove(package)
                if progress:
                    progress(Progress(len(masks), len(packages), package.organ, "done", seconds[key], masks[key]))

        for index, package in enumerate(packages, 1):
            key = package.organ.key
            if progress:
                progress(Progress(index, len(packages), package.organ, "inference"))
            runtime = make_runtime(package, self.device, self.engine)
            prep_key = (package.hu_window, package.levels)
            if prep_key not in prepared:
                t0 = time.perf_counter()
                prepared[prep_key] = prepare(canonical, package.hu_window, package.levels)
                seconds["_prepare"] = seconds.get("_prepare", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            mask = predict_organ(prepared[prep_key], runtime, package.threshold, self.batch_size, cancel,
                                 *self._search(key, extents, slice_mm, canonical.shape[0]))
            predicted[key] = OrganMask.from_full(mask)
            if self.postprocess:
                mask = pp.clean_components(mask, pp.RULES[key], voxel_ml)
            cleaned[key] = OrganMask.from_full(mask)
            extents[key] = pp.axial_extent(mask)
            seconds[key] = time.perf_counter() - t0
            models[key] = f"{key}-v{package.version} ({runtime.name})"
            finish_ready()

        reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        reference.CopyInformation(image)
        order = [p.organ.key for p in packages]
        return Result(reference, {k: masks[k] for k in order}, [stats[k] for k in order], seconds, added,
                      warnings, models)

    def _boxed(self, key: str) -> bool:
        """Whether the organ's anchor box applies in this run."""
        return self.postprocess and pp.anchor_rules_enabled(key, self.anchor_rules)

    def _search(self, key: str, extents: dict[str, tuple[int, int] | None], slice_mm: float,
                n_slices: int) -> tuple[int, tuple[int, int] | None, int, int]:
        """(stride, window, margin, max_gap) for `predict_organ`: every slice, or the organ's coarse stride, the
        anchor range, the fine margin and (interpolate strategy) the largest interpolated gap.

        For coarse-to-fine the search is limited to the axial range that the anchors found so far allow, when
        the organ's anchor box applies (it would clear any finding outside that range anyway).
        """
        if self.strategy == "full":
            return 1, None, 1, 1
        window = pp.anchor_window(pp.RULES[key], extents, slice_mm, n_slices)[0] if self._boxed(key) else None
        max_gap = slices_within(INTERPOLATE_MM, slice_mm) if self.strategy == "interpolate" else 1
        return (coarse_stride(slice_mm, organ(key).min_extent_mm), window,
                slices_within(FINE_MARGIN_MM, slice_mm), max_gap)

    def _anchor_box(self, key: str, mask: np.ndarray, extents: dict[str, tuple[int, int] | None],
                    slice_mm: float, planned: set[str], warnings: list[str]) -> np.ndarray:
        """The organ's canonical mask limited to the axial range its anchor organs allow (if enabled).

        Anchors that were planned but came out empty are reported; unplanned ones were reported by `plan`.
        """
        if not self._boxed(key):
            return mask
        window, missing = pp.anchor_window(pp.RULES[key], extents, slice_mm, mask.shape[0])
        for anchor in dict.fromkeys(a for a in missing if a in planned):
            warnings.append(f"{key}: anchor rule on '{anchor}' skipped ({anchor} not found in this CT)")
        return pp.apply_anchor_window(mask, window)
