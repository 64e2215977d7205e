"""Batch scoring in the app: uploads → cases (same layouts as ``pleura batch``),
:func:`run_app_batch`, the columns the page shows.
"""


from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.env import settings
from pipeline.io.archive import UploadFolder
from pipeline.core.errors import BundleError, CohortError
from pipeline.app.bundles import BundleInfo
from pipeline.app.prediction import SCORING_LOCK


def batch_root(folder: str | os.PathLike[str]) -> Path:
    """The folder holding the cases: ``folder`` itself, or its single sub-folder when the zip
    wrapped everything in one top-level folder."""
    root = Path(folder)
    for _ in range(3):
        entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        dirs = [p for p in entries if p.is_dir()]
        files = [p for p in entries if p.is_file()]
        if len(dirs) == 1 and not files:
            inner = dirs[0]
            # a folder-per-case batch with one case also has one sub-folder: keep it as a case
            if any((inner / n).exists() for n in ("ct", "roi")) or any(
                    p.name.startswith(("ct.", "roi.")) for p in inner.iterdir()):
                return root
            root = inner
        else:
            break
    return root


def _find_clinical_csv(root: Path) -> Path | None:
    for p in sorted(root.iterdir()):
        if p.is_file() and p.name.lower() in ("clinical.csv", "clinical_values.csv"):
            return p
    return None


def prepare_batch(uploads: UploadFolder, *, zip_bytes: bytes, zip_token: str | None = None,
                  csv_bytes: bytes | None = None, csv_token: str | None = None) -> list:
    """Batch uploads → cases (:class:`~pipeline.inputs.cohort.CaseInput`), same layouts as ``pleura batch``.

    The clinical CSV may be uploaded separately or sit in the zip as ``clinical.csv``.

    Raises:
        ArchiveError: unsafe/invalid zip. CohortError: no clinical CSV, bad CSV, no cases.
    """
    from pipeline.inputs.cohort import discover_cases

    folder = uploads.store_archive("batch", data=zip_bytes, token=zip_token, what="the batch zip")
    root = batch_root(folder)
    if csv_bytes is not None:
        csv_path = uploads.store_file("clinical", suffix=".csv", data=csv_bytes, token=csv_token)
    else:
        csv_path = _find_clinical_csv(root)
        if csv_path is None:
            raise CohortError("no clinical values: upload a clinical CSV (columns case_id, CEA, CA125, age) "
                              "or put clinical.csv in the zip")
    return discover_cases(root, clinical_csv=csv_path)


DISPLAY_COLUMNS = ("case_id", "status", "probability", "risk_band", "tree_p05", "tree_p95", "warnings", "error_type", "error")


@dataclass(frozen=True, eq=False)
class AppBatchResult:
    """A finished in-app batch: display table, the results CSV bytes, the BatchSummary, and why
    audit lines could not be written (if so)."""

    table: Any
    csv_bytes: bytes
    summary: Any
    audit_error: str | None = None


def run_app_batch(cases: list, *, bundle: BundleInfo, out_path: str | os.PathLike[str],
                  progress: Callable[[int, int, dict | None], None] | None = None, audit: bool = True,
                  audit_path: str | os.PathLike[str] | None = None) -> AppBatchResult:
    """Score cases in this process (``run_batch`` with one worker; resumes from ``out_path``'s
    journal) and write one audit line per newly scored case.

    Raises:
        BundleError: ``bundle`` is not usable.
    """
    import pandas as pd

    from pipeline.serving.audit import append_audit, entry_from_batch_row
    from pipeline.serving.batch import run_batch

    if not bundle.ok:
        raise BundleError(bundle.error or "no usable model bundle")
    audit_problems: list[str] = []

    def on_progress(done: int, total: int, row: dict | None) -> None:
        if audit and row is not None:
            entry = entry_from_batch_row(row, model_name=bundle.name)
            if entry is not None:
                try:
                    append_audit(entry, path=audit_path)
                except OSError as exc:
                    audit_problems.append(exc.strerror or type(exc).__name__)
        if progress:
            progress(done, total, row)

    threads = settings().threads
    with SCORING_LOCK:
        summary = run_batch(cases, out_path=out_path, bundle_path=str(bundle.path), model_id=bundle.bundle_id,
                            notice=bundle.notice, workers=1, num_threads=threads, progress=on_progress,
                            signer=bundle.signer_label)
    csv_bytes = Path(summary.out_path).read_bytes()
    table = pd.read_csv(io.BytesIO(csv_bytes), dtype={"case_id": str}, keep_default_na=False)
    table = table[[c for c in DISPLAY_COLUMNS if c in table.columns]]
    problem = f"the audit log could not be written ({audit_problems[0]})" if audit_problems else None
    return AppBatchResult(table, csv_bytes, summary, problem)

