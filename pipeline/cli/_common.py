"""What the command groups share: exit codes and the progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable

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
            bar.write(f"  {row.get('case_id')}: {row.get('error_type') or ''} {row.get('error')}".rstrip(), file=sys.stderr)
        if done >= total:
            bar.close()

    return update
