"""Reading one CT series from a DICOM folder: series choice, slice order and spacing checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from organseg.errors import InputError


def list_series(folder: Path) -> dict[str, list[str]]:
    """Series Instance UID -> file names sorted by slice position (GDCM), searching the folder recursively."""
    series: dict[str, list[str]] = {}
    for sub in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(sub)) or ():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(sub), uid)
            if len(files) > len(series.get(uid, ())):
                series[uid] = list(files)
    return series


def read_series(folder: Path, series_uid: str | None = None) -> sitk.Image:
    """Read the chosen (or the largest) DICOM series of a folder as one 3D image in LPS."""
    folder = Path(folder)
    series = list_series(folder)
    if not series:
        raise InputError(f"{folder}: no DICOM image series found (is the folder empty or not DICOM?)")
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(f"{folder}: no series with UID {series_uid}; found {', '.join(sorted(series))}")
        files = series[series_uid]
    else:
        files = max(series.values(), key=len)
    if len(files) < 2:
        raise InputError(f"{folder}: the series has a single slice; a 3D CT series is needed")
    _check_slice_positions(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as err:
        raise InputError(f"{folder}: cannot read the DICOM series ({str(err).strip().splitlines()[-1][:160]})") from None


def _check_slice_positions(folder: Path, files: list[str]) -> None:
    """Reject gantry tilt, non-uniform slice spacing and missing slices."""
    reader = sitk.ImageFileReader()
    positions, normal = [], None
    for name in files:
        reader.SetFileName(name)
        reader.ReadImageInformation()
        try:
            ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
            iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
        except RuntimeError:
            raise InputError(f"{name}: no Image Position/Orientation (Patient); not a CT image slice") from None
        if normal is None:
            normal = np.cross(iop[:3], iop[3:])
        positions.append(np.asarray(ipp))
    pos = np.array(positions)
    offsets = (pos - pos[0]) @ normal
    steps = np.diff(offsets)
    if np.any(np.abs(steps) < 1e-3):
        raise InputError(f"{folder}: two slices share a position; the folder mixes acquisitions")
    along = np.linalg.norm(pos[-1] - pos[0])
    if along > 0 and abs(abs(offsets[-1] - offsets[0]) - along) > 1e-2 * along:
        raise InputError(f"{folder}: slices are not stacked along the slice normal (gantry tilt?); "
                         "resample the series to an orthogonal grid first")
    spacing = np.median(np.abs(steps))
    if np.max(np.abs(np.abs(steps) - spacing)) > 0.05 * spacing:
        worst = float(np.max(np.abs(steps)))
        raise InputError(f"{folder}: slice spacing is not uniform (median {spacing:.3g} mm, up to {worst:.3g} mm); "
                         "missing slices or a mixed series")
