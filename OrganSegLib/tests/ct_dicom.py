"""A CT image written as a DICOM CT series (one CT Image Storage file per slice), as a scanner would deliver it:
for tests that need a real CT the project has only as NIfTI (OpenKBP) in DICOM."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid


def write_ct_series(image: sitk.Image, folder: Path, patient_id: str) -> None:
    """One file per slice (index k of the image's third axis), in HU as int16, with the image's geometry."""
    folder.mkdir(parents=True)
    hu = sitk.GetArrayFromImage(image)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(hu.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.Modality = "20200101", "120000", "", "CT"
        ds.Manufacturer, ds.ReferringPhysicianName = "OpenKBP", ""
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = f"OpenKBP^{patient_id}", patient_id, "", "O"
        ds.PatientPosition, ds.Laterality = "HFS", ""
        ds.KVP, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyID = 120, study, series, "1"
        ds.SeriesNumber, ds.AcquisitionNumber, ds.InstanceNumber = 1, 1, k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
        ds.SliceThickness = f"{image.GetSpacing()[2]:.4f}"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.PixelSpacing = [f"{image.GetSpacing()[1]:.4f}", f"{image.GetSpacing()[0]:.4f}"]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.PixelData = hu[k].astype(np.int16).tobytes()
        ds.save_as(folder / f"ct{k:04d}.dcm", enforce_file_format=True)
