"""The app's pages and navigation (``st.navigation`` over the top-level ``pages/`` folder).

Streamlit treats an app whose main script sits next to a ``pages/`` folder as a legacy
"pages directory" app until a script run calls ``st.navigation``. A deep link (``/predict``)
opened first on a fresh server therefore ran ``pages/predict.py`` on its own, with the
file-based sidebar ("app, batch, home, …"), no page config and no icons (Streamlit issue
#9624). Every page starts with :func:`require_app_navigation`: when the page was not started by
``app.py``'s navigation it declares the app's navigation (which switches Streamlit to it for
the whole server) and reruns, so the same URL is served by ``app.py`` from the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.env import REPO_ROOT

PAGE_ICON = "🫁"
"""Browser tab icon: an emoji (drawn by the browser; a ``:material/…:`` icon is fetched from the internet)."""


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url_path: str | None  # None: the default page ("/")


PAGES = (
    PageSpec("home.py", "Home", ":material/home:", None),
    PageSpec("predict.py", "Predict", ":material/monitor_heart:", "predict"),
    PageSpec("batch.py", "Batch", ":material/table_view:", "batch"),
    PageSpec("model.py", "Model", ":material/model_training:", "model"),
)

def _pages(root: Path) -> list:  # noqa: ANN001
    import streamlit as st

    out = []
    for spec in PAGES:
        path = str(root / "pages" / spec.file)
        if spec.url_path is None:
            out.append(st.Page(path, title=spec.title, icon=spec.icon, default=True))
        else:
            out.append(st.Page(path, title=spec.title, icon=spec.icon, url_path=spec.url_path))
    return out


def run_app(root: Path = REPO_ROOT) -> None:
    """Page config, navigation and the chosen page (``app.py`` calls this)."""
    import streamlit as st

    st.set_page_config(page_title="PleuraRisk", page_icon=PAGE_ICON, layout="wide")
    st.navigation(_pages(root)).run()


def require_app_navigation() -> None:
    """First line of every page. In Streamlit's legacy pages-folder mode (a deep link opened
    first on a fresh server; also every ``AppTest`` run) the page runs ``app.py``'s page config
    and navigation itself, which serves this same page (nested, in this script run, so a click
    is not lost) and switches the server to that navigation; the outer run then stops. A no-op
    when ``app.py``'s navigation is already in charge."""
    from streamlit.runtime.pages_manager import PagesManager

    if not PagesManager.uses_pages_directory:  # st.navigation has run: app.py serves every page
        return
    import streamlit as st

    run_app(REPO_ROOT)
    st.stop()
