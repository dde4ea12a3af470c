"""RTSTRUCT and DICOM SEG export of an OrganSeg segmentation through the library's exporters.

The segments are read back from MRML (so manual edits are exported), packed into an organseg `Result`
on the CT's grid, and written by `organseg.export.rtstruct` / `organseg.export.dicom_seg`, referencing
the CT's source DICOM series when the volume was loaded from DICOM.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk
import slicer

from organseg.errors import InputError
from organseg.segmenter import OrganMask, Result
from organseg.stats import organ_stats

from organseg_slicer.segments import organ_segments, segment_mask, segment_organ
from organseg_slicer.volumes import image_from_volume

KINDS = ("rtstruct", "dicom_seg")


def result_from_segments(segmentation_node: slicer.vtkMRMLSegmentationNode,
                         volume_node: slicer.vtkMRMLScalarVolumeNode) -> Result:
    """The OrganSeg segments as they are now in the scene, as a library Result on the volume's grid."""
    image = image_from_volume(volume_node)
    ct = sitk.GetArrayViewFromImage(image)
    masks, stats = {}, []
    for segment_id in organ_segments(segmentation_node):
        o = segment_organ(segmentation_node, segment_id)
        mask = segment_mask(segmentation_node, segment_id, volume_node)
        masks[o.key] = OrganMask.from_full(mask)
        stats.append(organ_stats(o, mask, ct, image.GetSpacing()))
    if not masks:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no OrganSeg segments to export")
    reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(image)
    return Result(reference, masks, stats, {})


def source_series_files(volume_node: slicer.vtkMRMLScalarVolumeNode) -> list[Path]:
    """Files of the DICOM series the volume was loaded from (Slicer's DICOM database); [] if not DICOM."""
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return []
    files = [database.fileForInstance(uid) for uid in uids]
    return [Path(f) for f in files if f]


def export(segmentation_node: slicer.vtkMRMLSegmentationNode, volume_node: slicer.vtkMRMLScalarVolumeNode,
           kind: str, path: str | Path) -> Path:
    """Write the segmentation as RTSTRUCT or DICOM SEG to `path` (never replacing an existing file)."""
    if kind not in KINDS:
        raise InputError(f"unknown export kind '{kind}'; use {' or '.join(KINDS)}")
    path = Path(path)
    if path.exists():
        raise InputError(f"{path}: exists; choose a new file name")
    files = source_series_files(volume_node)
    if not files:
        raise InputError(f"volume '{volume_node.GetName()}' was not loaded from DICOM; load the CT through the "
                         f"DICOM module so the {kind.upper()} can reference its series")
    result = result_from_segments(segmentation_node, volume_node)
    with tempfile.TemporaryDirectory(prefix="organseg-series-") as tmp:
        for index, file in enumerate(files):
            shutil.copy2(file, Path(tmp) / f"{index:05d}.dcm")
        if kind == "rtstruct":
            from organseg.export.rtstruct import write_rtstruct
            write_rtstruct(result, Path(tmp), path)
        else:
            from organseg.export.dicom_seg import write_dicom_seg
            write_dicom_seg(result, Path(tmp), path)
    return path
