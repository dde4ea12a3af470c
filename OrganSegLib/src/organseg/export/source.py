"""What RTSTRUCT and DICOM SEG exports share: the referenced CT headers, grid checks and safe writing."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from organseg.atomic import atomic_file
from organseg.catalogue import Organ, organ
from organseg.ct.dicom_series import Series
from organseg.ct.orientation import array_on_grid
from organseg.errors import InputError, OutputError


def reference_headers(series: Series) -> tuple[list[Dataset], list[str]]:
    """Copies of the CT headers (one per frame of an enhanced multi-frame CT, with its ReferencedFrameNumber)
    with the UIDs an export references filled in; plus what was filled.

    Anonymised series sometimes blank SOP Instance/Class UID (taken from the file meta then), or Study and
    Series Instance UID (replaced by UIDs derived from the Frame of Reference, the same on every export).
    """
    if series.problem is not None:
        raise InputError(f"{series.folder}: {series.problem}; DICOM exports need the original regular series")
    headers, notes = [copy.deepcopy(h) for h in series.headers], []
    if not all(str(h.get("FrameOfReferenceUID", "")) for h in headers):
        raise InputError(f"{series.folder}: the CT slices have no Frame of Reference UID; cannot reference them")
    for h in headers:
        for attr, meta in (("SOPInstanceUID", "MediaStorageSOPInstanceUID"), ("SOPClassUID", "MediaStorageSOPClassUID")):
            if not str(h.get(attr, "")):
                value = str(getattr(h.get("file_meta", Dataset()), meta, ""))
                if not value:
                    raise InputError(f"{series.folder}: a slice has no {attr}; cannot reference it")
                setattr(h, attr, value)
    if len({(h.SOPInstanceUID, h.get("ReferencedFrameNumber")) for h in headers}) < len(headers):
        raise InputError(f"{series.folder}: slices share a SOP Instance UID; cannot reference them")
    for attr in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not str(headers[0].get(attr, "")):
            uid = generate_uid(entropy_srcs=[headers[0].FrameOfReferenceUID, attr])
            notes.append(f"{series.folder}: the CT has no {attr}; the export refers to the derived UID {uid}, so "
                         "an archive may not file it with the CT")
            for h in headers:
                setattr(h, attr, uid)
    return headers, notes


def present_masks(masks: Mapping[str, np.ndarray], what: str, notes: list[str]) -> Iterator[tuple[Organ, np.ndarray]]:
    """Each organ's mask as booleans in label order (the order of the exports' segments and ROIs); an empty mask
    is left out with a note for the user. The loop RTSTRUCT and DICOM SEG share."""
    for o in sorted((organ(k) for k in masks), key=lambda o: o.label):
        mask = np.asarray(masks[o.key], dtype=bool)
        if not mask.any():
            notes.append(f"{o.display_name}: empty mask, left out of the {what}")
            continue
        yield o, mask


def array_on_series_grid(image: sitk.Image, series: Series, source: str | os.PathLike) -> np.ndarray:
    """The image's (z, y, x) array on the series' voxel grid; the same voxel centres stored with flipped or
    permuted axes are mapped exactly. Raise InputError for any other grid."""
    grid = series.grid()
    array = array_on_grid(image, grid)
    if array is None:
        raise InputError(f"{source}: not on the voxel grid of the DICOM series {series.folder} "
                         f"(size {image.GetSize()} vs {grid.GetSize()}, origin {np.round(image.GetOrigin(), 2)} vs "
                         f"{np.round(grid.GetOrigin(), 2)}, spacing {np.round(image.GetSpacing(), 3)} vs "
                         f"{np.round(grid.GetSpacing(), 3)}, direction {np.round(image.GetDirection(), 3).tolist()} "
                         f"vs {np.round(grid.GetDirection(), 3).tolist()}); segment that series or resample the "
                         "masks onto it")
    return array


def check_output_file(path: Path, series: Series, overwrite: bool) -> None:
    """Refuse writing into the input DICOM folder, and over an existing file unless `overwrite`."""
    path = Path(path)
    if path.resolve().is_relative_to(series.folder.resolve()):
        raise OutputError(f"{path}: inside the input DICOM folder {series.folder}; write the export elsewhere")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name such as rtstruct.dcm")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; choose another name or pass --overwrite")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: no such folder")


def write_export(build: Callable[[Mapping[str, np.ndarray], Series], tuple[Dataset, list[str]]],
                 masks: Mapping[str, np.ndarray], series: Series, path: str | Path, overwrite: bool) -> list[str]:
    """Check the output file, build the dataset from the masks, write it atomically; returns the notes."""
    path = Path(path)
    check_output_file(path, series, overwrite)
    dataset, notes = build(masks, series)
    write_dataset(dataset, path)
    return notes


def write_dataset(dataset: Dataset, path: Path) -> None:
    """Save a DICOM file through a temporary file in the same folder, then rename it into place."""
    with atomic_file(path, ".dcm") as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
