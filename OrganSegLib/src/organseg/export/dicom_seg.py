"""DICOM Segmentation (binary, one segment per organ) from organ masks on a CT series' grid, via highdicom.

Segments carry the catalogue's name and colour, category SCT 123037004 Anatomical Structure and the organ's
SNOMED CT type; frames reference the CT images they were segmented on (the frames of an enhanced multi-frame
CT by their frame numbers) and copy their positions.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from organseg import __version__
from organseg.catalogue import CATEGORY, Organ
from organseg.ct.dicom_series import Series
from organseg.errors import InputError
from organseg.export.source import present_masks, reference_headers, write_export


def write_dicom_seg(masks: Mapping[str, np.ndarray], series: Series, path: str | Path,
                    overwrite: bool = False) -> list[str]:
    """Write a DICOM SEG for the organ masks ((z, y, x) bool on the series' grid, in slice order).

    Organs with an empty mask are left out. Returns notes for the user (left-out organs, filled-in UIDs).
    """
    return write_export(build_dicom_seg, masks, series, path, overwrite)


def build_dicom_seg(masks: Mapping[str, np.ndarray], series: Series) -> tuple[hd.seg.Segmentation, list[str]]:
    """The Segmentation dataset and notes for the user."""
    headers, notes = reference_headers(series)
    organs, frames = [], []
    for o, mask in present_masks(masks, "DICOM SEG", notes):
        organs.append(o)
        frames.append(mask)
    if not organs:
        raise InputError(f"{series.folder}: every organ mask is empty; nothing to write")
    pixels = np.stack(frames, axis=-1).astype(np.uint8)
    if series.multiframe:
        headers, pixels = _multiframe_source(series, headers, pixels)
    seg = hd.seg.Segmentation(
        source_images=headers, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(i, o) for i, o in enumerate(organs, start=1)],
        series_instance_uid=generate_uid(), series_number=9002, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="OrganSeg", manufacturer_model_name="OrganSeg", software_versions=__version__,
        device_serial_number="0", series_description="OrganSeg organs", content_label="ORGANSEG",
        content_description="Organ segmentation by OrganSeg")
    return seg, notes


def _multiframe_source(series: Series, frames: list[Dataset], pixels: np.ndarray) -> tuple[list[Dataset], np.ndarray]:
    """The enhanced CT's own header as the one source image, and the masks in its frame order (highdicom pairs
    pixel_array[i] with frame i + 1 and copies that frame's position); frames outside the series stay empty."""
    ct = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    for attr in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ct, attr, frames[0].get(attr))  # as reference_headers filled them in
    ordered = np.zeros((int(ct.NumberOfFrames), *pixels.shape[1:]), dtype=pixels.dtype)
    ordered[[int(f.ReferencedFrameNumber) - 1 for f in frames]] = pixels
    return [ct], ordered


def _segment(number: int, o: Organ) -> hd.seg.SegmentDescription:
    (scheme, code, meaning), (type_scheme, type_code, type_meaning) = CATEGORY, o.snomed_type
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=o.display_name,
        segmented_property_category=Code(code, scheme, meaning),
        segmented_property_type=Code(type_code, type_scheme, type_meaning),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="OrganSeg", family=codes.cid7162.ArtificialIntelligence, version=__version__),
        tracking_id=o.key, tracking_uid=generate_uid(),
        display_color=hd.color.CIELabColor.from_rgb(*o.colour))
