"""SHA-256 of files and folders: input identity for resumable batches and the audit log.

Hashes stand in for file names and patient identifiers everywhere a record is kept.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.bin"); _ = open(p, "wb").write(b"abc")
    >>> file_sha256(p)[:12]
    'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, or of a folder's files (sorted relative paths + contents)."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(str(f.relative_to(p)).encode())
        h.update(bytes.fromhex(file_sha256(f)))
    return h.hexdigest()
