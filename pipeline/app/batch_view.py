"""Batch page sections: the sources (uploaded zip + clinical CSV kept in the session, or an
allow-listed server folder), the list of cases found before running, the run with honest
scored/failed counts and rows appearing as they finish, and the results (plain column names; a
row opens that case's full result)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.app import batch as app_batch, session

log = logging.getLogger("pleurarisk.app")
KEPT = "batch_kept"  # session key: {"zip": {token, name}, "csv": {token, name}}


def _kept() -> dict:
    import streamlit as st

    return st.session_state.setdefault(KEPT, {})


def _forget_if_removed(kind: str, key: str, role: str) -> None:
    import streamlit as st

    from pipeline.app.session import session_uploads

    if st.session_state.get(key) is None:
        _kept().pop(kind, None)
        session_uploads().clear(role)


def _upload(kind: str, label: str, types: list[str], role: str, uploads):  # noqa: ANN001, ANN202
    """An upload box whose file is stored at once and kept for the session (a rerun, another
    page or a second large upload never loses it). Returns the stored path or ``None``."""
    import streamlit as st

    from pipeline.app.session import show_error
    from pipeline.core.errors import PleuraRiskError

    key = f"batch_{kind}"
    file = st.file_uploader(label, type=types, key=key, on_change=_forget_if_removed, args=(kind, key, role))
    if file is not None:
        try:
            if kind == "zip":
                path = uploads.store_archive(role, data=file.getvalue(), token=file.file_id, what="the batch zip")
            else:
                path = uploads.store_file(role, suffix=".csv", data=file.getvalue(), token=file.file_id)
        except PleuraRiskError as err:
            _kept().pop(kind, None)
            show_error(err)
            st.session_state["_batch_source_error"] = True  # said once: Run does not add "upload a zip first"
            return None
        _kept()[kind] = {"token": file.file_id, "name": file.name}
        return path
    kept = _kept().get(kind)
    path = uploads.path(role)
    if kept is not None and path is not None and path.exists():
        st.caption(f"In use: **{kept['name']}**, kept from earlier in this session (✕ on a new upload replaces it).")
        return path
    return None


def render_sources(uploads, roots: tuple[Path, ...]) -> list | None:  # noqa: ANN001
    """The cases to score (or ``None``), from uploads or, when the administrator allows it, a
    server folder; the cases found are listed before running."""
    import streamlit as st

    from pipeline.app.session import show_error
    from pipeline.core.errors import CohortError, PleuraRiskError

    st.session_state["_batch_source_error"] = False
    sources = ["Upload a zip"] + (["Folder on the server"] if roots else [])
    source = st.radio("Cases from", sources, horizontal=True, key="batch_source") if len(sources) > 1 else sources[0]
    try:
        if source == "Folder on the server":
            st.caption("Allowed folders: " + ", ".join(f"`{r}`" for r in roots) + " (set by the administrator).")
            text = st.text_input("Server folder with the cases and clinical.csv", key="batch_server_folder",
                                 placeholder=str(roots[0] / "cohort"))
            if not text.strip():
                return None
            cases = app_batch.prepare_server_batch(app_batch.server_folder(text, roots))
        else:
            zip_path = _upload("zip", "Cases (.zip)", ["zip"], "batch", uploads)
            csv_path = _upload("csv", "Clinical values (.csv)", ["csv"], "clinical", uploads)
            if zip_path is None:
                return None
            root = app_batch.batch_root(zip_path)
            csv_path = csv_path or app_batch.find_clinical_csv(root)
            if csv_path is None:
                raise CohortError("no clinical values: upload a clinical CSV (columns case_id, CEA, CA125, age) "
                                  "or put clinical.csv in the zip")
            from pipeline.inputs.cohort import discover_cases

            cases = discover_cases(root, clinical_csv=csv_path)
    except PleuraRiskError as err:
        show_error(err)
        st.session_state["_batch_source_error"] = True
        return None
    n_bad = sum(1 for c in cases if c.problem)
    st.markdown(f"**{len(cases)} cases found**" + (f", {n_bad} of them cannot be scored (see why)" if n_bad else ""))
    st.dataframe(app_batch.case_list(cases), hide_index=True, key="batch_cases", height=min(400, 38 + 35 * len(cases)))
    return cases


def run(cases: list | None, *, info, uploads) -> None:  # noqa: ANN001 - BundleInfo, UploadFolder
    """Score the cases; progress counts scored and failed cases; rows appear as they finish."""
    import streamlit as st

    from pipeline.app.session import show_error
    from pipeline.core.errors import CohortError, PleuraRiskError

    if not cases:
        if not st.session_state.get("_batch_source_error"):  # a source error is already on screen
            show_error(CohortError("Upload a .zip of cases (or choose a server folder) first."))
        return

    st.session_state.pop("batch_result", None)
    bar = st.progress(0.0, text=f"0 of {len(cases)} cases done")
    live = st.empty()
    rows: list[dict] = []

    def on_progress(done: int, total: int, row: dict | None) -> None:
        if row is not None:
            rows.append(row)
            live.dataframe(app_batch.display_table(rows), hide_index=True)
        n_ok = sum(r.get("status") == "ok" for r in rows)
        n_fail = sum(r.get("status") == "error" for r in rows)
        bar.progress(done / total if total else 1.0,
                     text=f"{done} of {total} cases done: {n_ok} scored, {n_fail} failed")

    try:
        with st.spinner("Loading the model and scoring the cases…", show_time=True):
            # wait for the page's background model load first: two loads at once in one process
            # raced inside the radiomics settings parser (a YAML ComposerError on a fresh server)
            session.cached_scorer(info.path)
            result = app_batch.run_app_batch(cases, bundle=info, out_path=uploads.root / "batch_results.csv",
                                             progress=on_progress)
    except Exception as err:  # noqa: BLE001 - one message, page stays usable
        if not isinstance(err, PleuraRiskError):
            log.exception("batch failed")
        show_error(err)
        return
    live.empty()
    st.session_state["batch_result"] = result


def render_result(result, info) -> None:  # noqa: ANN001 - AppBatchResult, BundleInfo
    import pandas as pd
    import streamlit as st

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
    st.caption("Select a row to open that case's result.")
    event = st.dataframe(app_batch.display_table(result.table), hide_index=True, key="batch_table",
                         on_select="rerun", selection_mode="single-row",
                         column_config={"Problem": st.column_config.TextColumn("Problem", width="large")})
    st.download_button("Download results CSV", result.csv_bytes, file_name="pleurarisk_batch_results.csv",
                       mime="text/csv", key="download_batch", on_click="ignore", icon=":material/download:")
    selected = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if selected:
        row = result.table.iloc[selected[0]].to_dict()
        with st.container(border=True, key="batch_case_result"):
            st.markdown(f"**Case {row.get('case_id', '')}**")
            st.dataframe(pd.DataFrame(app_batch.result_details(row), columns=["", "value"]), hide_index=True,
                         key="batch_case_details")
    st.caption(f"Model {info.name} (`{info.short_id}`), {info.signer_label}. Threshold and bands as on the Predict "
               "page. Tree spread: spread of the forest's trees, not a calibrated interval.")
