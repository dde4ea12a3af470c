"""DICOM exports of organ masks on a CT series' grid: `rtstruct.write_rtstruct` (RT Structure Set) and
`dicom_seg.write_dicom_seg` (DICOM Segmentation). Submodules import pydicom/highdicom only when used."""
