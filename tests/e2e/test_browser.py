"""The app in a real browser: `streamlit run app.py` + Debian's Chromium driven by Playwright.

Uploads a phantom CT and ROI on the Predict page, enters the labs, presses Predict, waits for the
probability, checks that the SHAP charts and the slice viewer rendered, downloads the PDF report
and reads it back with pypdf. Prints the cold-start time (process start → first page shown) and
the click → result time; saves screenshots to ``test-artifacts/``.

Never downloads a browser: uses ``/usr/bin/chromium`` and is skipped when it is missing.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamlit did not become healthy within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def app_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running app (repo root as working directory so .streamlit/config.toml applies)."""
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PLEURA_BUNDLE": str(tiny_bundle), "PLEURA_AUDIT_LOG": str(tmp / "audit.jsonl"),
           "PLEURA_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    log_path = tmp / "streamlit.log"
    log = log_path.open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_healthy(url, proc, timeout_s=120)
        health_s = time.perf_counter() - t0
        yield {"url": url, "t0": t0, "health_s": health_s, "audit": tmp / "audit.jsonl", "log": log_path}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM),
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def _phantom_case(phantom_cohort: Path) -> tuple[Path, Path, dict[str, str]]:
    with phantom_cohort.open(newline="") as fh:
        row = next(csv.DictReader(fh))
    folder = phantom_cohort.parent
    return folder / row["ct_path"], folder / row["roi_path"], row


def test_predict_in_browser(browser, app_server, phantom_cohort: Path) -> None:
    from pypdf import PdfReader

    ARTIFACTS.mkdir(exist_ok=True)
    ct, roi, row = _phantom_case(phantom_cohort)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        # cold start: process start → the first page is shown
        page.goto(app_server["url"], wait_until="domcontentloaded")
        page.get_by_role("heading", name="PleuraRisk", exact=True).wait_for(timeout=120_000)
        cold_start_s = time.perf_counter() - app_server["t0"]
        assert page.get_by_text("Research use only").first.is_visible()

        page.goto(f"{app_server['url']}/predict", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Predict one case").wait_for(timeout=60_000)
        uploader = page.get_by_test_id("stFileUploader")
        uploader.filter(has_text="CT scan").locator("input[type=file]").set_input_files(str(ct))
        uploader.filter(has_text="Tumour ROI mask").locator("input[type=file]").set_input_files(str(roi))
        page.get_by_text(roi.name).wait_for(timeout=60_000)  # shown in the uploader once received
        for label, value in (("CEA (ng/mL)", row["CEA"]), ("CA125 (U/mL)", row["CA125"]), ("Age (years)", row["age"])):
            box = page.get_by_role("spinbutton", name=label, exact=True)
            box.fill(str(value))
            box.press("Enter")
        page.wait_for_timeout(500)

        t_click = time.perf_counter()
        page.get_by_role("button", name="Predict").click()
        metric = page.get_by_test_id("stMetricValue").first
        metric.wait_for(timeout=300_000)
        click_to_result_s = time.perf_counter() - t_click
        probability = float(metric.inner_text())
        assert 0.0 <= probability <= 1.0
        assert page.get_by_test_id("stAlert").filter(has_text="Prediction failed").count() == 0

        # SHAP waterfall + group totals + viewer (plotly renders an <image> for the CT slice)
        page.get_by_text("Predicted probability").first.wait_for(timeout=60_000)
        page.get_by_text("Deep (MedicalNet)").first.wait_for(timeout=60_000)
        page.locator(".js-plotly-plot image").first.wait_for(state="attached", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() >= 4

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
        age_box = page.get_by_role("spinbutton", name="Age (years)", exact=True)
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
        page.goto(f"{app_server['url']}/predict", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Predict one case").wait_for(timeout=60_000)
        page.get_by_test_id("stFileUploader").filter(has_text="CT scan").locator("input[type=file]").set_input_files(str(png))
        page.get_by_text("this file is a PNG picture").wait_for(timeout=60_000)
        assert page.get_by_role("button", name="Predict").is_enabled()
        page.screenshot(path=str(ARTIFACTS / "predict-bad-upload.png"))
    finally:
        page.close()
