"""Home: what PleuraRisk does, for whom, and the loaded model's card summary."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pipeline.app import model_facts, session
from pipeline.app.navigation import require_app_navigation

require_app_navigation()
info = session.page_header()
st.title("PleuraRisk")
st.markdown(
    "PleuraRisk estimates the probability of **visceral pleural invasion (VPI)** of a lung cancer from a "
    "chest CT, a mask of the tumour (ROI) drawn on that CT, and three clinical values: **CEA** (ng/mL), "
    "**CA125** (U/mL) and **age** (years)."
)
st.markdown(
    "**For whom:** clinicians and researchers studying pre-operative VPI assessment. It is a research tool: "
    "the number it gives is a model output to be read alongside every other finding, never on its own."
)
with st.expander("How it works", expanded=False):
    if info.ok:
        st.markdown(model_facts.how_it_works(info.manifest))
    else:
        st.markdown("No model is loaded; see the Model page.")

c1, c2, c3 = st.columns(3)
c1.page_link("pages/predict.py", label="Predict one case", icon=":material/monitor_heart:")
c2.page_link("pages/batch.py", label="Score a batch", icon=":material/table_view:")
c3.page_link("pages/model.py", label="About the model", icon=":material/model_training:")

st.subheader("Loaded model")
if not info.ok:
    st.error(info.error)
else:
    st.dataframe(pd.DataFrame(info.summary_rows(), columns=["", "value"]), hide_index=True, key="home_card")
    if info.model_card:
        with st.expander("Model card", expanded=False):
            st.markdown(info.model_card)
