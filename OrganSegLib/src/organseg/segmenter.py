"""The Python API: `Segmenter(settings).segment(image, organs) -> Result`, no files written.

One call reads as the paper's steps: the CT is checked and put in the canonical layout once (`CanonicalCT`);
per organ one `OrganStep` prepares the slices (`preprocess`), predicts (`inference`, or a classical labeller),
keeps the anchor window, cleans and, once the anchor organs its box needs are done, boxes (`postprocess`);
the final mask is mapped back onto the input's voxel grid with its statistics, and plausibility is measured on
the canonical masks. What comes back (`Result`, `Progress`) lives in `organseg.results.result`.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import SimpleITK as sitk

from organseg.catalogue import parse_organs
from organseg.ct.checks import check_ct, finite_hu, spacing_warnings
from organseg.ct.orientation import Reorientation
from organseg.errors import ModelError
from organseg.masks import OrganMask
from organseg.method import postprocess as pp
from organseg.method.inference import Cancelled
from organseg.method.memory import check_memory
from organseg.method.model_package import ModelPackage
from organseg.method.settings import Settings
from organseg.method.sides import SideSplitter, body_getter
from organseg.method.step import CanonicalCT, OrganModel, OrganStep, organ_model
from organseg.results.plausibility import Scan, check_canonical
from organseg.results.result import Progress, Result
from organseg.results.stats import organ_stats

__all__ = ["Segmenter", "Settings", "Cancelled"]


class Segmenter:
    """Segments chosen organs of a CT with installed model packages."""

    def __init__(self, settings: Settings | None = None, /, **fields: Any) -> None:
        """A segmenter for `settings` (default `Settings()`); any of its fields may be given by name instead or on
        top, e.g. `Segmenter(models=folder, device="cpu")`."""
        self.settings = replace(settings or Settings(), **fields).resolved()
        self.store = self.settings.store()
        self._models: dict[Path, OrganModel] = {}  #: package folder -> its loaded model

    def model(self, package: ModelPackage) -> OrganModel:
        """The package's model on this segmenter's device, loaded on first use and kept (a batch, a worker)."""
        if package.path not in self._models:
            s = self.settings
            self._models[package.path] = organ_model(package, s.device, s.engine, s.batch_size)
        return self._models[package.path]

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

        Organs run anchors first, each after the anchors bounding its search (`OrganStep.run`); each is finished
        (boxed by its anchors, mapped back, statistics) as soon as the anchors of its box are done, and reported
        through `progress` with its final mask. At the end each statistics row gets its plausibility flags
        (`organseg.results.plausibility`, [{code, reason}, ...]), measured on the canonical masks.
        """
        check_ct(image, source)
        check_memory(image, source)
        packages, added, warnings = self.plan(organs)
        packages.sort(key=lambda p: not p.organ.anchor)
        orient = Reorientation.of(image, source)
        values, input_warnings = finite_hu(sitk.GetArrayViewFromImage(image), source)
        ct = CanonicalCT.of(image, values, orient)
        splitter = SideSplitter(image, body_getter(ct.body))  # right and left of paired organs, on the shared body
        warnings += input_warnings + spacing_warnings(image, 2 - orient.permutation[0], source)
        rules, planned = self.anchor_policy, {p.organ.key for p in packages}
        steps = {p.organ.key: OrganStep(p, self.model(p), rules) for p in packages}
        extents: dict[str, tuple[int, int] | None] = {}
        final: dict[str, OrganMask] = {}  # canonical, boxed
        masks: dict[str, OrganMask] = {}  # on the input grid
        stats: dict[str, dict] = {}
        for index, key in enumerate(rules.order(list(steps)), 1):  # each organ after the anchors bounding it
            if progress:
                progress(Progress(index, len(steps), steps[key].package.organ, "inference"))
            steps[key].run(ct, extents, self.settings.strategy, cancel)
            extents[key] = steps[key].extent
            for step in [s for k, s in steps.items() if k not in final and s.ready(set(extents), planned)]:
                boxed, changed, missing = step.finish(extents, ct.slice_mm)
                for anchor in dict.fromkeys(a for a in missing if a in planned):  # unplanned ones: said by plan
                    warnings.append(f"{step.key}: anchor rule on '{anchor}' skipped ({anchor} not found in this CT)")
                full = orient.from_canonical(boxed)
                final[step.key], masks[step.key] = OrganMask.from_full(boxed), OrganMask.from_full(full)
                sides = splitter.split(full) if step.package.organ.paired else None
                stats[step.key] = organ_stats(step.package.organ, full, values, image.GetSpacing(), changed, sides)
                if progress:
                    progress(Progress(len(masks), len(steps), step.package.organ, "done", step.seconds,
                                      masks[step.key]))
        t0 = time.perf_counter()
        flags = check_canonical(Scan(image, values, ct.body), {k: final[k].full for k in steps}, splitter)
        for key in steps:
            stats[key]["flags"] = [f.as_dict() for f in flags[key]]
        seconds = {"_prepare": ct.prepare_seconds, **{k: steps[k].seconds for k in extents},
                   "_plausibility": time.perf_counter() - t0}
        models = {k: f"{k}-v{steps[k].package.version} ({steps[k].model.name})" for k in extents}
        reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        reference.CopyInformation(image)
        return Result(reference, {k: masks[k] for k in steps}, [stats[k] for k in steps], seconds, added, warnings,
                      models)
