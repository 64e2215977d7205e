"""What the command groups share: exit codes, the progress bar and checked argument types."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline.core.textsafe import printable

EXIT_OK, EXIT_CASES_FAILED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

CaseProgress = Callable[[int, int, "dict | None"], None]


def progress_bar(total_label: str) -> CaseProgress:
    """A tqdm bar on stderr for ``progress(done, total, row)`` callbacks; a failed row is written above it."""
    from tqdm import tqdm

    state: dict[str, object] = {}

    def update(done: int, total: int, row: dict | None) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=total_label, unit="case", file=sys.stderr,
                       disable=None, dynamic_ncols=True)
            state["bar"] = bar
            return
        bar.update(done - bar.n)
        if row is not None and row.get("status") not in ("ok", None):
            line = f"  {row.get('case_id')}: {row.get('error_type') or ''} {row.get('error')}".rstrip()
            bar.write(printable(line), file=sys.stderr)
        if done >= total:
            bar.close()

    return update


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number ≥ ``minimum`` (a clear message otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {printable(text)[:40]!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"whole number ≥ {minimum}"
    return parse


def label_number(text: str) -> int:
    """``--label``: a label number (≥ 1) of a mask image; a name points to ``--roi-name``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a label number of a mask image; for an RTSTRUCT ROI or SEG segment "
                                         f"name use --roi-name {printable(text)[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
