"""The crash-safe journal behind every resumable run (``pleura batch``, ``pleura features``).

A journal is a JSON-lines file beside the run's output (``<out>.journal.jsonl``): one row per
finished case, keyed by ``input_key`` (a hash of everything the case's result depends on),
appended and fsync'ed before the run goes on. A crash can only tear the last line: reading skips
it, and appending first ends it so the next row starts on a line of its own. Re-running reads the
journal and skips the keys already done, so nothing is lost or duplicated.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp()) / "results.csv"
    >>> with open_journal(journal_path(out)) as fh:
    ...     append_journal(fh, {"input_key": "k1", "status": "ok"})
    >>> _ = journal_path(out).open("a").write('{"input_key": "k2", "sta')  # a crash mid-write
    >>> sorted(read_journal(journal_path(out)))
    ['k1']
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any


def journal_path(out_path: str | os.PathLike[str]) -> Path:
    """The journal of the run writing ``out_path``: ``<out>.journal.jsonl`` beside it."""
    out = Path(out_path)
    return out.with_name(out.name + ".journal.jsonl")


def read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """Rows by ``input_key`` from a journal (later rows win); a torn line is ignored."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):  # torn, or nested absurdly deep
                continue
            if isinstance(row, dict) and row.get("input_key"):
                rows[row["input_key"]] = row
    return rows


def open_journal(path: Path) -> io.TextIOBase:
    """Open the journal for appending; a torn last line (a crash mid-write) is ended first, so
    the next row starts on a line of its own instead of being glued to the fragment and lost.
    The folder is created if needed (``--out new_folder/results.csv``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.exists() and path.stat().st_size:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    journal = path.open("a", encoding="utf-8")
    if torn:
        journal.write("\n")
    return journal


def append_journal(fh: io.TextIOBase, row: dict[str, Any]) -> None:
    """Append one row and make it durable (flush + fsync) before returning."""
    fh.write(json.dumps(row, sort_keys=True) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
