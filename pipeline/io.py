"""Read CT and ROI images (NIfTI, NRRD, MHA/MHD, DICOM series folder) into :class:`Volume`.

Contract (what callers may rely on):
    * Returns a 3-D :class:`~pipeline.volume.Volume`: ``array`` indexed (z, y, x); spacing,
      origin and direction in ITK (x, y, z) order, millimetres, LPS; physical geometry is kept
      exactly as stored in the file.
    * The header is read and checked **before** voxel data are decompressed: a file declaring
      more than ``max_voxels`` voxels, fewer or more than 3 dimensions (a trailing 4th axis of
      length 1 is dropped), a zero-length axis, or several components per voxel is refused.
      A NIfTI file holding less voxel data than its header declares (a truncated upload, which
      ITK would silently zero-fill) or failing its gzip checksum is refused.
    * DICOM: a folder (searched recursively) is read as the series with the most slices;
      slices must be evenly spaced (missing or uneven slices are refused). Pixel data come out
      in HU (GDCM applies RescaleSlope/Intercept); no DICOM tag leaves this module.
    * Errors are :class:`~pipeline.errors.InputError` subclasses with one sentence naming the
      input's *role* ("CT", "ROI mask"), never the file name or any patient identifier.

Example:
    >>> import tempfile, os, numpy as np, SimpleITK as sitk
    >>> d = tempfile.mkdtemp()
    >>> img = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)); img.SetSpacing((0.5, 0.5, 2.5))
    >>> sitk.WriteImage(img, os.path.join(d, "ct.nii.gz"))
    >>> v = read_image(os.path.join(d, "ct.nii.gz"), role="CT")
    >>> v.shape_zyx, v.spacing_xyz
    ((4, 5, 6), (0.5, 0.5, 2.5))
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import DicomError, ImageReadError, ImageShapeError, ImageTooLargeError
from .volume import Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DEFAULT_MAX_VOXELS = 1024**3

# ITK reports failures on stderr as well as by exception; keep user output clean.
sitk.ProcessObject_SetGlobalWarningDisplay(False)


def image_suffix(path: str | os.PathLike[str]) -> str:
    """The recognised suffix of ``path`` ('' if none), e.g. ``.nii.gz``."""
    name = str(path).lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def _check_header(size: tuple[int, ...], n_components: int, *, role: str, max_voxels: int) -> tuple[int, ...]:
    dims = list(size)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) != 3:
        raise ImageShapeError(
            f"{role} must be a 3-D image; this file is {len(dims)}-D with size {tuple(size)}"
        )
    if min(dims) < 1:
        raise ImageShapeError(f"{role} has a zero-length axis (size {tuple(size)})")
    if n_components != 1:
        raise ImageShapeError(
            f"{role} has {n_components} components per voxel (colour/vector image); expected a scalar image"
        )
    n_voxels = int(np.prod(np.asarray(dims, dtype=np.int64)))
    if n_voxels > max_voxels:
        raise ImageTooLargeError(
            f"{role} declares {dims[0]}×{dims[1]}×{dims[2]} = {n_voxels:,} voxels, more than the "
            f"limit of {max_voxels:,}; refused before decompressing"
        )
    return tuple(dims)


def _nifti_data_complete(reader: sitk.ImageFileReader, path: Path) -> bool:
    """Whether a NIfTI file holds all the voxel data its header declares.

    ITK's NIfTI reader silently fills missing data with zeros, so a truncated upload would
    otherwise be read as a CT with a block of 0 HU. ``.nii``: compare the file size;
    ``.nii.gz``: stream-decompress the file (this also verifies the gzip CRC).
    """
    try:
        n_dims = int(reader.GetMetaData("dim[0]"))
        n_voxels = int(np.prod([int(reader.GetMetaData(f"dim[{i}]")) for i in range(1, n_dims + 1)], dtype=np.int64))
        expected = int(float(reader.GetMetaData("vox_offset"))) + n_voxels * int(reader.GetMetaData("bitpix")) // 8
    except (RuntimeError, ValueError):
        return True  # header fields not exposed: leave the check to ITK
    if image_suffix(path) == ".nii":
        return path.stat().st_size >= expected
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(4 * 1024 * 1024):
                total += len(chunk)
    except (OSError, EOFError, zlib.error):
        return False
    return total >= expected


def read_image(path: str | os.PathLike[str], *, role: str = "image", max_voxels: int = DEFAULT_MAX_VOXELS) -> Volume:
    """Read one 3-D image file or DICOM folder as a :class:`Volume` (see module contract).

    Args:
        path: ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` file or a folder of
            DICOM files.
        role: how errors name this input ("CT", "ROI mask").
        max_voxels: largest accepted number of voxels, checked on the header.
    """
    p = Path(path)
    if p.is_dir():
        return read_dicom_series(p, role=role, max_voxels=max_voxels)
    if not p.is_file():
        raise ImageReadError(f"{role} file not found")
    if p.stat().st_size == 0:
        raise ImageReadError(f"{role} file is empty (0 bytes)")
    if not image_suffix(p):
        raise ImageReadError(
            f"{role}: unsupported file type; use NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha) "
            "or a folder / zip of DICOM files"
        )
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise ImageReadError(f"{role} could not be read: not a valid {image_suffix(p)} image or the header is damaged") from None
    dims = _check_header(reader.GetSize(), reader.GetNumberOfComponents(), role=role, max_voxels=max_voxels)
    truncated = f"{role} could not be read: the file is truncated or its data are corrupt"
    if image_suffix(p) in (".nii", ".nii.gz") and not _nifti_data_complete(reader, p):
        raise ImageReadError(truncated)
    try:
        image = reader.Execute()
    except (RuntimeError, MemoryError):
        raise ImageReadError(truncated) from None
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or tuple(image.GetSize()) != dims:
        raise ImageShapeError(f"{role} must be a 3-D image; got size {image.GetSize()}")
    return Volume.from_sitk(image)


def _slice_positions(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each slice along the slice normal (mm) and the normal itself."""
    positions, normal = [], None
    reader = sitk.ImageFileReader()
    for f in files:
        reader.SetFileName(f)
        reader.LoadPrivateTagsOff()
        reader.ReadImageInformation()
        ipp = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
        if normal is None:
            iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
            normal = np.cross(iop[:3], iop[3:])
        positions.append(float(np.dot(normal, ipp)))
    return np.asarray(positions), np.asarray(normal)


def read_dicom_series(folder: str | os.PathLike[str], *, role: str = "CT", max_voxels: int = DEFAULT_MAX_VOXELS,
                      spacing_tolerance: float = 0.01) -> Volume:
    """Read the DICOM series with the most slices found under ``folder``.

    Slices are ordered by position along the slice normal; the gaps between consecutive slices
    must agree within ``spacing_tolerance`` (relative), otherwise the series is refused (missing
    slices or uneven spacing would silently distort every 3-D measurement).
    """
    folder = Path(folder)
    candidates: list[tuple[int, str, list[str]]] = []
    for dirpath, _dirs, _files in os.walk(folder):
        try:
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath)
        except RuntimeError:
            continue
        for sid in ids:
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, sid))
            candidates.append((len(files), sid, files))
    if not candidates:
        raise DicomError(f"{role}: no DICOM image series found in the folder")
    n_files, _sid, files = max(candidates, key=lambda c: c[0])
    if n_files < 3:
        raise DicomError(f"{role}: the largest DICOM series has only {n_files} slice(s); a 3-D CT needs more")
    try:
        positions, _normal = _slice_positions(files)
    except (RuntimeError, ValueError):
        raise DicomError(f"{role}: DICOM slices lack readable position/orientation tags") from None
    order = np.argsort(positions)
    files = [files[i] for i in order]
    gaps = np.diff(positions[order])
    if np.any(gaps <= 1e-6):
        raise DicomError(f"{role}: DICOM series has {int(np.sum(gaps <= 1e-6))} duplicate slice position(s)")
    median_gap = float(np.median(gaps))
    if np.max(np.abs(gaps - median_gap)) > spacing_tolerance * median_gap + 1e-3:
        raise DicomError(
            f"{role}: DICOM slice spacing is not uniform (gaps from {gaps.min():.3g} to {gaps.max():.3g} mm; "
            "missing slices or a mixed series); export an evenly spaced series"
        )
    info = sitk.ImageFileReader()
    info.SetFileName(files[0])
    info.ReadImageInformation()
    size = info.GetSize()
    _check_header((size[0], size[1], len(files)), info.GetNumberOfComponents(), role=role, max_voxels=max_voxels)
    series = sitk.ImageSeriesReader()
    series.SetFileNames(files)
    series.MetaDataDictionaryArrayUpdateOff()
    series.LoadPrivateTagsOff()
    try:
        image = series.Execute()
    except RuntimeError:
        raise DicomError(f"{role}: the DICOM series could not be decoded (corrupt or unsupported compression)") from None
    image.SetSpacing((image.GetSpacing()[0], image.GetSpacing()[1], median_gap))
    return Volume.from_sitk(image)


def write_image(volume: Volume, path: str | os.PathLike[str], *, compress: bool = True) -> Path:
    """Write a Volume (NIfTI/NRRD/MHA by suffix), keeping its geometry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), compress)
    return path
