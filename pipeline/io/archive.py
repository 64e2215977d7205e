"""Uploaded files: type detection by content, safe unzipping, and a per-session upload folder.

Used by the app (and usable by anything receiving files from a browser). Rules:

* an upload is stored under a fixed name chosen from its *content* (``ct.nii.gz``,
  ``roi.nrrd``, ``ct/`` for a DICOM zip …); the user's file name is used only as a hint for the
  suffix and is never written to disk, to a log or to a report;
* pictures and documents (PNG, JPEG, GIF, TIFF, PDF) uploaded as a CT or ROI are refused with a
  sentence saying what the file is, before any image reader sees them;
* zip archives are extracted only if every entry is a plain file or folder inside the target
  folder: absolute names, ``..`` components, drive letters, symlinks and encrypted entries are
  refused, as are archives with too many entries or whose *actually decompressed* bytes exceed
  the limit (declared sizes are not trusted, so a zip bomb stops at the limit).

Example:
    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(100))
    'png'
    >>> storage_suffix(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(100), "scan.nii.gz", role="CT")
    Traceback (most recent call last):
    ...
    pipeline.core.errors.ImageReadError: CT: this file is a PNG picture, not a 3-D image; upload NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha) or a .zip of the DICOM series
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import tempfile
import threading
import weakref
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ArchiveError, ImageReadError
from pipeline.io.common import image_suffix
from pipeline.io.upload_sweep import mark_owner
from pipeline.io.detached import MAX_HEADER_BYTES, header_references, header_region

SUPPORTED_HINT = "upload NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha) or a .zip of the DICOM series"

_KIND_LABELS = {
    "png": "PNG picture", "jpeg": "JPEG picture", "gif": "GIF picture", "tiff": "TIFF picture",
    "bmp": "BMP picture", "webp": "WebP picture", "pdf": "PDF document", "docx": "Word/Office document",
    "dicom": "single DICOM file (one slice)", "text": "text file", "unknown": "file of an unknown type",
}


def _is_nifti_header(head: bytes) -> bool:
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return int.from_bytes(head[:4], "little") == 348 or int.from_bytes(head[:4], "big") == 348
    if len(head) >= 540 and head[4:12] in (b"n+2\x00\r\n\x1a\n", b"ni2\x00\r\n\x1a\n"):
        return True
    return False


def _gunzip_head(data: bytes, n: int = 1024) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[: 64 * 1024], n)
    except zlib.error:
        return b""


def sniff(head: bytes) -> str:
    """Kind of a file from its first bytes (pass at least 1 KiB; more is fine).

    Returns one of ``nifti``, ``nifti.gz``, ``gzip``, ``nrrd``, ``metaimage``, ``zip``,
    ``dicom``, ``png``, ``jpeg``, ``gif``, ``tiff``, ``bmp``, ``webp``, ``pdf``, ``text``,
    ``unknown``.
    """
    if head.startswith(b"\x1f\x8b"):
        return "nifti.gz" if _is_nifti_header(_gunzip_head(head)) else "gzip"
    if _is_nifti_header(head):
        return "nifti"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "docx" if b"[Content_Types].xml" in head[:200] else "zip"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM") and len(head) > 14:
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.lstrip().startswith(b"%PDF"):
        return "pdf"
    text = head[:256]
    if re.match(rb"^\s*(ObjectType|NDims|DimSize|ElementType|ElementSpacing|HeaderSize)\s*=", text):
        return "metaimage"
    if text and all(32 <= b < 127 or b in (9, 10, 13) for b in text):
        return "text"
    return "unknown"


def _names_data_file(data: bytes, kind: str) -> bool:
    """Whether an upload's header (scanned whatever its length, :mod:`pipeline.io.detached`) names a
    separate voxel data file; a file that is no header of that kind names none."""
    header_kind = "nrrd" if kind == "nrrd" else "meta"
    region = header_region(bytes(data[:MAX_HEADER_BYTES + 1]), kind=header_kind)
    if region is None:  # no header end within 16 MB: a header only if the format said so
        return kind in ("nrrd", "metaimage")
    return bool(header_references(region, kind=header_kind))


def storage_suffix(head: bytes, filename: str, *, role: str) -> str:
    """Suffix to store an uploaded image under (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``, ``.zip``).

    The content decides; the file name only settles formats without a magic number (MHA).
    ``head`` is the upload's bytes: its first 4 kB identify the format; for NRRD/MetaImage (or
    unrecognised text) the header is scanned however long it is, and one naming a separate
    voxel data file is refused (the image reader would open that file).

    Raises:
        ImageReadError: the content is a picture, document, single DICOM slice, or not a
            supported image; or the name promises one format and the content is another.
    """
    kind = sniff(head[:4096])
    name_suffix = image_suffix(filename) or (".zip" if filename.lower().endswith(".zip") else "")
    if kind in ("nrrd", "metaimage", "text", "unknown") and _names_data_file(head, kind):
        raise ImageReadError(f"{role}: this is a header whose voxel data live in a separate file; "
                             "convert it to a single file (.nrrd, .mha or .nii.gz) and upload that")
    by_kind = {"nifti.gz": ".nii.gz", "nifti": ".nii", "nrrd": ".nrrd", "zip": ".zip", "metaimage": ".mha"}
    if kind in by_kind:
        return by_kind[kind]
    if kind == "dicom":
        raise ImageReadError(f"{role}: this is a single DICOM file (one slice); upload a .zip of the whole DICOM series")
    if kind == "gzip":
        raise ImageReadError(f"{role}: this gzip file does not contain a NIfTI image; {SUPPORTED_HINT}")
    if kind in ("unknown", "text") and name_suffix == ".mha":
        # MHA has no fixed magic; let the image reader judge (it names the role on failure).
        return ".mha"
    if kind in ("unknown", "text") and name_suffix:
        raise ImageReadError(f"{role}: the file is not a valid {name_suffix} image (its content does not match); {SUPPORTED_HINT}")
    raise ImageReadError(f"{role}: this file is a {_KIND_LABELS.get(kind, kind)}, not a 3-D image; {SUPPORTED_HINT}")


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchiveLimits:
    """Limits for extracting zips.

    Attributes:
        max_files: entries in one zip.
        max_total_bytes: decompressed bytes of one zip.
        max_ratio, ratio_floor_bytes: one zip may expand to at most ``max_ratio`` × its own size,
            once past ``ratio_floor_bytes`` (a DICOM zip expands 1–20×; a 2 MB zip of 2 GiB of
            zeros, 1000×, is a bomb whatever the total limit says).
        max_session_bytes: all uploads one :class:`UploadFolder` (an app session) holds at once.
    """

    max_files: int = 20_000
    max_total_bytes: int = 6 * 1024**3
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 256 * 1024**2
    max_session_bytes: int = 8 * 1024**3

    def __post_init__(self) -> None:
        if min(self.max_files, self.max_total_bytes, self.max_ratio, self.ratio_floor_bytes,
               self.max_session_bytes) <= 0:
            raise ValueError("archive limits must be positive")


_DRIVE = re.compile(r"^[A-Za-z]:")
_SKIP = ("__MACOSX/",)
_SKIP_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


def _member_parts(info: zipfile.ZipInfo, what: str) -> list[str] | None:
    """Safe relative path parts of an entry, ``None`` for entries to skip; raises when unsafe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise ArchiveError(f"{what} contains an entry with an absolute path; refused for safety")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(f"{what} contains an entry pointing outside the archive ('..'); refused for safety")
    mode = (info.external_attr >> 16) & 0xFFFF
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{what} contains a symbolic link; refused for safety")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{what} is encrypted (password-protected); upload an unencrypted zip")
    if not parts or info.is_dir() or name.startswith(_SKIP) or parts[-1] in _SKIP_NAMES or parts[-1].startswith("._"):
        return None
    return parts


def safe_extract_zip(source: bytes | str | os.PathLike[str], dest: str | os.PathLike[str], *,
                     limits: ArchiveLimits = ArchiveLimits(), what: str = "the zip archive",
                     budget: int | None = None) -> Path:
    """Extract a zip (bytes or path) into ``dest`` after checking every entry; return ``dest``.

    Args:
        what: how messages name the archive ("the CT zip", "the batch zip").
        budget: bytes the caller may still store (an app session's remaining upload space);
            ``None``: no limit beyond ``limits``.

    Raises:
        ArchiveError: not a zip, unsafe entry, too many entries, too large once decompressed,
            damaged data, or no files inside. ``dest`` (which must be new or empty) is removed
            on failure, so nothing half-extracted is left behind.
        ValueError: ``dest`` exists and is not an empty folder.
    """
    out = Path(dest)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"dest must be a new or empty folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    fh = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")  # noqa: SIM115
    written_any = False
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):  # e.g. "zip file version 7.8" (fuzz)
            raise ArchiveError(f"{what} is not a valid zip file (damaged or another format)") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > limits.max_files:
                raise ArchiveError(f"{what} holds {len(infos):,} entries, more than the limit of {limits.max_files:,}")
            plan = [(info, parts) for info in infos if (parts := _member_parts(info, what)) is not None]
            declared = sum(info.file_size for info, _ in plan)
            if declared > limits.max_total_bytes:
                raise ArchiveError(f"{what} would decompress to {declared / 1e9:.1f} GB, more than the limit of "
                                   f"{limits.max_total_bytes / 1e9:.1f} GB")
            zipped = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.path.getsize(source)
            too_much = _expansion_limit(zipped, what=what, limits=limits, budget=budget)
            too_much(declared)
            total = 0
            for info, parts in plan:
                target = root.joinpath(*parts)
                if root not in target.resolve().parents:
                    raise ArchiveError(f"{what} contains an entry pointing outside the archive; refused for safety")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    dst_file = open(target, "wb")  # noqa: SIM115 - closed by the with below
                except (IsADirectoryError, NotADirectoryError, FileExistsError):  # e.g. entries "0/x" and "0" (fuzz)
                    raise ArchiveError(f"{what} holds a file and a folder with the same name; refused") from None
                try:
                    with dst_file as dst, zf.open(info) as src:
                        while chunk := src.read(1024 * 1024):
                            total += len(chunk)
                            if total > limits.max_total_bytes:
                                raise ArchiveError(f"{what} decompresses to more than the limit of "
                                                   f"{limits.max_total_bytes / 1e9:.1f} GB; refused")
                            too_much(total)
                            dst.write(chunk)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, RuntimeError) as exc:
                    # ValueError: e.g. a corrupted local-header offset ("negative seek value", found
                    # by fuzzing); RuntimeError: encryption flagged only in the local header
                    raise ArchiveError(f"{what} is damaged or uses an unsupported compression ({type(exc).__name__})") from None
                written_any = True
        if not written_any:
            raise ArchiveError(f"{what} contains no files")
    except BaseException:
        fh.close()
        shutil.rmtree(out, ignore_errors=True)
        raise
    fh.close()
    return out


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _expansion_limit(zipped: int, *, what: str, limits: ArchiveLimits, budget: int | None):  # noqa: ANN202
    """A check raising :class:`ArchiveError` once ``n`` decompressed bytes exceed the zip's
    expansion ratio limit or the caller's ``budget`` (each with its own message)."""
    ratio_cap = max(limits.ratio_floor_bytes, int(limits.max_ratio * zipped))

    def check(n: int) -> None:
        if n > ratio_cap:
            raise ArchiveError(f"{what} expands to more than {limits.max_ratio:g} times its own size (over "
                               f"{ratio_cap / 1e6:,.0f} MB from {zipped / 1e6:,.1f} MB); refused as a likely zip bomb")
        if budget is not None and n > budget:
            raise ArchiveError(f"{what} decompresses to more than the upload space this session has left "
                               f"({_size(max(budget, 0))} of {_size(limits.max_session_bytes)}); "
                               "remove other uploads or start a new session")
    return check


def single_image_in(folder: str | os.PathLike[str]) -> Path | None:
    """The only image file (NIfTI/NRRD/MHA) in an extracted folder, if there is exactly one and
    nothing else looks like an image (used when someone zips a single CT file)."""
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    images = [p for p in files if image_suffix(p)]
    return images[0] if len(images) == 1 and len(files) == 1 else None


# ------------------------------------------------------------------------------------------------
class UploadFolder:
    """A private temporary folder holding one session's uploads (removed on :meth:`cleanup`,
    when the object is garbage-collected at session end, or at interpreter exit).

    Each *role* (``ct``, ``roi``, ``batch`` …) holds at most one upload; storing a new file for a
    role replaces the previous one. Re-storing the same ``token`` (e.g. Streamlit's file id) is a
    no-op that returns the earlier path, so reruns do not rewrite or re-extract anything.

    Example:
        >>> uploads = UploadFolder()
        >>> p = uploads.store_image("ct", filename="x.nrrd", data=b"NRRD0004\\n...", token="t1")
        >>> p.name
        'ct.nrrd'
        >>> uploads.cleanup(); p.exists()
        False
    """

    def __init__(self, *, parent: str | os.PathLike[str] | None = None, limits: ArchiveLimits = ArchiveLimits()) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pleura-upload-", dir=parent))
        os.chmod(self.root, 0o700)
        mark_owner(self.root)  # lets a restarted app remove it if this process is killed (pipeline.io.upload_sweep)
        self.limits = limits
        self._entries: dict[str, tuple[str, Path]] = {}
        self._failures: dict[str, tuple[str, BaseException]] = {}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self.root.is_dir()

    def path(self, role: str) -> Path | None:
        entry = self._entries.get(role)
        return entry[1] if entry else None

    def lookup(self, role: str, token: str) -> Path | None:
        """The stored path of ``role`` if it came from the upload ``token``; re-raises the error
        that upload was refused with, so a rejected file is not re-read on every rerun."""
        failure = self._failures.get(role)
        if failure is not None and failure[0] == token:
            raise failure[1]
        entry = self._entries.get(role)
        if entry is not None and entry[0] == token and entry[1].exists():
            return entry[1]
        return None

    def clear(self, role: str) -> None:
        """Forget and delete the upload of ``role`` (no-op if none)."""
        with self._lock:
            self._entries.pop(role, None)
            self._failures.pop(role, None)
            shutil.rmtree(self.root / role, ignore_errors=True)

    def cleanup(self) -> None:
        """Delete the whole folder now."""
        self._entries.clear()
        self._finalizer()

    def used_bytes(self, *, besides: str | None = None) -> int:
        """Bytes stored in this folder (every role's upload except ``besides``)."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root).parts
            if besides is not None and rel and rel[0] == besides:
                continue
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def _left(self, role: str) -> int:
        """Bytes ``role``'s new upload may take (it replaces ``role``'s previous one)."""
        return self.limits.max_session_bytes - self.used_bytes(besides=role)

    def _fits(self, n: int, role: str, label: str) -> None:
        if n > self._left(role):
            raise ImageReadError(f"{label}: the upload space of this session is full ({_size(self.limits.max_session_bytes)}); "
                                 "remove other uploads or start a new session")

    def _slot(self, role: str) -> Path:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", role):
            raise ValueError(f"role must be a short lowercase name, got {role!r}")
        if not self.alive:
            raise RuntimeError("this upload folder was cleaned up")
        slot = self.root / role
        shutil.rmtree(slot, ignore_errors=True)
        slot.mkdir()
        return slot

    def store_image(self, role: str, *, filename: str, data: bytes, token: str | None = None,
                    label: str | None = None) -> Path:
        """Store an uploaded CT/ROI and return what the image reader should open: a file
        (``<role>.<suffix>``) or, for a zip, the extracted folder (DICOM series) or the single
        image file inside it.

        Args:
            filename: the uploaded name, used only as a hint for formats without magic bytes.
            data: the uploaded bytes.
            token: identity of this upload (same token → same path, nothing redone).
            label: how messages name the input (default: ``CT`` for role ``ct``, ``ROI mask``
                for ``roi``, else the role).

        Raises:
            ImageReadError: empty file, picture/document, unsupported type.
            ArchiveError: unsafe or unusable zip.
        """
        label = label or {"ct": "CT", "roi": "ROI mask"}.get(role, role)
        with self._lock:
            if token is not None and (known := self.lookup(role, token)) is not None:
                return known
            self._entries.pop(role, None)
            self._failures.pop(role, None)
            slot = self._slot(role)
            try:
                if not data:
                    raise ImageReadError(f"{label} file is empty (0 bytes)")
                suffix = storage_suffix(data, filename, role=label)
                if suffix == ".zip":
                    folder = safe_extract_zip(data, slot / role, limits=self.limits, what=f"the {label} zip",
                                              budget=self._left(role))
                    target = single_image_in(folder) or folder
                else:
                    self._fits(len(data), role, label)
                    target = slot / f"{role}{suffix}"
                    target.write_bytes(data)
            except (ImageReadError, ArchiveError) as err:
                shutil.rmtree(slot, ignore_errors=True)
                if token is not None:
                    self._failures[role] = (token, err)
                raise
            except BaseException:
                shutil.rmtree(slot, ignore_errors=True)
                raise
            self._entries[role] = (token or "", target)
            return target

    def store_file(self, role: str, *, suffix: str, data: bytes, token: str | None = None) -> Path:
        """Store an upload as-is under ``<role>/<role><suffix>`` (e.g. a clinical CSV)."""
        if not re.fullmatch(r"\.[a-z0-9.]{1,12}", suffix):
            raise ValueError(f"suffix must look like '.csv', got {suffix!r}")
        with self._lock:
            if token is not None and (known := self.lookup(role, token)) is not None:
                return known
            self._entries.pop(role, None)
            if len(data) > self._left(role):
                raise ArchiveError(f"the {role} file does not fit in the upload space this session has left; "
                                   "remove other uploads or start a new session")
            slot = self._slot(role)
            target = slot / f"{role}{suffix}"
            target.write_bytes(data)
            self._entries[role] = (token or "", target)
            return target

    def store_archive(self, role: str, *, data: bytes, token: str | None = None, what: str = "the zip") -> Path:
        """Extract an uploaded zip safely into ``<role>/files/`` and return that folder.

        Raises:
            ArchiveError: not a zip, or unsafe/too large (see :func:`safe_extract_zip`).
        """
        with self._lock:
            if token is not None and (known := self.lookup(role, token)) is not None:
                return known
            self._entries.pop(role, None)
            self._failures.pop(role, None)
            slot = self._slot(role)
            try:
                if sniff(bytes(data[:4096])) != "zip":
                    raise ArchiveError(f"{what} is not a zip file")
                folder = safe_extract_zip(data, slot / "files", limits=self.limits, what=what, budget=self._left(role))
            except ArchiveError as err:
                shutil.rmtree(slot, ignore_errors=True)
                if token is not None:
                    self._failures[role] = (token, err)
                raise
            self._entries[role] = (token or "", folder)
            return folder
