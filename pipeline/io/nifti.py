"""NIfTI-1/-2 files read in Python: the header (checked before ITK parses it), the direct
single-pass read of plain voxel data (with the gzip CRC, truncation and bomb checks) and the
slice-block sink that lets a case stream a volume without holding it.

Arrays are (z, y, x); header dims are NIfTI (x, y, z, …) order.
"""


from __future__ import annotations

import gzip
import hashlib
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from pipeline.core.errors import ImageReadError
from pipeline.core.volume import Volume
from pipeline.io.common import NIFTI_GZ_SLACK, image_suffix


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class NiftiHeader(NamedTuple):
    dims: tuple[int, ...]  # dim[1..dim[0]] as stored (x, y, z, …)
    datatype: int  # NIfTI type code (16: float32, 64: float64, …)
    vox_offset: int  # bytes before the voxel data
    byte_order: str  # "<" or ">"
    scl_slope: float = 0.0  # intensity scaling (0 or 1 with scl_inter 0: none)
    scl_inter: float = 0.0
    geometry_finite: bool = True  # pixdim and the qform/sform fields in use hold no NaN/±Inf


def read_nifti_header(path: Path) -> NiftiHeader | None:
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
        return NiftiHeader(tuple(dim[1:dim[0] + 1]), datatype, int(vox_offset), order, float(slope), float(inter),
                            geometry_finite=bool(np.isfinite(in_use).all()))
    return None


NIFTI_FLOATS = {16: "f4", 64: "f8"}


def restore_non_finite(array: np.ndarray, path: Path, header: NiftiHeader) -> None:
    """Copy the NaN/±Inf voxels of a float NIfTI file into ``array`` (z, y, x) in place.

    ITK's NIfTI reader turns them into 0, which would pass for water (0 HU) and hide the problem
    from the checks that follow; one streamed pass over the file's data puts them back.
    """
    dtype = np.dtype(header.byte_order + NIFTI_FLOATS[header.datatype])
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


def nifti_data_problem(reader: sitk.ImageFileReader, path: Path) -> str | None:
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
    limit = expected + NIFTI_GZ_SLACK
    total = 0
    from isal import (  # ISA-L: same checks as gzip, ~3× faster (bench/README.md)
        igzip,
        isal_zlib,
    )

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


def read_nifti_direct(reader: sitk.ImageFileReader, path: Path, header: NiftiHeader, *,
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
    dtype = direct_dtype(reader, path, header)
    if dtype is None:
        return None
    array = np.empty(tuple(reader.GetSize())[::-1], dtype=dtype)
    problem, sha256 = voxel_pass(path, header, memoryview(array).cast("B"), want_hash=want_hash)
    raise_data_problem(problem, role)
    return Volume(array, spacing_xyz=tuple(reader.GetSpacing()), origin_xyz=tuple(reader.GetOrigin()),
                  direction=tuple(reader.GetDirection())), sha256


def direct_dtype(reader: sitk.ImageFileReader, path: Path, header: NiftiHeader) -> np.dtype | None:
    """The numpy dtype of a NIfTI file's voxels when the direct path can read it (see
    :func:`read_nifti_direct`), else ``None``."""
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


def raise_data_problem(problem: str | None, role: str) -> None:
    if problem == "bomb":
        raise ImageReadError(f"{role} could not be read: it decompresses to more data than its header declares "
                             "(damaged, or a decompression bomb)")
    if problem:
        raise ImageReadError(f"{role} could not be read: the file is truncated or its data are corrupt")


_READ_PIECE = 8 << 20  # compressed bytes read (and hashed) at a time

SliceBlockFn = Callable[[int, np.ndarray], None]


class SliceSink:
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


def voxel_pass(path: Path, header: NiftiHeader, out: memoryview | SliceSink, *,
                want_hash: bool) -> tuple[str | None, str]:
    """One pass over a plain NIfTI file (the direct path's and the streamed path's only read):
    its voxel bytes into ``out`` (a buffer filled in place, or a :class:`SliceSink`), gzip
    data decompressed with ISA-L (length, CRC and bomb limit checked on the way), and the whole
    file hashed meanwhile (``want_hash``; in a second thread for gzip). Returns ``(problem,
    sha256)``: ``problem`` as :func:`gunzip_into` gives it, ``sha256`` ``""`` unless wanted and
    the file was sound."""
    h = hashlib.sha256() if want_hash else None
    if not _is_gzip(path):  # uncompressed (named .nii, or .nii.gz without compression)
        with open(path, "rb") as fh:
            head = fh.read(header.vox_offset)
            if len(head) < header.vox_offset:
                return "corrupt", ""
            if h is not None:
                h.update(head)
            if isinstance(out, SliceSink):
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

        problem = gunzip_into(pieces(), skip=header.vox_offset, out=out, slack=NIFTI_GZ_SLACK)
    return problem, (h.hexdigest() if h is not None and not problem else "")


def gunzip_into(pieces: Iterable[bytes], *, skip: int, out: memoryview | SliceSink, slack: int,
                 max_chunk: int = 4 << 20) -> str | None:
    """Decompress a gzip stream (one or more members), given as successive pieces of the file,
    dropping its first ``skip`` bytes and writing the next ``out.nbytes`` into ``out`` (a buffer,
    or a :class:`SliceSink` that receives them in order). Only one
    piece and one output chunk of at most ``max_chunk`` bytes are held at a time (4 MB chunks
    stay in cache and are reused by the allocator). Returns ``None`` when the stream held exactly
    that much (up to ``slack`` more bytes tolerated), ``"bomb"`` as soon as it yields more, or
    ``"corrupt"`` (truncated, bad CRC/length, or trailing bytes that are neither zero padding
    nor another gzip member)."""
    from isal import isal_zlib

    if isinstance(out, SliceSink):
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
