"""Benchmark: first view of a CT in the app's NiiVue viewer, in a real browser (Debian's Chromium).

Usage (from the repository root, in the project's venv; needs ``/usr/bin/chromium``)::

    python bench/viewer.py                         # 3 uploads of a 512×512×300 int16 phantom CT (.nii.gz)
    python bench/viewer.py --size 256 --slices 120 --repeats 1     # quick look
    python bench/viewer.py --out viewer-bench.json

What it does: writes (or reuses, in ``bench/pipeline.py``'s folder and with its
``make_bench_cases``) a phantom CT of (``--slices``, ``--size``, ``--size``) voxels, starts the app
(``streamlit run app.py``, bundle ``$PLEURA_BUNDLE`` or ``weights/demo``), opens Predict in a fresh
tab for each repeat, puts the CT (no ROI) into the uploader and times, from that moment:

* ``upload_s``: the uploader's chip stops spinning (the browser has sent the file);
* ``first_view_s``: the viewer has painted its first view (its own wall-clock mark, after
  ``requestAnimationFrame``): the server read the CT and built the NIfTI bytes and the coarse
  copies, the browser fetched the coarsest, NiiVue parsed and drew it. A CT over 2 M voxels is
  first shown as a coarse copy of ≤ 0.33 M voxels (every 8th voxel in-plane and every 4th slice of
  a 512×512×300 CT), then every 4th and 2nd voxel, then in full (its bytes built when the viewer
  asks for them, after the first view);
* ``browser_load_s``: of that, the part inside the viewer (fetch + parse + GPU + paint);
* ``after_upload_s`` = ``first_view_s`` − ``upload_s``: the issue's "first view ≤ 2 s after upload";
* ``full_resolution_s`` / ``after_upload_full_s``: the full CT has replaced the copies (from the
  upload's start / end); ``*_polled_s``: the same as Playwright's polls saw them (late when the
  page is busy).

Each run also prints a timeline: the server's marks (``PLEURA_VIEWER_TRACE``) and the viewer's.
It also times, in this process, the server's share (``read_for_viewer`` + ``ViewerImage.of_ct``)
and, in the browser, 20 slice steps with the arrow key (no server round trip), and checks that
every request went to the app itself. Prints a table; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "e2e"))


def _load_by_path(name: str, path: Path):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def server_share(ct_path: str) -> dict[str, float]:
    """Seconds for the server's part, in this process: read the CT, build the NIfTI bytes."""
    from pipeline.app.viewer.payload import ViewerImage
    from pipeline.app.viewer.source import read_for_viewer

    t = time.perf_counter()
    shown = read_for_viewer(ct_path=ct_path)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    image, _ = ViewerImage.of_ct(shown.ct)
    return {"read_s": t_read, "nifti_bytes_s": time.perf_counter() - t, "bytes_mb": len(image.data) / 1e6}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


def timeline(*, t0_wall: float, server_trace: Path, browser_marks: list[dict], upload_wall: float) -> list[tuple]:
    """Server marks (``PLEURA_VIEWER_TRACE``) and the viewer's browser marks after ``t0_wall``,
    as (seconds after the upload started, side, name), in time order."""
    rows = [(t0_wall, "bench", "upload starts"), (upload_wall, "bench", "upload done (chip stops spinning)")]
    if server_trace.exists():
        for line in server_trace.read_text().splitlines():
            m = json.loads(line)
            if m["t"] >= t0_wall - 0.5:
                extra = ", ".join(f"{k}={v}" for k, v in m.items() if k not in ("t", "name", "thread"))
                rows.append((m["t"], "server", m["name"] + (f" ({extra})" if extra else "")
                             + ("" if m.get("thread") == "ScriptRunner.scriptThread" else f" [{m.get('thread')}]")))
    for m in browser_marks:
        if m["t"] / 1000 >= t0_wall - 0.5:
            rows.append((m["t"] / 1000, "viewer", m["name"]))
    return [(t - t0_wall, side, name) for t, side, name in sorted(rows)]


def one_view(browser, url: str, ct_path: str, *, server_trace: Path) -> dict[str, float]:  # noqa: ANN001
    from browser_helpers import open_predict_page

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        open_predict_page(page, url)
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="CT scan").locator("input[type=file]")
        t0, t0_wall = time.perf_counter(), time.time()
        uploader.set_input_files(ct_path)
        page.get_by_text(Path(ct_path).name).wait_for(timeout=600_000)  # the chip appears at once …
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stFileChipIconSpinner\"]')",
                               timeout=600_000, polling=20)  # … its spinner goes once uploaded
        t_upload, upload_wall = time.perf_counter() - t0, time.time()
        frame = page.frame_locator("iframe[src*='pleura_ct_viewer']")
        frame.locator("body[data-state='ready']").wait_for(timeout=600_000)
        t_view = time.perf_counter() - t0
        body = frame.locator("body")
        frame.locator("body[data-full='1']").wait_for(timeout=600_000)
        load_ms = float(body.get_attribute("data-load-ms") or "nan")
        t_full = time.perf_counter() - t0
        load_full = load_average()
        # 20 slice steps with the keyboard, in the browser
        canvas = frame.locator("canvas#gl")
        canvas.focus()
        viewer = next(f for f in page.frames if "pleura_ct_viewer" in f.url)
        t = time.perf_counter()
        for _ in range(20):
            canvas.press("ArrowUp")
        viewer.evaluate("() => new Promise((r) => requestAnimationFrame(() => r()))")
        t_steps = time.perf_counter() - t
        marks = viewer.evaluate("() => window.pleuraViewer.marks")
        shown = [m for m in marks if m["name"].startswith("stage ") and m["name"].endswith(" shown")
                 and m["t"] / 1000 >= t0_wall]
        # the viewer's own wall-clock marks (taken after the frame is painted); the Playwright
        # polls above can answer late while the page is busy with the next stage
        t_view_mark = shown[0]["t"] / 1000 - t0_wall
        t_full_mark = shown[-1]["t"] / 1000 - t0_wall
        for dt, side, name in timeline(t0_wall=t0_wall, server_trace=server_trace, browser_marks=marks,
                                       upload_wall=upload_wall):
            say(f"    {dt:7.2f} s  {side:<6} {name}")
        foreign = sorted({u for u in requests if urlparse(u).hostname not in ("127.0.0.1", "localhost")
                          and not u.startswith(("data:", "blob:", "about:"))})
        return {"upload_s": t_upload, "first_view_s": t_view_mark, "after_upload_s": t_view_mark - t_upload,
                "full_resolution_s": t_full_mark, "after_upload_full_s": t_full_mark - t_upload,
                "first_view_polled_s": t_view, "full_polled_s": t_full,
                "browser_load_s": load_ms / 1000, "twenty_slice_steps_s": t_steps, "foreign_requests": len(foreign),
                "load_average_at_full_view": load_full}
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pleurarisk-bench")
    ap.add_argument("--bundle", type=Path, default=Path(os.environ.get("PLEURA_BUNDLE", REPO / "weights" / "demo")))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    from browser_helpers import launch_chromium, running_app
    from playwright.sync_api import sync_playwright

    bp = _load_by_path("bench_pipeline", _HERE / "pipeline.py")
    folder = args.workdir / f"phantoms_{args.slices}x{args.size}x{args.size}_seed{args.seed}"
    case = bp.make_bench_cases(folder, n=1, size=args.size, slices=args.slices, seed=args.seed)[0]
    say(f"CT: {case.shape_zyx} (z, y, x), {Path(case.ct_path).stat().st_size / 1e6:.0f} MB .nii.gz")
    share = server_share(case.ct_path)
    runs = []
    workdir = Path(tempfile.mkdtemp(prefix="viewer-bench-"))
    trace = workdir / "viewer-trace.jsonl"
    with running_app(bundle=args.bundle, workdir=workdir, extra_env={"PLEURA_VIEWER_TRACE": str(trace)}) as app, \
            sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            for i in range(args.repeats):
                say(f"  run {i + 1} (load average before: {load_average()}):")
                runs.append(one_view(browser, app.url, case.ct_path, server_trace=trace))
                say(f"  run {i + 1}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in runs[-1].items()))
        finally:
            browser.close()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if not isinstance(runs[0][k], str)}
    result = {"shape_zyx": case.shape_zyx, "server_share": share, "runs": runs, "median": med}
    print(f"\nload average at the end: {load_average()}")
    print(f"CT {case.shape_zyx[2]}×{case.shape_zyx[1]}×{case.shape_zyx[0]} int16, {args.repeats} uploads (median):")
    print(f"  server share: read {share['read_s']:.2f} s + NIfTI bytes {share['nifti_bytes_s']:.2f} s "
          f"({share['bytes_mb']:.0f} MB sent uncompressed)")
    for key, label in (("upload_s", "upload (chip stops spinning)"), ("first_view_s", "upload start → first view"),
                       ("after_upload_s", "upload done → first view"),
                       ("browser_load_s", "  of which in the viewer (fetch + parse + GPU + paint)"),
                       ("full_resolution_s", "upload start → full-resolution CT shown"),
                       ("after_upload_full_s", "upload done → full-resolution CT shown"),
                       ("twenty_slice_steps_s", "20 slice steps (arrow key, in the browser)"),
                       ("foreign_requests", "requests not to the app")):
        print(f"  {label:<48} {med[key]:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
