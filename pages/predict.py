"""Predict: one case (CT + ROI + CEA/CA125/age) → VPI probability, explanation, report; the CT viewer
(with click-to-segment when there is no ROI) is drawn by :mod:`pipeline.app.viewer.panel`."""

from __future__ import annotations

import logging

import streamlit as st

from pipeline.app import dicom_support as dsup
from pipeline.app import pacs_source, prediction, session
from pipeline.app.viewer.panel import viewer_section
from pipeline.serving import figures
from pipeline.core.errors import InputError, PleuraRiskError

log = logging.getLogger("pleurarisk.app")
IMAGE_HELP = ("NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha), or for the CT a .zip of the DICOM series. "
              "Values must be Hounsfield units; the file name is never stored.")

info = session.page_header()
st.title("Predict one case")
if not info.ok:
    st.error(info.error)
    st.stop()
session.warm_up_scorer(info.path)  # the model loads while the user fills in the form

uploads = session.session_uploads()
col_img, col_lab = st.columns(2, gap="large")
with col_img:
    st.subheader("Images")
    ct_file = st.file_uploader("CT scan", key="ct_upload", help=IMAGE_HELP)
    roi_file = st.file_uploader("Tumour ROI mask, RTSTRUCT or SEG (drawn on this CT)", key="roi_upload",
                                help="A mask with the tumour labelled (non-zero) on the same grid as the CT "
                                     "(NIfTI, NRRD or MHA), or a DICOM RTSTRUCT or SEG file. Not needed when the "
                                     "CT zip holds the RTSTRUCT/SEG.")
    allow_resample = st.checkbox(
        "Resample the mask onto the CT", value=False, key="allow_resample",
        help="Only for a mask drawn on this very scan but saved on another voxel grid. Without this box such a "
             "mask is refused; with it, the mask is resampled only when it overlaps the CT near-completely, "
             "and the result says so.")
    dicom_slot = st.container()
with col_lab:
    st.subheader("Clinical values")
    cea = st.number_input("CEA (ng/mL)", value=None, step=0.1, format="%.2f", key="cea",
                          help=prediction.CLINICAL_HELP["CEA"], placeholder="e.g. 3.2")
    ca125 = st.number_input("CA125 (U/mL)", value=None, step=1.0, format="%.1f", key="ca125",
                            help=prediction.CLINICAL_HELP["CA125"], placeholder="e.g. 18")
    age = st.number_input("Age (years)", value=None, step=1.0, format="%.0f", key="age",
                          help=prediction.CLINICAL_HELP["age"], placeholder="e.g. 64")
    roi_label = st.number_input("ROI label (optional)", value=None, step=1, key="roi_label",
                                help="Only needed when the mask holds several labels: the label value of the tumour.",
                                placeholder="single-label mask")

# Uploaded bytes → files in this session's private folder (re-used across reruns by file id).
paths: dict[str, object] = {}
tokens: dict[str, str] = {}
for role, upload in (("ct", ct_file), ("roi", roi_file)):
    if upload is None:
        uploads.clear(role)
        continue
    tokens[role] = upload.file_id
    try:
        paths[role] = uploads.lookup(role, upload.file_id) or (
            dsup.store_roi_upload(uploads, filename=upload.name, data=upload.getvalue(), token=upload.file_id)
            if role == "roi" else
            uploads.store_image(role, filename=upload.name, data=upload.getvalue(), token=upload.file_id))
    except PleuraRiskError as err:
        session.show_error(err)
with col_img:  # a study from the PACS (only when one is configured) stands in for an uploaded CT
    pacs_source.source_panel(uploads, paths, tokens)

# A DICOM upload: choose the CT series (when several) and the ROI of its RTSTRUCT/SEG.
series_uid = roi_name = None
choices = dsup.DicomChoices()
if "ct" in paths or "roi" in paths:
    try:
        choices = dsup.dicom_choices(ct_path=paths.get("ct"), roi_path=paths.get("roi"))
    except PleuraRiskError:
        pass  # a damaged DICOM upload: Predict reports it, once
with dicom_slot:
    if len(choices.series) > 1:
        labels = dict(choices.series)
        series_uid = st.selectbox("CT series", list(labels), format_func=labels.get, key="dicom_series", index=None,
                                  placeholder="chosen automatically (the one the structure set references)",
                                  help="The DICOM upload holds several image series; the ROI must be drawn on this one.")
    if choices.roi_names:
        default = next((i for i, n in enumerate(choices.roi_names) if n.upper().startswith("GTV")), 0)
        roi_name = st.selectbox(f"Tumour ROI in the {choices.roi_kind}", choices.roi_names, index=default,
                                key="dicom_roi_name", help="Volume ROIs only (points and markers are not listed).")

roi_in_ct = "roi" not in paths and bool(choices.roi_names)  # the CT zip holds the RTSTRUCT/SEG
semi_roi = viewer_section(uploads=uploads, paths=paths, tokens=tokens, series_uid=series_uid, roi_name=roi_name,
                          roi_in_ct=roi_in_ct)
if semi_roi is not None and "roi" not in paths and not roi_in_ct:  # an accepted click-to-segment ROI
    paths["roi"] = semi_roi.path
    tokens["roi"] = f"semi:{semi_roi.token}"
else:
    semi_roi = None


def current_signature() -> str:
    try:
        clinical = prediction.clinical_from_form(cea=cea, ca125=ca125, age=age)
    except PleuraRiskError:
        clinical = None
    return prediction.input_signature(ct_token=f"{tokens.get('ct', '')}|{series_uid or ''}",
                                      roi_token=f"{tokens.get('roi', '')}|{roi_name or ''}", clinical=clinical,
                               roi_label=None if roi_label is None else int(roi_label), model_id=info.bundle_id,
                               allow_resample=bool(allow_resample))


def predict() -> None:
    st.session_state.pop("outcome", None)
    try:
        if "ct" not in paths or ("roi" not in paths and not roi_in_ct):
            missing = " and ".join(n for r, n in (("ct", "a CT scan"), ("roi", "a tumour ROI mask")) if r not in paths)
            if "ct" in paths:
                raise InputError("Upload a tumour ROI mask, or click the tumour in the viewer and accept the ROI, first.")
            raise InputError(f"Upload {missing} first (and fix any file error shown above).")
        clinical = prediction.clinical_from_form(cea=cea, ca125=ca125, age=age)
        label = prediction.roi_label_from_form(roi_label)
    except PleuraRiskError as err:
        session.show_error(err)
        return
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
            outcome = prediction.run_prediction(scorer, ct_path=paths["ct"], roi_path=paths.get("roi"),
                                                clinical=clinical, roi_label=label, progress=on_step,
                                                signature=current_signature(), roi_name=roi_name, series_uid=series_uid,
                                                allow_resample=bool(allow_resample),
                                                roi_source=None if semi_roi is None else semi_roi.provenance)
        except Exception as err:  # noqa: BLE001 - every failure becomes one message; the page stays usable
            if not isinstance(err, PleuraRiskError):
                log.exception("prediction failed")
            status.update(label="Prediction failed", state="error", expanded=False)
            failure = err
        else:
            bar.progress(1.0, text="done")
            status.update(label=f"Done in {outcome.seconds:.1f} s", state="complete", expanded=False)
    if failure is not None:
        # Below the status box, not inside it: the collapsed box would hide the message.
        session.show_error(failure)
        return
    if semi_roi is not None:
        outcome.notes = (*outcome.notes, f"ROI: {semi_roi.description}.")
    st.session_state["outcome"] = outcome


if st.button("Predict", type="primary", key="predict", icon=":material/play_arrow:"):
    predict()

outcome: prediction.PredictionOutcome | None = st.session_state.get("outcome")
if outcome is None:
    st.caption("Upload a CT and its tumour ROI (or click the tumour in the viewer), enter CEA, CA125 and age, "
               "then press Predict.")
    st.stop()

# ---------------------------------------------------------------------------------------------- result
r = outcome.result
st.divider()
if outcome.signature != current_signature():
    st.info("The inputs above changed since this result was computed; press Predict to update it.",
            icon=":material/sync_problem:")
st.subheader("Result")
c_num, c_gauge = st.columns([1, 1.2])
with c_num:
    st.metric("VPI probability", f"{r.probability:.2f}", border=True,
              help="Model output between 0 and 1. Bands are for display only.")
    side = "at or above" if r.probability >= r.threshold else "below"
    st.markdown(f"**{r.risk_band.capitalize()} risk band** · {side} the model's operating threshold "
                f"({r.threshold:.2f})")
    if r.domain.status == "out":
        st.error("**Outside the model's experience:** " + "; ".join(r.domain.reasons), icon=":material/report:")
    elif r.domain.status == "unknown":
        st.info(f"Applicability domain unknown: {'; '.join(r.domain.reasons)}", icon=":material/help:")
    else:
        st.caption("Inside the model's training domain (size, scanner and features like its training cases).")
    st.warning(r.notice, icon=":material/info:")
    spread = prediction.tree_spread_text(r)
    if spread:
        st.caption(spread)
    st.caption(f"Model {r.model_name} (`{r.model_id[:12]}`), {r.model_signer} · scored in {outcome.seconds:.1f} s")
with c_gauge:
    st.plotly_chart(figures.probability_gauge(r.probability, threshold=r.threshold, tree_p05=r.tree_p05,
                                              tree_p95=r.tree_p95), key="gauge", config={"displayModeBar": False})

if r.findings is not None:
    st.markdown("**Findings** (measured on the ROI)  \n" + "  \n".join(f"{label}: **{value}**"
                                                                     for label, value in r.findings.rows()))
for note in outcome.notes:
    st.caption(note)
if r.warnings:
    st.warning("**Validation warnings**\n" + "\n".join(f"- {w}" for w in r.warnings), icon=":material/warning:")
else:
    st.success("The images passed every validation check.", icon=":material/check_circle:")
if outcome.audit_error:
    st.warning(f"The result is shown, but {outcome.audit_error}.", icon=":material/warning:")

st.subheader("Why this probability?")
if r.explanation is None:
    st.info("This model provides no SHAP explanation.")
else:
    c_wf, c_grp = st.columns([1.6, 1])
    with c_wf:
        st.plotly_chart(figures.shap_waterfall(r.explanation, top_k=10), key="waterfall")
    with c_grp:
        st.plotly_chart(figures.group_totals_bar(r.explanation), key="groups")
        st.caption("SHAP values are in probability units: the base value (the model's average prediction) plus "
                   "all contributions equals this case's probability. They explain the model, not the disease.")

st.subheader("Report")
# One slot for the report buttons: while this result's PDF is built, the slot says so at once
# (a previous result's greyed-out download button must not stay clickable meanwhile).
report_slot = st.empty()
if outcome.pdf_bytes is None:
    report_slot.info("Preparing the PDF report…", icon=":material/hourglass_top:")
    try:
        outcome.pdf()
    except Exception:  # noqa: BLE001 - the result stays usable without the PDF
        log.exception("PDF report failed")
with report_slot.container():
    c_pdf, c_json = st.columns(2)
    with c_pdf:
        if outcome.pdf_bytes is not None:
            st.download_button("Download PDF report", outcome.pdf_bytes, file_name=f"{outcome.file_stem()}.pdf",
                               mime="application/pdf", key=f"download_pdf_{outcome.uid}", on_click="ignore",
                               icon=":material/picture_as_pdf:")
        else:
            st.warning("The PDF report could not be created; the JSON report has the same content.")
    with c_json:
        st.download_button("Download JSON", outcome.json_bytes, file_name=f"{outcome.file_stem()}.json",
                           mime="application/json", key=f"download_json_{outcome.uid}", on_click="ignore",
                           icon=":material/data_object:")
if outcome.dicom_source is not None:
    st.markdown("**DICOM results** (new series in the CT's study, for a PACS)")
    try:
        files = dsup.outcome_dicom(outcome)
    except Exception:  # noqa: BLE001 - the result stays usable without them
        log.exception("DICOM results failed")
        files = None
    if files is None:
        st.warning("The DICOM results could not be created; the PDF and JSON reports hold the same result.")
    else:
        for column, (name, label, icon) in zip(st.columns(3), (
                ("seg.dcm", "Download DICOM SEG (scored ROI)", ":material/layers:"),
                ("sr.dcm", "Download DICOM SR (measurements)", ":material/description:"),
                ("report.dcm", "Download DICOM PDF report", ":material/picture_as_pdf:"))):
            with column:
                st.download_button(label, files[name], file_name=f"{outcome.file_stem()}_{name}",
                                   mime="application/dicom", key=f"download_{name}_{outcome.uid}", on_click="ignore",
                                   icon=icon)
pacs_source.send_panel(outcome)
st.caption(f"{r.notice} Reports identify the inputs only by sha256 content hashes; no file names.")
