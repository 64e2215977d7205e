"""Batch: a zip of cases + a clinical CSV → one result row per case (broken cases say why)."""

from __future__ import annotations

import logging

import streamlit as st

from pipeline.app import batch as app_batch, session
from pipeline.app.navigation import require_app_navigation
from pipeline.core.errors import CohortError, PleuraRiskError

log = logging.getLogger("pleurarisk.app")

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
zip_file = st.file_uploader("Cases (.zip)", type=["zip"], key="batch_zip")
csv_file = st.file_uploader("Clinical values (.csv)", type=["csv"], key="batch_csv")

if st.button("Run batch", type="primary", key="run_batch", icon=":material/play_arrow:"):
    st.session_state.pop("batch_result", None)
    try:
        if zip_file is None:
            raise CohortError("Upload a .zip of cases first.")
        cases = app_batch.prepare_batch(
            uploads, zip_bytes=zip_file.getvalue(), zip_token=zip_file.file_id,
            csv_bytes=csv_file.getvalue() if csv_file is not None else None,
            csv_token=csv_file.file_id if csv_file is not None else None)
        bar = st.progress(0.0, text=f"0 of {len(cases)} cases scored")

        def on_progress(done: int, total: int, _row: dict | None) -> None:
            bar.progress(done / total if total else 1.0, text=f"{done} of {total} cases scored")

        with st.spinner("Loading the model and scoring the cases…", show_time=True):
            result = app_batch.run_app_batch(cases, bundle=info, out_path=uploads.root / "batch_results.csv",
                                       progress=on_progress)
        st.session_state["batch_result"] = result
    except Exception as err:  # noqa: BLE001 - one message, page stays usable
        if not isinstance(err, PleuraRiskError):
            log.exception("batch failed")
        session.show_error(err)

result: app_batch.AppBatchResult | None = st.session_state.get("batch_result")
if result is not None:
    s = result.summary
    st.divider()
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Cases", s.n_cases)
    c2.metric("Scored", s.n_ok)
    c3.metric("Failed", s.n_error)
    c4.metric("Time", f"{s.seconds:.0f} s")
    if s.n_skipped:
        st.caption(f"{s.n_skipped} case(s) were already scored in this session with the same inputs and model (reused).")
    if result.audit_error:
        st.warning(f"Results are complete, but {result.audit_error}.")
    st.dataframe(result.table, hide_index=True, key="batch_table",
                 column_config={"probability": st.column_config.NumberColumn("probability", format="%.3f"),
                                "tree_p05": st.column_config.NumberColumn("tree p05", format="%.2f"),
                                "tree_p95": st.column_config.NumberColumn("tree p95", format="%.2f")})
    st.download_button("Download results CSV", result.csv_bytes, file_name="pleurarisk_batch_results.csv",
                       mime="text/csv", key="download_batch", on_click="ignore", icon=":material/download:")
    st.caption(f"Model {info.name} (`{info.short_id}`), {info.signer_label}. "
               "Tree p05–p95: spread of the forest's trees, not a calibrated interval.")
