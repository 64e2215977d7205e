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


def find_clinical_csv(root: Path) -> Path | None:
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
        csv_path = find_clinical_csv(root)
        if csv_path is None:
            raise CohortError("no clinical values: upload a clinical CSV (columns case_id, CEA, CA125, age) "
                              "or put clinical.csv in the zip")
    return discover_cases(root, clinical_csv=csv_path)


@dataclass(frozen=True, eq=False)
class AppBatchResult:
    """A finished in-app batch: every column of the results CSV as a table, the CSV bytes, the BatchSummary, and why
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
    problem = f"the audit log could not be written ({audit_problems[0]})" if audit_problems else None
    return AppBatchResult(table, csv_bytes, summary, problem)



# ------------------------------------------------------------------------------------------------ display
COLUMN_NAMES = {
    "case_id": "Case", "status": "Status", "probability": "VPI probability", "risk_band": "Band",
    "above_threshold": "At or above threshold", "threshold": "Threshold", "CEA_ng_mL": "CEA (ng/mL)",
    "CA125_U_mL": "CA125 (U/mL)", "age_years": "Age (years)", "domain": "Applicability domain",
    "tree_p05": "Tree spread 5th pct", "tree_p95": "Tree spread 95th pct", "warnings": "Warnings",
    "error_type": "Problem kind", "error": "Problem",
}
"""Plain column names for the table on screen (the CSV keeps the machine names)."""
TABLE_COLUMNS = ("case_id", "status", "probability", "risk_band", "above_threshold", "error", "threshold", "CEA_ng_mL",
                 "CA125_U_mL", "age_years", "domain", "warnings")


def display_table(rows: list[dict] | Any):  # noqa: ANN201 - pandas DataFrame
    """Result rows (dicts or a DataFrame of the CSV) → the on-screen table: plain column names,
    empty cells instead of ``None``/NaN, the status as "scored"/"failed"."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    frame = frame.reindex(columns=[c for c in TABLE_COLUMNS if c in frame.columns or c in ("case_id", "status")])
    frame = frame.astype(object).where(frame.notna(), "")
    frame = frame.map(lambda v: "" if v is None or (isinstance(v, str) and v.strip() in ("None", "nan")) else v)
    frame["status"] = frame["status"].map({"ok": "scored", "error": "failed"}).fillna(frame["status"])
    for col in ("probability", "threshold"):
        if col in frame:
            frame[col] = [f"{100 * float(v):.0f} %" if v != "" else "" for v in frame[col]]
    return frame.rename(columns=COLUMN_NAMES)


def case_list(cases: list):  # noqa: ANN201 - pandas DataFrame
    """The cases found, before running: id, whether a CT and ROI were found, the clinical values
    read (or why the case cannot be scored)."""
    import pandas as pd

    from pipeline.app.labs import exact_number

    out = []
    for c in cases:
        clin = c.clinical
        out.append({
            "Case": c.case_id, "CT": "found" if c.ct_path else "missing",
            "ROI": "found" if c.roi_path else ("in the CT's DICOM folder" if c.ct_path and not c.problem else "missing"),
            "CEA (ng/mL)": exact_number(clin.cea_ng_ml) if clin else "",
            "CA125 (U/mL)": exact_number(clin.ca125_u_ml) if clin else "",
            "Age (years)": exact_number(clin.age_years) if clin else "",
            "Can be scored": "no: " + c.problem if c.problem else "yes",
        })
    return pd.DataFrame(out)


def result_details(row: dict) -> list[tuple[str, str]]:
    """Every field of one result row as (plain name, value) pairs for the case's own view."""
    from pipeline.features.findings import FINDING_CSV_COLUMNS

    names = {**COLUMN_NAMES, "domain_reasons": "Why outside the domain", "top_features": "Largest SHAP contributions",
             "ct_sha256": "CT sha256", "roi_sha256": "ROI sha256", "seconds": "Seconds to score",
             "model_id": "Model id"}
    names.update({c: c.replace("finding_", "").replace("_", " ").capitalize() for c in FINDING_CSV_COLUMNS})
    out = []
    for key, label in names.items():
        value = row.get(key)
        if value is None or str(value).strip() in ("", "None", "nan"):
            continue
        if key in ("probability", "threshold"):
            value = f"{100 * float(value):.1f} %"
        out.append((label, str(value)))
    return out


# ------------------------------------------------------------------------------------------------ server folders
def server_folder(text: str, roots: tuple[Path, ...]) -> Path:
    """The folder ``text`` names, if it lies inside one of the administrator's ``roots``
    (``PLEURA_DATA_ROOTS``) once every symlink is resolved.

    Raises:
        CohortError: no roots are configured, the folder does not exist, or it (or a symlink in
            it) leads outside every root. The message never repeats the path.
    """
    if not roots:
        raise CohortError("batch from a server folder is not enabled (the administrator sets PLEURA_DATA_ROOTS)")
    raw = (text or "").strip()
    if not raw:
        raise CohortError("enter the server folder holding the cases")
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise CohortError("the server folder does not exist or cannot be read") from None
    if not real.is_dir():
        raise CohortError("the server folder is not a folder")
    for root in roots:
        try:
            if real.is_relative_to(root.resolve(strict=True)):
                return real
        except (OSError, RuntimeError):
            continue
    raise CohortError("the server folder is outside the folders the administrator allows (PLEURA_DATA_ROOTS)")


def prepare_server_batch(folder: Path) -> list:
    """Cases of a server folder (same layouts as ``pleura batch``; ``clinical.csv`` in it).

    Symlinked case files that lead outside the folder are refused in their case's row."""
    from pipeline.inputs.cohort import discover_cases

    root = batch_root(folder)
    csv_path = find_clinical_csv(root)
    if csv_path is None:
        raise CohortError("no clinical values: the server folder needs a clinical.csv (columns case_id, CEA, CA125, age)")
    cases = discover_cases(root, clinical_csv=csv_path)
    real_root = root.resolve()
    from dataclasses import replace

    checked = []
    for c in cases:
        outside = [p for p in (c.ct_path, c.roi_path) if p and not Path(p).resolve().is_relative_to(real_root)]
        checked.append(replace(c, problem="a file of this case leads outside the server folder (symlink)",
                               problem_type="input") if outside else c)
    return checked
