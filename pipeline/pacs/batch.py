"""Score a CSV of PACS studies, one row each, resumable like ``pleura batch``.

The CSV has ``study_uid``, ``cea`` (ng/mL), ``ca125`` (U/mL), ``age`` (years), and optionally
``case_id``, ``series_uid`` (the CT series), ``roi_series_uid`` (the RTSTRUCT/SEG series) and
``roi_name``. Each study is retrieved into its own private temporary folder (removed after the
case), scored with the loaded model (:func:`pipeline.serving.batch.score_one`, as file batches are),
and with ``store`` its SEG, SR and PDF are stored back (idempotent). A bad row (no CT, a PACS
failure, a refused ROI) is reported in its row and the batch goes on.

The results CSV (``out``) has the file batch's columns plus ``stored``; every finished row goes into
the same crash-safe journal (:mod:`pipeline.core.journal`) first. Re-running skips the rows already
scored (same study, series, ROI, clinical values, model and ``store``) and tries the failed ones
again, since a PACS failure may have been passing.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.errors import PleuraRiskError
from pipeline.core.journal import append_journal, journal_path, open_journal, read_journal
from pipeline.pacs.client import PacsClient
from pipeline.pacs.config import PacsConfig, require_pacs_config
from pipeline.pacs.retrieve import check_uid, retrieved_study
from pipeline.pacs.run import study_result_key
from pipeline.pacs.store import result_key, store_results
from pipeline.serving.audit import uid_sha256
from pipeline.serving.batch import RESULT_COLUMNS, BatchSummary, write_csv_atomic

PACS_COLUMNS = (RESULT_COLUMNS[0], RESULT_COLUMNS[1], "stored", *RESULT_COLUMNS[2:])
REQUIRED = ("study_uid", "cea", "ca125", "age")
_CASE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def _rows(csv_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One task per CSV row: ids, checked values, or the row's problem."""
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.inputs.csvtable import read_table

    table = read_table(csv_path, what="the study CSV", required=REQUIRED)
    tasks, seen = [], set()
    for row in table.rows:
        v = row.values
        case_id = (v.get("case_id") or "").strip() or f"row{row.line}"
        if case_id in seen:
            case_id = f"{case_id}-row{row.line}"
        seen.add(case_id)
        task: dict[str, Any] = {"case_id": case_id, "problem": row.problem, "problem_type": "input"}
        if not _CASE_ID.match(case_id):
            task["case_id"] = f"row{row.line}"
            task["problem"] = task["problem"] or "the case_id must be letters, digits, '.', '_' or '-' (at most 64)"
        try:
            task["study_uid"] = check_uid(v.get("study_uid", ""), what="study_uid")
            task["series_uid"] = check_uid(v["series_uid"], what="series_uid") if v.get("series_uid") else None
            task["roi_series_uid"] = (check_uid(v["roi_series_uid"], what="roi_series_uid")
                                      if v.get("roi_series_uid") else None)
            task["roi_name"] = (v.get("roi_name") or "").strip() or None
            task["clinical"] = parse_clinical(cea=v.get("cea"), ca125=v.get("ca125"), age=v.get("age"))
        except PleuraRiskError as err:
            task["problem"], task["problem_type"] = task["problem"] or str(err), err.code
        tasks.append(task)
    return tasks


def _task_key(task: dict[str, Any], *, model_id: str, store: bool) -> str:
    c = task.get("clinical")
    return result_key("pacs-batch", task["case_id"], task.get("study_uid"), task.get("series_uid"),
                      task.get("roi_series_uid"), task.get("roi_name"), task.get("problem"),
                      None if c is None else (c.cea_ng_ml, c.ca125_u_ml, c.age_years), model_id, store)


def run_pacs_batch(*, csv_path: str | os.PathLike[str], out: str | os.PathLike[str],
                   bundle: str | os.PathLike[str] | None = None, store: bool = False, num_threads: int | None = None,
                   allow_unsigned: bool | None = None, config: PacsConfig | None = None,
                   progress: Callable[[int, int, dict | None], None] | None = None,
                   audit_source: str | None = "cli-pacs-batch") -> tuple[BatchSummary, str]:
    """Score every study of ``csv_path`` into ``out`` (see module docstring); returns the summary
    and the model's notice.

    Raises:
        ConfigError: no PACS configured. CohortError: the CSV is unusable. OutputError: ``out`` is
        unsafe or locked. BundleError: the model does not verify. AuditLogError: no audit log.
    """
    from pipeline.serving.bundle import check_bundle, default_bundle_path
    from pipeline.serving.outputs import OutputLock, check_output

    client = PacsClient(config or require_pacs_config())
    if audit_source is not None:
        from pipeline.serving.audit import ensure_audit_writable

        ensure_audit_writable()
    out_path = check_output(out, inputs=[csv_path], folders=[bundle])
    bundle_path = Path(bundle) if bundle else default_bundle_path()
    manifest, model_id, signature = check_bundle(bundle_path, allow_unsigned=allow_unsigned)
    notice = str(manifest.get("notice", ""))
    tasks = _rows(csv_path)
    t0 = time.perf_counter()
    with OutputLock(out_path):
        previous = read_journal(journal_path(out_path))
        rows: dict[str, dict[str, Any]] = {}
        keys = [_task_key(t, model_id=model_id, store=store) for t in tasks]
        skipped = 0
        scorer: list[Any] = []
        if progress:
            progress(0, len(tasks), None)
        with open_journal(journal_path(out_path)) as journal:
            try:
                for task, key in zip(tasks, keys):
                    done = previous.get(key)
                    if done is not None and done.get("status") == "ok":
                        rows[key] = done
                        skipped += 1
                        if progress:
                            progress(len(rows), len(tasks), None)
                        continue
                    row = _one(task, client=client, scorer=scorer, bundle_path=bundle_path, model_id=model_id,
                               num_threads=num_threads, allow_unsigned=allow_unsigned, store=store)
                    series_sha = row.pop("_series_sha", "")
                    row.update({"input_key": key, "model_id": model_id, "notice": notice,
                                "model_signer": signature.label})
                    append_journal(journal, row)
                    rows[key] = row
                    if audit_source is not None and row.get("status") == "ok":
                        _audit(row, task=task, series_sha=series_sha, model_name=bundle_path.name,
                               source=audit_source)
                    if progress:
                        progress(len(rows), len(tasks), row)
                    write_csv_atomic(out_path, [rows[k] for k in keys if k in rows], columns=PACS_COLUMNS)
            finally:
                write_csv_atomic(out_path, [rows[k] for k in keys if k in rows], columns=PACS_COLUMNS)
    done_rows = [rows[k] for k in keys if k in rows]
    n_ok = sum(1 for r in done_rows if r.get("status") == "ok")
    return BatchSummary(len(done_rows), n_ok, len(done_rows) - n_ok, skipped, time.perf_counter() - t0,
                        str(out_path)), notice


def _audit(row: dict[str, Any], *, task: dict[str, Any], series_sha: str, model_name: str, source: str) -> None:
    from pipeline.serving.audit import append_audit, entry_from_batch_row

    entry = entry_from_batch_row(row, model_name=model_name, source=source)
    if entry is None:
        return
    entry.update(study_uid_sha256=uid_sha256(task["study_uid"]), series_uid_sha256=series_sha)
    try:
        append_audit(entry)
    except OSError:
        row["warnings"] = " | ".join(w for w in (row.get("warnings"), "no audit line (log not writable)") if w)


def _one(task: dict[str, Any], *, client: PacsClient, scorer: list[Any], bundle_path: Path, model_id: str,
         num_threads: int | None, allow_unsigned: bool | None, store: bool) -> dict[str, Any]:
    """Retrieve, score and (``store``) store one row's study; never raises for a bad row."""
    from pipeline.inputs.cohort import CaseInput
    from pipeline.serving.batch import input_key, score_one

    t = time.perf_counter()
    case_id = task["case_id"]
    if task.get("problem"):
        return {"case_id": case_id, "status": "error", "error_type": task["problem_type"], "error": task["problem"],
                "seconds": 0.0}
    try:
        with retrieved_study(client, study_uid=task["study_uid"], series_uid=task["series_uid"],
                             roi_series_uid=task["roi_series_uid"]) as study:
            if not scorer:  # the model is loaded once, when the first study needs it
                from pipeline.serving.score import Scorer

                scorer.append(Scorer(bundle_path, num_threads=num_threads, allow_unsigned=allow_unsigned))
            case = CaseInput(case_id=case_id, ct_path=str(study.folder), roi_path=None, clinical=task["clinical"],
                             roi_name=task["roi_name"])
            results = Path(tempfile.mkdtemp(prefix="results-", dir=study.folder.parent))
            row = score_one(case, None, scorer[0], dicom_out=str(results) if store else None)
            _key, row["ct_sha256"], row["roi_sha256"] = input_key(case, model_id, None)
            row["_series_sha"] = uid_sha256(study.ct.series_uid)
            if row.get("status") == "ok" and store:
                folder = results / case_id
                report = store_results(client, [folder / "seg.dcm", folder / "sr.dcm", folder / "report.dcm"],
                                       key=study_result_key(study, roi_name=task["roi_name"],
                                                            clinical=task["clinical"], model_id=model_id))
                row["stored"] = "stored" if report.stored else "already on the PACS"
    except PleuraRiskError as err:
        row = {"case_id": case_id, "status": "error", "error_type": err.code, "error": str(err)}
    except Exception as exc:  # noqa: BLE001 - a batch never stops for one study
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        row = {"case_id": case_id, "status": "error", "error_type": "internal",
               "error": f"internal error ({type(exc).__name__}): {detail}"}
    row["seconds"] = round(time.perf_counter() - t, 3)
    return row
