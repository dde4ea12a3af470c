"""The Python API: `Segmenter(settings).segment(image, organs) -> Result`, no files written.

One call reads as the paper's steps: the CT is checked and oriented once; per organ the slices are
prepared (`preprocess`), the network predicts (`inference`), the mask is cleaned and, once the anchor organs
it needs are done, boxed (`postprocess`), then mapped back onto the input's voxel grid with its statistics.
What comes back (`Result`, `OrganMask`, `Progress`) lives in `organseg.results.result`.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk

from organseg.catalogue import organ, parse_organs
from organseg.ct.checks import check_ct, finite_hu, spacing_warnings
from organseg.ct.orientation import Reorientation
from organseg.errors import ModelError
from organseg.masks import axial_extent
from organseg.method import postprocess as pp
from organseg.method.body import body_mask, slice_boxes
from organseg.method.inference import (FINE_MARGIN_MM, INTERPOLATE_MM, Cancelled, coarse_stride, first_pass,
                                       predict_organ, slices_within, within_reach)
from organseg.method.memory import check_memory
from organseg.method.model_package import ModelPackage
from organseg.method.preprocess import Prepared, prepare
from organseg.method.runtime import LabellerRuntime, Runtime, make_runtime
from organseg.method.settings import Settings
from organseg.results.plausibility import check_masks
from organseg.results.result import OrganMask, Progress, Result
from organseg.results.stats import organ_stats

__all__ = ["Segmenter", "Settings", "Cancelled"]


class Segmenter:
    """Segments chosen organs of a CT with installed model packages."""

    def __init__(self, settings: Settings | None = None, /, **fields: Any) -> None:
        """A segmenter for `settings` (default `Settings()`); any of its fields may be given by name instead or on
        top, e.g. `Segmenter(models=folder, device="cpu")`."""
        self.settings = replace(settings or Settings(), **fields).resolved()
        self.store = self.settings.store()
        self._runtimes: dict[Path, Runtime | LabellerRuntime] = {}  #: package folder -> its loaded network

    def runtime(self, package: ModelPackage) -> Runtime | LabellerRuntime:
        """The package's network on this segmenter's device, loaded on first use and kept (a batch, a worker)."""
        if package.path not in self._runtimes:
            self._runtimes[package.path] = make_runtime(package, self.settings.device, self.settings.engine)
        return self._runtimes[package.path]

    @property
    def anchor_policy(self) -> pp.AnchorRules:
        """Post-processing's anchor policy for this segmenter's switches (no boxes without post-processing)."""
        return pp.AnchorRules(self.settings.rules, self.settings.postprocess)

    def plan(self, organs: str | list[str] | tuple[str, ...] | None
             ) -> tuple[list[ModelPackage], list[str], list[str]]:
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
        for anchor in self.anchor_policy.required(chosen):
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

    def segment(self, image: sitk.Image, organs: str | list[str] | tuple[str, ...] | None,
                progress: Callable[[Progress], None] | None = None,
                cancel: Callable[[], bool] | None = None, source: str = "image") -> Result:
        """Segment the organs (names, comma string or None for all) of a CT image in HU.

        Each organ runs after the chosen anchors its box needs (anchor organs first); each organ is finished
        (anchor box, mapped back, statistics) as soon as the anchors its rule needs are done, and reported through
        `progress` with its final mask. At the end each statistics row gets its plausibility flags
        (`organseg.results.plausibility`, [{code, reason}, ...]).
        """
        check_ct(image, source)
        check_memory(image, source)
        packages, added, warnings = self.plan(organs)
        packages.sort(key=lambda p: not p.organ.anchor)
        rules = self.anchor_policy
        orient = Reorientation.of(image, source)
        ct, input_warnings = finite_hu(sitk.GetArrayViewFromImage(image), source)
        canonical = np.ascontiguousarray(orient.to_canonical(ct))  # stored type: slices become float32 one by one
        spacing = orient.spacing(image)  # (S, P, L) mm
        slice_mm = spacing[0]
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
            """Box, map back and report every cleaned organ whose planned anchors are cleaned too."""
            for package in list(pending):
                key = package.organ.key
                if key not in cleaned or not set(rules.needs(key)) & planned <= set(cleaned):
                    continue
                boxed, missing = rules.apply(key, cleaned[key].full(), extents, slice_mm)
                for anchor in dict.fromkeys(a for a in missing if a in planned):  # unplanned ones: said by plan
                    warnings.append(f"{key}: anchor rule on '{anchor}' skipped ({anchor} not found in this CT)")
                changed = int(np.count_nonzero(predicted[key].full() ^ boxed))
                full = orient.from_canonical(boxed)
                masks[key] = OrganMask.from_full(full)
                stats[key] = organ_stats(package.organ, full, ct, image.GetSpacing(), changed)
                pending.remove(package)
                if progress:
                    progress(Progress(len(masks), len(packages), package.organ, "done", seconds[key], masks[key]))

        t0 = time.perf_counter()
        body = body_mask(canonical)  # once per CT: crop boxes, the lungs labeller and plausibility share it
        boxes = slice_boxes(body)
        seconds["_prepare"] = time.perf_counter() - t0
        by_key = {p.organ.key: p for p in packages}
        for index, key in enumerate(rules.order(list(by_key)), 1):  # each organ after the anchors bounding it
            package = by_key[key]
            if progress:
                progress(Progress(index, len(packages), package.organ, "inference"))
            runtime = self.runtime(package)
            window = rules.window(key, extents, slice_mm, canonical.shape[0])[0]
            if isinstance(runtime, LabellerRuntime):  # a classical labeller reads the HU volume itself
                t0 = time.perf_counter()
                mask = runtime.mask(canonical, spacing, body)
            else:
                prep_key = (package.hu_window, package.levels)
                if prep_key not in prepared:
                    t0 = time.perf_counter()
                    prepared[prep_key] = prepare(canonical, package.hu_window, package.levels, boxes)
                    seconds["_prepare"] = seconds.get("_prepare", 0.0) + time.perf_counter() - t0
                t0 = time.perf_counter()
                mask = predict_organ(prepared[prep_key], runtime, package.threshold, self.settings.batch_size, cancel,
                                     *self._search(key, window, slice_mm))
            predicted[key] = OrganMask.from_full(mask)
            if window is not None:  # every strategy cleans only what the search may see (full ran every slice)
                mask = rules.apply(key, mask, extents, slice_mm)[0]
            if not isinstance(runtime, LabellerRuntime):  # every strategy keeps what coarse-to-fine surely finds
                stride, margin = reach(key, slice_mm)
                mask = within_reach(mask, first_pass(prepared[prep_key], stride, window), margin)
            if self.settings.postprocess:
                mask = pp.clean_organ(key, mask, voxel_ml)
            cleaned[key] = OrganMask.from_full(mask)
            extents[key] = axial_extent(mask)
            seconds[key] = time.perf_counter() - t0
            models[key] = f"{key}-v{package.version} ({runtime.name})"
            finish_ready()

        reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        reference.CopyInformation(image)
        order = [p.organ.key for p in packages]
        t0 = time.perf_counter()
        flags = check_masks(image, ct, {k: masks[k].full for k in order}, body)
        for key in order:
            stats[key]["flags"] = [f.as_dict() for f in flags[key]]
        seconds["_plausibility"] = time.perf_counter() - t0
        return Result(reference, {k: masks[k] for k in order}, [stats[k] for k in order], seconds, added,
                      warnings, models)

    def _search(self, key: str, window: tuple[int, int] | None,
                slice_mm: float) -> tuple[int, tuple[int, int] | None, int, int]:
        """(stride, window, margin, max_gap) for `predict_organ`: every slice, or the organ's coarse stride, the
        anchor window, the fine margin and (interpolate strategy) the largest interpolated gap.

        The window is where the anchors found so far allow the organ (None when its box does not apply). Every
        strategy keeps only the window before cleaning components, so the largest component is chosen among the
        findings the anchors allow, not one the box would clear afterwards, and coarse-to-fine may skip every slice
        outside it with the masks of full inference.
        """
        if self.settings.strategy == "full":
            return 1, None, 1, 1
        max_gap = slices_within(INTERPOLATE_MM, slice_mm) if self.settings.strategy == "interpolate" else 1
        stride, margin = reach(key, slice_mm)
        return stride, window, margin, max_gap


def reach(key: str, slice_mm: float) -> tuple[int, int]:
    """The organ's coarse stride (half its smallest extent) and the fine margin, in slices."""
    return coarse_stride(slice_mm, organ(key).min_extent_mm), slices_within(FINE_MARGIN_MM, slice_mm)
