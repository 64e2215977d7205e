"""Header-driven file access: the data files an NRRD or MetaImage header makes its reader open.

An ``.nhdr``/``.nrrd`` header may name its voxel data with ``data file: <path>`` and an
``.mhd``/``.mha`` header with ``ElementDataFile = <path>``; ITK then opens that path, relative to
the header's folder or absolute, wherever it leads. Left unchecked, an uploaded header (or one
inside a batch zip) makes the server read any file it can reach. Rules enforced here, before ITK
sees the header:

* the header is scanned the way the most lenient reader would see it, whatever its length or
  layout (comments padding it past any fixed size, ``\\r``, ``\\r\\n`` or ``\\n`` line ends, any
  letter case, ``=`` or ``:`` after MetaImage keys, leading blanks);
* every data file a header names must resolve (symbolic links followed) inside the header's own
  folder and be a regular file; file lists (``LIST``) and numbered patterns (``%03d``) are refused;
* messages name the input's role and the reason, never the path or any byte of the named file.

:func:`data_files` is what the image reader (:mod:`pipeline.io.readers`) checks, and
:func:`input_sha256` (the hash of everything a reader reads) is what identifies an input in a
batch's resume key and in the audit log, so either changes when the detached data change.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "ct.nhdr")
    >>> _ = open(p, "w").write("NRRD0004\\n" + "#" * 9000 + "\\ndata file: /etc/hostname\\n")
    >>> data_files(p, role="CT")
    Traceback (most recent call last):
    ...
    pipeline.core.errors.ImageReadError: CT: its header names a voxel data file outside the header's own folder; refused for safety (put the data file beside the header)
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from pipeline.core.errors import ImageReadError
from pipeline.core.hashing import file_sha256, path_sha256

NRRD_SUFFIXES = (".nrrd", ".nhdr")
META_SUFFIXES = (".mha", ".mhd")
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a real header is a few kB; a longer one is refused

# NRRD: the header ends at the first empty line. Only byte sequences every line splitter sees as
# an empty line end the scan ("\n\n", "\r\r", "\r\n\r\n"); anything else is scanned as header.
_NRRD_END = re.compile(rb"\n\n|\r\r|\r\n\r\n")
# Lenient key matches (teem accepts "Data File:" and "datafile:"; MetaIO accepts ':' for '=').
_NRRD_KEY = re.compile(rb"^\s*data\s*file\s*:(?!=)\s*(.*?)\s*$", re.I)
_META_KEY = re.compile(rb"^\s*ElementDataFile\s*[=:]\s*(.*?)\s*$", re.I)
# MetaIO stops reading its header at the ElementDataFile line; only a LOCAL line that starts a
# "\n"-separated line (as MetaIO splits) ends the scan, so "Comment = x\rElementDataFile = LOCAL"
# does not hide a later key.
_META_LOCAL_END = re.compile(rb"(?:\A|\n)[ \t]*ElementDataFile[ \t]*=[ \t]*LOCAL[ \t]*\r?(?:\n|\Z)")
_PATTERN = re.compile(rb"%|\s-?\d+\s+-?\d+\s+-?\d+(\s+\d+)?$")


def header_kind(name: str | os.PathLike[str]) -> str:
    """``nrrd``, ``meta`` or ``''`` from a file name's suffix."""
    lower = str(name).lower()
    if lower.endswith(NRRD_SUFFIXES):
        return "nrrd"
    if lower.endswith(META_SUFFIXES):
        return "meta"
    return ""


def header_region(data: bytes, *, kind: str) -> bytes | None:
    """The part of ``data`` (a file's first bytes, up to :data:`MAX_HEADER_BYTES` + 1) a reader
    of ``kind`` may take as header; ``None`` when the header does not end within the limit and
    the file is longer (refused as implausible)."""
    pattern = _NRRD_END if kind == "nrrd" else _META_LOCAL_END
    match = pattern.search(data, 0, MAX_HEADER_BYTES + 1)
    if match is not None:
        return data[:match.end()]
    return data if len(data) <= MAX_HEADER_BYTES else None


def header_references(header: bytes, *, kind: str) -> list[bytes]:
    """Every data-file value (not ``LOCAL``) named in a header region, as raw bytes."""
    key = _NRRD_KEY if kind == "nrrd" else _META_KEY
    out = []
    for line in re.split(rb"[\r\n]", header):
        match = key.match(line)
        if match is not None and not (kind == "meta" and match.group(1).upper() == b"LOCAL"):
            out.append(match.group(1))
    return out


def _header_of(path: Path, kind: str) -> bytes | None:
    """:func:`header_region` of a file, reading only as far as needed (64 kB, then doubling)."""
    data = b""
    with path.open("rb") as fh:
        while True:
            more = fh.read(max(64 * 1024, len(data)))
            data += more
            region = header_region(data, kind=kind)
            if region is None or region is not data or not more or len(data) > MAX_HEADER_BYTES:
                return region


def data_files(path: str | os.PathLike[str], *, role: str) -> tuple[Path, ...]:
    """The detached voxel data files ``path`` (an NRRD or MetaImage header) makes its reader open,
    resolved; ``()`` for other files and for headers whose data follow them.

    Raises:
        ImageReadError: a named file lies outside the header's folder or is not a regular file,
            a file list or numbered pattern is used, or the header is implausibly long.
    """
    p = Path(path)
    kind = header_kind(p)
    if not kind:
        return ()
    region = _header_of(p, kind)
    if region is None:
        raise ImageReadError(f"{role} could not be read: its header is longer than "
                             f"{MAX_HEADER_BYTES // 2**20} MB (damaged, or not an image header)")
    folder = p.parent.resolve()
    found = []
    for value in header_references(region, kind=kind):
        if value.upper().startswith(b"LIST") or _PATTERN.search(value):
            raise ImageReadError(f"{role}: its header spreads the voxel data over several files (a file list or "
                                 "numbered pattern), which is not supported; convert it to a single file "
                                 "(.nrrd, .mha or .nii.gz)")
        try:
            target = (folder / os.fsdecode(value)).resolve()
        except (OSError, ValueError, RuntimeError):  # e.g. a NUL byte or a symlink loop
            raise ImageReadError(f"{role} could not be read: its header names an invalid data file") from None
        if folder not in target.parents:
            raise ImageReadError(f"{role}: its header names a voxel data file outside the header's own folder; "
                                 "refused for safety (put the data file beside the header)")
        try:
            regular = stat.S_ISREG(target.stat().st_mode)
        except OSError:
            raise ImageReadError(f"{role} could not be read: the voxel data file its header names is missing "
                                 "(upload or copy it beside the header)") from None
        if not regular:
            raise ImageReadError(f"{role} could not be read: the voxel data file its header names is not a "
                                 "regular file")
        found.append(target)
    return tuple(found)


def input_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of everything an image reader reads for ``path``: a folder's files or a file's
    bytes (:func:`pipeline.core.hashing.path_sha256`), and for an NRRD/MetaImage header whose
    voxel data live in separate files, the header's and each data file's hashes, hashed together
    (a header whose data file is refused hashes as the header alone: the reader refuses it).

    Raises:
        OSError: a file cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        return path_sha256(p)
    try:
        data = data_files(p, role="image")
    except ImageReadError:
        data = ()
    if not data:
        return file_sha256(p)
    h = hashlib.sha256(bytes.fromhex(file_sha256(p)))
    for f in data:
        h.update(bytes.fromhex(file_sha256(f)))
    return h.hexdigest()
