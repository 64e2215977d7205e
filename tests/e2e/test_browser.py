"""The app in a real browser: `streamlit run app.py` + Debian's Chromium driven by Playwright.

Uploads a phantom CT and ROI on the Predict page, enters the labs, presses Predict, waits for the
probability, checks that the SHAP charts and the CT viewer (with the ROI) rendered, downloads the PDF report
and reads it back with pypdf. Prints the cold-start time (process start → first page shown) and
the click → result time; saves screenshots to ``test-artifacts/``.

Never downloads a browser: uses ``/usr/bin/chromium`` and is skipped when it is missing.
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import pytest

from browser_helpers import (
    ARTIFACTS,
    CHROMIUM,
    enter_labs,
    open_predict_page,
    phantom_cases,
    running_app,
    upload_case,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


@pytest.fixture(scope="module")
def app_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running app (repo root as working directory so .streamlit/config.toml applies)."""
    with running_app(bundle=tiny_bundle, workdir=tmp_path_factory.mktemp("browser")) as app:
        yield {"url": app.url, "t0": app.t0, "health_s": app.health_s, "audit": app.audit, "log": app.log}


def test_predict_in_browser(browser, app_server, phantom_cohort: Path) -> None:
    from pypdf import PdfReader

    ARTIFACTS.mkdir(exist_ok=True)
    case = phantom_cases(phantom_cohort)[0]
    ct, roi, row = case.ct, case.roi, case.row
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        # cold start: process start → the first page is shown
        page.goto(app_server["url"], wait_until="domcontentloaded")
        page.get_by_role("heading", name="PleuraRisk", exact=True).wait_for(timeout=120_000)
        cold_start_s = time.perf_counter() - app_server["t0"]
        assert page.get_by_text("Research use only").first.is_visible()

        open_predict_page(page, app_server["url"])
        upload_case(page, case)  # returns once the uploader shows the ROI as received
        enter_labs(page, case.labs)
        page.wait_for_timeout(500)

        t_click = time.perf_counter()
        page.get_by_role("button", name="Predict").click()
        metric = page.get_by_test_id("stMetricValue").first
        metric.wait_for(timeout=300_000)
        click_to_result_s = time.perf_counter() - t_click
        probability = float(metric.inner_text().rstrip(" %")) / 100
        assert 0.0 <= probability <= 1.0
        assert page.get_by_test_id("stAlert").filter(has_text="Prediction failed").count() == 0
        # the band label is coloured text, never markup shown as text
        band = page.get_by_text(re.compile(r"^(Low|Intermediate|High) band$")).first
        band.wait_for(timeout=30_000)
        assert "<span" not in page.locator("body").inner_text()

        # SHAP waterfall + group totals; the NiiVue CT viewer with the ROI loaded
        page.get_by_text("Predicted probability").first.wait_for(timeout=60_000)
        page.get_by_text("Deep (MedicalNet)").first.wait_for(timeout=60_000)
        assert page.locator(".js-plotly-plot").count() >= 3
        viewer = page.frame_locator("iframe[src*='pleura_ct_viewer']")
        viewer.locator("body[data-state='ready'][data-roi-key]:not([data-roi-key=''])").wait_for(timeout=60_000)

        # PDF report
        pdf_button = page.get_by_role("button", name="Download PDF report")
        pdf_button.wait_for(timeout=120_000)
        with page.expect_download(timeout=60_000) as info:
            pdf_button.click()
        pdf_bytes = Path(info.value.path()).read_bytes()
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf_bytes)).pages)
        assert "Research use only; demo model trained on synthetic data." in text
        assert f"{probability:.2f}" in text
        assert ct.name not in text and row["case_id"] not in text  # no file names / ids in the report

        # Streamlit scrolls inside its own container: a tall viewport captures the whole result
        page.set_viewport_size({"width": 1400, "height": 3400})
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "predict.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})
        print(f"\ncold start (process start → first page shown): {cold_start_s:.1f} s "
              f"(server healthy after {app_server['health_s']:.1f} s)")
        print(f"click → result (first prediction; the model started loading when Predict opened): {click_to_result_s:.1f} s")

        # a second prediction reuses the cached model
        age_box = page.get_by_role("textbox", name="Age (years)", exact=True)
        age_box.fill(str(float(row["age"]) + 1))
        age_box.press("Enter")
        page.wait_for_timeout(500)
        t_click = time.perf_counter()
        page.get_by_role("button", name="Predict").click()
        page.get_by_text("Done in").first.wait_for(timeout=300_000)
        page.get_by_test_id("stMetricValue").first.wait_for(timeout=60_000)
        print(f"click → result (second prediction, model cached): {time.perf_counter() - t_click:.1f} s")
        lines = app_server["audit"].read_text().splitlines()
        assert len(lines) >= 1 and ct.name not in lines[0]
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "predict-failure.png"), full_page=True)
        sys.stderr.write(app_server["log"].read_text(errors="replace")[-4000:])
        raise
    finally:
        page.close()


def test_bad_upload_shows_error_in_browser(browser, app_server, tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        open_predict_page(page, app_server["url"])
        page.get_by_test_id("stFileUploader").filter(has_text="CT scan").locator("input[type=file]").set_input_files(str(png))
        page.get_by_text("this file is a PNG picture").wait_for(timeout=60_000)
        assert page.get_by_role("button", name="Predict").is_enabled()
        page.screenshot(path=str(ARTIFACTS / "predict-bad-upload.png"))
    finally:
        page.close()
