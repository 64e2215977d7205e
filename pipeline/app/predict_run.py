"""Predict page, the Predict click: every problem of the form at once, then the scoring with
its progress, timed from the click (model loading included: what the user waited)."""

from __future__ import annotations

import logging
import time

from pipeline.app import pacs_source, prediction, session
from pipeline.app.predict_form import CaseForm

log = logging.getLogger("pleurarisk.app")


def run_predict(info, form: CaseForm) -> None:  # noqa: ANN001 - BundleInfo
    """Score the form's case; the outcome goes to ``st.session_state["outcome"]`` (errors are shown)."""
    import streamlit as st

    from pipeline.core.errors import PleuraRiskError

    t_click = time.perf_counter()
    st.session_state.pop("outcome", None)
    problems = form.problems()
    if problems:
        st.error("Predict needs:\n" + "\n".join(f"- {p}" for p in problems), icon=":material/error:")
        return
    clinical = form.lab_check.values
    label = prediction.roi_label_from_form(form.roi_label)
    tracker = prediction.StepProgress()
    failure: BaseException | None = None
    with st.status("Predicting…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")

        def on_step(step: str) -> None:
            bar.progress(tracker.fraction(step), text=step)
            status.write(f"{step[0].upper()}{step[1:]}…")

        try:
            on_step("loading the model")
            scorer = session.cached_scorer(info.path)
            study_uid = pacs_source.study_uid_of(form.paths["ct"])
            outcome = prediction.run_prediction(
                scorer, ct_path=form.paths["ct"], roi_path=form.paths.get("roi"), clinical=clinical,
                roi_label=label, progress=on_step, signature=form.signature(info.bundle_id), roi_name=form.roi_name,
                series_uid=form.series_uid, allow_resample=form.allow_resample,
                roi_source=None if form.semi_roi is None else form.semi_roi.provenance,
                study_uid=study_uid, source="app" if study_uid is None else "app-pacs")
        except Exception as err:  # noqa: BLE001 - every failure becomes one message; the page stays usable
            if not isinstance(err, PleuraRiskError):
                log.exception("prediction failed")
            status.update(label="Prediction failed", state="error", expanded=False)
            failure = err
        else:
            outcome.seconds = time.perf_counter() - t_click  # what the user waited, model loading included
            if form.semi_roi is not None:
                outcome.notes = (*outcome.notes, f"ROI: {form.semi_roi.description}.")
            bar.progress(1.0, text="done")
            status.update(label=f"Done in {outcome.seconds:.1f} s (from your click, model loading included)",
                          state="complete", expanded=False)
    if failure is not None:
        # Below the status box, not inside it: the collapsed box would hide the message.
        session.show_error(failure)
        return
    st.session_state["outcome"] = outcome
