"""NIfTI-2 files (540-byte header, 64-bit fields): read by converting to NIfTI-1 first.

ITK's NIfTI reader in the pinned SimpleITK does not open NIfTI-2 ("Unable to determine ImageIO
reader"), so a valid NIfTI-2 CT was refused as damaged. :func:`as_nifti1` rewrites one into an
equivalent single-file NIfTI-1 (same voxels as stored, or as float32 when the file scales them, as ITK
would; same qform/sform and their codes) in a private folder, after checking the header (voxel count, axis lengths), so the normal
reader, with all its checks, reads it and gives the geometry ITK gives any NIfTI-1 file.

Example:
    >>> import tempfile, os, numpy as np, nibabel as nib
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "ct.nii")
    >>> nib.save(nib.Nifti2Image(np.zeros((6, 5, 4), np.int16), np.diag([0.7, 0.8, 2.5, 1])), p)
    >>> is_nifti2(p), os.path.basename(as_nifti1(p, d, role="CT", max_voxels=10**6))
    (True, 'converted.nii')
"""

from __future__ import annotations

import gzip
import zlib
import os
from pathlib import Path

import numpy as np

from pipeline.core.errors import ImageReadError, ImageShapeError, ImageTooLargeError

_NIFTI1_MAX_AXIS = 32767  # dim[] is int16 in NIfTI-1


def is_nifti2(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (.nii or .nii.gz, plain or gzip content) starts with a NIfTI-2 header."""
    try:
        with Path(path).open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rb") as fh:
            head = fh.read(12)
    except (OSError, EOFError, zlib.error):  # damaged: the NIfTI-1 reader names the problem
        return False
    size_ok = int.from_bytes(head[:4], "little") == 540 or int.from_bytes(head[:4], "big") == 540
    return size_ok and head[4:8] == b"n+2\x00"


def as_nifti1(path: str | os.PathLike[str], folder: str | os.PathLike[str], *, role: str,
              max_voxels: int) -> Path:
    """Write the NIfTI-2 file ``path`` as ``folder/converted.nii`` (NIfTI-1) and return that path.

    Raises:
        ImageTooLargeError: more than ``max_voxels`` voxels (checked on the header).
        ImageShapeError: an axis longer than NIfTI-1 allows, or a zero-length axis.
        ImageReadError: the file cannot be parsed or its data are incomplete.
    """
    import nibabel as nib

    try:
        image = nib.Nifti2Image.from_filename(str(path))
        shape = tuple(int(n) for n in image.header.get_data_shape())
    except Exception:  # noqa: BLE001 - nibabel raises many types for damaged headers
        raise ImageReadError(f"{role} could not be read: not a valid NIfTI-2 image or the header is damaged") from None
    if not shape or min(shape) < 1:
        raise ImageShapeError(f"{role} has a zero-length or negative axis (header size {shape})")
    n_voxels = int(np.prod(np.asarray(shape[:3], dtype=np.int64)))
    if n_voxels > max_voxels:
        raise ImageTooLargeError(f"{role} declares {' × '.join(map(str, shape[:3]))} = {n_voxels:,} voxels, more "
                                 f"than the limit of {max_voxels:,}; refused before decompressing")
    if max(shape) > _NIFTI1_MAX_AXIS:
        raise ImageShapeError(f"{role} has an axis of {max(shape):,} voxels, more than this reader supports")
    try:
        source = image.header
        slope, inter = image.dataobj.slope, image.dataobj.inter  # nibabel moves them from the header
        scaled = not (slope in (0.0, 1.0) or not np.isfinite(slope)) or (inter != 0.0 and np.isfinite(inter))
        # scaled voxels are written as float32, which is what ITK makes of scaled NIfTI-1 data
        data = np.asarray(image.dataobj, dtype=np.float32) if scaled else image.dataobj.get_unscaled()
        header = nib.Nifti1Header()
        header.set_data_dtype(np.float32 if scaled else source.get_data_dtype())
        header.set_data_shape(shape)
        header.set_zooms(source.get_zooms())
        header.set_xyzt_units(*source.get_xyzt_units())
        header["qoffset_x"], header["qoffset_y"], header["qoffset_z"] = (float(source[k]) for k in (
            "qoffset_x", "qoffset_y", "qoffset_z"))
        converted = nib.Nifti1Image(data, None, header=header)
        converted.set_qform(image.get_qform(), int(source["qform_code"]))
        converted.set_sform(image.get_sform(), int(source["sform_code"]))
    except Exception:  # noqa: BLE001 - truncated data, bad gzip …
        raise ImageReadError(f"{role} could not be read: the file is truncated or its data are corrupt") from None
    target = Path(folder) / "converted.nii"
    nib.save(converted, str(target))
    return target
