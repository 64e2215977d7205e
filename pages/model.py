"""Model: choose a bundle; its card, training metrics, report plots and identity (hashes, versions)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from pipeline.app import bundles, session
from pipeline.app.navigation import require_app_navigation

require_app_navigation()
session.page_header()
st.title("Model")
current = session.session_bundle_path()
options = [str(p) for p in bundles.bundle_choices()]
if current is not None and str(current) not in options:
    options.insert(0, str(current))
if not options:
    st.error(bundles.NO_BUNDLE_HELP)
    st.stop()

chosen = st.selectbox("Model bundle", options, index=options.index(str(current)) if current is not None else 0,
                      key="model_choice", format_func=lambda p: f"{Path(p).name}  ({p})",
                      help="Bundles in weights/ and the one named by $PLEURA_BUNDLE.")
info = session.cached_bundle_info(chosen)
if current is not None and Path(chosen) == current:
    st.caption("This is the model used for predictions in this session.")
elif st.button("Use this model for predictions", key="use_model", disabled=not info.ok):
    st.session_state["bundle_path"] = chosen
    st.session_state.pop("outcome", None)
    st.session_state.pop("batch_result", None)
    st.rerun()

if not info.ok:
    st.error(info.error)
    st.stop()

if info.signature.trusted:
    st.success(f"**Signature**: {info.signer_label}", icon=":material/verified:")
else:
    st.error(f"**Signature**: {info.signer_label}", icon=":material/gpp_bad:")
tab_card, tab_train, tab_report, tab_id = st.tabs(["Model card", "Training", "Report", "Identity"])
with tab_card:
    rows = info.summary_rows()
    st.dataframe(pd.DataFrame(rows, columns=["", "value"]), hide_index=True, key="card_table")
    if info.model_card:
        st.markdown(info.model_card)
    else:
        st.caption("This bundle has no MODEL_CARD.md.")
with tab_train:
    rows = bundles.training_rows(info.manifest)
    if rows:
        st.dataframe(pd.DataFrame(rows, columns=["metric", "value"]), hide_index=True, key="training_table")
    else:
        st.caption("The manifest records no training summary.")
    with st.expander("Full training record (JSON)"):
        st.json(info.manifest.get("training") or {}, expanded=False)
with tab_report:
    if not info.report_files:
        st.caption("This bundle has no report plots (report/*.png, *.svg or *.html).")
    for rel in info.report_files:
        path = info.path / rel
        if rel.lower().endswith(".png"):
            st.image(str(path), caption=rel)
        elif rel.lower().endswith(".svg"):
            st.image(path.read_text(encoding="utf-8", errors="replace"), caption=rel)
        else:
            # HTML/JSON/CSV reports are offered as downloads, not embedded (no script from a bundle runs here).
            st.download_button(f"Download {rel}", path.read_bytes(), file_name=Path(rel).name, key=f"dl_{rel}",
                               on_click="ignore")
with tab_id:
    st.markdown(f"**Bundle id** (sha256 of manifest.json): `{info.bundle_id}`")
    st.markdown(f"**Folder**: `{info.path}`")
    sig = info.signature
    st.markdown(f"**Signature**: {sig.label}")
    if sig.key_id:
        st.markdown(f"**Signing key id** (sha256 of the Ed25519 public key): `{sig.key_id}` · signed at {sig.signed_at}")
    files = info.manifest.get("files") or {}
    st.dataframe(pd.DataFrame(sorted(files.items()), columns=["file", "sha256 (verified)"]), hide_index=True,
                 key="files_table")
    st.markdown("**Package versions** (bundle built with / installed now)")
    st.dataframe(pd.DataFrame(bundles.version_rows(info.manifest)), hide_index=True, key="versions_table")
