"""`organseg segment --output-type`: image format of the masks plus DICOM exports into the result folder."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from organseg.ct.dicom_series import find_series
from organseg.errors import InputError, OutputError
from organseg.export.source import array_on_series_grid, reference_headers

log = logging.getLogger(__name__)

IMAGE_TYPES = ("nifti", "nrrd")
#: DICOM output type -> file name inside the result folder.
DICOM_FILES = {"rtstruct": "rtstruct.dcm", "dicom-seg": "seg.dcm"}
OUTPUT_TYPES = IMAGE_TYPES + tuple(DICOM_FILES)


def parse_output_types(specs: list[str] | None, default_format: str) -> tuple[str, list[str]]:
    """Repeated or comma-separated types -> (image format of masks and label map, DICOM types).

    Masks, label map and statistics are always written; nifti or nrrd picks their format (default
    `default_format`), rtstruct and dicom-seg add DICOM files.
    """
    types = [t.strip().lower() for spec in specs or [] for t in spec.split(",") if t.strip()]
    unknown = [t for t in types if t not in OUTPUT_TYPES]
    if unknown:
        raise InputError(f"--output-type: unknown type {', '.join(unknown)}; choose from {', '.join(OUTPUT_TYPES)}")
    images = sorted({t for t in types if t in IMAGE_TYPES})
    if len(images) > 1:
        raise InputError("--output-type: give nifti or nrrd, not both (the image format of the masks)")
    return (images[0] if images else default_format), [t for t in DICOM_FILES if t in types]


def dicom_writers(ct: Path, output: Path, series_uid: str | None, types: list[str]) -> list[Callable]:
    """`write_result` extra writers for the DICOM types; checks the CT is a regular DICOM series (a folder, or
    an enhanced multi-frame file) first.

    Also refuses an output folder inside the input DICOM folder, whatever the output types.
    """
    if ct.is_dir() and output.resolve().is_relative_to(ct.resolve()):
        raise OutputError(f"{output}: inside the input DICOM folder {ct}; write the results elsewhere")
    if not types:
        return []
    if not ct.is_dir() and ct.suffix.lower() != ".dcm":
        raise InputError(f"{ct}: --output-type {','.join(types)} needs the CT as a DICOM series folder "
                         "(the exports reference its images); segment the DICOM folder instead")
    series = find_series(ct, series_uid)
    if series.problem is not None:
        raise InputError(f"{ct}: {series.problem}; DICOM exports need a regular series (no --resample-irregular)")
    reference_headers(series)  # a series the exports cannot reference is refused before segmenting
    from organseg.export.dicom_seg import write_dicom_seg
    from organseg.export.rtstruct import write_rtstruct
    functions = {"rtstruct": write_rtstruct, "dicom-seg": write_dicom_seg}

    def writer(kind: str) -> Callable:
        def write(result, folder: Path) -> None:
            masks = {key: array_on_series_grid(result.mask_image(key), series, ct)  # a multi-frame file is
                     for key, mask in result.masks.items() if mask.box.any()}  # read with its own axis order
            if not masks:
                log.warning(f"no organ was found; {DICOM_FILES[kind]} not written")
                return
            for note in functions[kind](masks, series, folder / DICOM_FILES[kind]):
                log.warning(note)
        return write

    return [writer(kind) for kind in types]
