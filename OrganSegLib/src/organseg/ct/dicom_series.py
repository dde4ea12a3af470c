"""Reading one CT series from a DICOM folder: series choice, slice order, and regular-grid checks.

A folder may hold several series and non-DICOM files. Slices are grouped by Series Instance UID; the
largest CT series is used unless a UID is given. Slices are sorted along the slice normal, and a stack
that is not a regular grid (gantry tilt, uneven spacing, missing slices) is refused with the reason, or,
when asked, resampled onto a regular orthogonal grid with a warning.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from scipy import ndimage

from organseg.errors import InputError

log = logging.getLogger(__name__)

_IMAGE_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
_FUNCTIONAL_GROUPS = {Tag("SharedFunctionalGroupsSequence"), Tag("PerFrameFunctionalGroupsSequence")}


@dataclass
class Series:
    """The slices of one series sorted along the slice normal, with their headers (no pixel data)."""

    folder: Path
    uid: str
    files: list[Path]
    headers: list[Dataset]
    offsets: np.ndarray  #: slice positions along the normal (mm), ascending
    problem: str | None = None  #: why the slices do not form a regular grid; None when they do
    notes: list[str] = field(default_factory=list)  #: what was chosen or dropped on the way

    @property
    def row_dir(self) -> np.ndarray:
        """Unit vector along a row (increasing column index), LPS."""
        return np.array(self.headers[0].ImageOrientationPatient[:3], dtype=float)

    @property
    def col_dir(self) -> np.ndarray:
        """Unit vector down a column (increasing row index), LPS."""
        return np.array(self.headers[0].ImageOrientationPatient[3:], dtype=float)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(column spacing x, row spacing y) in mm."""
        row_spacing, col_spacing = (float(v) for v in self.headers[0].PixelSpacing)
        return col_spacing, row_spacing

    @property
    def multiframe(self) -> bool:
        """Whether the slices are frames of one enhanced multi-frame file."""
        return len(set(self.files)) < len(self.files)

    def grid(self) -> sitk.Image:
        """An empty image on the series' voxel grid (origin, spacing, direction)."""
        image = sitk.Image(int(self.headers[0].Columns), int(self.headers[0].Rows), len(self.files), sitk.sitkUInt8)
        image.SetOrigin(tuple(self.position(0)))
        image.SetSpacing((*self.pixel_spacing, float(np.median(np.diff(self.offsets)))))
        image.SetDirection(tuple(np.column_stack([self.row_dir, self.col_dir, self.normal]).ravel()))
        return image

    def position(self, k: int) -> np.ndarray:
        """Image Position (Patient) of slice k: the centre of its first pixel, LPS mm."""
        return np.array(self.headers[k].ImagePositionPatient, dtype=float)


def dicom_header(path: Path) -> Dataset | None:
    """The file's DICOM header (pixels not read), None when it is not a readable DICOM file: the one test of
    "is this a DICOM file" (series scans, a batch's folders, a cluster task's memory estimate)."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError):
        return None


def scan_folder(folder: Path) -> dict[str, list[tuple[Path, Dataset]]]:
    """Series Instance UID -> (file, header) of every image slice under the folder (or in the one file, e.g. an
    enhanced multi-frame CT); other files are skipped."""
    series: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file()):
        header = dicom_header(path)
        if header is None or "LOCALIZER" in header.get("ImageType", []):
            continue
        if all(tag in header for tag in _IMAGE_TAGS):
            series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
        elif "PerFrameFunctionalGroupsSequence" in header and all(t in header for t in ("Rows", "Columns")):
            frames = _frame_headers(header)
            if frames:
                series.setdefault(str(header.get("SeriesInstanceUID", "")), []).extend((path, f) for f in frames)
    return series


def _frame_headers(header: Dataset) -> list[Dataset]:
    """One classic-looking header per frame of an enhanced multi-frame image: the file's patient, study, series
    and image attributes, with position, orientation and spacing from its functional groups; empty when the
    groups lack them. Each carries its 1-based frame number as ReferencedFrameNumber, which the DICOM exports
    reference beside the file's SOP Instance UID."""
    shared = header.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    frames = []
    for number, group in enumerate(header.PerFrameFunctionalGroupsSequence, start=1):
        def item(name: str) -> Dataset | None:
            seq = group.get(name) or shared.get(name)
            return seq[0] if seq else None
        position, orientation, measures = (item("PlanePositionSequence"), item("PlaneOrientationSequence"),
                                           item("PixelMeasuresSequence"))
        if position is None or orientation is None or measures is None:
            return []
        frame = Dataset()
        frame.update({tag: element for tag, element in header.items() if tag not in _FUNCTIONAL_GROUPS})
        frame.ImagePositionPatient = position.ImagePositionPatient
        frame.ImageOrientationPatient = orientation.ImageOrientationPatient
        frame.PixelSpacing = measures.PixelSpacing
        frame.ReferencedFrameNumber = number
        frame.file_meta = header.file_meta
        frames.append(frame)
    return frames


def find_series(folder: str | Path, series_uid: str | None = None) -> Series:
    """The chosen series (or the largest CT series) of a folder, or the frames of an enhanced multi-frame file,
    sorted and checked; raises InputError."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such folder; give the folder that holds the DICOM series")
    found = scan_folder(folder)
    if not found:
        raise InputError(f"{folder}: no DICOM image series found (is it empty or not DICOM?)")
    notes = []
    if series_uid is not None:
        if series_uid not in found:
            raise InputError(f"{folder}: no series with UID {series_uid}; found {', '.join(sorted(found))}")
        uid = series_uid
    else:
        ct = {u: s for u, s in found.items() if any(h.get("Modality") == "CT" for _, h in s)}
        uid = max(ct or found, key=lambda u: len(found[u]))
        if not ct:
            notes.append(f"{folder}: no series has modality CT; using the largest image series")
        if len(found) > 1:
            notes.append(f"{folder}: holds {len(found)} image series; using {uid or '(no UID)'} "
                         f"with {len(found[uid])} slices (choose another with --series-uid)")
    return _sorted_series(folder, uid, found[uid], notes)


def _sorted_series(folder: Path, uid: str, slices: list[tuple[Path, Dataset]], notes: list[str]) -> Series:
    slices = _unique_instances(folder, slices, notes)
    frames = {str(h.get("FrameOfReferenceUID", "")) for _, h in slices}
    if len(frames) > 1:
        raise InputError(f"{folder}: the series {uid or '(no Series Instance UID)'} mixes {len(frames)} frames of "
                         "reference (Frame of Reference UID), so its slices come from different scans; put each "
                         "scan in its own folder")
    orientation = Counter(tuple(round(float(v), 4) for v in h.ImageOrientationPatient) for _, h in slices)
    main, count = orientation.most_common(1)[0]
    if count < len(slices):
        notes.append(f"{folder}: dropped {len(slices) - count} slices with another orientation (localizers?)")
        slices = [(p, h) for p, h in slices
                  if tuple(round(float(v), 4) for v in h.ImageOrientationPatient) == main]
    if len(slices) < 2:
        raise InputError(f"{folder}: the series has a single slice; a 3D CT series is needed")
    grids = {(int(h.Rows), int(h.Columns), tuple(round(float(v), 4) for v in h.PixelSpacing)) for _, h in slices}
    if len(grids) > 1:
        raise InputError(f"{folder}: slices differ in size or pixel spacing ({sorted(grids)}); the series mixes "
                         "reconstructions")
    normal = np.cross(np.array(main[:3]), np.array(main[3:]))
    slices.sort(key=lambda s: float(np.dot(np.array(s[1].ImagePositionPatient, dtype=float), normal)))
    positions = np.array([np.array(h.ImagePositionPatient, dtype=float) for _, h in slices])
    offsets = (positions - positions[0]) @ normal
    if np.any(np.diff(offsets) < 1e-3):
        raise InputError(f"{folder}: two slices share a position; the folder mixes acquisitions "
                         "(choose one with --series-uid)")
    series = Series(folder, uid, [p for p, _ in slices], [h for _, h in slices], offsets, None, notes)
    series.problem = _grid_problem(series, positions)
    return series


def _unique_instances(folder: Path, slices: list[tuple[Path, Dataset]],
                      notes: list[str]) -> list[tuple[Path, Dataset]]:
    """One file per SOP Instance UID and position: copies of a slice under another name (common after copying)
    are skipped."""
    kept: dict[tuple, tuple[Path, Dataset]] = {}
    unique = []
    for path, header in slices:
        sop = str(header.get("SOPInstanceUID", "") or getattr(header.get("file_meta", Dataset()),
                                                            "MediaStorageSOPInstanceUID", ""))
        key = (sop, tuple(round(float(v), 3) for v in header.ImagePositionPatient))  # frames share a SOP UID
        if sop and key in kept:
            continue
        kept[key] = (path, header)
        unique.append((path, header))
    if len(unique) < len(slices):
        notes.append(f"{folder}: skipped {len(slices) - len(unique)} duplicate files (the same SOP Instance UID as "
                     "another file)")
    return unique


def _grid_problem(series: Series, positions: np.ndarray) -> str | None:
    """Why the sorted slices are not a regular orthogonal grid, or None."""
    sideways = positions - positions[0] - np.outer(series.offsets, series.normal)
    shift = float(np.max(np.linalg.norm(sideways, axis=1)))
    if shift > 0.01 * max(series.pixel_spacing):
        return f"slices shift sideways by up to {shift:.3g} mm along the stack (gantry tilt)"
    steps = np.diff(series.offsets)
    step = float(np.median(steps))
    if np.max(np.abs(steps - step)) > 0.05 * step:
        worst = int(np.argmax(np.abs(steps - step)))
        kind = "a missing slice" if steps[worst] > 1.5 * step else "uneven slice spacing"
        return (f"slice spacing is not uniform: {steps[worst]:.3g} mm between slices {worst + 1} and {worst + 2} "
                f"of {len(steps) + 1} instead of {step:.3g} mm ({kind})")
    return None


def read_series(folder: str | Path, series_uid: str | None = None, resample_irregular: bool = False) -> sitk.Image:
    """Read the chosen (or largest CT) series of a folder as one 3D image in LPS.

    An irregular stack raises InputError, or with `resample_irregular` is resampled (linear) onto a regular
    orthogonal grid with a logged warning.
    """
    series = find_series(folder, series_uid)
    for note in series.notes:
        log.warning(note)
    if series.multiframe and series.problem is None:
        return _read_multiframe(series)
    if series.problem is None:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(p) for p in series.files])
        return _execute(reader, series.folder)
    if not resample_irregular:
        raise InputError(f"{series.folder}: {series.problem}; pass --resample-irregular to resample it onto a "
                         "regular grid")
    log.warning(f"{series.folder}: {series.problem}; resampling onto a regular grid (linear interpolation)")
    return _resample_regular(series)


def _read_multiframe(series: Series) -> sitk.Image:
    """An enhanced multi-frame CT: ITK reads the pixels (rescaled to HU); the frames' own positions place them."""
    from organseg.ct.orientation import array_on_grid

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(series.files[0]))
    image = _execute(reader, series.files[0])
    grid = series.grid()
    array = array_on_grid(image, grid) if image.GetDimension() == 3 else None
    if array is None:
        raise InputError(f"{series.files[0]}: the frames of this multi-frame image do not form the grid their "
                         "functional groups describe")
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(grid)
    return out


def _execute(reader: sitk.ImageReaderBase, source: Path) -> sitk.Image:
    try:
        return reader.Execute()
    except RuntimeError as err:
        raise InputError(f"{source}: cannot read the DICOM series ({str(err).strip().splitlines()[-1][:160]})") from None


def _resample_regular(series: Series) -> sitk.Image:
    """Interpolate the slices onto an orthogonal grid with the median slice step, from the first slice on."""
    step = float(np.median(np.diff(series.offsets)))
    targets = np.arange(int(round(series.offsets[-1] / step)) + 1) * step
    sx, sy = series.pixel_spacing
    reader = sitk.ImageFileReader()

    def aligned(k: int) -> np.ndarray:
        """Slice k moved in-plane onto the grid of the first slice."""
        reader.SetFileName(str(series.files[k]))
        pixels = sitk.GetArrayFromImage(_execute(reader, series.files[k]))[0].astype(np.float32)
        side = series.position(k) - series.position(0) - series.offsets[k] * series.normal
        shift = (side @ series.col_dir / sy, side @ series.row_dir / sx)
        return ndimage.shift(pixels, shift, order=1, mode="nearest") if np.any(np.abs(shift) > 1e-3) else pixels

    out, cache = [], {}
    for t in targets:
        k = min(int(np.searchsorted(series.offsets, t, side="right")) - 1, len(series.offsets) - 2)
        for j in (k, k + 1):
            if j not in cache:
                cache[j] = aligned(j)
        w = (t - series.offsets[k]) / (series.offsets[k + 1] - series.offsets[k])
        out.append((1 - w) * cache[k] + w * cache[k + 1])
        for j in [j for j in cache if j < k]:
            del cache[j]
    image = sitk.GetImageFromArray(np.stack(out))
    image.SetOrigin(tuple(series.position(0)))
    image.SetSpacing((sx, sy, step))
    image.SetDirection(tuple(np.column_stack([series.row_dir, series.col_dir, series.normal]).ravel()))
    return image
