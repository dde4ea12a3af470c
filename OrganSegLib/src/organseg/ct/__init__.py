"""The CT, the input step: reading a file or DICOM series, checking it can be segmented, its voxel grid and
orientation, and reading label maps that come with it."""
