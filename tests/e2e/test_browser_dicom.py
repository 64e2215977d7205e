"""The Predict page in a real browser with a DICOM export: a zip of a CT series holding its
RTSTRUCT is uploaded, the structure set's ROI is chosen in the select box, Predict scores it, and
the DICOM SEG / SR / PDF download buttons give valid DICOM objects of the CT's study.

Never downloads a browser: uses ``/usr/bin/chromium`` and is skipped when it is missing.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from browser_helpers import ARTIFACTS, CHROMIUM, enter_labs, launch_chromium, open_predict_page, running_app, \
    wait_uploads_done_and_idle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline" / "io"))
from dicom_factory import phantom, write_ct_series, write_rtstruct  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


def test_dicom_zip_roi_select_box_and_dicom_downloads(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ph = phantom()
    case = write_ct_series(ph.ct, tmp_path / "export")
    box = np.zeros(ph.roi.shape_zyx, np.uint8)
    box[20:30, 30:60, 30:60] = 1
    write_rtstruct(case, {"Box": box, "GTV-1": ph.roi.array}, tmp_path / "export" / "rtstruct.dcm")
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in (tmp_path / "export").iterdir():
            zf.write(p, f"export/{p.name}")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(bundle=REPO / "weights" / "demo", workdir=tmp_path) as app, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        try:
            open_predict_page(page, app.url)
            uploader = page.get_by_test_id("stFileUploader").filter(has_text="CT scan")
            uploader.locator("input[type=file]").set_input_files(str(archive))
            page.get_by_text("study.zip").wait_for(timeout=120_000)
            wait_uploads_done_and_idle(page)
            select = page.get_by_test_id("stSelectbox").filter(has_text="Tumour ROI in the RTSTRUCT")
            select.wait_for(timeout=60_000)
            enter_labs(page, {"CEA": 4, "CA125": 18, "age": 66})
            wait_uploads_done_and_idle(page)
            page.get_by_role("button", name="Predict").click()
            metric = page.get_by_test_id("stMetricValue").first
            metric.wait_for(timeout=300_000)
            assert 0.0 <= float(metric.inner_text().rstrip(" %")) / 100 <= 1.0
            page.get_by_text("ROI: RTSTRUCT ROI 'GTV-1' rasterised onto the CT").first.wait_for(timeout=60_000)
            got = {}
            for label in ("Download DICOM SEG (scored ROI)", "Download DICOM SR (measurements)",
                          "Download DICOM PDF report"):
                button = page.get_by_role("button", name=label)
                button.wait_for(timeout=180_000)
                with page.expect_download(timeout=60_000) as info:
                    button.click()
                got[label] = pydicom.dcmread(io.BytesIO(Path(info.value.path()).read_bytes()))
            seg, sr, pdf = got.values()
            assert seg.Modality == "SEG" and sr.Modality == "SR" and pdf.Modality == "DOC"
            assert {d.StudyInstanceUID for d in got.values()} == {case.study_uid}
            assert pdf.EncapsulatedDocument.startswith(b"%PDF")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "predict-dicom-failure.png"), full_page=True)
            sys.stderr.write(app.log_tail())
            raise
        finally:
            page.close()
            browser.close()
