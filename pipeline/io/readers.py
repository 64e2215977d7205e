"""Read CT and ROI images (NIfTI, NRRD, MHA/MHD, DICOM series folder) into :class:`Volume`.

Contract (what callers may rely on):
    * Returns a 3-D :class:`~pipeline.core.volume.Volume`: ``array`` indexed (z, y, x); spacing,
      origin and direction in ITK (x, y, z) order, millimetres, LPS; physical geometry is kept
      exactly as stored in the file.
    * The header is read and checked **before** voxel data are decompressed: a file declaring
      more than ``max_voxels`` voxels, fewer or more than 3 dimensions (a trailing 4th axis of
      length 1 is dropped), a zero-length axis, or several components per voxel is refused.
      A NIfTI file holding less voxel data than its header declares (a truncated upload, which
      ITK would silently zero-fill), failing its gzip checksum, or decompressing to much more
      than its header declares (a gzip bomb; decompression stops there) is refused.
    * The suffix decides the format: a file whose content is another format (a PNG or PDF named
      ``.nii.gz``) is refused as not a valid image of that suffix. NIfTI headers are checked in
      Python before ITK parses them (a zero or negative axis length is refused, never read as 1).
      NaN/±Inf voxels of a float NIfTI file are returned as stored (ITK's reader makes them 0).
    * DICOM: a folder (searched recursively) is read as the series with the most slices (two
      series tied for the most are refused as ambiguous); slices must be evenly spaced (missing
      or uneven slices are refused). Pixel data come out in HU (GDCM applies
      RescaleSlope/Intercept); no DICOM tag leaves this module.
    * Errors are :class:`~pipeline.core.errors.InputError` subclasses with one sentence naming the
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

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from pipeline.core.errors import ImageReadError, ImageShapeError
from pipeline.core.hashing import path_sha256
from pipeline.core.volume import Volume
from pipeline.io.common import DEFAULT_MAX_VOXELS, IMAGE_IO, IMAGE_SUFFIXES, c_stderr_silenced, check_header, image_suffix
from pipeline.io.detached import data_files, input_sha256
from pipeline.io.dicom import read_dicom_series
from pipeline.io.nifti2 import as_nifti1, is_nifti2
from pipeline.io.nifti import (NIFTI_FLOATS, NiftiHeader, SliceBlockFn, SliceSink, direct_dtype, nifti_data_problem,
                               raise_data_problem, read_nifti_direct, read_nifti_header, restore_non_finite,
                               voxel_pass)

__all__ = ["DEFAULT_MAX_VOXELS", "IMAGE_SUFFIXES", "image_suffix", "read_dicom_series", "read_image",
           "read_image_hashed", "stream_slices", "write_image", "nifti_geometry"]


def read_image(path: str | os.PathLike[str], *, role: str = "image", max_voxels: int = DEFAULT_MAX_VOXELS,
               series: str | None = None, notes: list[str] | None = None) -> Volume:
    """Read one 3-D image file or DICOM folder as a :class:`Volume` (see module contract).

    Args:
        path: ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` file or a folder of
            DICOM files.
        role: how errors name this input ("CT", "ROI mask").
        max_voxels: largest accepted number of voxels, checked on the header.
        series, notes: for a DICOM folder, the SeriesInstanceUID to read, and a list that gets a
            sentence naming the series used when there were several (:func:`read_dicom_series`).
    """
    return _read(path, role=role, max_voxels=max_voxels, want_hash=False, series=series, notes=notes)[0]


def read_image_hashed(path: str | os.PathLike[str], *, role: str = "image", max_voxels: int = DEFAULT_MAX_VOXELS,
                      series: str | None = None, notes: list[str] | None = None) -> tuple[Volume, str]:
    """:func:`read_image` plus the SHA-256 of the input (file bytes, or a folder's files as
    :func:`pipeline.io.detached.input_sha256` hashes them: detached data files included). A plain NIfTI file is hashed during the
    same single pass that decompresses it.
    """
    return _read(path, role=role, max_voxels=max_voxels, want_hash=True, series=series, notes=notes)


class CheckedFile(NamedTuple):
    path: Path
    reader: sitk.ImageFileReader  # header read (ReadImageInformation), data not yet
    nifti: NiftiHeader | None
    dims: tuple[int, ...]


def checked_file(path: str | os.PathLike[str], *, role: str, max_voxels: int) -> Path | CheckedFile:
    """Every check made before voxel data are read (module contract); a folder is returned as
    its :class:`Path` (a DICOM series, checked by :func:`read_dicom_series`)."""
    p = Path(path)
    try:
        is_dir, is_file = p.is_dir(), p.is_file()
        size = p.stat().st_size if is_file else 0
    except OSError as exc:  # e.g. a name too long; the OSError text would carry the path
        raise ImageReadError(f"{role} file cannot be opened ({exc.strerror or type(exc).__name__})") from None
    if is_dir:
        return p
    if not is_file and p.exists():  # a FIFO, device or socket: reading it could block forever
        raise ImageReadError(f"{role} is not a regular file (a pipe, device or socket); give an image file")
    if not is_file:
        raise ImageReadError(f"{role} file not found")
    if size == 0:
        raise ImageReadError(f"{role} file is empty (0 bytes)")
    if p.name.lower().endswith(".zip"):  # the app unzips uploads itself; here a folder is needed
        raise ImageReadError(f"{role}: a .zip archive cannot be read directly; unzip it and give the DICOM folder")
    if not image_suffix(p):
        raise ImageReadError(
            f"{role}: unsupported file type; use NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha) "
            "or a folder of DICOM files"
        )
    suffix = image_suffix(p)
    invalid = f"{role} could not be read: not a valid {suffix} image or the header is damaged"
    nifti = read_nifti_header(p) if IMAGE_IO[suffix] == "NiftiImageIO" else None
    if IMAGE_IO[suffix] == "NiftiImageIO" and nifti is None:
        raise ImageReadError(invalid)
    if nifti is not None and min(nifti.dims, default=0) < 1:
        raise ImageShapeError(f"{role} has a zero-length or negative axis (header size {nifti.dims})")
    if nifti is not None and not nifti.geometry_finite:  # ITK's orientation maths can loop forever on ±Inf
        raise ImageReadError(f"{role} could not be read: its header's voxel spacing or orientation "
                             "(pixdim, qform or sform) contains NaN or infinite numbers")
    if IMAGE_IO[suffix] in ("NrrdImageIO", "MetaImageIO"):
        data_files(p, role=role)  # a detached data file must lie beside the header (pipeline.io.detached)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(IMAGE_IO[suffix])
    reader.SetFileName(str(p))
    try:
        with c_stderr_silenced():
            reader.ReadImageInformation()
    except RuntimeError:
        raise ImageReadError(invalid) from None
    dims = check_header(reader.GetSize(), reader.GetNumberOfComponents(), role=role, max_voxels=max_voxels)
    spacing = tuple(reader.GetSpacing())[:3]
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ImageReadError(f"{role} could not be read: its header gives an impossible voxel spacing "
                             f"({', '.join(f'{s:g}' for s in spacing)} mm; each must be a positive number)")
    return CheckedFile(p, reader, nifti, dims)


def _is_nifti2_file(path: str | os.PathLike[str]) -> bool:
    return image_suffix(path) in (".nii", ".nii.gz") and os.path.isfile(path) and is_nifti2(path)


def _read(path: str | os.PathLike[str], *, role: str, max_voxels: int, want_hash: bool, series: str | None = None,
          notes: list[str] | None = None) -> tuple[Volume, str]:
    if _is_nifti2_file(path):  # ITK cannot open NIfTI-2: read an equivalent NIfTI-1 copy (pipeline.io.nifti2)
        with tempfile.TemporaryDirectory(prefix="pleura-nifti2-") as folder:
            copy = as_nifti1(path, folder, role=role, max_voxels=max_voxels)
            volume, _ = _read(copy, role=role, max_voxels=max_voxels, want_hash=False)
        return volume, (input_sha256(path) if want_hash else "")
    checked = checked_file(path, role=role, max_voxels=max_voxels)
    if isinstance(checked, Path):
        volume = read_dicom_series(checked, role=role, max_voxels=max_voxels, series=series, notes=notes)
        return volume, (path_sha256(checked) if want_hash else "")
    p, reader, nifti, dims = checked
    if nifti is not None and (direct := read_nifti_direct(reader, p, nifti, role=role,
                                                           want_hash=want_hash)) is not None:
        return direct
    if nifti is not None and (problem := nifti_data_problem(reader, p)):
        raise ImageReadError(f"{role} could not be read: {problem}")
    try:
        with c_stderr_silenced():
            image = reader.Execute()
    except (RuntimeError, MemoryError):
        raise ImageReadError(f"{role} could not be read: the file is truncated or its data are corrupt") from None
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or tuple(image.GetSize()) != dims:
        raise ImageShapeError(f"{role} must be a 3-D image; got size {image.GetSize()}")
    volume = Volume.from_sitk(image)
    if nifti is not None and nifti.datatype in NIFTI_FLOATS:
        restore_non_finite(volume.array, p, nifti)
    return volume, (input_sha256(p) if want_hash else "")

def stream_slices(path: str | os.PathLike[str], *, role: str, plan: Callable[[Volume], SliceBlockFn | None],
                  max_voxels: int = DEFAULT_MAX_VOXELS, want_hash: bool = False) -> tuple[Volume, str] | None:
    """Read a plain NIfTI file a block of z-slices at a time, never holding the whole volume.

    The file gets exactly :func:`read_image`'s checks (header, truncation, gzip CRC, bomb limit),
    with the same errors. Once the header is checked, ``plan(geometry)`` is called with the
    image's geometry (a :class:`Volume` whose ``array`` is a zero-stride placeholder of the
    file's shape and dtype: no memory); it returns the function that receives every block of
    whole slices in order (see :class:`SliceSink`), or ``None`` to read nothing. A block is
    handed on before the file's end is reached: a later error (truncation, CRC) means that what
    the blocks gave must be discarded, which the raise makes the caller do.

    Returns:
        ``(geometry, sha256)`` (``""`` unless ``want_hash``), or ``None`` when the file is not a
        NIfTI the direct reader handles (other formats, DICOM, scaled or foreign-byte-order
        data, …) or ``plan`` declined: the caller then uses :func:`read_image`.
    """
    if _is_nifti2_file(path):  # read through a NIfTI-1 copy by read_image (pipeline.io.nifti2)
        return None
    checked = checked_file(path, role=role, max_voxels=max_voxels)
    if isinstance(checked, Path) or checked.nifti is None:
        return None
    p, reader, header = checked.path, checked.reader, checked.nifti
    dtype = direct_dtype(reader, p, header)
    if dtype is None:
        return None
    shape_zyx = tuple(int(n) for n in reader.GetSize())[::-1]
    geometry = Volume(np.broadcast_to(np.zeros((), dtype=dtype), shape_zyx),
                      spacing_xyz=tuple(reader.GetSpacing()), origin_xyz=tuple(reader.GetOrigin()),
                      direction=tuple(reader.GetDirection()))
    on_block = plan(geometry)
    if on_block is None:
        return None
    sink = SliceSink(shape_zyx, dtype, on_block)  # type: ignore[arg-type]
    problem, sha256 = voxel_pass(p, header, sink, want_hash=want_hash)
    raise_data_problem(problem, role)
    return geometry, sha256

def write_image(volume: Volume, path: str | os.PathLike[str], *, compress: bool = True) -> Path:
    """Write a Volume (NIfTI/NRRD/MHA by suffix), keeping its geometry."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), compress)
    return path


def nifti_geometry(volume: Volume) -> Volume:
    """The geometry ``volume`` has once written to NIfTI and read back (the file stores spacing and
    origin as float32 and the direction as a quaternion): a :class:`Volume` of the same shape and
    dtype whose array is a zero-stride placeholder. Costs a tiny header-sized file, not the voxels.

    Example:
        >>> v = Volume(np.zeros((3, 4, 5), np.int16), spacing_xyz=(0.7, 0.7, 1.25), origin_xyz=(-170.1, -200.3, -99.9))
        >>> g = nifti_geometry(v); g.shape_zyx, g.spacing_xyz[0] == float(np.float32(0.7))
        ((3, 4, 5), True)
    """
    probe = Volume(np.zeros((2, 2, 2), dtype=volume.array.dtype), spacing_xyz=volume.spacing_xyz,
                   origin_xyz=volume.origin_xyz, direction=volume.direction)
    with tempfile.TemporaryDirectory(prefix="pleura-geometry-") as folder:
        path = os.path.join(folder, "probe.nii")
        sitk.WriteImage(probe.to_sitk(), path, False)
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        spacing, origin, direction = tuple(reader.GetSpacing()), tuple(reader.GetOrigin()), tuple(reader.GetDirection())
    return Volume(np.broadcast_to(np.zeros((), dtype=volume.array.dtype), volume.shape_zyx), spacing_xyz=spacing,
                  origin_xyz=origin, direction=direction)
