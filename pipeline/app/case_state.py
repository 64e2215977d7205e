"""The session's current case on the Predict page, kept across pages and reruns: the uploaded
files (their bytes stay in the session's private upload folder, :func:`session.session_uploads`),
the typed lab values and the other form choices; and a "New case" reset.

Streamlit forgets a widget's value once a page without that widget has run, so every form
widget is mirrored into ``st.session_state["case"]`` and restored from it when the Predict page
is opened again (:func:`restore` before the widget, :func:`remember` after it). An upload box
cannot be refilled by the server: a kept file is shown under its box and used until the user
removes it (the box's ✕), uploads another one, or starts a new case.
"""

from __future__ import annotations

from typing import Any

CASE_KEY = "case"
FORM_KEYS = ("cea", "ca125", "age", "roi_label", "allow_resample", "dicom_series", "dicom_roi_name",
             "report_patient_ref", "report_study_ref")
RESULT_KEYS = ("outcome",)
VIEWER_KEYS = ("viewer_shown", "semi_state")  # the viewer's CT copy and the click-to-segment state
EMPTY_VALUES = {"cea": "", "ca125": "", "age": "", "roi_label": None, "allow_resample": False,
                "report_patient_ref": "", "report_study_ref": ""}


def case() -> dict[str, Any]:
    """This session's case: ``files`` {role: {token, name, size}}, ``widgets`` {key: value},
    ``generation`` (bumped by :func:`new_case`, part of the upload boxes' keys)."""
    import streamlit as st

    state = st.session_state.get(CASE_KEY)
    if not isinstance(state, dict):
        state = {"files": {}, "widgets": {}, "generation": 0}
        st.session_state[CASE_KEY] = state
    return state


def restore(key: str) -> None:
    """Before creating widget ``key``: give it the case's remembered value (if the widget has none)."""
    import streamlit as st

    widgets = case()["widgets"]
    if key not in st.session_state and key in widgets:
        st.session_state[key] = widgets[key]


def remember(key: str) -> None:
    """After creating widget ``key``: keep its value in the case."""
    import streamlit as st

    if key in st.session_state:
        case()["widgets"][key] = st.session_state[key]


def upload_key(role: str) -> str:
    """The upload box key of ``role`` for the current case (a new case gets empty boxes)."""
    generation = case()["generation"]
    return f"{role}_upload" if generation == 0 else f"{role}_upload_{generation}"


def forget_file_if_removed(role: str, key: str) -> None:
    """``on_change`` of an upload box: the user removed the file (✕) → the case forgets it."""
    import streamlit as st

    from pipeline.app.session import session_uploads

    if st.session_state.get(key) is None:
        case()["files"].pop(role, None)
        session_uploads().clear(role)


def keep_file(role: str, *, token: str, name: str, size: int) -> None:
    case()["files"][role] = {"token": token, "name": name, "size": int(size)}


def kept_file(role: str) -> dict[str, Any] | None:
    """The kept upload of ``role`` (token, name, size) when its bytes are still stored."""
    from pipeline.app.session import session_uploads

    info = case()["files"].get(role)
    if info is None:
        return None
    path = session_uploads().path(role)
    if path is None or not path.exists():
        case()["files"].pop(role, None)
        return None
    return info


def new_case() -> None:
    """Forget the case: uploads (bytes deleted), typed values, choices and the result."""
    import streamlit as st

    from pipeline.app.session import session_uploads

    state = case()
    for role in list(state["files"]) + ["ct", "roi"]:
        session_uploads().clear(role)
    state["files"].clear()
    state["widgets"].clear()
    state["generation"] += 1
    # widgets keep their value in the browser unless it is set (a popped key would come back)
    for key, empty in EMPTY_VALUES.items():
        st.session_state[key] = empty
    for key in FORM_KEYS + RESULT_KEYS + VIEWER_KEYS:
        if key not in EMPTY_VALUES:
            st.session_state.pop(key, None)
