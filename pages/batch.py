"""Batch: a zip of cases + a clinical CSV (or an allow-listed server folder) → one result row per
case (broken cases say why). The sections live in :mod:`pipeline.app.batch_view`."""

from __future__ import annotations

import streamlit as st

from pipeline.app import batch_view, session
from pipeline.app.navigation import require_app_navigation
from pipeline.core.env import settings

require_app_navigation()
info = session.page_header()
st.title("Score a batch")
if not info.ok:
    st.error(info.error)
    st.stop()

st.markdown(
    "Upload a **.zip** holding the cases in one of the layouts `pleura batch` accepts:\n"
    "- `<case>_ct.nii.gz` + `<case>_roi.nii.gz` side by side (also .nii, .nrrd, .mha), or\n"
    "- one folder per case with `ct.nii.gz` (or a `ct/` DICOM folder) and `roi.nii.gz`;\n\n"
    "and a **clinical CSV** with columns `case_id, CEA, CA125, age` (ng/mL, U/mL, years), or put it in "
    "the zip as `clinical.csv`. Every case gets a row; a case that cannot be scored says why in its row."
)
uploads = session.session_uploads()
cases = batch_view.render_sources(uploads, settings().data_roots)

if st.button("Run batch", type="primary", key="run_batch", icon=":material/play_arrow:"):
    batch_view.run(cases, info=info, uploads=uploads)

result = st.session_state.get("batch_result")
if result is not None:
    batch_view.render_result(result, info)
