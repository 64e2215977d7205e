"""Predict page, result sections: the probability (percent, coloured by band) with the
measurements and what the threshold means for this model (:func:`render_summary`), the
explanation (:func:`render_explanation`) and the reports (:func:`render_report`)."""

from __future__ import annotations

import logging

from pipeline.app import model_facts, prediction
from pipeline.app.labs import exact_number

log = logging.getLogger("pleurarisk.app")
BAND_TEXT_COLOURS = {"low": "#2e7d32", "intermediate": "#a66b00", "high": "#c62828"}
BAND_MARKDOWN_COLOURS = {"low": "green", "intermediate": "orange", "high": "red"}
"""Streamlit's own coloured-text names for the band label (``:green[…]``); an HTML span there
reached the browser as literal text (Streamlit 1.67), so the label uses no HTML."""


def inputs_used_text(outcome) -> str:  # noqa: ANN001 - PredictionOutcome
    """``CEA 3.2 ng/mL · CA125 5.14 U/mL · age 64.7 years``: the exact values the model used."""
    c = outcome.clinical
    return (f"CEA {exact_number(c.cea_ng_ml)} ng/mL · CA125 {exact_number(c.ca125_u_ml)} U/mL · "
            f"age {exact_number(c.age_years)} years")


def render_stale(outcome) -> None:  # noqa: ANN001
    """The form no longer matches the result: the result is hidden (not merely flagged)."""
    import streamlit as st

    st.divider()
    st.info("The inputs changed since the last result, so it is hidden (it belonged to other inputs). "
            "Press **Predict** to score the case as it is now, or **New case** to start again.",
            icon=":material/sync_problem:")


def render_summary(outcome, info) -> None:  # noqa: ANN001 - PredictionOutcome, BundleInfo
    import pandas as pd
    import streamlit as st

    from pipeline.serving import figures
    from pipeline.serving.score import band_rule, percent

    r = outcome.result
    colour = BAND_TEXT_COLOURS.get(r.risk_band, "#263238")
    st.divider()
    st.html(f"<style>.st-key-result_probability [data-testid='stMetricValue'] {{color: {colour};}}</style>")
    st.subheader("Result")
    scrolled = st.session_state.setdefault("_scrolled_results", set())
    if outcome.uid not in scrolled:  # a new result: bring it into view once (the form is above it)
        scrolled.add(outcome.uid)
        import streamlit.components.v1 as components

        components.html("<script>setTimeout(() => { const el = window.parent.document.querySelector("
                        "'.st-key-result_probability'); if (el) el.scrollIntoView({block: 'start'}); }, 300);"
                        "</script>", height=0)
    c_num, c_gauge = st.columns([1, 1.1])
    with c_num:
        with st.container(key="result_probability"):
            st.metric("VPI probability", percent(r.probability), border=True,
                      help=f"Model output {r.probability:.3f} on a 0–1 scale, shown in percent.")
        side = "at or above" if r.probability >= r.threshold else "below"
        band_colour = BAND_MARKDOWN_COLOURS.get(r.risk_band, "gray")
        st.markdown(f":{band_colour}[**{r.risk_band.capitalize()} band**] · "
                    f"{side} the model's operating threshold ({percent(r.threshold)})")
        st.caption(f"Bands: {band_rule(r.threshold)}.")
        metrics = model_facts.threshold_metrics(info.manifest) if info.ok else []
        if metrics:
            lines = "\n".join(f"- {m.cohort}: {m.sentence()}" for m in metrics)
            st.markdown(f"**At this threshold** the model measured:\n{lines}")
        else:
            st.caption("The model's manifest stores no sensitivity/specificity at its threshold.")
        if r.domain.status == "out":
            st.error("**Outside the model's experience:** " + "; ".join(r.domain.reasons), icon=":material/report:")
        elif r.domain.status == "unknown":
            st.info(f"Applicability domain unknown: {'; '.join(r.domain.reasons)}", icon=":material/help:")
        else:
            st.caption("Inside the model's training domain (size, scanner and features like its training cases).")
    with c_gauge:
        st.plotly_chart(figures.probability_gauge(r.probability, threshold=r.threshold, tree_p05=r.tree_p05,
                                                  tree_p95=r.tree_p95), key="gauge", config={"displayModeBar": False})
        if r.findings is not None:
            st.dataframe(pd.DataFrame(r.findings.rows(), columns=["Measurement (on the ROI)", "Value"]),
                         hide_index=True, key="findings_table", width="stretch")
    st.caption(f"Inputs used: {inputs_used_text(outcome)}. Done in {outcome.seconds:.1f} s from your click "
               f"(model loading included). Model {r.model_name} (`{r.model_id[:12]}`), {r.model_signer}.")
    spread = prediction.tree_spread_text(r)
    if spread:
        st.caption(spread)
    for note in outcome.notes:
        st.caption(note)
    if r.warnings:
        st.warning("**Validation warnings**\n" + "\n".join(f"- {w}" for w in r.warnings), icon=":material/warning:")
    else:
        st.success("The images passed every validation check.", icon=":material/check_circle:")
    if outcome.audit_error:
        st.warning(f"The result is shown, but {outcome.audit_error}.", icon=":material/warning:")


def render_explanation(outcome) -> None:  # noqa: ANN001
    import streamlit as st

    from pipeline.serving import figures

    r = outcome.result
    st.subheader("Why this probability?")
    if r.explanation is None:
        st.info("This model provides no SHAP explanation.")
        return
    c_wf, c_grp = st.columns([1.6, 1])
    no_bar = {"displayModeBar": False}
    with c_wf:
        st.plotly_chart(figures.shap_waterfall(r.explanation, top_k=10), key="waterfall", config=no_bar)
    with c_grp:
        st.plotly_chart(figures.group_totals_bar(r.explanation), key="groups", config=no_bar)
        st.caption("Contributions are in percentage points of probability (pts): the model's average prediction "
                   "plus all contributions equals this case's probability. Hover a bar for the model's own feature "
                   "name. They explain the model, not the disease.")


def render_report(outcome) -> None:  # noqa: ANN001
    """PDF (with optional references typed here) and JSON downloads, and the DICOM results."""
    import streamlit as st

    from pipeline.app import dicom_support as dsup

    st.subheader("Report")
    c_ref1, c_ref2 = st.columns(2)
    patient_ref = c_ref1.text_input("Patient reference for the PDF (optional)", key="report_patient_ref", max_chars=64,
                                    help="Printed on the PDF only; typed here, never taken from the files.")
    study_ref = c_ref2.text_input("Study reference for the PDF (optional)", key="report_study_ref", max_chars=64,
                                  help="Printed on the PDF only; typed here, never taken from the files.")
    references = {k: v.strip() for k, v in (("Patient reference", patient_ref), ("Study reference", study_ref))
                  if v and v.strip()}
    # One slot for the report buttons: while this result's PDF is built, the slot says so at once.
    report_slot = st.empty()
    pdf = None
    if not outcome.has_pdf(references):
        report_slot.info("Preparing the PDF report…", icon=":material/hourglass_top:")
    try:
        pdf = outcome.pdf(references)
    except Exception:  # noqa: BLE001 - the result stays usable without the PDF
        log.exception("PDF report failed")
    with report_slot.container():
        c_pdf, c_json = st.columns(2)
        with c_pdf:
            if pdf is not None:
                st.download_button("Download PDF report", pdf, file_name=f"{outcome.file_stem()}.pdf",
                                   mime="application/pdf", key=f"download_pdf_{outcome.uid}", on_click="ignore",
                                   icon=":material/picture_as_pdf:")
            else:
                st.warning("The PDF report could not be created; the JSON report has the same content.")
        with c_json:
            st.download_button("Download JSON", outcome.json_bytes, file_name=f"{outcome.file_stem()}.json",
                               mime="application/json", key=f"download_json_{outcome.uid}", on_click="ignore",
                               icon=":material/data_object:")
    if outcome.dicom_source is None:
        return
    st.markdown("**DICOM results** (new series in the CT's study, for a PACS)")
    try:
        files = dsup.outcome_dicom(outcome)
    except Exception:  # noqa: BLE001 - the result stays usable without them
        log.exception("DICOM results failed")
        files = None
    if files is None:
        st.warning("The DICOM results could not be created; the PDF and JSON reports hold the same result.")
        return
    for column, (name, label, icon) in zip(st.columns(3), (
            ("seg.dcm", "Download DICOM SEG (scored ROI)", ":material/layers:"),
            ("sr.dcm", "Download DICOM SR (measurements)", ":material/description:"),
            ("report.dcm", "Download DICOM PDF report", ":material/picture_as_pdf:"))):
        with column:
            st.download_button(label, files[name], file_name=f"{outcome.file_stem()}_{name}",
                               mime="application/dicom", key=f"download_{name}_{outcome.uid}", on_click="ignore",
                               icon=icon)
