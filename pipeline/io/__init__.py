"""Reading and writing images: bytes on disk → :class:`~pipeline.core.volume.Volume`.

Contract: every reader returns a 3-D ``Volume`` whose ``array`` is (z, y, x) and whose spacing,
origin and direction are ITK (x, y, z), millimetres, LPS, exactly as stored. Every check that
can be made on a header (size, dimensionality, spacing, file structure) is made before voxel
data are read; failures are :class:`~pipeline.core.errors.InputError` sentences naming the
input's role, never a file name.

Modules:
    common       suffixes, ITK reader per suffix, header limits
    nifti        NIfTI header + single-pass direct/streamed voxel reads (gzip CRC, bomb, truncation)
    dicom        DICOM series folders (after :mod:`dicom_guard`'s structure check)
    dicom_guard  element-level structure check of a DICOM file before GDCM opens it
    readers      ``read_image`` / ``read_image_hashed`` / ``stream_slices`` / ``write_image``: the
                 one entry point that dispatches by suffix (file) or folder (DICOM)
    archive      safe extraction of zip uploads and private upload folders
"""
