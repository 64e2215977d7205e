"""The Predict page's "PACS" source (shown only when ``PLEURA_DICOMWEB_URL`` is configured): search
a study by the fields the administrator enabled, retrieve its CT and RTSTRUCT/SEG into the
session's private upload folder, and let the page score it like an uploaded DICOM folder (the same
series/ROI choice, prediction, result view and DICOM downloads). Below the result, "Send to PACS"
stores the SEG, SR and PDF report into the study (:func:`pipeline.pacs.store.store_results`,
idempotent). Study and series UIDs are never logged; the prediction's audit line holds content
hashes as for uploads.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.core.errors import PleuraRiskError

log = logging.getLogger("pleurarisk.app")
_STATE = "pacs_source"  # session_state key: {"token", "folder", "study"} of the retrieved study
_FIELD_LABELS = {"patient_id": "Patient ID", "accession": "Accession number", "study_date": "Study date (YYYYMMDD)"}


def configured() -> Any:  # noqa: ANN401 - PacsConfig | None
    """The PACS connection, or None when none is configured (or it is misconfigured: logged, not shown)."""
    from pipeline.pacs.config import pacs_config

    try:
        return pacs_config()
    except PleuraRiskError as err:
        log.warning("PACS settings unusable: %s", err)
        return None


def source_panel(uploads: Any, paths: dict[str, object], tokens: dict[str, str]) -> None:  # noqa: ANN401
    """Draw the PACS panel (nothing when no PACS is configured); a retrieved study becomes the page's
    CT (``paths["ct"]``, a DICOM folder holding the CT series and its RTSTRUCT/SEG) unless a CT was
    uploaded."""
    import streamlit as st

    config = configured()
    if config is None:
        return
    state = st.session_state.get(_STATE)
    with st.expander("… or take the study from the PACS", expanded=state is not None, icon=":material/cloud:"):
        with st.form("pacs_search", border=False):
            values = {f: st.text_input(_FIELD_LABELS[f], key=f"pacs_{f}") for f in config.search_fields}
            searched = st.form_submit_button("Search the PACS", icon=":material/search:")
        if searched:
            _search(config, values)
        studies = st.session_state.get("pacs_studies") or []
        if studies:
            labels = {s.study_uid: f"{s.study_date or '?'} · {s.description or 'study'} · {', '.join(s.modalities)} "
                                   f"· accession {s.accession or '-'}" for s in studies}
            chosen = st.selectbox("Study", list(labels), format_func=labels.get, index=None, key="pacs_study",
                                  placeholder="choose a study")
            if chosen and st.button("Retrieve this study", key="pacs_retrieve", icon=":material/download:"):
                _retrieve(config, uploads, chosen)
                state = st.session_state.get(_STATE)
        if state is not None:
            study = state["study"]
            st.caption(f"Retrieved: {study.ct.label()} and {len(study.rois)} RTSTRUCT/SEG series "
                       f"({study.n_bytes / 1e6:.0f} MB, {study.seconds:.1f} s).")
    if state is not None and "ct" not in paths and Path(state["folder"]).is_dir():
        paths["ct"] = state["folder"]
        tokens["ct"] = state["token"]


def study_uid_of(ct_path: object) -> str | None:
    """The Study Instance UID when ``ct_path`` is the study retrieved from the PACS in this session
    (its audit line then holds the study's and series' sha256), else ``None``."""
    import streamlit as st

    state = st.session_state.get(_STATE)
    if state is None or ct_path is None or str(ct_path) != str(state["folder"]):
        return None
    return state["study"].study_uid


def _search(config: Any, values: dict[str, str]) -> None:  # noqa: ANN401
    import streamlit as st

    from pipeline.pacs.client import PacsClient
    from pipeline.pacs.retrieve import find_studies

    try:
        studies = find_studies(PacsClient(config), **{k: v for k, v in values.items() if v})
    except PleuraRiskError as err:
        st.error(str(err), icon=":material/error:")
        return
    st.session_state["pacs_studies"] = studies
    if not studies:
        st.info("No study found.")


def _retrieve(config: Any, uploads: Any, study_uid: str) -> None:  # noqa: ANN401
    import uuid

    import streamlit as st

    from pipeline.pacs.client import PacsClient
    from pipeline.pacs.retrieve import retrieve_into

    old = st.session_state.pop(_STATE, None)
    if old is not None:
        shutil.rmtree(old["folder"], ignore_errors=True)
    st.session_state.pop("outcome", None)
    folder = Path(tempfile.mkdtemp(prefix="pacs-", dir=uploads.root))  # the session's private folder
    try:
        with st.spinner("Retrieving the study from the PACS…"):
            study = retrieve_into(PacsClient(config), folder / "study", study_uid=study_uid)
    except PleuraRiskError as err:
        shutil.rmtree(folder, ignore_errors=True)
        st.error(str(err), icon=":material/error:")
        return
    st.session_state[_STATE] = {"token": f"pacs-{uuid.uuid4().hex}", "folder": str(study.folder), "study": study}


def send_panel(outcome: Any) -> None:  # noqa: ANN401 - PredictionOutcome
    """Below a result scored from a PACS study: "Send to PACS" (SEG + SR + PDF into the study)."""
    import streamlit as st

    state = st.session_state.get(_STATE)
    config = configured()
    if config is None or state is None or outcome.dicom_source is None:
        return
    if st.button("Send to PACS (SEG, SR and PDF report)", key=f"pacs_send_{outcome.uid}",
                 icon=":material/cloud_upload:"):
        try:
            with st.spinner("Storing the results in the study…"):
                summary = send_results(config, outcome, state["study"])
        except PleuraRiskError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.success(f"PACS: {summary}", icon=":material/cloud_done:")


def send_results(config: Any, outcome: Any, study: Any) -> str:  # noqa: ANN401
    """Store an outcome's SEG, SR and PDF into its study (idempotent); the one-line summary."""
    from pipeline.app.dicom_support import outcome_dicom
    from pipeline.pacs.client import PacsClient, PacsError
    from pipeline.pacs.run import study_result_key
    from pipeline.pacs.store import store_results

    files = outcome_dicom(outcome)
    if files is None:
        raise PacsError("the DICOM results could not be made for this result")
    _series, _case, roi_name = outcome.dicom_source
    with tempfile.TemporaryDirectory(prefix="pleura-send-") as tmp:
        paths = []
        for name in ("seg.dcm", "sr.dcm", "report.dcm"):
            (Path(tmp) / name).write_bytes(files[name])
            paths.append(Path(tmp) / name)
        report = store_results(PacsClient(config), paths, key=study_result_key(
            study, roi_name=roi_name, clinical=outcome.clinical, model_id=outcome.result.model_id))
    return report.summary()
