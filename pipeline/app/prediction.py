"""One prediction in the app: clinical values from the form, uploads → paths, :func:`run_prediction`
(scores through :class:`~pipeline.serving.score.Scorer`, keeps what the result view needs, writes
the audit line), progress fractions for the Scorer's steps.

Example:
    >>> tracker = StepProgress()
    >>> tracker.fraction("reading and checking the images"), tracker.fraction("scoring")
    (0.02, 0.84)
"""


from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.inputs.clinical import FIELDS, ClinicalValues, parse_clinical


CLINICAL_HELP = {
    f.name: f"{f.name} in {f.unit}; accepted {f.low:g}–{f.high:g} {f.unit}." for f in FIELDS
}
CLINICAL_HELP["CEA"] += " Reference < 5 ng/mL (µg/L is the same number)."
CLINICAL_HELP["CA125"] += " Reference < 35 U/mL (kU/L is the same number)."
CLINICAL_HELP["age"] += " Adults only."


def clinical_from_form(*, cea: object, ca125: object, age: object) -> ClinicalValues:
    """Parse the three form fields (``None`` = left empty); raises ClinicalValueError naming the field."""
    return parse_clinical(cea=cea, ca125=ca125, age=age)


def roi_label_from_form(value: object) -> int | None:
    """The optional ROI label: empty → ``None``; otherwise a positive whole number.

    Raises:
        PleuraRiskError (MaskError) with a clear sentence for 0, negatives or fractions.
    """
    from pipeline.core.errors import MaskError

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MaskError(f"ROI label must be a whole number ≥ 1 (got {str(value)[:20]!r})") from None
    if number != int(number) or number < 1:
        raise MaskError(f"ROI label must be a whole number ≥ 1 (got {value})")
    return int(number)


class StepProgress:
    """Maps the Scorer's progress messages to a 0–1 fraction (share of a typical case's time)."""

    STEPS = (
        ("loading the model", 0.0),
        ("reading and checking the images", 0.02),
        ("deep features (MedicalNet ResNet-10)", 0.15),
        ("radiomics features (PyRadiomics)", 0.30),
        ("pleura features", 0.72),
        ("scoring", 0.84),
        ("explaining (SHAP)", 0.88),
        ("measuring the findings and checking the applicability domain", 0.94),
        ("preparing the result view", 0.96),
    )

    def __init__(self) -> None:
        self._last = 0.0

    def fraction(self, step: str) -> float:
        for name, start in self.STEPS:
            if step == name:
                self._last = max(self._last, start)
                break
        return self._last


SCORING_LOCK = threading.Lock()
"""One prediction at a time per app process (the machine's cores go to that case)."""


@dataclass(eq=False)
class PredictionOutcome:
    """What the result view shows; kept in the session so widget changes never recompute.

    Attributes:
        result: the CaseResult without its (large) PreparedCase.
        viewer: LPS volumes for the slice viewer (``None`` when the CT could not be kept).
        clinical, roi_label: the inputs scored.
        signature: identity of the inputs (to say when the form no longer matches the result).
        created: UTC time of the prediction.
        seconds: wall time from click to result.
        json_bytes: the JSON report; ``pdf_bytes`` is filled on first request (it takes ~1–3 s),
            once per outcome even when several script runs ask for it at the same time (see :meth:`pdf`).
        audit_error: why the audit line could not be written, if it could not.
        uid: distinguishes results (keys of per-result widgets such as the slice slider).
    """

    result: Any
    viewer: Any
    clinical: ClinicalValues
    roi_label: int | None
    signature: str
    created: _dt.datetime
    seconds: float
    json_bytes: bytes
    pdf_bytes: bytes | None = None
    audit_error: str | None = None
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    notes: tuple[str, ...] = ()  # series used, objects skipped, ROI rasterised (DICOM inputs)
    dicom_source: Any = None  # (series, case crop, ROI name) for pipeline.app.dicom_support.outcome_dicom
    dicom_files: dict[str, bytes] | None = None
    _pdf_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _ref_pdfs: dict = field(default_factory=dict, init=False, repr=False)  # references → PDF bytes

    def has_pdf(self, references: dict[str, str] | None = None) -> bool:
        """Whether :meth:`pdf` for these references is ready (no build needed)."""
        key = tuple(sorted((references or {}).items()))
        return self.pdf_bytes is not None if not key else key in self._ref_pdfs

    def pdf(self, references: dict[str, str] | None = None) -> bytes:
        """The PDF report (built once per ``references``, then kept). ``references``: the
        optional patient/study references the user typed for the PDF (the plain report is
        :attr:`pdf_bytes`; the last few referenced reports are kept).

        Several script runs can ask at once: Streamlit's fast reruns start a new run on a new
        thread as soon as the user changes a widget, while the previous run (which cannot be
        interrupted inside this call) carries on building the report. Without the lock each of
        those runs built its own copy of the same report; the builds queue on matplotlib's
        process-wide render lock, so a user who keeps changing inputs piled up threads that each
        held a report in the making (measured in ``tests/e2e/test_load.py``: 14 script threads
        and 0.3 → 0.5 GB of malloc'd memory in use after ~30 predictions). With the lock the
        later runs wait for the one build and then use its bytes.
        """
        from pipeline.serving.report import report_pdf

        key = tuple(sorted((references or {}).items()))
        with self._pdf_lock:
            if not key:
                if self.pdf_bytes is None:
                    self.pdf_bytes = report_pdf(self.result, clinical=self.clinical, roi_label=self.roi_label,
                                                viewer=self.viewer, created=self.created)
                return self.pdf_bytes
            if key not in self._ref_pdfs:
                while len(self._ref_pdfs) >= 4:
                    self._ref_pdfs.pop(next(iter(self._ref_pdfs)))
                self._ref_pdfs[key] = report_pdf(self.result, clinical=self.clinical, roi_label=self.roi_label,
                                                 viewer=self.viewer, created=self.created, references=dict(key))
            return self._ref_pdfs[key]

    def file_stem(self) -> str:
        """Download name without identifiers: ``pleurarisk_<UTC time>_<ct hash prefix>``."""
        return f"pleurarisk_{self.created:%Y%m%dT%H%M%SZ}_{self.result.ct_sha256[:8]}"


def input_signature(*, ct_token: str, roi_token: str, clinical: ClinicalValues | None, roi_label: int | None,
                    model_id: str, allow_resample: bool = False) -> str:
    """A string that changes whenever anything that affects the prediction changes."""
    clin = None if clinical is None else (clinical.cea_ng_ml, clinical.ca125_u_ml, clinical.age_years)
    return json.dumps([ct_token, roi_token, clin, roi_label, model_id] + (["resample"] if allow_resample else []))


def run_prediction(scorer, *, ct_path: str | os.PathLike[str], roi_path: str | os.PathLike[str] | None,  # noqa: ANN001
                   clinical: ClinicalValues, roi_label: int | None = None,
                   progress: Callable[[str], None] | None = None, signature: str = "",
                   audit: bool = True, audit_path: str | os.PathLike[str] | None = None,
                   source: str = "app", roi_name: str | None = None, series_uid: str | None = None,
                   allow_resample: bool = False, roi_source: dict[str, Any] | None = None,
                   study_uid: str | None = None) -> PredictionOutcome:
    """Score one case with ``scorer`` and build everything the result view needs.

    ``roi_source``: for a semi-automatic ROI, its ``Segmentation.provenance()``; it becomes the
    result's ``roi_source`` (JSON, PDF, DICOM SEG say where the ROI came from).

    DICOM inputs (CT folder, RTSTRUCT/SEG, ``roi_name``, ``series_uid``): see
    :func:`pipeline.inputs.dicom_inputs.resolve_inputs`.

    Writes one audit line (unless ``audit=False``); an unwritable audit log does not lose the
    result but is reported in :attr:`PredictionOutcome.audit_error`. ``study_uid`` (a study taken
    from the PACS): the line adds the sha256 of it and of the scored CT series' UID, never the UIDs.

    Raises:
        PleuraRiskError subclasses for inputs the user must fix (nothing is kept).
    """
    from pipeline.serving.audit import log_prediction
    from pipeline.serving.figures import viewer_volumes
    from pipeline.serving.report import report_json

    say = progress or (lambda _s: None)
    t0 = time.perf_counter()
    if not SCORING_LOCK.acquire(blocking=False):
        say("waiting for another prediction to finish")
        SCORING_LOCK.acquire()
    from pipeline.inputs.dicom_inputs import resolve_inputs

    try:
        with resolve_inputs(ct_path, roi_path, roi_name=roi_name, series_uid=series_uid) as inputs:
            result = scorer.score(inputs.ct_path, inputs.roi_path, clinical, label=roi_label, progress=say,
                                  keep_case=True, allow_resample=allow_resample)
    finally:
        SCORING_LOCK.release()
    say("preparing the result view")
    viewer = None
    case = result.case
    if case is not None and case.ct_full is not None and case.roi_full is not None:
        viewer = viewer_volumes(case.ct_full, case.roi_full)
    dicom_source = None
    if inputs.series is not None and case is not None:  # keep only the crop (the full volumes go)
        dicom_source = (inputs.series, replace(case, ct_full=None, roi_full=None), inputs.roi_name)
    result = replace(result, case=None)
    if roi_source is not None:
        result = replace(result, roi_source=roi_source)
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    outcome = PredictionOutcome(
        result=result, viewer=viewer, clinical=clinical, roi_label=roi_label, signature=signature,
        created=created, seconds=0.0,
        json_bytes=report_json(result, clinical=clinical, roi_label=roi_label, created=created),
        notes=inputs.notes, dicom_source=dicom_source,
    )
    if audit:
        try:
            uids = None if study_uid is None else {
                "study_uid": study_uid, "series_uid": None if inputs.series is None else inputs.series.series_uid}
            log_prediction(result, source=source, path=audit_path, uids=uids)
        except OSError as exc:
            outcome.audit_error = f"the audit log could not be written ({exc.strerror or type(exc).__name__})"
    outcome.seconds = time.perf_counter() - t0
    return outcome


def tree_spread_text(result) -> str | None:  # noqa: ANN001
    """One sentence describing the tree spread, or ``None`` when the model has no trees."""
    if result.tree_p05 is None or result.tree_p95 is None:
        return None
    from pipeline.serving.score import percent

    sd = f" (SD {100 * result.tree_sd:.0f} pts)" if result.tree_sd is not None else ""
    return (f"Tree spread {percent(result.tree_p05)} – {percent(result.tree_p95)}{sd}: the 5th–95th percentile of the "
            "probabilities of the forest's individual trees. It shows how much the trees disagree; it is "
            "not a calibrated confidence interval.")

