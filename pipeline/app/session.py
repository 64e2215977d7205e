"""Streamlit glue (streamlit imported lazily so the other app modules stay importable without it):
model cache keyed by bundle path, the session's upload folder and chosen bundle, the notice
banner, errors shown to the user.
"""


from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.io.archive import UploadFolder
from pipeline.core.errors import PleuraRiskError
from pipeline.app.bundles import BundleInfo, GENERIC_ERROR, bundle_stamp, describe_bundle, initial_bundle_path


_SCORER_CACHE: Callable[..., Any] | None = None
_INFO_CACHE: Callable[..., Any] | None = None


def cached_scorer(path: str | os.PathLike[str]):  # noqa: ANN201
    """The Scorer of a bundle, loaded once per process (``st.cache_resource``), keyed by the
    bundle path and its files' size/mtime."""
    import streamlit as st

    global _SCORER_CACHE
    if _SCORER_CACHE is None:
        @st.cache_resource(show_spinner=False, max_entries=2)
        def _load(path_str: str, stamp: tuple):  # noqa: ANN202, ARG001 - stamp: part of the cache key
            from pipeline.serving.score import Scorer

            return Scorer(path_str)

        _SCORER_CACHE = _load
    return _SCORER_CACHE(str(Path(path).resolve()), bundle_stamp(path))


_WARMING: set[tuple] = set()
_WARMING_LOCK = threading.Lock()


def warm_up_scorer(path: str | os.PathLike[str]) -> None:
    """Start loading a bundle's Scorer in a background thread (once per bundle version), so the
    first Predict click does not wait for the model while the user is still uploading files.
    A click during loading waits for the same load (``st.cache_resource`` locks per key); a
    failed load is not cached and is reported by the click."""
    import logging

    key = (str(Path(path).resolve()), bundle_stamp(path))
    with _WARMING_LOCK:
        if key in _WARMING:
            return
        _WARMING.add(key)

    def load() -> None:
        from pipeline.app.viewer.trace import mark

        mark("model warm-up starts")
        try:
            cached_scorer(path)
            mark("model warm-up done")
        except Exception:  # noqa: BLE001 - the Predict click reports it to the user
            logging.getLogger("pleurarisk.app").warning("background model load failed", exc_info=True)
            with _WARMING_LOCK:
                _WARMING.discard(key)

    threading.Thread(target=load, name="pleura-model-warm-up", daemon=True).start()


def cached_bundle_info(path: str | os.PathLike[str] | None) -> BundleInfo:
    """:func:`describe_bundle`, cached per process by path and file stamps."""
    import streamlit as st

    global _INFO_CACHE
    if _INFO_CACHE is None:
        @st.cache_resource(show_spinner=False, max_entries=16)
        def _describe(path_str: str | None, stamp: tuple) -> BundleInfo:  # noqa: ARG001 - cache key
            return describe_bundle(path_str)

        _INFO_CACHE = _describe
    if path is None:
        return describe_bundle(None)
    return _INFO_CACHE(str(Path(path).resolve()), bundle_stamp(path))


def session_bundle_path() -> Path | None:
    """The bundle this session uses (chosen on the Model page; default :func:`initial_bundle_path`)."""
    import streamlit as st

    if "bundle_path" not in st.session_state:
        first = initial_bundle_path()
        st.session_state["bundle_path"] = str(first) if first else None
    value = st.session_state["bundle_path"]
    return Path(value) if value else None


def session_uploads() -> UploadFolder:
    """This session's private upload folder (deleted when the session ends)."""
    import streamlit as st

    uploads = st.session_state.get("_uploads")
    if not isinstance(uploads, UploadFolder) or not uploads.alive:
        uploads = UploadFolder()
        st.session_state["_uploads"] = uploads
    return uploads


def page_header() -> BundleInfo:
    """Top of every page: the model's notice as the page's one banner (the same fixed place on
    every page; no other notice is shown on the page) and the model in use in the sidebar.

    Returns the session's :class:`BundleInfo` (check ``.ok`` before predicting).
    """
    import streamlit as st

    info = cached_bundle_info(session_bundle_path())
    st.warning(f"**{info.notice}**", icon=":material/info:")
    with st.sidebar:
        st.markdown("**PleuraRisk**: visceral pleural invasion risk from CT, tumour ROI and labs.")
        st.caption(f"Model: **{info.name}** (`{info.short_id}`), {info.signer_label}" if info.ok
                   else "Model: none loaded (see the Model page)")
    return info


def error_text(err: BaseException) -> str:
    """The user-facing message of ``err`` (PleuraRiskError) or a short generic one."""
    return str(err) if isinstance(err, PleuraRiskError) else f"{GENERIC_ERROR} ({type(err).__name__})"


def show_error(err: BaseException) -> None:
    """``st.error`` with the user-facing message (:func:`error_text`)."""
    import streamlit as st

    st.error(error_text(err), icon=":material/error:")
