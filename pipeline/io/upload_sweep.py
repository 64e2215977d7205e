"""Remove upload folders left behind by app processes that died without cleaning up.

Each :class:`~pipeline.io.archive.UploadFolder` (``$TMPDIR/pleura-upload-*``, one per app session)
is removed when its session ends or its process exits normally. A server killed with SIGKILL
(out-of-memory killer, ``docker kill``) runs no clean-up, and its sessions' uploads (DICOM files
carry patient names) would stay on disk for ever. Every upload folder therefore records its
owner (:func:`mark_owner`: pid and process start time, so a reused pid is not mistaken for the
owner), and the app removes, once per server start, the folders whose owner is gone
(:func:`remove_stale_upload_folders`). Folders of live processes, of other users, and folders
without an owner record (made by an older version: their owner cannot be known) are left alone.

Example:
    >>> import tempfile, os
    >>> parent = tempfile.mkdtemp()
    >>> d = tempfile.mkdtemp(prefix="pleura-upload-", dir=parent); mark_owner(d)
    >>> remove_stale_upload_folders(parent), os.path.isdir(d)  # its owner (this process) is alive
    (0, True)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import psutil

PREFIX = "pleura-upload-"
OWNER_FILE = ".owner.json"


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def mark_owner(folder: str | os.PathLike[str]) -> None:
    """Record this process as the owner of the upload folder ``folder``."""
    record = {"pid": os.getpid(), "started": _start_time(os.getpid())}
    (Path(folder) / OWNER_FILE).write_text(json.dumps(record), encoding="utf-8")


def _owner_alive(folder: Path) -> bool | None:
    """Whether the process that made ``folder`` still runs (``None``: no readable owner record)."""
    try:
        record = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8")[:1024])
        pid, started = int(record["pid"]), record["started"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    now = _start_time(pid)
    return now is not None and (started is None or abs(now - float(started)) < 1.0)


def remove_stale_upload_folders(parent: str | os.PathLike[str] | None = None) -> int:
    """Delete this user's upload folders under ``parent`` (default: the temp folder) whose owner
    process has ended; return how many were removed."""
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    removed = 0
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return 0
    for folder in candidates:
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
            continue
        if _owner_alive(folder) is False:
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    return removed


_SWEPT: list[bool] = []
_LOCK = threading.Lock()


def sweep_once(parent: str | os.PathLike[str] | None = None) -> int:
    """:func:`remove_stale_upload_folders`, once per process (the app calls it on every rerun)."""
    with _LOCK:
        if _SWEPT:
            return 0
        _SWEPT.append(True)
    return remove_stale_upload_folders(parent)
