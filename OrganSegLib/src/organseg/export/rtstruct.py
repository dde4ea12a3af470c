"""DICOM RT Structure Set from organ masks on a CT series' grid, written with pydicom.

One ROI per organ with the catalogue's name, colour, SNOMED CT code and RT ROI Interpreted Type ORGAN;
closed planar contours per slice in patient coordinates (LPS mm), each referencing its CT image, all in
the CT's Frame of Reference. rt-utils is not used: it needs a pixel decoder for compressed series, reads
every file in the folder whatever its series, and traces contours through boundary pixel centres, which
shrinks each structure by half a pixel.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ImplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from organseg import __version__
from organseg.catalogue import Organ
from organseg.ct.dicom_series import Series
from organseg.export.contours import slice_polygons, to_patient
from organseg.export.source import present_masks, reference_headers, write_export

#: Retired Detached Study Management SOP Class: what RT Referenced Study Sequence items conventionally name.
_STUDY_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"
_CONTOUR_DATA = Tag("ContourData")
_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                  "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def write_rtstruct(masks: Mapping[str, np.ndarray], series: Series, path: str | Path,
                   overwrite: bool = False) -> list[str]:
    """Write an RTSTRUCT for the organ masks ((z, y, x) bool on the series' grid, in slice order).

    Organs with an empty mask are left out. Returns notes for the user (left-out organs, filled-in UIDs).
    """
    return write_export(build_rtstruct, masks, series, path, overwrite)


def build_rtstruct(masks: Mapping[str, np.ndarray], series: Series) -> tuple[FileDataset, list[str]]:
    """The RT Structure Set dataset and notes for the user."""
    headers, notes = reference_headers(series)
    ds = _base_dataset(headers[0])
    frame = str(headers[0].FrameOfReferenceUID)
    ds.ReferencedFrameOfReferenceSequence = Sequence([_frame_reference(headers)])
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = Sequence(), Sequence(), Sequence()
    for o, mask in present_masks(masks, "RTSTRUCT", notes):
        contours = _contours(mask, series, headers)
        if not contours:  # a mask too small to outline
            notes.append(f"{o.display_name}: empty mask, left out of the RTSTRUCT")
            continue
        ds.StructureSetROISequence.append(_dataset(
            ROINumber=o.label, ReferencedFrameOfReferenceUID=frame, ROIName=o.display_name,
            ROIDescription=f"OrganSeg {o.key}", ROIGenerationAlgorithm="AUTOMATIC",
            ROIGenerationDescription=f"OrganSeg {__version__}"))
        ds.ROIContourSequence.append(_dataset(
            ReferencedROINumber=o.label, ROIDisplayColor=list(o.colour), ContourSequence=Sequence(contours)))
        ds.RTROIObservationsSequence.append(_observation(o))
    return ds, notes


def _base_dataset(ct: Dataset) -> FileDataset:
    """Patient, study, RT series, equipment, structure set header and SOP common attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian  # 32-bit lengths: long contours fit
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SpecificCharacterSet = ct.get("SpecificCharacterSet", "ISO_IR 100")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID, ds.SOPInstanceUID = RTStructureSetStorage, meta.MediaStorageSOPInstanceUID
    for attr in _PATIENT_STUDY:
        setattr(ds, attr, ct.data_element(attr).value if attr in ct else "")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 9001
    ds.SeriesDescription = "OrganSeg organs"
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = ct.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ct.get("PositionReferenceIndicator", "")
    ds.Manufacturer = "OrganSeg"
    ds.ManufacturerModelName = "OrganSeg"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "OrganSeg"
    ds.StructureSetName = "OrganSeg organs"
    ds.StructureSetDate, ds.StructureSetTime = date, time
    return ds


def _frame_reference(headers: list[Dataset]) -> Dataset:
    """Frame of Reference -> study -> series -> every CT image the contours may reference."""
    images = [_image_reference(h) for h in headers]
    series = _dataset(SeriesInstanceUID=headers[0].SeriesInstanceUID, ContourImageSequence=Sequence(images))
    study = _dataset(ReferencedSOPClassUID=_STUDY_SOP_CLASS, ReferencedSOPInstanceUID=headers[0].StudyInstanceUID,
                     RTReferencedSeriesSequence=Sequence([series]))
    return _dataset(FrameOfReferenceUID=headers[0].FrameOfReferenceUID, RTReferencedStudySequence=Sequence([study]))


def _contours(mask: np.ndarray, series: Series, headers: list[Dataset]) -> list[Dataset]:
    """Contour Sequence items of one organ, slice by slice."""
    items = []
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        for polygon in slice_polygons(mask[k]):
            points = to_patient(polygon, series.position(k), series.row_dir, series.col_dir, series.pixel_spacing)
            item = _dataset(
                ContourImageSequence=Sequence([_image_reference(headers[k])]), ContourGeometricType="CLOSED_PLANAR",
                NumberOfContourPoints=len(points), ContourNumber=len(items) + 1)
            item[_CONTOUR_DATA] = _decimal_strings(points.ravel())
            item.set_original_encoding(True, True, default_encoding)  # ASCII only: lets the raw value through
            items.append(item)
    return items


def _decimal_strings(values: np.ndarray) -> RawDataElement:
    """Contour Data as encoded DS text: building one pydicom DS object per coordinate is 100x slower."""
    text = "\\".join(f"{v:.4f}" for v in values).encode("ascii")
    text += b" " * (len(text) % 2)
    return RawDataElement(_CONTOUR_DATA, "DS", len(text), text, 0, True, True)


def _observation(o: Organ) -> Dataset:
    code = _dataset(CodeValue=o.snomed_code, CodingSchemeDesignator="SCT", CodeMeaning=o.snomed_meaning)
    return _dataset(ObservationNumber=o.label, ReferencedROINumber=o.label, RTROIIdentificationCodeSequence=Sequence([code]), RTROIInterpretedType="ORGAN", ROIInterpreter="")


def _image_reference(header: Dataset) -> Dataset:
    """A Contour Image Sequence item: the CT image, and for a frame of a multi-frame CT its frame number."""
    item = _dataset(ReferencedSOPClassUID=header.SOPClassUID, ReferencedSOPInstanceUID=header.SOPInstanceUID)
    if "ReferencedFrameNumber" in header:
        item.ReferencedFrameNumber = header.ReferencedFrameNumber
    return item


def _dataset(**attributes) -> Dataset:
    ds = Dataset()
    for name, value in attributes.items():
        setattr(ds, name, value)
    return ds
