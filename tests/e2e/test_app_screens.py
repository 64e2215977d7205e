"""The Predict and Batch screens as a clinician meets them, in Debian's Chromium (Playwright)
against a ``streamlit run app.py`` this module starts (demo bundle; phantom cases), at 1440×900
and on a 390×844 phone.

Covers issue 18's faults: decimal comma and exact values (3), a stale result hidden and the case
kept across pages with a New case reset (4), time from the click (5), bands explained at the
threshold (6), every lab error as typed (7), the batch page (8: the cases found before running,
honest scored/failed counts, plain headers without "None", inputs/threshold in table and CSV, a
row opening its case, an allow-listed server folder refusing paths and symlinks outside it),
and what the result screen shows (percentage, measurements with units, threshold metrics with
their cohort, no Plotly toolbar, references printed on the PDF, phone layout).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from browser_helpers import (
    ARTIFACTS, CHROMIUM, REPO, enter_labs, open_predict_page, phantom_cases, read_probability,
    running_app, set_number, upload_case, wait_uploads_done_and_idle,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]

DEMO_BUNDLE = REPO / "weights" / "demo"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory, phantom_cohort: Path) -> Path:
    """An administrator's data root with a 3-case cohort folder, and a folder outside it that a
    symlink inside the root points to."""
    root = tmp_path_factory.mktemp("data_root")
    outside = tmp_path_factory.mktemp("outside_root")
    cohort = root / "cohort"
    cohort.mkdir()
    cases = phantom_cases(phantom_cohort)[:3]
    with (cohort / "clinical.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "CEA", "CA125", "age"])
        for c in cases:
            shutil.copy(c.ct, cohort / c.ct.name)
            shutil.copy(c.roi, cohort / c.roi.name)
            w.writerow([c.row["case_id"], c.row["CEA"], c.row["CA125"], c.row["age"]])
    shutil.copytree(cohort, outside / "secret")
    (root / "escape").symlink_to(outside / "secret", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, data_root: Path):
    with running_app(bundle=DEMO_BUNDLE, workdir=tmp_path_factory.mktemp("screens"),
                     extra_env={"PLEURA_DATA_ROOTS": str(data_root)}) as server:
        yield server


def _alerts(page, kind: str = "stAlertContentError") -> list[str]:  # noqa: ANN001
    return [t.strip() for t in page.get_by_test_id(kind).all_inner_texts()]


def _nav(page, title: str) -> None:  # noqa: ANN001
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()


def _result_visible(page) -> bool:  # noqa: ANN001
    return page.get_by_test_id("stMetricValue").count() > 0 and page.get_by_test_id("stMetricValue").first.is_visible()


def _type_labs(page, labs: dict[str, object]) -> None:  # noqa: ANN001
    """Type each lab and wait for its rerun before the next (a rerun in flight must not eat a value)."""
    for key, value in labs.items():
        enter_labs(page, {key: value})
        wait_uploads_done_and_idle(page)


def _predict(page) -> float:  # noqa: ANN001
    wait_uploads_done_and_idle(page)
    page.get_by_role("button", name="Predict", exact=True).click()
    page.get_by_text("Done in").first.wait_for(timeout=300_000)
    return read_probability(page)


def test_labs_are_checked_as_typed_and_a_decimal_comma_is_a_point(browser, app) -> None:
    page = browser.new_page(viewport=DESKTOP)
    try:
        open_predict_page(page, app.url)
        _type_labs(page, {"CEA": "-3", "age": "15"})
        shown = _alerts(page)  # both range errors, before Predict
        assert any("CEA must be ≥ 0 ng/mL" in s for s in shown) and any("age = 15 years" in s for s in shown), shown
        page.get_by_role("button", name="Predict", exact=True).click()
        page.get_by_text("Predict needs:").wait_for(timeout=60_000)
        listed = page.get_by_test_id("stAlertContentError").filter(has_text="Predict needs:").inner_text()
        for problem in ("Upload a CT scan and a tumour ROI mask", "CEA must be ≥ 0", "CA125 is missing", "age = 15 years"):
            assert problem in listed, listed
        _type_labs(page, {"CEA": "3,2", "CA125": "5.14", "age": "64.7"})
        for text in ("3.2 ng/mL", "5.14 U/mL", "64.7 years"):
            page.get_by_text(f"Used by the model: {text}", exact=True).wait_for(timeout=30_000)
        assert page.get_by_role("textbox", name="CEA (ng/mL)").input_value() == "3,2"  # never rewritten to 32
    finally:
        page.close()


def test_predict_result_stale_inputs_kept_case_and_new_case(browser, app, phantom_cohort: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    case = phantom_cases(phantom_cohort)[0]
    page = browser.new_page(viewport=DESKTOP, accept_downloads=True)
    try:
        open_predict_page(page, app.url)
        upload_case(page, case)
        _type_labs(page, {"CEA": case.labs["CEA"].replace(".", ","), "CA125": case.labs["CA125"],
                          "age": case.labs["age"]})
        probability = _predict(page)
        assert 0.0 <= probability <= 1.0
        status = page.get_by_text(re.compile(r"Done in [0-9.]+ s \(from your click, model loading included\)"))
        assert status.count() >= 1
        # the result screen: band at the threshold, explained; metrics with their cohort; measurements with units
        page.get_by_text(re.compile(r"(Low|Intermediate|High) band")).first.wait_for(timeout=30_000)
        assert page.get_by_text("the model's operating threshold (38 %)").count() >= 1
        page.get_by_text("nested cross-validation of the training cohort (1200 cases, 375 with VPI)",
                         exact=False).first.wait_for(timeout=30_000)
        legend = page.locator(".js-plotly-plot .annotation-text").first
        legend.wait_for(timeout=30_000)
        assert "black tick = operating threshold 38 %" in legend.text_content()  # gauge legend
        assert page.get_by_text(f"CEA {float(case.labs['CEA']):g} ng/mL", exact=False).count() >= 1
        assert page.locator(".modebar-container .modebar").count() == 0  # no Plotly toolbar over titles
        page.get_by_text("Why this probability?").wait_for()
        ticks = page.locator(".js-plotly-plot .ytick text").all_text_contents()
        wf_labels = " ".join(ticks)
        assert "Distance to pleura" in wf_labels or "Texture (" in wf_labels or "Deep image feature" in wf_labels
        measured = [t for t in ticks if not t.startswith(("CEA:", "CA125:", "Age:"))]  # labs: exactly as typed
        assert not re.search(r"\d\.\d{4,}", " ".join(measured)), measured  # rounded values
        # references typed by the user go on the PDF
        page.get_by_role("textbox", name="Patient reference for the PDF (optional)").fill("TEST-REF-77")
        page.get_by_role("textbox", name="Patient reference for the PDF (optional)").press("Enter")
        wait_uploads_done_and_idle(page)
        button = page.get_by_role("button", name="Download PDF report")
        button.wait_for(timeout=120_000)
        with page.expect_download(timeout=120_000) as dl:
            button.click()
        from pypdf import PdfReader

        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(Path(dl.value.path()).read_bytes())).pages)
        assert "Patient reference: TEST-REF-77" in text and case.ct.name not in text
        page.screenshot(path=str(ARTIFACTS / "screens-predict.png"))

        # an input changes → the old result (number, explanation, PDF) is hidden
        set_number(page, "Age (years)", float(case.labs["age"]) + 1)
        wait_uploads_done_and_idle(page)
        page.get_by_text("The inputs changed since the last result, so it is hidden").wait_for(timeout=30_000)
        assert not _result_visible(page) and page.get_by_role("button", name="Download PDF report").count() == 0

        # another page and back: the case (files and values) is kept, the result matches again once restored
        set_number(page, "Age (years)", case.labs["age"])
        _nav(page, "Batch")
        page.get_by_role("heading", name="Score a batch").wait_for(timeout=60_000)
        _nav(page, "Predict")
        page.get_by_role("heading", name="Predict one case").wait_for(timeout=60_000)
        wait_uploads_done_and_idle(page)
        assert page.get_by_role("textbox", name="Age (years)").input_value() == case.labs["age"]
        assert page.get_by_text(case.ct.name).count() >= 1 and page.get_by_text("In use for this case").count() == 2
        page.get_by_test_id("stMetricValue").first.wait_for(timeout=60_000)

        # New case: everything goes
        page.get_by_role("button", name="New case").click()
        wait_uploads_done_and_idle(page)
        assert page.get_by_role("textbox", name="CEA (ng/mL)").input_value() == ""
        assert page.get_by_text("In use for this case").count() == 0 and not _result_visible(page)
    finally:
        page.close()


def test_phone_layout_shows_the_result_without_sideways_scrolling(browser, app, phantom_cohort: Path) -> None:
    case = phantom_cases(phantom_cohort)[1]
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        open_predict_page(page, app.url)
        upload_case(page, case)
        _type_labs(page, case.labs)
        _predict(page)
        page.get_by_text("Why this probability?").wait_for()
        page.wait_for_timeout(1500)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, width
        # axis titles of the explanation charts are inside their charts (not cut off)
        for box in page.locator(".js-plotly-plot").all():
            if box.locator(".g-xtitle text").count() == 0:
                continue
            chart = box.bounding_box()
            title = box.locator(".g-xtitle text").first.bounding_box()
            assert title["y"] + title["height"] <= chart["y"] + chart["height"] + 1
            assert title["x"] >= chart["x"] - 1 and title["x"] + title["width"] <= chart["x"] + chart["width"] + 1
        page.screenshot(path=str(ARTIFACTS / "screens-predict-phone.png"))
    finally:
        page.close()


def _batch_zip(phantom_cohort: Path, n: int) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    rows = ["case_id,CEA,CA125,age"]
    with zipfile.ZipFile(buf, "w") as zf:
        for c in phantom_cases(phantom_cohort)[:n]:
            zf.write(c.ct, c.ct.name)
            zf.write(c.roi, c.roi.name)
            rows.append(f"{c.row['case_id']},{c.row['CEA']},{c.row['CA125']},{c.row['age']}")
        first = phantom_cases(phantom_cohort)[0]
        zf.writestr("broken_ct.nii.gz", b"\x89PNG\r\n\x1a\n" + bytes(3000))
        zf.write(first.roi, "broken_roi.nii.gz")
        rows.append("broken,3,20,60")
    return buf.getvalue(), ("\n".join(rows) + "\n").encode()


def test_batch_lists_cases_counts_honestly_and_opens_a_row(browser, app, phantom_cohort: Path, tmp_path: Path) -> None:
    zip_bytes, csv_bytes = _batch_zip(phantom_cohort, 2)
    (tmp_path / "cases.zip").write_bytes(zip_bytes)
    (tmp_path / "clinical.csv").write_bytes(csv_bytes)
    page = browser.new_page(viewport=DESKTOP, accept_downloads=True)
    try:
        page.goto(f"{app.url}/batch", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Score a batch").wait_for(timeout=120_000)
        uploader = page.get_by_test_id("stFileUploader")
        uploader.filter(has_text="Clinical values").locator("input[type=file]").set_input_files(str(tmp_path / "clinical.csv"))
        wait_uploads_done_and_idle(page)
        uploader.filter(has_text="Cases (.zip)").locator("input[type=file]").set_input_files(str(tmp_path / "cases.zip"))
        wait_uploads_done_and_idle(page)
        page.get_by_text("3 cases found").wait_for(timeout=60_000)  # listed before running; CSV kept after the zip
        page.get_by_role("button", name="Run batch").click()
        try:
            page.get_by_text(re.compile(r"3 of 3 cases done: 2 scored, 1 failed")).wait_for(timeout=300_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "screens-batch-failure.png"), full_page=True)
            raise
        wait_uploads_done_and_idle(page, timeout_ms=300_000)
        grid = page.get_by_test_id("stDataFrame").last
        headers = grid.locator("[role=columnheader]").all_inner_texts()
        assert "VPI probability" in " ".join(headers) and "risk_band" not in " ".join(headers), headers
        cells = " ".join(grid.locator("[role=gridcell]").all_inner_texts())
        assert "None" not in cells and "failed" in cells and "CT" in cells  # a readable error sentence
        with page.expect_download(timeout=60_000) as dl:
            page.get_by_role("button", name="Download results CSV").click()
        with open(dl.value.path(), newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert {"CEA_ng_mL", "CA125_U_mL", "age_years", "threshold", "above_threshold"} <= set(rows[0])
        assert {r["status"] for r in rows} == {"ok", "error"}
        # a row opens that case's result
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
        page.get_by_text(re.compile(r"^Case \S+$")).first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "screens-batch.png"))
    finally:
        page.close()


def test_batch_from_a_server_folder_stays_inside_the_allowed_roots(browser, app, data_root: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.goto(f"{app.url}/batch", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Score a batch").wait_for(timeout=120_000)
        page.get_by_text("Folder on the server").click()
        box = page.get_by_role("textbox", name="Server folder with the cases and clinical.csv")
        for path, message in ((str(data_root.parent), "outside the folders the administrator allows"),
                              (str(data_root / "escape"), "outside the folders the administrator allows"),
                              (str(data_root / "cohort" / ".." / ".." ), "outside the folders the administrator allows"),
                              (str(data_root / "nope"), "does not exist")):
            box.fill(path)
            box.press("Enter")
            wait_uploads_done_and_idle(page)
            shown = " ".join(_alerts(page))
            assert message in shown and str(data_root) not in shown, (path, shown)
        box.fill(str(data_root / "cohort"))
        box.press("Enter")
        page.get_by_text("3 cases found").wait_for(timeout=60_000)
        assert os.environ.get("PLEURA_DATA_ROOTS") is None  # set only for the server
    finally:
        page.close()
