"""PleuraRisk web app (Streamlit): ``pleura app`` or ``streamlit run app.py``.

This file only sets up the page and the navigation (:mod:`pipeline.app.navigation`); the pages
live in ``pages/`` (each starts with ``require_app_navigation()`` and
``pipeline.app.session.page_header()``) and every computation in ``pipeline/`` (see ``pipeline/app/``).

Environment: ``PLEURA_BUNDLE`` (model bundle folder, default ``weights/demo``),
``PLEURA_AUDIT_LOG`` (default ``./audit/audit.jsonl``), ``PLEURA_THREADS`` (torch threads).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `streamlit run /elsewhere/app.py` still finds the package
    sys.path.insert(0, str(ROOT))

from pipeline.app.navigation import run_app  # noqa: E402
from pipeline.io.upload_sweep import sweep_once  # noqa: E402

sweep_once()  # uploads of an earlier server killed by SIGKILL (patient data) do not stay on disk

run_app(ROOT)

# Once the page has been sent, start loading the session's model in the background (once per
# bundle version per server), so the first Predict click does not wait for torch/skops/shap
# imports and the weights (≈ 6–12 s on the 2-core reference machine).
from pipeline.app import session  # noqa: E402

_bundle = session.session_bundle_path()
if _bundle is not None and session.cached_bundle_info(_bundle).ok:
    session.warm_up_scorer(_bundle)
