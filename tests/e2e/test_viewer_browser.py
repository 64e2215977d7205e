"""The CT viewer and click-to-segment in a real browser (`streamlit run app.py` + Debian's Chromium).

Uploads a phantom CT *without* a mask; the NiiVue viewer renders (a WebGL canvas, every request to
the app itself); the test scrolls to the slice through the phantom's true tumour centre with the
keyboard, clicks the tumour at the canvas position NiiVue maps to that point, gets a
semi-automatic ROI (checked against the true tumour), accepts it, predicts and sees the
probability and the "semi-automatic ROI from a click" note.

Never downloads a browser: uses ``/usr/bin/chromium`` and is skipped when it is missing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from browser_helpers import (
    ARTIFACTS,
    CHROMIUM,
    enter_labs,
    launch_chromium,
    open_predict_page,
    phantom_cases,
    read_probability,
    running_app,
    wait_uploads_done_and_idle,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]

# Canvas (CSS px, relative to the canvas) of an LPS point on the axial tile: NiiVue's own
# canvas → mm mapping at three points of the tile, inverted (works in either L/R convention).
CANVAS_OF_LPS_JS = """([x, y, z]) => {
  const nv = window.pleuraViewer.nv;
  const tile = nv.screenSlices.find((s) => s.axCorSag === 0);
  const [l, t, w, h] = tile.leftTopWidthHeight;
  const pts = [[l + 0.25 * w, t + 0.25 * h], [l + 0.75 * w, t + 0.25 * h], [l + 0.25 * w, t + 0.75 * h]];
  const mm = pts.map((p) => nv.frac2mm(nv.canvasPos2frac(p)));
  const ras = [-x, -y, z];
  const dx = [mm[1][0] - mm[0][0], mm[1][1] - mm[0][1]], dy = [mm[2][0] - mm[0][0], mm[2][1] - mm[0][1]];
  const r = [ras[0] - mm[0][0], ras[1] - mm[0][1]];
  const det = dx[0] * dy[1] - dx[1] * dy[0];
  const a = (r[0] * dy[1] - r[1] * dy[0]) / det, b = (dx[0] * r[1] - dx[1] * r[0]) / det;
  const dpr = nv.uiData.dpr || window.devicePixelRatio || 1;
  return [(pts[0][0] + a * (pts[1][0] - pts[0][0])) / dpr, (pts[0][1] + b * (pts[2][1] - pts[0][1])) / dpr];
}"""


@pytest.fixture(scope="module")
def app_url(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_app(bundle=tiny_bundle, workdir=tmp_path_factory.mktemp("viewer-browser")) as app:
        yield app


def _tumour_centre(roi_path: Path) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray]:
    """True tumour: centre (LPS mm), its (x, y, z) voxel, and the mask (z, y, x)."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(roi_path))
    mask = sitk.GetArrayFromImage(img) > 0
    zyx = np.argwhere(mask).mean(axis=0)
    ijk = tuple(int(round(v)) for v in zyx[::-1])
    # the voxel nearest the centre that is inside the tumour
    if not mask[ijk[2], ijk[1], ijk[0]]:
        inside = np.argwhere(mask)
        ijk = tuple(int(v) for v in inside[np.argmin(((inside - zyx) ** 2).sum(axis=1))][::-1])
    return np.asarray(img.TransformIndexToPhysicalPoint(ijk)), ijk, mask  # type: ignore[return-value]


def test_click_the_tumour_then_predict(browser_page, app_url, phantom_cohort: Path) -> None:
    import SimpleITK as sitk

    page, requests = browser_page
    case = phantom_cases(phantom_cohort)[0]
    centre_lps, centre_ijk, true_mask = _tumour_centre(case.roi)
    try:
        open_predict_page(page, app_url.url)
        page.get_by_test_id("stFileUploader").filter(has_text="CT scan").locator("input[type=file]") \
            .set_input_files(str(case.ct))
        page.get_by_text(case.ct.name).wait_for(timeout=120_000)
        wait_uploads_done_and_idle(page)

        # the viewer renders the CT (WebGL canvas inside the component's iframe)
        page.get_by_text("click the tumour in the viewer").first.wait_for(timeout=60_000)
        frame = page.frame_locator("iframe[src*='pleura_ct_viewer']")
        frame.locator("body[data-state='ready']").wait_for(timeout=60_000)
        canvas = frame.locator("canvas#gl")
        assert canvas.bounding_box()["width"] > 300
        assert "Click inside the tumour" in frame.locator("#mode").inner_text()

        # axial view; keyboard to the tumour's slice (the readout says which slice is shown)
        frame.get_by_role("button", name="Axial", exact=True).click()
        canvas.focus()
        for _ in range(400):
            shown = re.search(r"voxel \((\d+), (\d+), (\d+)\)", frame.locator("#cross").inner_text())
            assert shown, frame.locator("#cross").inner_text()
            k = int(shown.group(3))
            if k == centre_ijk[2]:
                break
            canvas.press("ArrowUp" if k < centre_ijk[2] else "ArrowDown")
        assert k == centre_ijk[2]
        page.screenshot(path=str(ARTIFACTS / "viewer-before-click.png"))

        # click the tumour
        viewer_frame = next(f for f in page.frames if "pleura_ct_viewer" in f.url)
        x, y = viewer_frame.evaluate(CANVAS_OF_LPS_JS, [float(v) for v in centre_lps])
        canvas.click(position={"x": x, "y": y})
        page.get_by_text("Semi-automatic ROI:").first.wait_for(timeout=120_000)
        wait_uploads_done_and_idle(page)
        frame.locator("body[data-roi-key]:not([data-roi-key=''])").wait_for(timeout=60_000)

        # the click came back in LPS mm at the tumour (a flipped x or y would land elsewhere)
        said = page.get_by_text("Semi-automatic ROI:").first.inner_text()
        clicked = np.array([float(v) for v in re.search(r"click at \(([-\d.]+), ([-\d.]+), ([-\d.]+)\) mm LPS",
                                                        said).groups()])
        spacing = np.asarray(sitk.ReadImage(str(case.ct)).GetSpacing())
        assert np.all(np.abs(clicked - centre_lps) <= spacing), (clicked, centre_lps)
        page.screenshot(path=str(ARTIFACTS / "viewer-roi.png"))

        # the outline/fill and toggle controls act in the browser
        frame.get_by_role("button", name="Fill", exact=True).click()
        frame.locator("#roi-show").uncheck()
        frame.locator("#roi-show").check()

        page.get_by_role("button", name="Accept this ROI").click()
        page.get_by_text("ROI accepted").first.wait_for(timeout=60_000)
        enter_labs(page, case.labs)
        wait_uploads_done_and_idle(page)
        page.get_by_role("button", name="Predict").click()
        assert 0.0 <= read_probability(page) <= 1.0  # shown in percent
        page.get_by_text("ROI: semi-automatic ROI from a click at").first.wait_for(timeout=60_000)
        # the JSON report says where the ROI came from
        with page.expect_download(timeout=60_000) as info:
            page.get_by_role("button", name="Download JSON").click()
        source = json.loads(Path(info.value.path()).read_text())["roi_source"]
        assert source["kind"] == "semi-automatic"
        assert np.allclose(source["seed_xyz_mm"], clicked, atol=0.051)  # the page shows 0.1 mm
        page.screenshot(path=str(ARTIFACTS / "viewer-predicted.png"), full_page=True)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-failure.png"), full_page=True)
        sys.stderr.write(app_url.log_tail())
        raise
    foreign = sorted({u for u in requests if urlparse(u).hostname not in ("127.0.0.1", "localhost")
                      and not u.startswith(("data:", "blob:", "about:"))})
    assert foreign == [], foreign


def test_large_ct_first_view_is_a_marked_preview_then_the_full_ct(browser_page, app_url, tmp_path: Path) -> None:
    """A CT over 2 M voxels is first shown as a coarse copy, marked as a preview in the stage note
    and the HU readout; the viewer then asks the server for the full CT (built only then) and
    shows it: the readout gives the CT's own HU at the crosshair, and the preview notes are gone."""
    from pipeline.core.volume import Volume
    from pipeline.io.readers import write_image

    page, requests = browser_page
    # 200 × 160 × 160 (5.1 M voxels); HU = 10 × x index + slice index, so every voxel's HU is known
    z, _, x = np.meshgrid(np.arange(200), np.arange(160), np.arange(160), indexing="ij")
    ct = Volume((10 * x + z - 1000).astype(np.int16), spacing_xyz=(0.8, 0.8, 1.0), origin_xyz=(-64.0, -64.0, -100.0))
    path = write_image(ct, tmp_path / "large_ct.nii.gz")
    try:
        open_predict_page(page, app_url.url)
        page.get_by_test_id("stFileUploader").filter(has_text="CT scan").locator("input[type=file]") \
            .set_input_files(str(path))
        frame = page.frame_locator("iframe[src*='pleura_ct_viewer']")
        frame.locator("body[data-state='ready']").wait_for(timeout=120_000)
        viewer_frame = next(f for f in page.frames if "pleura_ct_viewer" in f.url)
        marks = [m["name"] for m in viewer_frame.evaluate("() => window.pleuraViewer.marks")]
        first = next(m for m in marks if m.startswith("stage ") and m.endswith(" shown"))
        assert first == "stage 4x4x2 shown", marks  # every 4th voxel in-plane, every 2nd slice: 160 k voxels
        # read in one go: the full CT may replace the preview between two separate reads
        now = viewer_frame.evaluate("() => ({full: document.body.dataset.full === '1', "
                                    "stage: document.getElementById('stage').innerText})")
        if not now["full"]:  # still the preview: said so
            assert "Preview (every" in now["stage"] and "Full resolution is loading" in now["stage"], now
        frame.locator("body[data-full='1']").wait_for(timeout=240_000)
        marks = [m["name"] for m in viewer_frame.evaluate("() => window.pleuraViewer.marks")]
        assert marks.index("full CT asked for") > marks.index(first) and "full CT url received" in marks, marks
        assert frame.locator("#stage").inner_text().strip() == ""
        cross = frame.locator("#cross").inner_text()
        found = re.search(r"x (-?[\d.]+) · y (-?[\d.]+) · z (-?[\d.]+) mm · voxel \((\d+), (\d+), (\d+)\) · "
                          r"slice (\d+)/200 · (-?\d+) HU$", cross)
        assert found, cross
        lps, (i, j, k, n, hu) = [float(v) for v in found.groups()[:3]], (int(v) for v in found.groups()[3:])
        # the voxel shown is the CT's own (ITK) index of the crosshair's LPS point
        assert (i, j, k) == tuple(round(v) for v in ct.physical_to_index(np.array(lps))[::-1]), cross
        assert n == k + 1 and hu == 10 * i + k - 1000, cross  # the CT's own value there, not a preview's
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-large-failure.png"), full_page=True)
        sys.stderr.write(app_url.log_tail())
        raise
    assert all(urlparse(u).hostname in ("127.0.0.1", "localhost") or u.startswith(("data:", "blob:", "about:"))
               for u in requests)


@pytest.fixture
def browser_page():
    """A Chromium page (Debian's) and the list of every URL it requested."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            yield page, requests
        finally:
            browser.close()
