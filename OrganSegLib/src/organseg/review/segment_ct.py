"""Segmenting a CT from the review page: the organs it offers and the run itself, as `organseg segment` does it.

Independent of the page (no trame): the app runs `segment_case` off the server's event loop and shows its
`Progress` reports. The result is written by the same writer as the CLI's (`write_result`), into the case's
output folder only, and opens like any other result.
"""
from __future__ import annotations

from typing import Callable

import SimpleITK as sitk

from organseg.catalogue import ORGANS, REGIONS
from organseg.errors import InputError
from organseg.method.model_package import ModelStore
from organseg.method.runtime import resolve_device
from organseg.results.folder import write_result
from organseg.results.result import Progress
from organseg.review.cases import Case, result_case
from organseg.segmenter import Segmenter


def organ_choices(store: ModelStore | None = None) -> list[dict]:
    """The organs a model is installed for, by region then catalogue order: {organ, name, region} rows."""
    available = (store or ModelStore()).available()
    offered = sorted((o for o in ORGANS if o.key in available), key=lambda o: REGIONS.index(o.region))
    return [{"organ": o.key, "name": o.display_name, "region": o.region} for o in offered]


def devices() -> list[str]:
    """The devices this machine can segment on, the automatic choice first."""
    found = [resolve_device("auto")]
    return found + ["cpu"] * (found[0] != "cpu")


def segment_case(case: Case, image: sitk.Image, organs: list[str], device: str,
                 progress: Callable[[Progress], None] | None = None, cancel: Callable[[], bool] | None = None) -> Case:
    """Segment the case's CT (`image`, as the page read it from `case.source`) with the chosen organs, write the
    result into its folder, and return the case as a result (what the page opens next). `cancel` answering True
    stops it (`Cancelled`), nothing written."""
    if case.segmented:
        raise InputError(f"{case.name}: already segmented; its results are in {case.folder}")
    if not organs:
        raise InputError("no organ ticked; tick the organs to segment")
    result = Segmenter(device=device).segment(image, organs, progress=progress, cancel=cancel, source=case.source)
    write_result(result, case.folder, source=case.source)
    return result_case(case.folder, case.name)
