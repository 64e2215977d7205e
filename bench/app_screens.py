"""Screenshots of the app's Predict result, Batch result and PDF report, and the latency a user
waits in the browser (click → probability, click → PDF button ready, click → PDF downloaded).

Starts ``streamlit run app.py`` (``--bundle``, default ``weights/demo``) and Debian's Chromium
(``/usr/bin/chromium``, never downloaded), writes a small phantom cohort, and for each viewport
(1440×900 desktop, 390×844 phone) predicts one case, screenshots the result, runs a 3-case
batch and screenshots it; the PDF's first page is rendered to PNG with poppler's ``pdftoppm``
(skipped with a note when it is not installed).

    python bench/app_screens.py --out /tmp/pleura-screens            # PNGs + timings.json
    python bench/app_screens.py --out DIR --repeat 3 --size medium    # latency over 3 predictions

Timings are what the browser sees (the server's own "Done in …" figure is reported next to it);
the first prediction includes the model load unless the page's background load finished first.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/pipeline.py shadows pipeline
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402


def _load_by_path(name: str, path: Path):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bh = _load_by_path("browser_helpers", REPO / "tests" / "e2e" / "browser_helpers.py")
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


def _type_labs(page, labs: dict[str, str]) -> None:  # noqa: ANN001
    for key, value in labs.items():
        bh.enter_labs(page, {key: value})
        bh.wait_uploads_done_and_idle(page)


def predict_and_time(page, case, *, out: Path | None, tag: str) -> dict:  # noqa: ANN001
    """Predict one case on an open Predict page; returns click→probability / →PDF timings (s)."""
    bh.wait_uploads_done_and_idle(page)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Predict", exact=True).click()
    probability = bh.read_probability(page)
    t_prob = time.perf_counter() - t0
    pdf_button = page.get_by_role("button", name="Download PDF report")
    pdf_button.wait_for(timeout=300_000)
    t_pdf_ready = time.perf_counter() - t0
    with page.expect_download(timeout=120_000) as dl:
        pdf_button.click()
    pdf_path = Path(dl.value.path())
    t_pdf = time.perf_counter() - t0
    status = page.get_by_text(re.compile(r"Done in [0-9.]+ s")).first.inner_text()
    server_s = float(re.search(r"Done in ([0-9.]+) s", status).group(1))
    if out is not None:
        shutil.copy(pdf_path, out / f"report-{tag}.pdf")
    return {"probability": probability, "click_to_probability_s": round(t_prob, 2),
            "click_to_pdf_button_s": round(t_pdf_ready, 2), "click_to_pdf_downloaded_s": round(t_pdf, 2),
            "server_done_in_s": server_s}


def full_page_screenshot(page, path: Path) -> None:  # noqa: ANN001
    """Streamlit scrolls inside its own container: grow the viewport to the content, shoot, restore."""
    size = page.viewport_size
    height = page.evaluate("() => (document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 80, 12000))})
    page.wait_for_timeout(1200)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def render_pdf(pdf: Path, png: Path, *, width_px: int) -> str | None:
    """First page of ``pdf`` → ``png`` (poppler's pdftoppm); returns a note when it cannot."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        return "pdftoppm (poppler-utils) is not installed: PDF not rendered"
    subprocess.run([exe, "-png", "-f", "1", "-l", "1", "-singlefile", "-scale-to-x", str(width_px), "-scale-to-y", "-1",
                    str(pdf), str(png.with_suffix(""))], check=True, timeout=120)
    return None


def batch_zip(cases: list, folder: Path) -> tuple[Path, Path]:
    zpath, cpath = folder / "cases.zip", folder / "clinical.csv"
    rows = ["case_id,CEA,CA125,age"]
    with zipfile.ZipFile(zpath, "w") as zf:
        for c in cases:
            zf.write(c.ct, c.ct.name)
            zf.write(c.roi, c.roi.name)
            rows.append(f"{c.row['case_id']},{c.row['CEA']},{c.row['CA125']},{c.row['age']}")
        zf.writestr("broken_ct.nii.gz", b"\x89PNG\r\n\x1a\n" + bytes(3000))
        zf.write(cases[0].roi, "broken_roi.nii.gz")
        rows.append("broken,3,20,60")
    cpath.write_text("\n".join(rows) + "\n")
    return zpath, cpath


def run_batch_screen(page, url: str, zpath: Path, cpath: Path, n: int, png: Path) -> float:  # noqa: ANN001
    page.goto(f"{url}/batch", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Score a batch").wait_for(timeout=120_000)
    up = page.get_by_test_id("stFileUploader")
    up.filter(has_text="Clinical values").locator("input[type=file]").set_input_files(str(cpath))
    bh.wait_uploads_done_and_idle(page)
    up.filter(has_text="Cases (.zip)").locator("input[type=file]").set_input_files(str(zpath))
    bh.wait_uploads_done_and_idle(page)
    page.get_by_text(f"{n} cases found").wait_for(timeout=120_000)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Run batch").click()
    page.get_by_role("button", name="Download results CSV").wait_for(timeout=900_000)
    seconds = time.perf_counter() - t0
    bh.wait_uploads_done_and_idle(page)
    grid = page.get_by_test_id("stDataFrame").last
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)  # open the first row's case
    page.get_by_text(re.compile(r"^Case \S+$")).first.wait_for(timeout=60_000)
    full_page_screenshot(page, png)
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the PNGs, PDFs and timings.json")
    ap.add_argument("--bundle", type=Path, default=REPO / "weights" / "demo")
    ap.add_argument("--size", default="small", help="phantom size preset of pipeline.synth.write_cohort")
    ap.add_argument("--repeat", type=int, default=1, help="predictions timed per viewport (≥ 1)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be ≥ 1")
    if not bh.CHROMIUM.exists():
        print("/usr/bin/chromium is not installed", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from pipeline.synth import write_cohort

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pleura-screens-"))
    report: dict = {"bundle": args.bundle.name, "size": args.size, "viewports": {}, "notes": []}
    try:
        cohort = write_cohort(work / "cohort", n=4, seed=11, size=args.size)
        cases = bh.phantom_cases(cohort)
        zpath, cpath = batch_zip(cases[1:4], work)
        with bh.running_app(bundle=args.bundle, workdir=work) as app, sync_playwright() as pw:
            browser = bh.launch_chromium(pw)
            for name, viewport in VIEWPORTS.items():
                page = browser.new_page(viewport=viewport, accept_downloads=True, is_mobile=name == "phone",
                                        has_touch=name == "phone")
                bh.open_predict_page(page, app.url)
                bh.upload_case(page, cases[0])
                runs = []
                for i in range(args.repeat):
                    labs = dict(cases[0].labs)
                    labs["age"] = str(float(labs["age"]) + i)  # a new input each time: a real prediction
                    _type_labs(page, labs)
                    runs.append(predict_and_time(page, cases[0], out=args.out, tag=name))
                page.get_by_text("Why this probability?").wait_for()
                full_page_screenshot(page, args.out / f"predict-{name}.png")
                page.screenshot(path=str(args.out / f"predict-{name}-above-the-fold.png"))
                note = render_pdf(args.out / f"report-{name}.pdf", args.out / f"report-{name}.png",
                                  width_px=viewport["width"] * 2 if name == "phone" else 1240)
                if note:
                    report["notes"].append(note)
                batch_s = run_batch_screen(page, app.url, zpath, cpath, 4, args.out / f"batch-{name}.png")
                page.close()
                report["viewports"][name] = {
                    "predictions": runs,
                    "median_click_to_probability_s": statistics.median(r["click_to_probability_s"] for r in runs),
                    "median_click_to_pdf_downloaded_s": statistics.median(r["click_to_pdf_downloaded_s"] for r in runs),
                    "batch_4_cases_click_to_table_s": round(batch_s, 1),
                }
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "timings.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"PNGs in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
