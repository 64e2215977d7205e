"""What every image reader shares: the recognised suffixes, the ITK reader of each, the header
limits checked before any voxel data are read, and silencing ITK's own stderr complaints.

Sizes are ITK (x, y, z) order as stored in headers; voxel counts include every axis.
"""


from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

import numpy as np
import SimpleITK as sitk

from pipeline.core.errors import ImageShapeError, ImageTooLargeError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DEFAULT_MAX_VOXELS = 1024**3
# The ITK reader of each suffix (never guessed from the content: a PNG named .nii.gz is refused).
IMAGE_IO = {".nii.gz": "NiftiImageIO", ".nii": "NiftiImageIO", ".nrrd": "NrrdImageIO", ".nhdr": "NrrdImageIO",
             ".mha": "MetaImageIO", ".mhd": "MetaImageIO"}
# Decompressed bytes tolerated beyond what a .nii.gz header declares before it counts as a bomb.
NIFTI_GZ_SLACK = 64 * 1024

# ITK reports failures on stderr as well as by exception; keep user output clean.
sitk.ProcessObject_SetGlobalWarningDisplay(False)
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while ITK reads a file.

    ITK's MetaImage (MHA) and NIfTI libraries print their own complaints about a damaged file
    straight to stderr, bypassing the switch above, although ITK raises the same problem as an
    exception that becomes the user's one-line error. Reads are serialised by a lock so threads
    never restore each other's descriptor; Python's own ``sys.stderr`` output is unaffected.
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to protect
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def image_suffix(path: str | os.PathLike[str]) -> str:
    """The recognised suffix of ``path`` ('' if none), e.g. ``.nii.gz``."""
    name = str(path).lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def check_header(size: tuple[int, ...], n_components: int, *, role: str, max_voxels: int) -> tuple[int, ...]:
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
