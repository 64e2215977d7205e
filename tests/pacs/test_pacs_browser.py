"""The PACS round trip in a real browser: the app (``streamlit run``) with ``PLEURA_DICOMWEB_*``
pointed at the real Orthanc of the conftest; on the Predict page the study is searched by patient
ID, retrieved, its RTSTRUCT ROI chosen, scored, and "Send to PACS" stores the SEG, SR and PDF,
which are then read back from the PACS through DICOMweb.

Never downloads a browser: uses ``/usr/bin/chromium`` and is skipped when it is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from browser_helpers import ARTIFACTS, CHROMIUM, enter_labs, launch_chromium, open_predict_page, read_probability, \
    running_app, \
    wait_uploads_done_and_idle  # noqa: E402
from orthanc_helpers import upload_phantom_study  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


def test_search_retrieve_score_and_send_to_pacs_in_the_browser(orthanc, tmp_path: Path) -> None:
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass
    from playwright.sync_api import sync_playwright

    study = upload_phantom_study(orthanc, tmp_path / "study", patient_id="PH-BROWSER", seed=3)["study"]
    before = orthanc.instance_count(study)
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(bundle=REPO / "weights" / "demo", workdir=tmp_path, extra_env=orthanc.env()) as app, \
            sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_predict_page(page, app.url)
            page.get_by_text("… or take the study from the PACS").click()
            page.get_by_label("Patient ID").fill("PH-BROWSER")
            page.get_by_role("button", name="Search the PACS").click()
            wait_uploads_done_and_idle(page)
            page.get_by_role("combobox", name="Study").focus()
            page.keyboard.press("ArrowDown")  # opens the list (a click on this combobox does not, here)
            page.get_by_role("option").first.click()
            wait_uploads_done_and_idle(page)
            page.get_by_role("button", name="Retrieve this study").click()
            page.get_by_text("Retrieved: CT phantom CT (64 images)").wait_for(timeout=120_000)
            page.get_by_test_id("stSelectbox").filter(has_text="Tumour ROI in the RTSTRUCT").wait_for(timeout=60_000)
            enter_labs(page, {"CEA": 4, "CA125": 18, "age": 66})
            wait_uploads_done_and_idle(page)
            page.get_by_role("button", name="Predict").click()
            probability = read_probability(page)  # shown in percent
            assert 0.0 <= probability <= 1.0
            page.get_by_role("button", name="Send to PACS (SEG, SR and PDF report)").click()
            page.get_by_text("PACS: stored SEG, SR, PDF (in the study)").wait_for(timeout=120_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "predict-pacs-failure.png"), full_page=True)
            sys.stderr.write(app.log_tail())
            raise
        finally:
            page.close()
            browser.close()
    assert orthanc.instance_count(study) == before + 3
    web = DICOMwebClient(url=orthanc.dicomweb, session=create_session_from_user_pass(orthanc.user, orthanc.password))
    modalities = sorted(s["00080060"]["Value"][0] for s in web.search_for_series(study_instance_uid=study))
    assert modalities == ["CT", "DOC", "RTSTRUCT", "SEG", "SR"]
    assert study not in (tmp_path / "audit.jsonl").read_text()
