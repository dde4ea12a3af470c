"""One organ through the method, in the paper's order: prepare -> predict -> anchor window -> clean -> extent,
then its box once the anchors that bound it are done (`OrganStep`).

`CanonicalCT` is the CT as every organ's step sees it, made once per run. `OrganModel` is the one protocol of
what predicts an organ's mask, a network (prepared slices, coarse-to-fine) or a classical labeller (the HU
volume), so the step does not branch on which it has.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import organ
from organseg.ct.orientation import Reorientation
from organseg.masks import OrganMask, axial_extent
from organseg.method.body import body_mask, slice_boxes
from organseg.method.inference import (FINE_MARGIN_MM, INTERPOLATE_MM, coarse_stride, first_pass, predict_organ,
                                       slices_within, within_reach)
from organseg.method.model_package import ModelPackage
from organseg.method.postprocess import AnchorRules, within_window
from organseg.method.preprocess import Prepared, prepare
from organseg.method.runtime import LabellerRuntime, Runtime, make_runtime


@dataclass
class CanonicalCT:
    """The CT in the canonical (S, P, L) layout with what every organ shares: spacing, body contour and crop
    boxes (once per CT), and the networks' prepared slices (once per HU window and levels)."""

    volume: np.ndarray  #: (S, P, L) HU, the stored type (slices become float32 one by one)
    spacing: tuple[float, float, float]  #: (S, P, L) mm
    voxel_ml: float
    body: np.ndarray  #: canonical body mask: crop boxes, the lungs labeller and plausibility share it
    boxes: np.ndarray
    prepare_seconds: float = 0.0  #: body contour and prepared slices, so far
    _prepared: dict[tuple, Prepared] = field(default_factory=dict)

    @classmethod
    def of(cls, image: sitk.Image, values: np.ndarray, orient: Reorientation) -> CanonicalCT:
        """From the image (its geometry) and its voxel values (finite HU, input grid)."""
        volume = np.ascontiguousarray(orient.to_canonical(values))
        t0 = time.perf_counter()
        body = body_mask(volume)
        boxes = slice_boxes(body)
        voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
        return cls(volume, orient.spacing(image), voxel_ml, body, boxes, time.perf_counter() - t0)

    @property
    def slice_mm(self) -> float:
        return self.spacing[0]

    def inputs(self, package: ModelPackage) -> Prepared:
        """The network inputs of the package's HU window and levels, prepared on first use."""
        key = (package.hu_window, package.levels)
        if key not in self._prepared:
            t0 = time.perf_counter()
            self._prepared[key] = prepare(self.volume, package.hu_window, package.levels, self.boxes)
            self.prepare_seconds += time.perf_counter() - t0
        return self._prepared[key]


@dataclass(frozen=True)
class Search:
    """Where and how an organ's slices are searched: its anchor window (None: its box does not apply), its
    coarse stride (half its smallest extent), the fine margin and the largest interpolated gap."""

    window: tuple[int, int] | None
    stride: int
    margin: int
    max_gap: int
    every_slice: bool  #: the full strategy: every slice, the window not applied to the search itself

    @classmethod
    def of(cls, key: str, window: tuple[int, int] | None, slice_mm: float, strategy: str) -> Search:
        max_gap = slices_within(INTERPOLATE_MM, slice_mm) if strategy == "interpolate" else 1
        return cls(window, coarse_stride(slice_mm, organ(key).min_extent_mm), slices_within(FINE_MARGIN_MM, slice_mm),
                   max_gap, strategy == "full")

    def plan(self) -> tuple[int, tuple[int, int] | None, int, int]:
        """(stride, window, margin, max_gap) as `predict_organ` takes them.

        Every strategy then keeps only the window before cleaning components, so the largest component is
        chosen among the findings the anchors allow, and coarse-to-fine may skip every slice outside it with
        the masks of full inference."""
        return (1, None, 1, 1) if self.every_slice else (self.stride, self.window, self.margin, self.max_gap)


class OrganModel(Protocol):
    """What predicts one organ's canonical mask."""

    name: str

    def mask(self, ct: CanonicalCT, search: Search, cancel: Callable[[], bool] | None
             ) -> tuple[np.ndarray, np.ndarray]:
        """(the prediction, what the search keeps of it: the anchor window, and what coarse-to-fine finds)."""
        ...


class NetworkModel:
    """A network package on its runtime: prepared slices, searched slice by slice."""

    def __init__(self, package: ModelPackage, runtime: Runtime, batch_size: int) -> None:
        self.package, self.runtime, self.batch_size, self.name = package, runtime, batch_size, runtime.name

    def mask(self, ct: CanonicalCT, search: Search, cancel: Callable[[], bool] | None
             ) -> tuple[np.ndarray, np.ndarray]:
        prepared = ct.inputs(self.package)
        raw = predict_organ(prepared, self.runtime, self.package.threshold, self.batch_size, cancel, *search.plan())
        kept = within_window(raw, search.window)
        coarse = first_pass(prepared, search.stride, search.window)
        return raw, within_reach(kept, coarse, search.margin)  # every strategy: what coarse-to-fine surely finds


class LabellerModel:
    """A classical labeller package: the whole canonical HU volume at once, no search."""

    def __init__(self, runtime: LabellerRuntime) -> None:
        self.runtime, self.name = runtime, runtime.name

    def mask(self, ct: CanonicalCT, search: Search, cancel: Callable[[], bool] | None
             ) -> tuple[np.ndarray, np.ndarray]:
        raw = self.runtime.mask(ct.volume, ct.spacing, ct.body)
        return raw, within_window(raw, search.window)


def organ_model(package: ModelPackage, device: str, engine: str, batch_size: int) -> OrganModel:
    """The package's model on the device (a labeller runs on the CPU whatever the device)."""
    runtime = make_runtime(package, device, engine)
    return LabellerModel(runtime) if isinstance(runtime, LabellerRuntime) else NetworkModel(package, runtime,
                                                                                              batch_size)


class OrganStep:
    """One organ's way through the method. `run` takes it from prediction to its cleaned mask and axial extent,
    what the organs its anchors bound need; `finish` boxes it once the anchors of its own box are done."""

    def __init__(self, package: ModelPackage, model: OrganModel, rules: AnchorRules) -> None:
        self.package, self.model, self.rules, self.key = package, model, rules, package.organ.key
        self.predicted: OrganMask | None = None  #: canonical, as the model gave it
        self.cleaned: OrganMask | None = None  #: canonical, within its window and cleaned
        self.extent: tuple[int, int] | None = None
        self.seconds = 0.0  #: prediction and cleaning, without the shared preparation

    def run(self, ct: CanonicalCT, extents: dict[str, tuple[int, int] | None], strategy: str,
            cancel: Callable[[], bool] | None = None) -> None:
        """Predict within the window the anchors found so far allow, then clean (components, holes, the model's
        vote along the body axis)."""
        t0, prepared0 = time.perf_counter(), ct.prepare_seconds
        window = self.rules.window(self.key, extents, ct.slice_mm, ct.volume.shape[0])[0]
        raw, kept = self.model.mask(ct, Search.of(self.key, window, ct.slice_mm, strategy), cancel)
        cleaned = self.rules.clean(self.key, kept, ct.voxel_ml, ct.slice_mm, self.package.z_vote_mm)
        self.predicted, self.cleaned = OrganMask.from_full(raw), OrganMask.from_full(cleaned)
        self.extent = axial_extent(cleaned)
        self.seconds = time.perf_counter() - t0 - (ct.prepare_seconds - prepared0)

    def ready(self, done: set[str], planned: set[str]) -> bool:
        """Whether it ran and the planned anchors its box needs are done."""
        return self.cleaned is not None and set(self.rules.needs(self.key)) & planned <= done

    def finish(self, extents: dict[str, tuple[int, int] | None], slice_mm: float
               ) -> tuple[np.ndarray, int, list[str]]:
        """(the final canonical mask, boxed by its anchors; voxels post-processing changed; anchors missing)."""
        boxed, missing = self.rules.apply(self.key, self.cleaned.full(), extents, slice_mm)
        return boxed, int(np.count_nonzero(self.predicted.full() ^ boxed)), missing
