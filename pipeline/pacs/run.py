"""One study's round trip: retrieve it from the PACS, score it with the DICOM-folder pipeline
(:func:`pipeline.serving.run.score_files`, the same path as ``pleura score FOLDER``), and with
``store`` put the SEG, SR and PDF report back into the study (:mod:`pipeline.pacs.store`).

The audit line (source ``cli-pacs`` / ``app-pacs``) holds the sha256 of the Study and CT Series
Instance UIDs, never the UIDs themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.pacs.client import PacsClient
from pipeline.pacs.config import PacsConfig, require_pacs_config
from pipeline.pacs.retrieve import RetrievedStudy, retrieved_study
from pipeline.pacs.store import StoreReport, result_key, store_results


@dataclass(frozen=True)
class PacsScore:
    """A study scored from the PACS: the result, what was stored, and how long each step took (s)."""

    result: Any  # pipeline.serving.score.CaseResult
    stored: StoreReport | None
    n_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = self.result.to_dict()
        out["pacs"] = {
            "retrieved_mb": round(self.n_bytes / 1e6, 2),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "stored": None if self.stored is None else [
                {"object": k, "sop_instance_uid": u, "status": "stored"} for k, u in self.stored.stored] + [
                {"object": k, "sop_instance_uid": u, "status": "already on the PACS"} for k, u in self.stored.already],
        }
        return out


def study_result_key(study: RetrievedStudy, *, roi_name: str | None, clinical: Any,  # noqa: ANN401
                     model_id: str) -> str:
    """The key a stored result's UIDs derive from: the study, CT series, RTSTRUCT/SEG series, ROI name,
    clinical values and model (DICOM forbids changing an instance under its UID, so the UIDs identify
    the images), the same for ``pleura pacs score`` and ``pleura pacs batch``."""
    return result_key(study.study_uid, study.ct.series_uid, sorted(s.series_uid for s in study.rois), roi_name or "",
                      clinical.cea_ng_ml, clinical.ca125_u_ml, clinical.age_years, model_id)


def audit_pacs(result: Any, *, source: str, study_uid: str, series_uid: str) -> None:  # noqa: ANN401
    """Append the audit line of a PACS-scored result (UIDs as sha256 only)."""
    from pipeline.serving.audit import log_prediction

    log_prediction(result, source=source, uids={"study_uid": study_uid, "series_uid": series_uid})


def score_study(*, study_uid: str, cea: Any, ca125: Any, age: Any, series_uid: str | None = None,  # noqa: ANN401
                roi_series_uid: str | None = None, roi_name: str | None = None, store: bool = False,
                bundle: str | os.PathLike[str] | None = None, num_threads: int | None = None,
                allow_unsigned: bool | None = None, config: PacsConfig | None = None,
                on_note: Callable[[str], None] | None = None, audit_source: str | None = "cli-pacs") -> PacsScore:
    """Retrieve, score and (``store``) store back one study; see the module docstring.

    Args:
        study_uid: Study Instance UID on the PACS.
        cea, ca125, age: CEA (ng/mL), CA125 (U/mL), age (years).
        series_uid: the CT series (default: see :func:`pipeline.pacs.retrieve.retrieved_study`).
        roi_series_uid: the RTSTRUCT/SEG series when the study holds several.
        roi_name: RTSTRUCT ROI name / SEG segment label (needed when it holds several volumes).
        store: store the SEG, SR and PDF into the study (idempotent).
        bundle, num_threads, allow_unsigned: as :func:`pipeline.serving.run.score_files`.
        config: the PACS connection (default: the ``PLEURA_DICOMWEB_*`` settings).
        on_note: receives user-facing notes.
        audit_source: the audit line's source (None: no line).

    Raises:
        ConfigError, InputError subclasses, PacsError, BundleError: one sentence each.
    """
    from pipeline.inputs.clinical import parse_clinical
    from pipeline.serving.run import score_files

    say = on_note or (lambda _t: None)
    clinical = parse_clinical(cea=cea, ca125=ca125, age=age)  # refused before any network traffic
    client = PacsClient(config or require_pacs_config())
    if audit_source is not None:
        from pipeline.serving.audit import ensure_audit_writable

        ensure_audit_writable()
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        say(text)

    seconds: dict[str, float] = {}
    with retrieved_study(client, study_uid=study_uid, series_uid=series_uid, roi_series_uid=roi_series_uid,
                         on_note=note) as study:
        seconds["retrieve"] = study.seconds
        t = time.perf_counter()
        out_dir = study.folder.parent / "results"
        result = score_files(ct=study.folder, roi=None, cea=clinical.cea_ng_ml, ca125=clinical.ca125_u_ml,
                             age=clinical.age_years, bundle=bundle, num_threads=num_threads, roi_name=roi_name,
                             series_uid=study.ct.series_uid, dicom_out=out_dir if store else None,
                             on_note=lambda text: None if text.startswith("wrote ") else note(text),
                             allow_unsigned=allow_unsigned, audit_source=None)
        seconds["score"] = time.perf_counter() - t
        stored = None
        if store:
            t = time.perf_counter()
            key = study_result_key(study, roi_name=roi_name, clinical=clinical, model_id=result.model_id)
            stored = store_results(client, [out_dir / "seg.dcm", out_dir / "sr.dcm", out_dir / "report.dcm"],
                                   key=key)
            seconds["store"] = time.perf_counter() - t
            note(stored.summary())
        n_bytes = study.n_bytes
        ct_series = study.ct.series_uid
    if audit_source is not None:
        audit_pacs(result, source=audit_source, study_uid=study_uid.strip(), series_uid=ct_series)
    return PacsScore(result=result, stored=stored, n_bytes=n_bytes, seconds=seconds, notes=tuple(notes))
