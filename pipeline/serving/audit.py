"""Audit log: one JSON line per prediction, appended and fsync'ed.

Location: ``$PLEURA_AUDIT_LOG`` or ``./audit/audit.jsonl`` (folder created if needed). Each line
holds the UTC time, where the prediction came from (``app``, ``app-batch``, ``cli``,
``cli-batch``; from the PACS ``app-pacs``, ``cli-pacs``, ``cli-pacs-batch``, which add the sha256
of the Study and Series Instance UIDs, never the UIDs), the model's name and id, the sha256 of the
CT and ROI inputs, the probability, the risk band and the number of validation warnings. It holds **no** names, file names, dates of
birth, case ids or other identifiers: the input hashes let a site link a line to its own records
without the log revealing anything.

Lines are written with one ``write`` on a file opened for appending under an exclusive
``flock``, then fsync'ed, so concurrent writers never interleave and a crash loses at most the
line being written.

A log that cannot be written is found before any work: :func:`ensure_audit_writable` (called by
``pleura score`` and ``pleura batch`` before reading a case) raises :class:`AuditLogError`, one
sentence naming ``PLEURA_AUDIT_LOG``, so nothing is scored without its audit line.

Example:
    >>> import tempfile, os, json
    >>> log = os.path.join(tempfile.mkdtemp(), "audit.jsonl")
    >>> entry = audit_entry(model_name="demo", model_id="ab" * 32, ct_sha256="c" * 64, roi_sha256="d" * 64,
    ...                     probability=0.42, risk_band="intermediate", n_warnings=0, source="cli")
    >>> _ = append_audit(entry, path=log)
    >>> sorted(json.loads(open(log).readline()))[:4]
    ['ct_sha256', 'model_id', 'model_name', 'n_warnings']
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core.env import settings
from pipeline.core.errors import PleuraRiskError

SOURCES = ("app", "app-batch", "cli", "cli-batch", "app-pacs", "cli-pacs", "cli-pacs-batch")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def audit_log_path() -> Path:
    """``$PLEURA_AUDIT_LOG`` if set, else ``./audit/audit.jsonl`` (relative to the working directory)."""
    return settings().audit_log


class AuditLogError(PleuraRiskError):
    """The audit log cannot be created or appended to (read-only or missing permission)."""

    code = "audit"


def ensure_audit_writable(path: str | os.PathLike[str] | None = None) -> Path:
    """Check that the audit log can be appended to (creating its folder and an empty file if
    needed) and return its path; call it before any work so a run never ends in an unwritable log.

    Raises:
        AuditLogError: the folder or file cannot be created or opened for appending.
    """
    target = Path(path) if path is not None else audit_log_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
    except OSError as exc:
        raise AuditLogError(
            f"the audit log {target} cannot be written ({exc.strerror or type(exc).__name__}): set PLEURA_AUDIT_LOG "
            "to a file in a writable folder; nothing was scored") from None
    return target


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def audit_entry(*, model_name: str, model_id: str, ct_sha256: str, roi_sha256: str, probability: float,
                risk_band: str, n_warnings: int, source: str, time_utc: str | None = None) -> dict[str, Any]:
    """One validated audit record (see module docstring for what is and is not recorded).

    Raises:
        ValueError: unknown source, hashes that are not sha256 hex, probability outside [0, 1],
            negative warning count.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    for label, value in (("ct_sha256", ct_sha256), ("roi_sha256", roi_sha256)):
        if not _SHA.match(value or ""):
            raise ValueError(f"{label} must be a 64-character lowercase sha256 hex digest")
    p = float(probability)
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"probability must be in [0, 1], got {probability!r}")
    if int(n_warnings) < 0:
        raise ValueError("n_warnings must be ≥ 0")
    return {
        "time_utc": time_utc or _utc_now(),
        "source": source,
        "model_name": str(model_name),
        "model_id": str(model_id),
        "ct_sha256": ct_sha256,
        "roi_sha256": roi_sha256,
        "probability": round(p, 6),
        "risk_band": str(risk_band),
        "n_warnings": int(n_warnings),
        "pleurarisk_version": __version__,
    }


def entry_from_result(result, *, source: str) -> dict[str, Any]:  # noqa: ANN001 - CaseResult
    """Audit record of a :class:`~pipeline.serving.score.CaseResult`."""
    return audit_entry(model_name=result.model_name, model_id=result.model_id, ct_sha256=result.ct_sha256,
                       roi_sha256=result.roi_sha256, probability=result.probability, risk_band=result.risk_band,
                       n_warnings=len(result.warnings), source=source)


def entry_from_batch_row(row: Mapping[str, Any], *, model_name: str, source: str = "app-batch") -> dict[str, Any] | None:
    """Audit record of a scored batch row (``pipeline.serving.batch`` columns); ``None`` for failed rows."""
    if row.get("status") != "ok":
        return None
    warnings = str(row.get("warnings") or "")
    return audit_entry(model_name=model_name, model_id=str(row.get("model_id", "")),
                       ct_sha256=str(row.get("ct_sha256", "")), roi_sha256=str(row.get("roi_sha256", "")),
                       probability=float(row["probability"]), risk_band=str(row.get("risk_band", "")),
                       n_warnings=len([w for w in warnings.split(" | ") if w.strip()]), source=source)


def append_audit(entry: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None) -> Path:
    """Append one record as a JSON line (creating the folder/file), fsync, and return the path.

    Raises:
        OSError: the log cannot be written (callers decide how loudly to report it).
    """
    import fcntl

    target = Path(path) if path is not None else audit_log_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(entry), sort_keys=True, allow_nan=False, ensure_ascii=True) + "\n").encode("ascii")
    created = not target.exists()
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if created:  # make the new directory entry durable too
        try:
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    return target


def uid_sha256(uid: str) -> str:
    """sha256 hex of a DICOM UID: what the log keeps instead of the UID."""
    from pipeline.core.hashing import bytes_sha256

    return bytes_sha256(uid.encode("ascii", "replace"))


def log_prediction(result, *, source: str, path: str | os.PathLike[str] | None = None,  # noqa: ANN001
                   uids: Mapping[str, str | None] | None = None) -> Path:
    """Append the audit record of one :class:`~pipeline.serving.score.CaseResult`; ``uids`` (e.g.
    ``{"study_uid": ..., "series_uid": ...}`` for a PACS study) are added as ``<name>_sha256``."""
    entry = entry_from_result(result, source=source)
    entry.update({f"{name}_sha256": uid_sha256(uid) for name, uid in (uids or {}).items() if uid})
    return append_audit(entry, path=path)


def read_audit(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """All records of an audit log (a torn last line is skipped)."""
    target = Path(path) if path is not None else audit_log_path()
    if not target.exists():
        return []
    out = []
    for line in target.read_text(encoding="ascii", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
