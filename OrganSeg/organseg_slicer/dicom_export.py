"""RTSTRUCT and DICOM SEG export of an OrganSeg segmentation through the library's exporters.

The segments are read back from MRML (so manual edits are exported), put on the voxel grid of the CT's
source DICOM series (found through the volume's "DICOM.instanceUIDs" attribute and Slicer's DICOM
database) and written by `organseg.export.rtstruct` / `organseg.export.dicom_seg`, which reference it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from organseg.ct.grid import array_to_image, on_grid
from organseg.errors import InputError

from organseg_slicer.segments import organ_segments, segment_mask, segment_organ
from organseg_slicer.volumes import image_from_volume

KINDS = ("rtstruct", "dicom_seg")


def organ_masks(segmentation_node: slicer.vtkMRMLSegmentationNode,
                volume_node: slicer.vtkMRMLScalarVolumeNode) -> dict[str, np.ndarray]:
    """Organ key -> (k, j, i) boolean mask on the volume's grid, of the OrganSeg segments as they are now."""
    masks = {segment_organ(segmentation_node, sid).key: segment_mask(segmentation_node, sid, volume_node)
             for sid in organ_segments(segmentation_node)}
    if not masks:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no OrganSeg segments to export")
    return masks


def source_series_files(volume_node: slicer.vtkMRMLScalarVolumeNode, database=None) -> list[Path]:
    """Files of the DICOM series the volume was loaded from; [] if it was not loaded from DICOM.

    `database` answers fileForInstance(uid) (Slicer's ctkDICOMDatabase by default).
    """
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = database if database is not None else getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return []
    return [Path(f) for f in (database.fileForInstance(uid) for uid in uids) if f]


def export(segmentation_node: slicer.vtkMRMLSegmentationNode, volume_node: slicer.vtkMRMLScalarVolumeNode,
           kind: str, path: str | Path, database=None) -> list[str]:
    """Write the segmentation as RTSTRUCT or DICOM SEG to `path` (never over an existing file).

    Returns the exporter's notes for the user.
    """
    from organseg.ct.dicom_series import find_series

    if kind not in KINDS:
        raise InputError(f"unknown export kind '{kind}'; use {' or '.join(KINDS)}")
    files = source_series_files(volume_node, database)
    if not files:
        raise InputError(f"volume '{volume_node.GetName()}' was not loaded from DICOM; load the CT through the "
                         f"DICOM module so the {kind.upper()} can reference its series")
    volume_image = image_from_volume(volume_node)
    masks = organ_masks(segmentation_node, volume_node)
    with tempfile.TemporaryDirectory(prefix="organseg-series-") as tmp:
        for index, file in enumerate(files):
            shutil.copy2(file, Path(tmp) / f"{index:05d}.dcm")
        series = find_series(tmp)
        grid = series.grid()
        on_series = {key: sitk.GetArrayFromImage(on_grid(array_to_image(m.astype(np.uint8), volume_image), grid)) > 0
                     for key, m in masks.items()}
        if kind == "rtstruct":
            from organseg.export.rtstruct import write_rtstruct
            return write_rtstruct(on_series, series, path)
        from organseg.export.dicom_seg import write_dicom_seg
        return write_dicom_seg(on_series, series, path)
