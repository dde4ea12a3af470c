"""DICOM exports of organ masks on a CT series' grid: RT Structure Set and DICOM Segmentation."""
from organseg.export.dicom_seg import write_dicom_seg
from organseg.export.rtstruct import write_rtstruct

__all__ = ["write_rtstruct", "write_dicom_seg"]
