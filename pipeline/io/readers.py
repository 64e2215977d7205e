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

import contextlib
import gzip
import hashlib
import mmap
import os
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from pipeline.io.dicom_guard import NOT_DICOM, dicom_file_problem
from pipeline.core.errors import DicomError, ImageReadError, ImageShapeError, ImageTooLargeError
from pipeline.core.hashing import path_sha256
from pipeline.core.volume import Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DEFAULT_MAX_VOXELS = 1024**3
# The ITK reader of each suffix (never guessed from the content: a PNG named .nii.gz is refused).
_IMAGE_IO = {".nii.gz": "NiftiImageIO", ".nii": "NiftiImageIO", ".nrrd": "NrrdImageIO", ".nhdr": "NrrdImageIO",
             ".mha": "MetaImageIO", ".mhd": "MetaImageIO"}
# Decompressed bytes tolerated beyond what a .nii.gz header declares before it counts as a bomb.
_NIFTI_GZ_SLACK = 64 * 1024

# ITK reports failures on stderr as well as by exception; keep user output clean.
sitk.ProcessObject_SetGlobalWarningDisplay(False)
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
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


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class _NiftiHeader(NamedTuple):
    dims: tuple[int, ...]  # dim[1..dim[0]] as stored (x, y, z, …)
    datatype: int  # NIfTI type code (16: float32, 64: float64, …)
    vox_offset: int  # bytes before the voxel data
    byte_order: str  # "<" or ">"
    scl_slope: float = 0.0  # intensity scaling (0 or 1 with scl_inter 0: none)
    scl_inter: float = 0.0
    geometry_finite: bool = True  # pixdim and the qform/sform fields in use hold no NaN/±Inf


def _nifti_header(path: Path) -> _NiftiHeader | None:
    """A single-file NIfTI-1/-2 header (read in Python, .nii or .nii.gz), or ``None`` when the
    file does not start with a valid one.

    ITK's NIfTI library prints its own errors on stderr for some damaged headers, reads a
    zero or negative axis length as 1, and can spin forever deriving the orientation from an
    sform holding ±Inf (found by fuzzing); checking here keeps all three away from the user.
    """
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as fh:
            head = fh.read(540)
    except (OSError, EOFError, zlib.error):
        return None
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0] if len(head) >= 4 else 0
        if size == 348 and len(head) >= 348 and head[344:348] == b"n+1\x00":  # ni1: data in a separate .img
            dim, datatype = struct.unpack(order + "8h", head[40:56]), struct.unpack(order + "h", head[70:72])[0]
            vox_offset = struct.unpack(order + "f", head[108:112])[0]
            slope, inter = struct.unpack(order + "2f", head[112:120])
            pixdim = struct.unpack(order + "8f", head[76:108])
            qcode, scode = struct.unpack(order + "2h", head[252:256])
            quatern, srow = struct.unpack(order + "6f", head[256:280]), struct.unpack(order + "12f", head[280:328])
        elif size == 540 and len(head) >= 540 and head[4:8] == b"n+2\x00":
            dim, datatype = struct.unpack(order + "8q", head[16:80]), struct.unpack(order + "h", head[12:14])[0]
            vox_offset = struct.unpack(order + "q", head[168:176])[0]
            slope, inter = struct.unpack(order + "2d", head[176:192])
            pixdim = struct.unpack(order + "8d", head[104:168])
            qcode, scode = struct.unpack(order + "2i", head[344:352])
            quatern, srow = struct.unpack(order + "6d", head[352:400]), struct.unpack(order + "12d", head[400:496])
        else:
            continue
        if not 1 <= dim[0] <= 7 or not 0 <= vox_offset < 2**31:
            return None
        in_use = list(pixdim[1:min(dim[0], 3) + 1]) + (list(quatern) if qcode > 0 else []) + (
            list(srow) if scode > 0 else [])
        return _NiftiHeader(tuple(dim[1:dim[0] + 1]), datatype, int(vox_offset), order, float(slope), float(inter),
                            geometry_finite=bool(np.isfinite(in_use).all()))
    return None


_NIFTI_FLOATS = {16: "f4", 64: "f8"}


def _restore_non_finite(array: np.ndarray, path: Path, header: _NiftiHeader) -> None:
    """Copy the NaN/±Inf voxels of a float NIfTI file into ``array`` (z, y, x) in place.

    ITK's NIfTI reader turns them into 0, which would pass for water (0 HU) and hide the problem
    from the checks that follow; one streamed pass over the file's data puts them back.
    """
    dtype = np.dtype(header.byte_order + _NIFTI_FLOATS[header.datatype])
    flat = array.reshape(-1)
    done = 0
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as fh:
        fh.seek(header.vox_offset)
        while done < flat.size and (data := fh.read(min(flat.size - done, 1 << 20) * dtype.itemsize)):
            chunk = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype)
            bad = ~np.isfinite(chunk)
            if bad.any():
                flat[done:done + chunk.size][bad] = chunk[bad]
            done += chunk.size


def _nifti_data_problem(reader: sitk.ImageFileReader, path: Path) -> str | None:
    """Why a NIfTI file's voxel data cannot be trusted (``None`` if they can).

    ITK's NIfTI reader silently fills missing data with zeros, so a truncated upload would
    otherwise be read as a CT with a block of 0 HU. ``.nii`` (or an uncompressed file named
    ``.nii.gz``): compare the file size; ``.nii.gz``: stream-decompress the file (this also
    verifies the gzip CRC), stopping a little past the declared size so a small file that
    decompresses to gigabytes (a gzip bomb) costs no more than a real image of that header.
    """
    try:
        n_dims = int(reader.GetMetaData("dim[0]"))
        n_voxels = int(np.prod([int(reader.GetMetaData(f"dim[{i}]")) for i in range(1, n_dims + 1)], dtype=np.int64))
        expected = int(float(reader.GetMetaData("vox_offset"))) + n_voxels * int(reader.GetMetaData("bitpix")) // 8
    except (RuntimeError, ValueError):
        return None  # header fields not exposed: leave the check to ITK
    truncated = "the file is truncated or its data are corrupt"
    if image_suffix(path) == ".nii" or not _is_gzip(path):
        return None if path.stat().st_size >= expected else truncated
    limit = expected + _NIFTI_GZ_SLACK
    total = 0
    from isal import igzip, isal_zlib  # ISA-L: same checks as gzip, ~3× faster (bench/README.md)

    try:
        with igzip.open(path, "rb") as fh:
            while total <= limit and (chunk := fh.read(min(4 * 1024 * 1024, limit + 1 - total))):
                total += len(chunk)
    except (OSError, EOFError, zlib.error, isal_zlib.error):
        return truncated
    if total > limit:
        return "it decompresses to more data than its header declares (damaged, or a decompression bomb)"
    return None if total >= expected else truncated


# NIfTI datatype code → numpy dtype and the SimpleITK pixel type ITK reads it as (no scaling).
_NIFTI_DIRECT = {2: ("u1", sitk.sitkUInt8), 256: ("i1", sitk.sitkInt8), 4: ("i2", sitk.sitkInt16),
                 512: ("u2", sitk.sitkUInt16), 8: ("i4", sitk.sitkInt32), 768: ("u4", sitk.sitkUInt32),
                 16: ("f4", sitk.sitkFloat32), 64: ("f8", sitk.sitkFloat64)}
_MAX_DIRECT_OFFSET = 16 * 1024 * 1024  # header + extensions read by the direct path


def _read_nifti_direct(reader: sitk.ImageFileReader, path: Path, header: _NiftiHeader, *,
                       role: str, want_hash: bool) -> tuple[Volume, str] | None:
    """Read a plain single-file NIfTI with one pass over the file: the bytes are read once,
    decompressed (ISA-L) straight into the output array with length, gzip CRC and bomb limit
    checked on the way, and (``want_hash``) hashed in a second thread meanwhile. Geometry comes
    from ITK's header parse, so it is exactly what ITK would give.

    Returns ``None`` (the caller falls back to ITK's reader and its streamed checks) for anything
    unusual: scaled intensities, foreign byte order, an unexpected datatype, a 4-D header, large
    extensions, a ``.nii`` holding gzip data, a compressed file larger than its declared content.
    Raises :class:`ImageReadError` for damaged data.
    """
    dtype = _direct_dtype(reader, path, header)
    if dtype is None:
        return None
    array = np.empty(tuple(reader.GetSize())[::-1], dtype=dtype)
    problem, sha256 = _voxel_pass(path, header, memoryview(array).cast("B"), want_hash=want_hash)
    _raise_data_problem(problem, role)
    return Volume(array, spacing_xyz=tuple(reader.GetSpacing()), origin_xyz=tuple(reader.GetOrigin()),
                  direction=tuple(reader.GetDirection())), sha256


def _direct_dtype(reader: sitk.ImageFileReader, path: Path, header: _NiftiHeader) -> np.dtype | None:
    """The numpy dtype of a NIfTI file's voxels when the direct path can read it (see
    :func:`_read_nifti_direct`), else ``None``."""
    direct = _NIFTI_DIRECT.get(header.datatype)
    native = "<" if sys.byteorder == "little" else ">"
    size = tuple(reader.GetSize())
    if (direct is None or header.byte_order != native or reader.GetPixelID() != direct[1]
            or len(size) != 3 or tuple(header.dims) != size or header.vox_offset > _MAX_DIRECT_OFFSET
            or header.scl_slope not in (0.0, 1.0) or header.scl_inter != 0.0):
        return None
    dtype = np.dtype(direct[0])
    declared = header.vox_offset + int(np.prod(size, dtype=np.int64)) * dtype.itemsize
    if _is_gzip(path) and (image_suffix(path) == ".nii" or path.stat().st_size > 1.01 * declared + (1 << 20)):
        return None
    return dtype


def _raise_data_problem(problem: str | None, role: str) -> None:
    if problem == "bomb":
        raise ImageReadError(f"{role} could not be read: it decompresses to more data than its header declares "
                             "(damaged, or a decompression bomb)")
    if problem:
        raise ImageReadError(f"{role} could not be read: the file is truncated or its data are corrupt")


_READ_PIECE = 8 << 20  # compressed bytes read (and hashed) at a time

SliceBlockFn = Callable[[int, np.ndarray], None]


class _SliceSink:
    """Gathers a volume's voxel bytes, arriving in file order, into blocks of whole z-slices and
    hands each block to ``on_block(z0, block)``: ``block`` is (n, y, x) for slices z0 … z0+n−1,
    in a buffer reused for the next block (valid only during the call)."""

    def __init__(self, shape_zyx: tuple[int, int, int], dtype: np.dtype, on_block: SliceBlockFn,
                 block_bytes: int = 4 << 20) -> None:
        nz, ny, nx = shape_zyx
        self.slice_bytes = ny * nx * dtype.itemsize
        self.nbytes = nz * self.slice_bytes
        self._stage = np.empty((max(1, min(nz, block_bytes // max(1, self.slice_bytes))), ny, nx), dtype)
        self._raw = memoryview(self._stage).cast("B")
        self._on_block = on_block
        self._fill = 0  # bytes in the stage
        self._done = 0  # bytes handed on in earlier blocks

    def write(self, offset: int, data: memoryview) -> None:
        if offset != self.received:
            raise RuntimeError("voxel bytes must arrive in order")  # a bug, never a user error
        while len(data):
            n = min(len(data), len(self._raw) - self._fill)
            self._raw[self._fill:self._fill + n] = data[:n]
            self._fill += n
            data = data[n:]
            if self._fill == len(self._raw) or self._done + self._fill == self.nbytes:
                n_slices = self._fill // self.slice_bytes
                self._on_block(self._done // self.slice_bytes, self._stage[:n_slices])
                self._done += self._fill
                self._fill = 0

    @property
    def received(self) -> int:
        """Voxel bytes written so far."""
        return self._done + self._fill

    @property
    def complete(self) -> bool:
        return self._done == self.nbytes


def stream_slices(path: str | os.PathLike[str], *, role: str, plan: Callable[[Volume], SliceBlockFn | None],
                  max_voxels: int = DEFAULT_MAX_VOXELS, want_hash: bool = False) -> tuple[Volume, str] | None:
    """Read a plain NIfTI file a block of z-slices at a time, never holding the whole volume.

    The file gets exactly :func:`read_image`'s checks (header, truncation, gzip CRC, bomb limit),
    with the same errors. Once the header is checked, ``plan(geometry)`` is called with the
    image's geometry (a :class:`Volume` whose ``array`` is a zero-stride placeholder of the
    file's shape and dtype: no memory); it returns the function that receives every block of
    whole slices in order (see :class:`_SliceSink`), or ``None`` to read nothing. A block is
    handed on before the file's end is reached: a later error (truncation, CRC) means that what
    the blocks gave must be discarded, which the raise makes the caller do.

    Returns:
        ``(geometry, sha256)`` (``""`` unless ``want_hash``), or ``None`` when the file is not a
        NIfTI the direct reader handles (other formats, DICOM, scaled or foreign-byte-order
        data, …) or ``plan`` declined: the caller then uses :func:`read_image`.
    """
    checked = _checked_file(path, role=role, max_voxels=max_voxels)
    if isinstance(checked, Path) or checked.nifti is None:
        return None
    p, reader, header = checked.path, checked.reader, checked.nifti
    dtype = _direct_dtype(reader, p, header)
    if dtype is None:
        return None
    shape_zyx = tuple(int(n) for n in reader.GetSize())[::-1]
    geometry = Volume(np.broadcast_to(np.zeros((), dtype=dtype), shape_zyx),
                      spacing_xyz=tuple(reader.GetSpacing()), origin_xyz=tuple(reader.GetOrigin()),
                      direction=tuple(reader.GetDirection()))
    on_block = plan(geometry)
    if on_block is None:
        return None
    sink = _SliceSink(shape_zyx, dtype, on_block)  # type: ignore[arg-type]
    problem, sha256 = _voxel_pass(p, header, sink, want_hash=want_hash)
    _raise_data_problem(problem, role)
    return geometry, sha256


def _voxel_pass(path: Path, header: _NiftiHeader, out: memoryview | _SliceSink, *,
                want_hash: bool) -> tuple[str | None, str]:
    """One pass over a plain NIfTI file (the direct path's and the streamed path's only read):
    its voxel bytes into ``out`` (a buffer filled in place, or a :class:`_SliceSink`), gzip
    data decompressed with ISA-L (length, CRC and bomb limit checked on the way), and the whole
    file hashed meanwhile (``want_hash``; in a second thread for gzip). Returns ``(problem,
    sha256)``: ``problem`` as :func:`_gunzip_into` gives it, ``sha256`` ``""`` unless wanted and
    the file was sound."""
    h = hashlib.sha256() if want_hash else None
    if not _is_gzip(path):  # uncompressed (named .nii, or .nii.gz without compression)
        with open(path, "rb") as fh:
            head = fh.read(header.vox_offset)
            if len(head) < header.vox_offset:
                return "corrupt", ""
            if h is not None:
                h.update(head)
            if isinstance(out, _SliceSink):
                while not out.complete and (data := fh.read(min(_READ_PIECE, out.nbytes - out.received))):
                    if h is not None:
                        h.update(data)
                    out.write(out.received, memoryview(data))
                complete = out.complete
            else:
                complete = fh.readinto(out) == out.nbytes
                if h is not None and complete:
                    h.update(out)
            if not complete:
                return "corrupt", ""
            if h is not None:
                while chunk := fh.read(_READ_PIECE):
                    h.update(chunk)
        return None, (h.hexdigest() if h is not None else "")
    with open(path, "rb") as fh, ThreadPoolExecutor(max_workers=1) as pool:
        def pieces() -> Iterator[bytes]:
            while piece := fh.read(_READ_PIECE):
                if h is not None:  # hashed in the second thread (FIFO, so in file order)
                    pool.submit(h.update, piece)
                yield piece

        problem = _gunzip_into(pieces(), skip=header.vox_offset, out=out, slack=_NIFTI_GZ_SLACK)
    return problem, (h.hexdigest() if h is not None and not problem else "")


def _gunzip_into(pieces: Iterable[bytes], *, skip: int, out: memoryview | _SliceSink, slack: int,
                 max_chunk: int = 4 << 20) -> str | None:
    """Decompress a gzip stream (one or more members), given as successive pieces of the file,
    dropping its first ``skip`` bytes and writing the next ``out.nbytes`` into ``out`` (a buffer,
    or a :class:`_SliceSink` that receives them in order). Only one
    piece and one output chunk of at most ``max_chunk`` bytes are held at a time (4 MB chunks
    stay in cache and are reused by the allocator). Returns ``None`` when the stream held exactly
    that much (up to ``slack`` more bytes tolerated), ``"bomb"`` as soon as it yields more, or
    ``"corrupt"`` (truncated, bad CRC/length, or trailing bytes that are neither zero padding
    nor another gzip member)."""
    from isal import isal_zlib

    if isinstance(out, _SliceSink):
        write = out.write
    else:
        def write(offset: int, data: memoryview) -> None:
            out[offset:offset + len(data)] = data
    target = skip + out.nbytes
    limit = target + slack
    source = iter(pieces)
    pending = b""  # compressed bytes not yet handed to a decompressor
    pos = 0  # decompressed bytes so far
    try:
        while True:
            while len(pending) < 2:  # a member starts with the 2-byte gzip magic
                more = next(source, b"")
                if not more:
                    break
                pending += more
            if not pending.strip(b"\0"):  # end of file, or zero padding up to the end
                if any(more.strip(b"\0") for more in source):
                    return "corrupt"
                break
            if pending[:2] != b"\x1f\x8b":
                return "corrupt"
            d = isal_zlib.decompressobj(31)  # gzip wrapper: header, CRC32 and length are checked
            inp = pending
            while True:
                chunk = d.decompress(inp, max(1, min(max_chunk, limit + 1 - pos)))
                n = len(chunk)
                lo, hi = max(pos, skip), min(pos + n, target)
                if hi > lo:
                    write(lo - skip, memoryview(chunk)[lo - pos:hi - pos])
                pos += n
                if pos > limit:
                    return "bomb"
                if d.eof:
                    break
                inp = d.unconsumed_tail
                if not inp:
                    inp = next(source, b"")
                    if not inp:
                        return "corrupt"  # the file ends inside a member
            pending = d.unused_data  # bytes after this member
    except isal_zlib.error:
        return "corrupt"
    return None if pos >= target else "corrupt"


def read_image(path: str | os.PathLike[str], *, role: str = "image", max_voxels: int = DEFAULT_MAX_VOXELS) -> Volume:
    """Read one 3-D image file or DICOM folder as a :class:`Volume` (see module contract).

    Args:
        path: ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` file or a folder of
            DICOM files.
        role: how errors name this input ("CT", "ROI mask").
        max_voxels: largest accepted number of voxels, checked on the header.
    """
    return _read(path, role=role, max_voxels=max_voxels, want_hash=False)[0]


def read_image_hashed(path: str | os.PathLike[str], *, role: str = "image",
                      max_voxels: int = DEFAULT_MAX_VOXELS) -> tuple[Volume, str]:
    """:func:`read_image` plus the SHA-256 of the input (file bytes, or a folder's files as
    :func:`pipeline.core.hashing.path_sha256` hashes them). A plain NIfTI file is hashed during the
    same single pass that decompresses it.
    """
    return _read(path, role=role, max_voxels=max_voxels, want_hash=True)


class _CheckedFile(NamedTuple):
    path: Path
    reader: sitk.ImageFileReader  # header read (ReadImageInformation), data not yet
    nifti: _NiftiHeader | None
    dims: tuple[int, ...]


def _checked_file(path: str | os.PathLike[str], *, role: str, max_voxels: int) -> Path | _CheckedFile:
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
    nifti = _nifti_header(p) if _IMAGE_IO[suffix] == "NiftiImageIO" else None
    if _IMAGE_IO[suffix] == "NiftiImageIO" and nifti is None:
        raise ImageReadError(invalid)
    if nifti is not None and min(nifti.dims, default=0) < 1:
        raise ImageShapeError(f"{role} has a zero-length or negative axis (header size {nifti.dims})")
    if nifti is not None and not nifti.geometry_finite:  # ITK's orientation maths can loop forever on ±Inf
        raise ImageReadError(f"{role} could not be read: its header's voxel spacing or orientation "
                             "(pixdim, qform or sform) contains NaN or infinite numbers")
    reader = sitk.ImageFileReader()
    reader.SetImageIO(_IMAGE_IO[suffix])
    reader.SetFileName(str(p))
    try:
        with _c_stderr_silenced():
            reader.ReadImageInformation()
    except RuntimeError:
        raise ImageReadError(invalid) from None
    dims = _check_header(reader.GetSize(), reader.GetNumberOfComponents(), role=role, max_voxels=max_voxels)
    spacing = tuple(reader.GetSpacing())[:3]
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ImageReadError(f"{role} could not be read: its header gives an impossible voxel spacing "
                             f"({', '.join(f'{s:g}' for s in spacing)} mm; each must be a positive number)")
    return _CheckedFile(p, reader, nifti, dims)


def _read(path: str | os.PathLike[str], *, role: str, max_voxels: int, want_hash: bool) -> tuple[Volume, str]:
    checked = _checked_file(path, role=role, max_voxels=max_voxels)
    if isinstance(checked, Path):
        volume = read_dicom_series(checked, role=role, max_voxels=max_voxels)
        return volume, (path_sha256(checked) if want_hash else "")
    p, reader, nifti, dims = checked
    if nifti is not None and (direct := _read_nifti_direct(reader, p, nifti, role=role,
                                                           want_hash=want_hash)) is not None:
        return direct
    if nifti is not None and (problem := _nifti_data_problem(reader, p)):
        raise ImageReadError(f"{role} could not be read: {problem}")
    try:
        with _c_stderr_silenced():
            image = reader.Execute()
    except (RuntimeError, MemoryError):
        raise ImageReadError(f"{role} could not be read: the file is truncated or its data are corrupt") from None
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or tuple(image.GetSize()) != dims:
        raise ImageShapeError(f"{role} must be a 3-D image; got size {image.GetSize()}")
    volume = Volume.from_sitk(image)
    if nifti is not None and nifti.datatype in _NIFTI_FLOATS:
        _restore_non_finite(volume.array, p, nifti)
    return volume, (path_sha256(p) if want_hash else "")


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
    with tempfile.TemporaryDirectory(prefix="pleura-dicom-") as staging:
        return _read_dicom_series(_checked_dicom_files(Path(folder), Path(staging), role=role), role=role,
                                  max_voxels=max_voxels, spacing_tolerance=spacing_tolerance)


def _checked_dicom_files(folder: Path, staging: Path, *, role: str) -> Path:
    """Link every DICOM file under ``folder`` whose structure is sound into ``staging`` (same
    sub-folders) and return ``staging``, so GDCM never opens a file that could make it allocate
    more than the file holds (:mod:`pipeline.io.dicom_guard`). Files without a DICOM preamble are
    left out; a damaged DICOM file refuses the folder."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            try:
                problem = _dicom_problem_of(path)
            except (OSError, ValueError):
                problem = "unreadable"
            if problem == NOT_DICOM:
                continue
            if problem is not None:
                raise DicomError(f"{role}: a DICOM file in the folder is damaged ({problem}); export the series again")
            link = staging / path.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return staging


def _dicom_problem_of(path: Path) -> str | None:
    """:func:`dicom_file_problem` of a file, mapped rather than read: only the pages holding
    element headers are touched, so a slice's pixel data is not read here and again by GDCM."""
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return NOT_DICOM
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return dicom_file_problem(view)


def _read_dicom_series(folder: Path, *, role: str, max_voxels: int, spacing_tolerance: float) -> Volume:
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
    if sum(1 for c in candidates if c[0] == n_files) > 1:
        raise DicomError(
            f"{role}: the folder holds several DICOM series of {n_files} slices each and it is unclear which "
            "one to use; put only the series the ROI was drawn on in the folder"
        )
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
