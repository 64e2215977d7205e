"""Predict: one case (CT + ROI + CEA/CA125/age) → VPI probability, explanation, viewer, report.

The sections live in ``pipeline/app``: the form (:mod:`~pipeline.app.predict_form`), the click
(:mod:`~pipeline.app.predict_run`) and the result (:mod:`~pipeline.app.predict_result`).
"""

from __future__ import annotations

import streamlit as st

from pipeline.app import case_state, pacs_source, predict_form, predict_result, predict_run, session
from pipeline.app.navigation import require_app_navigation
from pipeline.serving import figures

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

form = predict_form.render_form(session.session_uploads())

if st.button("Predict", type="primary", key="predict", icon=":material/play_arrow:"):
    predict_run.run_predict(info, form)

outcome = st.session_state.get("outcome")
if outcome is None:
    st.caption("Upload a CT and its tumour ROI, enter CEA, CA125 and age, then press Predict.")
    st.stop()
if outcome.signature != form.signature(info.bundle_id):
    predict_result.render_stale(outcome)
    st.stop()

predict_result.render_summary(outcome, info)
predict_result.render_explanation(outcome)

# ---------------------------------------------------------------------------------------------- viewer
st.subheader("CT and tumour outline")
viewer = outcome.viewer
if viewer is None:
    st.info("The images are not available for display.")
else:
    c_ctl, c_img = st.columns([1, 2.4])
    with c_ctl:
        plane = st.radio("Plane", figures.PLANES, horizontal=True, key="viewer_plane", format_func=str.capitalize)
        window = st.radio("Window", list(figures.WINDOW_PRESETS), horizontal=True, key="viewer_window",
                          format_func=lambda w: f"{w.capitalize()} (L {figures.WINDOW_PRESETS[w].level:g} / "
                                                f"W {figures.WINDOW_PRESETS[w].width:g})")
        slider_key = f"viewer_slice_{plane}_{outcome.uid}"
        centre = viewer.centre_index(plane) + 1
        n = viewer.n_slices(plane)
        if n > 1:
            index = st.slider("Slice", 1, n, value=centre, key=slider_key, help="Starts at the tumour's central slice.")
        else:
            index = 1
        st.button("Back to tumour centre", key="viewer_centre", on_click=st.session_state.__setitem__,
                  args=(slider_key, centre), disabled=n <= 1)
        st.caption("Yellow: the ROI outline. Orientation letters: R/L right/left, A/P anterior/posterior, "
                   "S/I superior/inferior.")
    with c_img:
        image = figures.render_slice(viewer, plane=plane, index=index - 1, window=window)
        st.plotly_chart(figures.slice_figure(image), key="viewer", config={"displayModeBar": False})

predict_result.render_report(outcome)
pacs_source.send_panel(outcome)
