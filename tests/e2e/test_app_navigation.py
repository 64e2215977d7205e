"""Navigation and offline behaviour of the app in Debian's Chromium (Playwright), on a server the
module starts itself (``streamlit run app.py`` with the demo bundle).

- A deep link (``/batch``, ``/predict``) opened first on a fresh server shows the app's own
  navigation (Home, Predict, Batch, Model), never Streamlit's file-based sidebar.
- No page asks anything of any host but the app's own: every request of every page is recorded.
- One research-use notice per page.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from browser_helpers import CHROMIUM, REPO, running_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]

DEMO_BUNDLE = REPO / "weights" / "demo"
NAV_TITLES = ["Home", "Predict", "Batch", "Model"]
PAGE_HEADINGS = {"": "PleuraRisk", "predict": "Predict one case", "batch": "Score a batch", "model": "Model"}


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory: pytest.TempPathFactory):
    with running_app(bundle=DEMO_BUNDLE, workdir=tmp_path_factory.mktemp("nav")) as app:
        yield app


def _nav_links(page) -> list[str]:  # noqa: ANN001
    nav = page.get_by_test_id("stSidebarNav")
    nav.wait_for(timeout=60_000)
    return [t.strip() for t in nav.get_by_test_id("stSidebarNavLink").all_inner_texts()]


def test_deep_links_first_on_a_fresh_server_show_the_app_navigation(browser, fresh_app) -> None:
    """Must run first in this module: nobody has opened ``/`` on this server yet."""
    for path in ("batch", "predict"):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        try:
            page.goto(f"{fresh_app.url}/{path}", wait_until="domcontentloaded")
            page.get_by_role("heading", name=PAGE_HEADINGS[path], exact=True).wait_for(timeout=120_000)
            links = _nav_links(page)
            assert [lnk.split("\n")[-1] for lnk in links] == NAV_TITLES, links
            assert "app" not in " ".join(links).lower().split()
            assert page.url.rstrip("/").endswith(f"/{path}")
        finally:
            page.close()


def test_no_request_leaves_the_app_and_one_notice_per_page(browser, fresh_app) -> None:
    origin = urlparse(fresh_app.url).netloc
    outside: list[str] = []
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("request", lambda req: outside.append(req.url)
            if urlparse(req.url).scheme in ("http", "https", "ws", "wss") and urlparse(req.url).netloc != origin
            else None)
    try:
        for path, heading in PAGE_HEADINGS.items():
            page.goto(f"{fresh_app.url}/{path}", wait_until="networkidle")
            page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=120_000)
            page.wait_for_timeout(1500)
            notices = page.locator("[data-testid=stAlert], [data-testid=stCaptionContainer], "
                                   "[data-testid=stSidebar] [data-testid=stMarkdownContainer]"
                                   ).filter(has_text="Research use only")  # banners, captions (not the model card)
            visible = [n for n in notices.all() if n.is_visible()]
            assert len(visible) == 1, f"/{path}: {len(visible)} research-use notices"
        icon = page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\").href")
        assert not icon.startswith("http") or urlparse(icon).netloc == origin, icon
    finally:
        page.close()
    assert outside == [], outside
