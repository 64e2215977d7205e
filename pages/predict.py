"""Predict: one case (CT + ROI + CEA/CA125/age) → VPI probability, explanation, report; the CT viewer
(with click-to-segment when there is no ROI) is drawn by :mod:`pipeline.app.viewer.panel`.

The sections live in ``pipeline/app``: the form (:mod:`~pipeline.app.predict_form`), the click
(:mod:`~pipeline.app.predict_run`) and the result (:mod:`~pipeline.app.predict_result`).
"""

from __future__ import annotations

import streamlit as st

from pipeline.app import case_state, pacs_source, predict_form, predict_result, predict_run, session
from pipeline.app.navigation import require_app_navigation
from pipeline.app.viewer.panel import viewer_section
from pipeline.app.viewer.trace import mark

mark("predict: script run starts")

require_app_navigation()
info = session.page_header()
c_title, c_new = st.columns([4, 1], vertical_alignment="bottom")
c_title.title("Predict one case")
c_new.button("New case", key="new_case", icon=":material/restart_alt:", on_click=case_state.new_case,
             help="Forget this case's files, values and result, and start again.")
if not info.ok:
    st.error(info.error)
    st.stop()
session.warm_up_scorer(info.path)  # the model loads while the user fills in the form

uploads = session.session_uploads()
form = predict_form.render_form(uploads)
mark("predict: form drawn", ct="ct" in form.paths)
# The CT viewer, with click-to-segment when there is no ROI (pipeline.app.viewer.panel)
form.use_semiautomatic_roi(viewer_section(uploads=uploads, paths=form.paths, tokens=form.tokens,
                                          series_uid=form.series_uid, roi_name=form.roi_name,
                                          roi_in_ct=form.roi_in_ct))

mark("predict: viewer section drawn")
if st.button("Predict", type="primary", key="predict", icon=":material/play_arrow:"):
    predict_run.run_predict(info, form)

outcome = st.session_state.get("outcome")
if outcome is None:
    st.caption("Upload a CT and its tumour ROI (or click the tumour in the viewer), enter CEA, CA125 and age, "
               "then press Predict.")
    st.stop()
if outcome.signature != form.signature(info.bundle_id):
    predict_result.render_stale(outcome)
    st.stop()

predict_result.render_summary(outcome, info)
predict_result.render_explanation(outcome)

predict_result.render_report(outcome)
pacs_source.send_panel(outcome)
