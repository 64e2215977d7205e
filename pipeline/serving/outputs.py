"""Output safety for ``pleura batch`` (and the app's batch): checked before any work, one writer.

* :func:`check_output` refuses, before anything is scored, a results path that is a folder,
  that is (or whose journal or lock would be) one of the run's inputs (``--out clinical.csv``),
  that lies inside a protected folder (the model bundle), that has an image suffix (a later
  folder scan would take it for a case), or whose folder cannot be written;
* :class:`OutputLock` holds an exclusive ``fcntl`` lock on ``<out>.lock`` for the whole run, so
  a second run on the same ``--out`` is refused at once with the holder's pid, host and start
  time, instead of both scoring every case (the lock file is left in place, as lock files must
  be to stay correct; the kernel releases the lock when its process ends, however it ends);
* :func:`spreadsheet_safe` neutralises text cells a spreadsheet would run as a formula (OWASP
  "CSV injection"): a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return, or
  with ``'``, gets one ``'`` in front. **To recover the original value, remove exactly one
  leading ``'`` from any cell that starts with one.** The journal (JSON) keeps values as they are.

Example:
    >>> spreadsheet_safe("=HYPERLINK(\\"http://x\\")"), spreadsheet_safe("P1"), spreadsheet_safe(-0.5)
    ('\\'=HYPERLINK("http://x")', 'P1', -0.5)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from pipeline.core.errors import OutputError
from pipeline.core.journal import journal_path
from pipeline.io.common import image_suffix

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(value: Any) -> Any:  # noqa: ANN401 - any cell value
    """``value`` with one ``'`` prefixed when it is text a spreadsheet could run as a formula
    (or text starting with ``'``, so the rule can be undone); other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def companions(out: Path) -> tuple[Path, Path]:
    """The journal and lock files kept beside the results CSV ``out``."""
    return journal_path(out), out.with_name(out.name + ".lock")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_output(out: str | os.PathLike[str], *, inputs: list[str | os.PathLike[str] | None] = (),
                 folders: list[str | os.PathLike[str] | None] = ()) -> Path:
    """Refuse an unsafe results path before any work (see module docstring); return it.

    Args:
        out: the results CSV.
        inputs: files and folders the run reads (source, clinical CSV, every CT and ROI).
        folders: folders nothing may be written into (the model bundle, DICOM folders: a new
            file there would change the folder's hash and so every resume key).

    Raises:
        OutputError: with one sentence saying what is wrong with ``--out``.
    """
    path = Path(out)
    if path.is_dir():
        raise OutputError("--out is an existing folder; give the results a file name, e.g. results.csv")
    if image_suffix(path) or path.name.lower().endswith(".zip"):
        raise OutputError("--out has an image file suffix; give the results a .csv name (the batch would "
                          "later mistake it for an input)")
    for written in (path, *companions(path)):
        if any(given is not None and _same(written, Path(given)) for given in inputs):
            raise OutputError("--out would overwrite one of this run's inputs; choose another results file")
    resolved = path.resolve()
    for folder in folders:
        if folder is not None and Path(folder).resolve() in resolved.parents:
            raise OutputError("--out lies inside an input folder (the model bundle or a DICOM folder); "
                              "choose a results file elsewhere")
    return path


def _describe_holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8")[:4096])
        return (f"pid {int(info['pid'])} on host {str(info['host'])[:64]}, started {str(info['started'])[:32]}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "holder unknown"


class OutputLock:
    """Exclusive lock on ``<out>.lock`` for one run (context manager).

    Raises (on enter):
        OutputError: another run holds it (message names its pid, host and start time), or the
            output folder cannot be written (read-only, no permission).
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.path = companions(self.out)[1]
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(f"the results cannot be written where --out points: the folder is not writable "
                              f"({exc.strerror or type(exc).__name__}); choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"another pleura batch is writing these results ({_describe_holder(self.path)}); "
                              "wait for it to finish or choose another --out") from None
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"the results file cannot be locked ({exc.strerror or type(exc).__name__})") from None
        started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # releases the lock
            self._fd = None
