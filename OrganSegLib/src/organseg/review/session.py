"""One open case of a review: its CT and masks in the Slicer scene, the volume table, Save and the exports.

Independent of the page (no trame): the app calls these and shows what they return or raise. What was
opened is kept (`opened`), so Save writes only the organs whose voxels differ from it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from organseg.atomic import atomic_file
from organseg.catalogue import organ
from organseg.ct.grid import same_grid
from organseg.ct.read import read_ct, read_image_file
from organseg.errors import InputError, OrganSegError, OutputError
from organseg.export.output_types import DICOM_FILES
from organseg.export.seg_nrrd import FILE_NAME as SEG_NRRD
from organseg.results.plausibility import check_masks
from organseg.results.stats import organ_stats
from organseg.review.cases import Case, ct_path, mask_files
from organseg.review.corrections import record, write_corrected
from organseg.review.scene import add_ct, add_segmentation, organ_segments, segment_mask

log = logging.getLogger(__name__)

#: Export kind -> file written into the case's `reviewed/` folder: the CLI's names, in a folder of their own so
#: the review never replaces what `segment` wrote; a later export from the review replaces the earlier one.
REVIEWED = "reviewed"
EXPORT_FILES = {**DICOM_FILES, "seg-nrrd": SEG_NRRD}


@dataclass
class CaseSession:
    slicer_app: object  #: trame_slicer.core.SlicerApp
    root: Path
    case: Case
    ct_file: Path
    ct: sitk.Image
    volume: slicer.vtkMRMLScalarVolumeNode
    segmentation: slicer.vtkMRMLSegmentationNode
    opened: dict[str, np.ndarray]  #: organ key -> the (z, y, x) mask as opened or last saved
    opened_ml: dict[str, float]
    skipped: dict[str, str]  #: mask file name -> why it was left out

    @classmethod
    def open(cls, slicer_app, root: Path, case: Case) -> "CaseSession":
        """Read the case's CT and masks into the (cleared) scene; a mask that cannot be read or lies on
        another grid is left out and named, the others open."""
        if case.problem:
            raise InputError(f"{case.name}: {case.problem}")
        ct_file = ct_path(case, root)
        ct = read_ct(ct_file)
        files, skipped = mask_files(case)
        masks: dict[str, np.ndarray] = {}
        for f in files:
            try:
                image = read_image_file(f.path)  # refuses truncated files, which ITK would pad with zeros
            except InputError as err:
                skipped[f.path.name] = str(err).removeprefix(f"{f.path}: ")
                continue
            if not same_grid(image, ct):
                skipped[f.path.name] = "not on the CT's voxel grid"
                continue
            masks[f.organ] = sitk.GetArrayFromImage(image) != 0
        if not masks:
            raise InputError(f"{case.folder}: no readable organ mask"
                             + (f" ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})" if skipped else ""))
        scene = slicer_app.scene
        volume = add_ct(scene, ct, case.name)
        segmentation = add_segmentation(scene, volume, masks, f"{case.name} organs")
        voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
        return cls(slicer_app, root, case, ct_file, ct, volume, segmentation, masks,
                   {k: float(m.sum()) * voxel_ml for k, m in masks.items()}, skipped)

    @property
    def organs(self) -> list[str]:
        return list(organ_segments(self.segmentation))

    def current_masks(self) -> dict[str, np.ndarray]:
        """Organ key -> the segment's (z, y, x) mask now, on the CT's grid."""
        return {key: segment_mask(self.segmentation, sid, self.volume)
                for key, sid in organ_segments(self.segmentation).items()}

    def table(self) -> list[dict]:
        """The volume table rows from the segments' current voxels, with plausibility flags."""
        masks = self.current_masks()
        ct = sitk.GetArrayViewFromImage(self.ct)
        flags = check_masks(self.ct, ct, {k: (lambda m=m: m) for k, m in masks.items()})
        display = self.segmentation.GetDisplayNode()
        rows = []
        for key, mask in masks.items():
            o = organ(key)
            stats = organ_stats(o, mask, ct, self.ct.GetSpacing())
            rows.append({"organ": key, "name": o.display_name, "colour": "#%02x%02x%02x" % o.colour,
                         "voxels": stats["voxels"], "volume_ml": f"{stats['volume_ml']:.1f}",
                         "opened_ml": f"{self.opened_ml[key]:.1f}",
                         "flags": [f.as_dict() for f in flags[key]],
                         "opacity": display.GetSegmentOpacity2DFill(organ_segments(self.segmentation)[key])})
        return rows

    def edited(self) -> list[str]:
        """The organs whose voxels differ from what was opened or last saved."""
        return [k for k, m in self.current_masks().items() if not np.array_equal(m, self.opened[k])]

    def save(self) -> str:
        """Write each edited organ's corrected mask and its corrections.csv row."""
        edited = {k: m for k, m in self.current_masks().items() if not np.array_equal(m, self.opened[k])}
        if not edited:
            return "nothing to save: no organ was edited"
        for key, mask in edited.items():
            path = write_corrected(self.case.folder, key, mask, self.ct)
            record(self.root, self.case.name, key, self.ct_file, path)
            self.opened[key] = mask
        return f"saved {', '.join(f'masks/{k}_corrected.nii.gz' for k in edited)}; corrections.csv updated"

    def export(self, kind: str) -> str:
        """RTSTRUCT, DICOM SEG (the CT must be a DICOM series) or .seg.nrrd of the current masks, through the
        library's exporters."""
        masks = {k: m for k, m in self.current_masks().items() if m.any()}
        if not masks:
            raise InputError(f"{self.case.name}: every mask is empty; there is nothing to export")
        path = self.case.folder / REVIEWED / EXPORT_FILES[kind]
        shown = f"{REVIEWED}/{path.name}"
        if kind == "seg-nrrd":
            from organseg.export.seg_nrrd import write_seg_nrrd
            with atomic_file(reviewed_folder(path), ".seg.nrrd") as tmp:
                write_seg_nrrd(masks, self.ct, tmp)
            return f"wrote {shown}"
        if not (self.ct_file.is_dir() or self.ct_file.suffix.lower() == ".dcm"):
            raise InputError(f"{self.ct_file}: {EXPORT_FILES[kind]} needs the CT as a DICOM series (the export "
                             "references its images); segment the DICOM folder to export this")
        from organseg.ct.dicom_series import find_series
        from organseg.export.source import array_on_series_grid
        series = find_series(self.ct_file)
        on_series = {}
        for key, mask in masks.items():
            image = sitk.GetImageFromArray(mask.astype(np.uint8))
            image.CopyInformation(self.ct)
            on_series[key] = array_on_series_grid(image, series, self.ct_file)
        if kind == "rtstruct":
            from organseg.export.rtstruct import write_rtstruct as write
        else:
            from organseg.export.dicom_seg import write_dicom_seg as write
        for note in series.notes + write(on_series, series, reviewed_folder(path), overwrite=True):
            log.warning(note)
        return f"wrote {shown}: {len(on_series)} organs on {len(series.files)} slices"

    def set_opacity(self, organ_key: str, opacity: float) -> str:
        segment_id = organ_segments(self.segmentation).get(organ_key)
        if segment_id is None:
            raise OrganSegError(f"{organ_key}: no such organ segment in this case")
        display = self.segmentation.GetDisplayNode()
        display.SetSegmentOpacity2DFill(segment_id, opacity)
        display.SetSegmentOpacity2DOutline(segment_id, opacity)
        display.SetSegmentOpacity3D(segment_id, opacity)
        return ""

    def centre_views(self) -> None:
        """Put the slice views through the centre of the first flagged organ (else the largest)."""
        flagged = [k for k in self.case.flagged_organs if k in self.opened and self.opened[k].any()]
        key = flagged[0] if flagged else max(self.opened, key=lambda k: int(self.opened[k].sum()))
        if not self.opened[key].any():
            return
        k, j, i = np.argwhere(self.opened[key]).mean(axis=0)
        matrix = vtk.vtkMatrix4x4()
        self.volume.GetIJKToRASMatrix(matrix)
        point = matrix.MultiplyPoint((float(i), float(j), float(round(k)), 1.0))
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.slicer_app.scene, *point[:3])


def reviewed_folder(path: Path) -> Path:
    """`path`, its `reviewed/` folder created (a file of that name is the user's: refused, never replaced)."""
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot create the folder for the review's exports ({err.strerror})"
                          ) from None
    return path
